"""The session endpoints, as the LD7 document gives them.

POST /api/sessions  {"userId": "bot_1234567890", "phoneNumber": "1234567890"}
-> {"success": true, "message": "Session created. Use the pairing code to connect.",
    "pairingCode": "ABCD-1234", "userId": "bot_1234567890"}
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from guildhall.runtime import Runtime
from tests.faces.ld7.conftest import BOT, PAIRING_CODE, counts, online_bot


def _time(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_empty_installation(ld7: httpx.AsyncClient) -> None:
    assert (await ld7.get("/api/stats")).json() == {
        "success": True,
        "activeSessions": 0,
        "totalUsers": 0,
    }
    assert (await ld7.get("/api/sessions")).json() == {"success": True, "count": 0, "sessions": []}


async def test_create_answers_the_documented_body_with_a_pairing_code(
    ld7: httpx.AsyncClient,
) -> None:
    response = await ld7.post("/api/sessions", json=BOT)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Session created. Use the pairing code to connect."
    assert body["userId"] == "bot_1234567890"
    assert re.fullmatch(PAIRING_CODE, body["pairingCode"])
    expires = _time(body["expiresAt"])
    assert timedelta(minutes=2) < expires - datetime.now(UTC) <= timedelta(minutes=3)

    pending = (await ld7.get("/api/sessions/bot_1234567890/pairing")).json()
    assert pending == {
        "success": True,
        "pairingCode": body["pairingCode"],
        "expiresAt": body["expiresAt"],
    }

    info = (await ld7.get("/api/sessions/bot_1234567890")).json()
    assert info["success"] is True
    assert (info["userId"], info["phoneNumber"], info["status"], info["name"]) == (
        "bot_1234567890",
        "1234567890",
        "offline",
        None,
    )
    assert info["state"] == "pairing"
    assert info["paired"] is False
    assert info["lastConnectedAt"] is None


async def test_pairing_brings_the_session_online(ld7: httpx.AsyncClient, runtime: Runtime) -> None:
    await online_bot(ld7, runtime)
    info = (await ld7.get("/api/sessions/bot_1234567890")).json()
    assert (info["status"], info["state"], info["paired"]) == ("online", "online", True)
    assert datetime.now(UTC) - _time(info["lastConnectedAt"]) < timedelta(seconds=10)
    assert (await ld7.get("/api/stats")).json() == {
        "success": True,
        "activeSessions": 1,
        "totalUsers": 1,
    }
    # The code was used: nothing is pending any more.
    gone = await ld7.get("/api/sessions/bot_1234567890/pairing")
    assert gone.status_code == 404
    assert gone.json() == {
        "success": False,
        "message": "Session bot_1234567890 has no pending pairing code",
    }


async def test_list_shows_each_session_in_the_documented_shape(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    await ld7.post(
        "/api/sessions",
        json={"userId": "bot_9876543210", "phoneNumber": "9876543210", "name": "John's Bot"},
    )
    body = (await ld7.get("/api/sessions")).json()
    assert body["success"] is True and body["count"] == 2
    assert [
        {key: item[key] for key in ("userId", "phoneNumber", "status", "name")}
        for item in body["sessions"]
    ] == [
        {"userId": "bot_1234567890", "phoneNumber": "1234567890", "status": "online", "name": None},
        {
            "userId": "bot_9876543210",
            "phoneNumber": "9876543210",
            "status": "offline",
            "name": "John's Bot",
        },
    ]
    assert (await ld7.get("/api/stats")).json()["activeSessions"] == 1


async def test_a_second_create_for_the_same_user_is_refused(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await ld7.post("/api/sessions", json=BOT)
    before = await counts(runtime)
    response = await ld7.post("/api/sessions", json={**BOT, "phoneNumber": "5555555555"})
    assert response.status_code == 400  # the original server's code; the document names none
    assert response.json() == {
        "success": False,
        "message": "Session already exists for this user. "
        "Delete it first or use a different userId.",
    }
    assert await counts(runtime) == before


async def test_concurrent_creates_for_one_user_make_one_session(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The losers of the race get the documented refusal, not a unique-constraint 500."""
    responses = await asyncio.gather(*(ld7.post("/api/sessions", json=BOT) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] + [400] * 7
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {
                "success": False,
                "message": "Session already exists for this user. "
                "Delete it first or use a different userId.",
            }
    assert (await counts(runtime)).sessions == 1


@pytest.mark.parametrize(
    "user_id", ["bot 1", "bot/1", "bøt", "x" * 65, "bot_1;drop", 12345, ["bot"], True]
)
async def test_a_bad_user_id_gets_the_documented_message(
    ld7: httpx.AsyncClient, runtime: Runtime, user_id: object
) -> None:
    response = await ld7.post("/api/sessions", json={**BOT, "userId": user_id})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "userId must be alphanumeric (a-z, 0-9, _, -)",
    }
    assert (await counts(runtime)).sessions == 0


@pytest.mark.parametrize(
    "phone", ["1234567", "+1 (234) 567", "1234567890123456", "12345abcde", "", "٣٣٣٣٣٣٣٣٣", -123]
)
async def test_a_bad_phone_number_is_refused_clearly(
    ld7: httpx.AsyncClient, runtime: Runtime, phone: object
) -> None:
    response = await ld7.post("/api/sessions", json={**BOT, "phoneNumber": phone})
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "phone" in response.json()["message"].lower()
    assert (await counts(runtime)).sessions == 0


@pytest.mark.parametrize("typed", ["+1 555 000 6666", "+1-555-000-6666", "(1) 555.000.6666"])
async def test_a_phone_number_as_people_type_it_is_kept_as_its_digits(
    ld7: httpx.AsyncClient, typed: str
) -> None:
    """The LD7 dashboard's form posts what was typed in its text box; the original
    strips everything but digits before validating."""
    response = await ld7.post(
        "/api/sessions",
        content=json.dumps({"userId": "bot_1234567890", "phoneNumber": typed}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    info = (await ld7.get("/api/sessions/bot_1234567890")).json()
    assert info["phoneNumber"] == "15550006666"


async def test_a_phone_number_sent_as_a_json_number_is_its_digits(ld7: httpx.AsyncClient) -> None:
    response = await ld7.post("/api/sessions", json={**BOT, "phoneNumber": 1234567890})
    assert response.status_code == 200
    info = (await ld7.get("/api/sessions/bot_1234567890")).json()
    assert info["phoneNumber"] == "1234567890"


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b'{"userId": "bot_1"}', b'{"phoneNumber": "1234567890"}', b"[]", b'"x"'],
)
async def test_missing_fields_are_required(
    ld7: httpx.AsyncClient, runtime: Runtime, body: bytes
) -> None:
    response = await ld7.post(
        "/api/sessions", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "userId and phoneNumber are required"}
    assert (await counts(runtime)).sessions == 0


async def test_malformed_json_is_a_clear_400(ld7: httpx.AsyncClient) -> None:
    response = await ld7.post(
        "/api/sessions", content=b'{"userId": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Request body must be valid JSON"}


async def test_stop_then_start_reconnects_without_pairing(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    first = (await ld7.get("/api/sessions/bot_1234567890")).json()["lastConnectedAt"]

    stopped = await ld7.post("/api/sessions/bot_1234567890/stop")
    assert stopped.json() == {"success": True, "message": "Session bot_1234567890 stopped"}
    info = (await ld7.get("/api/sessions/bot_1234567890")).json()
    assert (info["status"], info["state"]) == ("offline", "offline")
    assert (await ld7.get("/api/stats")).json()["activeSessions"] == 0

    started = await ld7.post("/api/sessions/bot_1234567890/start")
    assert started.status_code == 200
    assert started.json() == {
        "success": True,
        "message": "Session started successfully",
        "userId": "bot_1234567890",
    }
    info = (await ld7.get("/api/sessions/bot_1234567890")).json()
    assert (info["status"], info["state"]) == ("online", "online")
    assert _time(info["lastConnectedAt"]) >= _time(first)


async def test_starting_an_unpaired_session_issues_a_fresh_code(
    ld7: httpx.AsyncClient,
) -> None:
    first = (await ld7.post("/api/sessions", json=BOT)).json()["pairingCode"]
    await ld7.post("/api/sessions/bot_1234567890/stop")
    started = (await ld7.post("/api/sessions/bot_1234567890/start")).json()
    assert started["success"] is True
    assert re.fullmatch(PAIRING_CODE, started["pairingCode"])
    pending = (await ld7.get("/api/sessions/bot_1234567890/pairing")).json()
    assert pending["pairingCode"] == started["pairingCode"]
    # Eight characters from 31: a repeat of the first code would be a one in 850 billion chance.
    assert started["pairingCode"] != first


async def test_illegal_moves_answer_409_and_change_nothing(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    before = await counts(runtime)
    again = await ld7.post("/api/sessions/bot_1234567890/start")
    assert again.status_code == 409
    assert again.json() == {"success": False, "message": "Session bot_1234567890 is already online"}
    await ld7.post("/api/sessions/bot_1234567890/stop")
    twice = await ld7.post("/api/sessions/bot_1234567890/stop")
    assert twice.status_code == 409
    assert twice.json() == {"success": False, "message": "Session bot_1234567890 is not running"}
    assert (await counts(runtime)).events == before.events + 1  # only the one real stop


async def test_delete_removes_the_session(ld7: httpx.AsyncClient, runtime: Runtime) -> None:
    await online_bot(ld7, runtime)
    response = await ld7.delete("/api/sessions/bot_1234567890")
    assert response.json() == {"success": True, "message": "Session bot_1234567890 deleted"}
    assert (await ld7.get("/api/sessions/bot_1234567890")).status_code == 404
    assert (await ld7.get("/api/stats")).json() == {
        "success": True,
        "activeSessions": 0,
        "totalUsers": 0,
    }
    # The userId is free again.
    assert (await ld7.post("/api/sessions", json=BOT)).status_code == 200


async def test_logout_logs_out_and_deletes(ld7: httpx.AsyncClient, runtime: Runtime) -> None:
    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/backup")
    response = await ld7.post("/api/sessions/bot_1234567890/logout")
    assert response.json() == {
        "success": True,
        "message": "Session bot_1234567890 logged out and deleted",
    }
    assert runtime.sessions.connector.is_connected("bot_1234567890") is False  # type: ignore[attr-defined]
    assert (await ld7.get("/api/sessions/bot_1234567890")).status_code == 404
    # A logged-out login is dead: its backup went with it.
    assert (await ld7.post("/api/sessions/bot_1234567890/restore")).status_code == 404
    assert (await counts(runtime)).backups == 0


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/api/sessions/ghost", "Session ghost not found"),
        ("GET", "/api/sessions/ghost/pairing", "Session ghost not found"),
        ("POST", "/api/sessions/ghost/start", "Session not found. Create a new session first."),
        ("POST", "/api/sessions/ghost/backup", "Session ghost not found"),
    ],
)
async def test_reading_or_starting_an_unknown_session_is_404(
    ld7: httpx.AsyncClient, runtime: Runtime, method: str, path: str, message: str
) -> None:
    before = await counts(runtime)
    response = await ld7.request(method, path)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": message}
    assert await counts(runtime) == before


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/api/sessions/ghost/stop", "Session ghost stopped"),
        ("DELETE", "/api/sessions/ghost", "Session ghost deleted"),
        ("POST", "/api/sessions/ghost/logout", "Session ghost logged out and deleted"),
    ],
)
async def test_stopping_or_removing_an_unknown_session_succeeds_as_in_the_original(
    ld7: httpx.AsyncClient, runtime: Runtime, method: str, path: str, message: str
) -> None:
    """The original server answers these without looking the session up (200,
    ``success: true``); a dashboard that deletes twice reads success both times."""
    before = await counts(runtime)
    response = await ld7.request(method, path, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": message}
    assert await counts(runtime) == before
    assert (await ld7.get("/api/sessions/ghost")).status_code == 404


async def test_deleting_twice_reads_success_both_times(ld7: httpx.AsyncClient) -> None:
    assert (await ld7.post("/api/sessions", json=BOT)).status_code == 200
    first = await ld7.delete("/api/sessions/bot_1234567890")
    second = await ld7.delete("/api/sessions/bot_1234567890")
    assert (
        first.json()
        == second.json()
        == {
            "success": True,
            "message": "Session bot_1234567890 deleted",
        }
    )
    listing = (await ld7.get("/api/sessions")).json()
    assert listing["count"] == 0


async def test_unknown_routes_and_methods_keep_the_format(ld7: httpx.AsyncClient) -> None:
    missing = await ld7.get("/api/nothing")
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Not found"}
    wrong = await ld7.put("/api/sessions")
    assert wrong.status_code == 405
    assert wrong.json() == {"success": False, "message": "Method not allowed"}


async def test_every_state_change_leaves_an_audit_row_and_an_event(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    from guildhall.events import outbox

    await online_bot(ld7, runtime)
    await ld7.post("/api/sessions/bot_1234567890/stop")
    async with runtime.database.unit_of_work(write=False) as session:
        events = await outbox.recent(session, "session.status")
    moves = [(e["data"]["previous_state"], e["data"]["state"]) for e in reversed(events)]
    assert moves == [
        ("none", "created"),
        ("created", "pairing"),
        ("pairing", "online"),
        ("online", "offline"),
    ]
    assert all(e["data"]["session"] == "bot_1234567890" for e in events)
    assert (await counts(runtime)).audit == 4
