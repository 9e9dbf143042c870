"""Answers the fuzzer cannot reach, held to ``faces/rustmail/openapi.yaml``; and the bugs
the fuzzer found.

The fuzzer drives the face over HTTP with one super admin's session and one key, so
it never finishes an OAuth login, never meets a session without permissions, a key
without ``write:tickets``, another site's page or the rate limit. Here each of those
answers is produced in process and checked against the document: a documented status,
its content type, its required headers and its body schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from guildhall.core.access.models import ApiKey
from guildhall.core.community.models import BotSettings
from guildhall.faces.common import openapi
from guildhall.runtime import Runtime
from tests.faces.documented import Documented
from tests.faces.rustmail.conftest import MEMBER, client_for, logged_in
from tests.faces.rustmail.test_bans import PERSON
from tests.faces.rustmail.test_login import CALLBACK, _start, _through_provider
from tests.peers.oauth.provider import running_provider

DOCUMENT = openapi.document("rustmail")
CREATE = "/api/externals/tickets/create"
PANEL_ROUTES = [
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if {"PanelSession": []} in operation.get("security", []) and len(operation["security"]) == 1
]


conforms = Documented("rustmail").conforms


async def test_a_whole_login_and_logout_is_documented(
    make_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = make_runtime(oauth=provider.settings(CALLBACK), super_admin_users=[PERSON])
        async with client_for(runtime) as panel:
            assert "Not logged in" in conforms(await panel.get("/panel/tickets")).text
            login = conforms(await _start(panel))
            assert login.status_code == 302
            back = conforms(await panel.get(await _through_provider(login)))
            assert back.status_code == 302 and back.headers["location"] == "/tickets"
            for path in ("/", "/panel", "/panel/a/b"):
                assert "Logged in as" in conforms(await panel.get(path)).text
            for path in ("/api/panel/check", "/api/user/avatar", "/api/user/permissions"):
                assert conforms(await panel.get(path)).status_code == 200
            out = conforms(await panel.get("/api/auth/logout"))
            assert out.status_code == 302 and out.headers["location"] == "/"
            assert conforms(await panel.get("/api/panel/check")).status_code == 401

            callback = await _through_provider(await _start(panel))
            provider.codes.clear()  # the provider no longer knows the code
            refused = conforms(await panel.get(callback))
            assert refused.json()["code"] == "OAUTH_ERROR"
            assert conforms(await panel.get(callback)).json()["code"] == "BAD_REQUEST"  # used
            assert conforms(await panel.get("/api/auth/callback")).status_code == 400


async def test_every_panel_route_refuses_strangers_and_the_unpermitted_as_documented(
    rt: Runtime,
) -> None:
    cookie = await logged_in(rt, MEMBER)  # a member holding no permission
    async with client_for(rt) as stranger, client_for(rt) as member:
        member.cookies.set("rustmail_session", cookie)
        for method, template in PANEL_ROUTES:
            path = template.replace("{id}", "1")
            assert conforms(await stranger.request(method, path)).status_code == 401
            answer = conforms(await member.request(method, path))
            needs_none = template.startswith("/api/user/")
            assert answer.status_code == (200 if needs_none else 403), (method, path)


async def test_every_panel_answer_with_data_is_documented(
    admin: httpx.AsyncClient, member: None, rt: Runtime
) -> None:
    key = conforms(
        await admin.post("/api/apikeys", json={"name": "K", "permissions": ["write:tickets"]})
    ).json()
    grant = conforms(
        await admin.post(
            "/api/admin/permissions",
            json={"subject_type": "role", "subject_id": "42", "permission": "view_tickets"},
        )
    ).json()
    headers = {"X-API-Key": key["key"]}
    async with client_for(rt) as outside:
        opened = conforms(await outside.post(CREATE, json={"discord_id": MEMBER}, headers=headers))
        assert opened.status_code == 200
        again = conforms(await outside.post(CREATE, json={"discord_id": MEMBER}, headers=headers))
        assert again.json()["code"] == "TICKET_EXISTS"
        nobody = conforms(await outside.post(CREATE, json={"discord_id": "7"}, headers=headers))
        assert nobody.json()["code"] == "USER_NOT_FOUND"
        assert conforms(await outside.post(CREATE, json={})).status_code == 401
    for status in ("open", "closed", "all"):
        listed = conforms(await admin.get("/api/bot/tickets", params={"status": status}))
        assert listed.status_code == 200
    for path in ("/api/bot/status", "/api/bot/config", "/api/apikeys"):
        assert conforms(await admin.get(path)).status_code == 200
    for path in ("/api/admin/members", "/api/admin/roles", "/api/admin/permissions"):
        assert conforms(await admin.get(path)).status_code == 200
    for path in ("/api/bot/start", "/api/bot/start", "/api/bot/stop", "/api/bot/restart"):
        assert conforms(await admin.post(path)).status_code == 200
    taken = await admin.post(
        "/api/admin/permissions",
        json={"subject_type": "role", "subject_id": "42", "permission": "view_tickets"},
    )
    assert conforms(taken).status_code == 409
    assert conforms(await admin.delete(f"/api/admin/permissions/{grant['id']}")).status_code == 200
    assert conforms(await admin.delete(f"/api/admin/permissions/{grant['id']}")).status_code == 404
    assert conforms(await admin.post(f"/api/apikeys/{key['id']}/revoke")).status_code == 200
    async with client_for(rt) as outside:
        revoked = await outside.post(CREATE, json={"discord_id": MEMBER}, headers=headers)
        assert conforms(revoked).status_code == 401
    assert conforms(await admin.delete(f"/api/apikeys/{key['id']}")).status_code == 200
    assert conforms(await admin.delete(f"/api/apikeys/{key['id']}")).status_code == 404


async def test_a_key_without_write_tickets_and_another_sites_page_are_documented(
    admin: httpx.AsyncClient, rt: Runtime
) -> None:
    key = (
        await admin.post("/api/apikeys", json={"name": "R", "permissions": ["read:tickets"]})
    ).json()
    async with client_for(rt) as outside:
        lacking = await outside.post(
            CREATE, json={"discord_id": MEMBER}, headers={"X-API-Key": key["key"]}
        )
        assert conforms(lacking).status_code == 403
    foreign = {"Origin": "https://evil.example"}
    for method, path in [
        ("POST", "/api/bot/start"),
        ("PUT", "/api/bot/config"),
        ("POST", "/api/apikeys"),
        ("DELETE", "/api/apikeys/1"),
        ("POST", CREATE),
    ]:
        answer = conforms(await admin.request(method, path, json={}, headers=foreign))
        assert answer.status_code == 403


async def test_the_rate_limit_answer_is_documented(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime(rate_limits={"default": {"requests": 1, "per_seconds": 60}})
    async with client_for(runtime) as client:
        conforms(await client.get("/api/panel/check"))
        limited = conforms(await client.get("/api/panel/check"))
        assert limited.status_code == 429
        assert limited.json() == {"error": "Too many requests", "code": "RATE_LIMITED"}


# ---- what the fuzzer found ------------------------------------------------------


async def test_a_key_name_with_nul_is_refused_and_nothing_stored(
    admin: httpx.AsyncClient, rt: Runtime
) -> None:
    """PostgreSQL text cannot hold NUL: the name was stored by SQLite, and a 500 there."""
    body = {"name": "a\x00b", "permissions": ["read:tickets"]}
    refused = conforms(await admin.post("/api/apikeys", json=body))
    assert refused.json() == {"error": "A key name must not contain NUL", "code": "BAD_REQUEST"}
    async with rt.database.unit_of_work(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(ApiKey)) == 0


async def test_a_config_key_with_nul_is_refused_and_changes_nothing(
    admin: httpx.AsyncClient, rt: Runtime
) -> None:
    """A top-level key with NUL reached the audit log's text (a 500 on PostgreSQL); the
    core refuses such a setting's name for every face (Aurora's settings alike)."""
    before = (await admin.get("/api/bot/config")).json()
    refused = conforms(await admin.put("/api/bot/config", json={"a\x00b": 1}))
    assert refused.json()["code"] == "BAD_REQUEST"
    assert "NUL" in refused.json()["error"]
    assert (await admin.get("/api/bot/config")).json() == before
    async with rt.database.unit_of_work(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(BotSettings)) == 0


@pytest.mark.parametrize("update", [{"mine": {"x\x00": True}}, {"list": [{"\x00": None}]}])
async def test_deeper_config_keys_are_data_kept_as_sent(
    admin: httpx.AsyncClient, update: dict[str, Any]
) -> None:
    """Below the top level, keys are the operator's data (as Aurora's settings keep them)."""
    assert conforms(await admin.put("/api/bot/config", json=update)).is_success
    [(name, value)] = update.items()
    assert (await admin.get("/api/bot/config")).json()[name] == value


async def test_nul_in_config_values_is_kept_as_sent(admin: httpx.AsyncClient) -> None:
    """Values of the operator's own keys are stored as sent, NUL included (JSON holds it)."""
    assert conforms(await admin.put("/api/bot/config", json={"note": "a\x00b"})).is_success
    assert (await admin.get("/api/bot/config")).json()["note"] == "a\x00b"


async def _last_used(runtime: Runtime, key_id: int) -> object:
    await runtime.drain()
    async with runtime.database.unit_of_work(write=False) as session:
        return await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))


async def test_a_refused_external_request_does_not_make_its_key_look_used(
    admin: httpx.AsyncClient, member: None, rt: Runtime
) -> None:
    """A valid key with a refused body (or an unknown member) was stamped as used before."""
    key = (
        await admin.post("/api/apikeys", json={"name": "W", "permissions": ["write:tickets"]})
    ).json()
    headers = {"X-API-Key": key["key"]}
    async with client_for(rt) as outside:
        for body in (b"\x00", b"{}", b'{"discord_id": "7"}'):
            refused = await outside.post(CREATE, content=body, headers=headers)
            assert conforms(refused).status_code in (400, 404)
            assert await _last_used(rt, key["id"]) is None
        opened = await outside.post(CREATE, json={"discord_id": MEMBER}, headers=headers)
        assert conforms(opened).status_code == 200
    assert await _last_used(rt, key["id"]) is not None
