"""Pairing codes, their expiry, backups and restores, and a platform that refuses a login."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from guildhall.core.errors import Conflict, Invalid
from guildhall.core.sessions.models import BotSession, SessionBackup
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.ld7.conftest import BOT, client_for, counts, online_bot, pair


async def _info(ld7: httpx.AsyncClient, handle: str = "bot_1234567890") -> dict:
    return (await ld7.get(f"/api/sessions/{handle}")).json()


async def test_a_wrong_code_is_refused_and_the_right_one_still_works(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    code = (await ld7.post("/api/sessions", json=BOT)).json()["pairingCode"]
    wrong = "AAAA-AAAA" if code != "AAAA-AAAA" else "BBBB-BBBB"
    with pytest.raises(Invalid, match="pairing code for session bot_1234567890 is wrong"):
        await pair(runtime, "bot_1234567890", wrong)
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

        async with runtime.database.unit_of_work() as session:
            assert await runtime.sessions.expire_pairings(session, TEST_ACTOR) == ["bot_1234567890"]
        info = await _info(ld7)
        assert (info["status"], info["state"]) == ("offline", "failed")
        assert info["failureReason"] == "pairing code expired"
        assert info["failedAt"] is not None

        fresh = (await ld7.post("/api/sessions/bot_1234567890/start")).json()
        assert fresh["pairingCode"] != code
        await pair(runtime, "bot_1234567890", fresh["pairingCode"])
        assert (await _info(ld7))["status"] == "online"


async def test_the_server_sweeps_expired_codes_by_itself(
    other_runtime: Callable[..., Runtime],
) -> None:
    runtime = other_runtime(sessions__pairing_ttl_seconds=0.2, sessions__sweep_interval_seconds=0.1)
    await runtime.start()
    async with client_for(runtime) as ld7:
        await ld7.post("/api/sessions", json=BOT)
        for _ in range(50):
            if (await _info(ld7))["state"] == "failed":
                break
            await asyncio.sleep(0.1)
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


async def test_resume_reconnects_online_sessions_and_leaves_stopped_ones(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    await online_bot(ld7, runtime, "bot_online")
    await online_bot(ld7, runtime, "bot_stopped")
    await ld7.post("/api/sessions/bot_stopped/stop")
    stopped_before = await _info(ld7, "bot_stopped")

    restarted = other_runtime()  # a new process: nothing connected yet
    assert restarted.sessions.connector.is_connected("bot_online") is False  # type: ignore[attr-defined]
    async with restarted.database.unit_of_work() as session:
        outcome = await restarted.sessions.resume(session, TEST_ACTOR)
    assert outcome == {"bot_online": None}
    assert restarted.sessions.connector.is_connected("bot_online") is True  # type: ignore[attr-defined]
    assert restarted.sessions.connector.is_connected("bot_stopped") is False  # type: ignore[attr-defined]
    assert await _info(ld7, "bot_stopped") == stopped_before
