"""Pairing codes, their expiry, backups and restores, and a platform that refuses a login."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.sessions.models import BotSession, SessionBackup
from guildhall.core.sessions.service import BackupView
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.ld7.conftest import BOT, client_for, counts, online_bot, pair


async def _info(ld7: httpx.AsyncClient, handle: str = "bot_1234567890") -> dict:
    return (await ld7.get(f"/api/sessions/{handle}")).json()


async def _stored_state(runtime: Runtime, handle: str) -> str | None:
    """The state the database holds (a read shows an expired code as failed at once)."""
    async with runtime.database.unit_of_work(write=False) as session:
        return await session.scalar(select(BotSession.state).where(BotSession.handle == handle))


async def test_a_wrong_code_is_refused_and_the_right_one_still_works(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    code = (await ld7.post("/api/sessions", json=BOT)).json()["pairingCode"]
    wrong = "AAAA-AAAA" if code != "AAAA-AAAA" else "BBBB-BBBB"
    before = await counts(runtime)
    with pytest.raises(Invalid, match="pairing code for session bot_1234567890 is wrong"):
        await pair(runtime, "bot_1234567890", wrong)
    assert await counts(runtime) == before  # no audit row, no event
    assert (await _info(ld7))["state"] == "pairing"
    assert (await ld7.get("/api/sessions/bot_1234567890/pairing")).json()["pairingCode"] == code
    # Typed by a person: lower case is the same code.
    await pair(runtime, "bot_1234567890", code.lower())
    assert (await _info(ld7))["status"] == "online"


async def test_an_expired_code_is_gone_and_the_session_fails_until_started_again(
    other_runtime: Callable[..., Runtime],
) -> None:
    runtime = other_runtime(sessions__pairing_ttl_seconds=0.3)
    async with client_for(runtime) as ld7:
        code = (await ld7.post("/api/sessions", json=BOT)).json()["pairingCode"]
        await asyncio.sleep(0.4)
        pending = await ld7.get("/api/sessions/bot_1234567890/pairing")
        assert pending.status_code == 404
        with pytest.raises(Conflict, match="no pending pairing code"):
            await pair(runtime, "bot_1234567890", code)

        assert await runtime.sessions.expire_pairings(TEST_ACTOR) == ["bot_1234567890"]
        info = await _info(ld7)
        assert (info["status"], info["state"]) == ("offline", "failed")
        assert info["failureReason"] == "pairing code expired"
        assert info["failedAt"] is not None

        fresh = (await ld7.post("/api/sessions/bot_1234567890/start")).json()
        assert fresh["pairingCode"] != code
        await pair(runtime, "bot_1234567890", fresh["pairingCode"])
        assert (await _info(ld7))["status"] == "online"


async def test_a_stale_code_reads_as_failed_at_once_without_the_sweeper(
    other_runtime: Callable[..., Runtime],
) -> None:
    """The dashboard polls the session; it must not show ``pairing`` for a dead code."""
    # Codes live 3 s: long enough that a loaded machine still reads them as pairing.
    runtime = other_runtime(sessions__pairing_ttl_seconds=3, sessions__sweep_interval_seconds=3600)
    async with client_for(runtime) as ld7:
        await ld7.post("/api/sessions", json=BOT)
        assert (await _info(ld7))["state"] == "pairing"
        await asyncio.sleep(3.2)
        info = await _info(ld7)
        assert (info["status"], info["state"]) == ("offline", "failed")
        assert info["failureReason"] == "pairing code expired"
        assert info["failedAt"] is not None
        listed = (await ld7.get("/api/sessions")).json()["sessions"]
        assert [(s["userId"], s["status"], s["state"]) for s in listed] == [
            ("bot_1234567890", "offline", "failed")
        ]
        # Starting it again issues a fresh code, as after the sweeper's move.
        fresh = (await ld7.post("/api/sessions/bot_1234567890/start")).json()
        assert fresh["success"] is True and fresh["pairingCode"]
        assert (await _info(ld7))["state"] == "pairing"


async def test_the_server_sweeps_expired_codes_by_itself(
    other_runtime: Callable[..., Runtime],
) -> None:
    runtime = other_runtime(sessions__pairing_ttl_seconds=0.2, sessions__sweep_interval_seconds=0.1)
    await runtime.start({"ld7"})
    async with client_for(runtime) as ld7:
        await ld7.post("/api/sessions", json=BOT)
        for _ in range(50):
            if await _stored_state(runtime, "bot_1234567890") == "failed":
                break
            await asyncio.sleep(0.1)
        assert await _stored_state(runtime, "bot_1234567890") == "failed"
        assert (await _info(ld7))["failureReason"] == "pairing code expired"


async def test_pairing_codes_and_logins_are_sealed_in_the_database(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    code = (await ld7.post("/api/sessions", json=BOT)).json()["pairingCode"]
    async with runtime.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(BotSession))
        assert row is not None and row.pairing_code is not None
        assert code.encode() not in row.pairing_code
    await pair(runtime, "bot_1234567890", code)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    async with runtime.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(BotSession))
        backup = await session.scalar(select(SessionBackup))
        assert row is not None and row.login_state is not None and backup is not None
        login = runtime.sessions._sealer.open(row.login_state)  # what the platform holds
    assert b"identity_key" in login and b"1234567890" in login
    for stored in (row.login_state, backup.login_state):
        assert b"identity_key" not in stored
        assert b"1234567890" not in stored


async def test_backup_then_delete_then_restore_starts_without_pairing(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    made = await ld7.post("/api/sessions/bot_1234567890/backup")
    assert made.status_code == 200
    body = made.json()
    assert body["success"] is True and body["userId"] == "bot_1234567890"
    assert body["message"] == "Session bot_1234567890 backed up"
    backed_up_at = body["backedUpAt"]

    await ld7.delete("/api/sessions/bot_1234567890")
    assert (await ld7.get("/api/sessions/bot_1234567890")).status_code == 404

    restored = await ld7.post("/api/sessions/bot_1234567890/restore")
    assert restored.json() == {
        "success": True,
        "message": "Session bot_1234567890 restored from backup",
        "userId": "bot_1234567890",
        "backedUpAt": backed_up_at,
    }
    info = await _info(ld7)
    assert (info["status"], info["state"], info["paired"]) == ("offline", "offline", True)
    assert info["phoneNumber"] == "1234567890"

    started = (await ld7.post("/api/sessions/bot_1234567890/start")).json()
    assert started == {
        "success": True,
        "message": "Session started successfully",
        "userId": "bot_1234567890",
    }
    assert (await _info(ld7))["status"] == "online"


async def test_restore_into_a_stopped_session_and_not_into_a_running_one(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    before = await counts(runtime)
    refused = await ld7.post("/api/sessions/bot_1234567890/restore")
    assert refused.status_code == 409
    assert refused.json() == {
        "success": False,
        "message": "Session bot_1234567890 is online; stop it before restoring",
    }
    assert await counts(runtime) == before
    await ld7.post("/api/sessions/bot_1234567890/stop")
    assert (await ld7.post("/api/sessions/bot_1234567890/restore")).status_code == 200
    assert (await ld7.post("/api/sessions/bot_1234567890/start")).json()["message"] == (
        "Session started successfully"
    )


async def test_a_backup_of_another_phone_is_not_restored_into_a_session(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    await ld7.delete("/api/sessions/bot_1234567890")
    await ld7.post("/api/sessions", json={**BOT, "phoneNumber": "5555555555"})
    await ld7.post("/api/sessions/bot_1234567890/stop")
    before, info = await counts(runtime), await _info(ld7)
    refused = await ld7.post("/api/sessions/bot_1234567890/restore")
    assert refused.status_code == 409
    assert refused.json() == {
        "success": False,
        "message": "The backup of session bot_1234567890 is for another phone number; "
        "delete the session to restore it",
    }
    assert await counts(runtime) == before
    assert await _info(ld7) == info
    # Deleted, it comes back with the backup's phone number.
    await ld7.delete("/api/sessions/bot_1234567890")
    assert (await ld7.post("/api/sessions/bot_1234567890/restore")).status_code == 200
    assert (await _info(ld7))["phoneNumber"] == "1234567890"


async def test_a_restore_racing_a_create_gets_a_clean_answer(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    """A create in one process and a restore in another, at once (PostgreSQL: the unique
    index decides; SQLite: the write lock): the restore answers, it does not crash, and
    one session exists."""
    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    await ld7.delete("/api/sessions/bot_1234567890")
    elsewhere = other_runtime()
    creating = runtime.sessions.create("bot_1234567890", "1234567890", TEST_ACTOR)
    restoring = elsewhere.sessions.restore("bot_1234567890", TEST_ACTOR)
    created, restored = await asyncio.gather(creating, restoring, return_exceptions=True)
    if isinstance(created, Conflict):  # the restore recreated the session first
        assert created.code == "session_exists"
        assert isinstance(restored, BackupView), restored
    elif isinstance(restored, Conflict):  # the create inserted first; the restore lost
        assert restored.code == "session_exists"
    else:  # the create came first and the restore put the login into it
        assert isinstance(restored, BackupView), restored
    assert (await counts(runtime)).sessions == 1


async def test_a_restore_racing_a_logout_leaves_neither_session_nor_backup(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    """Logout removes the backup; a restore racing it (in another process) either comes
    first and is logged out with the rest, or finds no backup: nothing comes back."""
    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    await ld7.post("/api/sessions/bot_1234567890/stop")
    elsewhere = other_runtime()
    logging_out = runtime.sessions.logout("bot_1234567890", TEST_ACTOR)
    restoring = elsewhere.sessions.restore("bot_1234567890", TEST_ACTOR)
    logged_out, restored = await asyncio.gather(logging_out, restoring, return_exceptions=True)
    assert logged_out is None, logged_out
    if isinstance(restored, NotFound):
        assert restored.code == "no_backup"
    else:
        assert isinstance(restored, BackupView), restored
    assert ((await counts(runtime)).sessions, (await counts(runtime)).backups) == (0, 0)


async def test_nothing_to_back_up_or_restore(ld7: httpx.AsyncClient, runtime: Runtime) -> None:
    await ld7.post("/api/sessions", json=BOT)
    unpaired = await ld7.post("/api/sessions/bot_1234567890/backup")
    assert unpaired.status_code == 409
    assert unpaired.json() == {
        "success": False,
        "message": "Session bot_1234567890 is not paired, so there is no login to back up",
    }
    none = await ld7.post("/api/sessions/bot_1234567890/restore")
    assert none.status_code == 404
    assert none.json() == {"success": False, "message": "Session bot_1234567890 has no backup"}
    assert (await counts(runtime)).backups == 0


async def test_another_installation_secret_cannot_open_a_backup_or_a_login(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    await ld7.post("/api/sessions/bot_1234567890/stop")
    stranger = other_runtime(secret_key="another installation's secret, 32+ characters")
    async with client_for(stranger) as other:
        before = await counts(runtime)
        restore = await other.post("/api/sessions/bot_1234567890/restore")
        assert restore.status_code == 400
        assert restore.json()["message"] == (
            "The backup of session bot_1234567890 cannot be opened with this installation's secret"
        )
        assert await counts(runtime) == before

        # The platform refuses a login it cannot read: the session fails, and says why.
        start = await other.post("/api/sessions/bot_1234567890/start")
        assert start.status_code == 502
        assert start.json()["success"] is False
        assert start.json()["message"].startswith("Session bot_1234567890 could not connect")
        info = await _info(other)
        assert (info["status"], info["state"]) == ("offline", "failed")
        assert info["failureReason"] and info["failedAt"]
        assert (await other.get("/api/stats")).json()["activeSessions"] == 0

    # With the right secret, the failed session starts again.
    assert (await ld7.post("/api/sessions/bot_1234567890/start")).json()["message"] == (
        "Session started successfully"
    )


async def test_data_sealed_by_another_secret_is_a_clear_409_and_logout_still_works(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    await ld7.post("/api/sessions", json={**BOT, "userId": "bot_pairing"})
    stranger = other_runtime(secret_key="another installation's secret, 32+ characters")
    async with client_for(stranger) as other:
        before = await counts(runtime)
        for method, handle, path in [
            ("GET", "bot_pairing", "pairing"),
            ("POST", "bot_1234567890", "backup"),
        ]:
            response = await other.request(method, f"/api/sessions/{handle}/{path}")
            assert (response.status_code, response.json()) == (
                409,
                {
                    "success": False,
                    "message": f"The stored data of session {handle} cannot be opened "
                    "with this installation's secret",
                },
            )
        assert await counts(runtime) == before

        # A session can always be logged out: the platform is told without the login.
        logout = await other.post("/api/sessions/bot_1234567890/logout")
        assert logout.json() == {
            "success": True,
            "message": "Session bot_1234567890 logged out and deleted",
        }
    after = await counts(runtime)
    assert (after.sessions, after.backups) == (1, 0)


async def test_resume_reconnects_online_sessions_and_leaves_stopped_ones(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    await online_bot(ld7, runtime, "bot_online")
    await online_bot(ld7, runtime, "bot_stopped")
    await ld7.post("/api/sessions/bot_stopped/stop")
    stopped_before = await _info(ld7, "bot_stopped")
    await runtime.sessions.close()  # the process stops: connections close, its leases go

    restarted = other_runtime()  # a new process: nothing connected yet
    assert restarted.sessions.connector.is_connected("bot_online") is False  # type: ignore[attr-defined]
    assert await restarted.resume_sessions() == {"bot_online": None}
    assert restarted.sessions.connector.is_connected("bot_online") is True  # type: ignore[attr-defined]
    assert restarted.sessions.connector.is_connected("bot_stopped") is False  # type: ignore[attr-defined]
    assert await _info(ld7, "bot_stopped") == stopped_before


async def test_only_a_served_ld7_face_resumes_sessions_and_sweeps_codes(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    await online_bot(ld7, runtime, "bot_online")
    await runtime.sessions.close()  # the process that paired it stops
    fast = {"sessions__pairing_ttl_seconds": 0.1, "sessions__sweep_interval_seconds": 0.05}

    heliactyl_only = other_runtime(**fast)
    await heliactyl_only.start({"heliactyl"})
    async with client_for(heliactyl_only) as other:
        await other.post("/api/sessions", json={**BOT, "userId": "bot_pairing"})
        await asyncio.sleep(0.4)
        await heliactyl_only.drain()
        assert await _stored_state(heliactyl_only, "bot_pairing") == "pairing"  # not swept
    assert heliactyl_only.sessions.connector.is_connected("bot_online") is False  # type: ignore[attr-defined]

    with_ld7 = other_runtime(**fast)
    await with_ld7.start({"heliactyl", "ld7"})
    await with_ld7.drain()  # the resume runs in the background
    assert with_ld7.sessions.connector.is_connected("bot_online") is True  # type: ignore[attr-defined]
    for _ in range(50):
        if await _stored_state(with_ld7, "bot_pairing") == "failed":
            break
        await asyncio.sleep(0.05)
    assert await _stored_state(with_ld7, "bot_pairing") == "failed"
    assert (await _info(ld7, "bot_pairing"))["failureReason"] == "pairing code expired"
