"""Tickets, external creation with API keys, and the keys themselves."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from guildhall.core.community import service as community
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_key
from tests.faces.rustmail.conftest import MEMBER, client_for

CREATE = "/api/externals/tickets/create"


async def _key(admin: httpx.AsyncClient, *permissions: str, **extra: object) -> dict:
    response = await admin.post(
        "/api/apikeys", json={"name": "My Integration", "permissions": list(permissions), **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_keys_are_shown_once_and_listed_without_their_secret(
    admin: httpx.AsyncClient,
) -> None:
    made = await _key(admin, "read:tickets", "write:tickets")
    assert re.fullmatch(r"rustmail_[0-9a-f]{64}", made["key"])
    assert made["name"] == "My Integration"
    listed = (await admin.get("/api/apikeys")).json()["keys"]
    assert len(listed) == 1
    entry = listed[0]
    assert entry["id"] == made["id"] and entry["is_active"] is True
    assert entry["permissions"] == ["read:tickets", "write:tickets"]
    assert isinstance(entry["created_at"], int) and entry["expires_at"] is None
    assert made["key"] not in (await admin.get("/api/apikeys")).text


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "permissions": ["delete:everything"]},
        {"permissions": ["read:tickets"]},
        {"name": "x", "permissions": []},
        {"name": "x", "permissions": ["read:tickets"], "expires_at": "tomorrow"},
    ],
)
async def test_bad_key_requests_are_400(admin: httpx.AsyncClient, body: dict) -> None:
    assert (await admin.post("/api/apikeys", json=body)).status_code == 400


async def test_external_creation_opens_one_ticket(
    rt: Runtime, admin: httpx.AsyncClient, member: None
) -> None:
    key = (await _key(admin, "write:tickets"))["key"]
    async with client_for(rt) as external:
        created = await external.post(
            CREATE, json={"discord_id": MEMBER}, headers={"X-API-Key": key}
        )
        body = created.json()
        assert created.status_code == 200 and body["success"] is True
        assert body["channel_id"].isdigit() and body["ticket_id"]
        again = await external.post(CREATE, json={"discord_id": MEMBER}, headers={"X-API-Key": key})
        assert again.status_code == 409
        assert again.json()["code"] == "TICKET_EXISTS"
        unknown = await external.post(CREATE, json={"discord_id": "42"}, headers={"X-API-Key": key})
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "User not found in community server"
    tickets = (await admin.get("/api/bot/tickets")).json()
    assert tickets["total"] == 1
    [ticket] = tickets["tickets"]
    assert (ticket["id"], ticket["user_id"], ticket["user_name"], ticket["status"]) == (
        body["ticket_id"],
        MEMBER,
        "supportseeker",
        1,
    )
    assert ticket["channel_id"] == body["channel_id"] and ticket["message_count"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ticket["created_at"])
    assert (await admin.get("/api/bot/status")).json()["ticket_count"] == 1
    assert (await admin.get("/api/bot/tickets", params={"status": "closed"})).json()["total"] == 0
    assert (await admin.get("/api/bot/tickets", params={"status": "bogus"})).status_code == 400


async def test_50_concurrent_creates_for_one_user_open_one_ticket(
    rt: Runtime, admin: httpx.AsyncClient, member: None
) -> None:
    key = (await _key(admin, "write:tickets"))["key"]
    async with client_for(rt) as external:
        responses = await asyncio.gather(
            *(
                external.post(CREATE, json={"discord_id": MEMBER}, headers={"X-API-Key": key})
                for _ in range(50)
            )
        )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 49
    assert (await admin.get("/api/bot/tickets")).json()["total"] == 1


async def test_the_first_tickets_of_a_new_server_open_at_once(
    rt: Runtime, admin: httpx.AsyncClient
) -> None:
    """Each ticket takes a channel number from the bot's state row, which the first
    ticket ever creates: ten at once on a new database all open, each its own channel."""
    members = [f"70000000000000000{n}" for n in range(10)]
    async with rt.database.unit_of_work() as session:
        for number, discord_id in enumerate(members):
            await community.put_member(session, discord_id, f"seeker{number}", [], TEST_ACTOR)
    key = (await _key(admin, "write:tickets"))["key"]
    async with client_for(rt) as external:
        responses = await asyncio.gather(
            *(
                external.post(CREATE, json={"discord_id": member}, headers={"X-API-Key": key})
                for member in members
            )
        )
    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    assert len({r.json()["channel_id"] for r in responses}) == 10


async def test_keys_that_may_not_create(
    rt: Runtime, admin: httpx.AsyncClient, member: None
) -> None:
    read_only = (await _key(admin, "read:tickets"))["key"]
    revoked = await _key(admin, "write:tickets")
    deleted = await _key(admin, "write:tickets")
    # Whole seconds, far enough ahead that a slow machine still creates it in time.
    soon = int((datetime.now(UTC) + timedelta(seconds=3)).timestamp())
    expiring = await _key(admin, "write:tickets", expires_at=soon)
    await admin.post(f"/api/apikeys/{revoked['id']}/revoke")
    await admin.delete(f"/api/apikeys/{deleted['id']}")
    await asyncio.sleep(max(0.0, soon - datetime.now(UTC).timestamp()) + 0.1)
    cases = {
        None: 401,
        "wrong_prefix_" + "0" * 64: 401,
        "rustmail_" + "0" * 64: 401,
        revoked["key"]: 401,
        deleted["key"]: 401,
        expiring["key"]: 401,
        read_only: 403,
    }
    async with client_for(rt) as external:
        for key, status in cases.items():
            headers = {} if key is None else {"X-API-Key": key}
            response = await external.post(CREATE, json={"discord_id": MEMBER}, headers=headers)
            assert response.status_code == status, key
    listed = {k["id"]: k["is_active"] for k in (await admin.get("/api/apikeys")).json()["keys"]}
    assert listed[revoked["id"]] is False and deleted["id"] not in listed


async def test_api_keys_never_open_panel_routes(rt: Runtime, admin: httpx.AsyncClient) -> None:
    key = (await _key(admin, "read:tickets", "write:tickets"))["key"]
    everything = await make_key(rt, "*")
    async with client_for(rt) as external:
        for token in (key, everything):
            response = await external.get("/api/bot/tickets", headers={"X-API-Key": token})
            assert response.status_code == 401
