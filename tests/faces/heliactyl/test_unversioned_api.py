"""The unversioned API (``/api/userinfo``, ``/api/setcoins``...) that public Heliactyl
clients call, replayed as they send it.

The requests are those of a public Heliactyl Discord bot written with axios:
``Authorization: Bearer <key>``, axios's ``Accept`` and ``Content-Type``,
JSON bodies ``{id, coins}``, ``{id, package}``, ``{id, ram, disk, cpu,
servers}``, and the query ``?id=`` (often after a trailing slash: Express
routes ``/api/userinfo/`` as ``/api/userinfo``). What the bot reads back is
``status``, ``coins``, ``package`` and ``extra``; the older API's own
answers are quoted from its route file where they differ from v3.
"""

from __future__ import annotations

import json

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.runtime import Runtime
from tests.faces.heliactyl.state import assert_refused, snapshot

AXIOS = {"Accept": "application/json, text/plain, */*", "User-Agent": "axios/1.7.7"}


def axios_json(body: object) -> dict[str, object]:
    return {
        "content": json.dumps(body).encode(),
        "headers": {**AXIOS, "Content-Type": "application/json"},
    }


@pytest.mark.parametrize("path", ["/api/userinfo", "/api/userinfo/"])
async def test_the_bots_userinfo_call_reads_coins_and_resources(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, path: str
) -> None:
    await api.post("/api/v3/setcoins", json={"id": "123456789", "coins": 1500})
    await api.post("/api/v3/setresources", json={"id": "123456789", "ram": 1024})
    response = await api.get(path, params={"id": "123456789"}, headers=AXIOS)
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "success"
    assert data["coins"] == 1500
    assert data["package"] == {
        "ram": 2048,
        "disk": 10240,
        "cpu": 100,
        "servers": 2,
        "name": "default",
    }
    assert data["extra"] == {"ram": 1024, "disk": 0, "cpu": 0, "servers": 0}
    assert data["userinfo"]["attributes"]["username"] == "user123"
    # The older API's answer: no v3-only fields.
    assert set(data) == {"status", "package", "extra", "userinfo", "coins"}


async def test_userinfo_errors_are_the_older_statuses(
    api: httpx.AsyncClient, user: AccountRef
) -> None:
    missing = await api.get("/api/userinfo", headers=AXIOS)
    assert missing.status_code == 200
    assert missing.json() == {"status": "missing id"}
    unknown = await api.get("/api/userinfo/", params={"id": "999"}, headers=AXIOS)
    assert unknown.json() == {"status": "invalid id"}


async def test_the_bots_coin_calls_move_the_same_ledger_as_v3(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    set_to = await api.post("/api/setcoins", **axios_json({"id": "123456789", "coins": 1000}))
    assert set_to.json() == {"status": "success"}
    added = await api.post("/api/addcoins/", **axios_json({"id": "123456789", "coins": 250}))
    assert added.json() == {"status": "success"}
    after = await snapshot(runtime, user.id)
    assert after.coins == after.ledger == 1250
    v3 = await api.get("/api/v3/userinfo", params={"id": "123456789"})
    assert v3.json()["coins"] == 1250


async def test_adding_zero_changes_nothing_and_succeeds_as_the_older_api_did(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    await api.post("/api/setcoins", **axios_json({"id": "123456789", "coins": 10}))
    before = await snapshot(runtime, user.id)
    zero = await api.post("/api/addcoins", **axios_json({"id": "123456789", "coins": 0}))
    assert zero.json() == {"status": "success"}
    assert await snapshot(runtime, user.id) == before
    v3 = await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": 0})
    assert v3.json() == {"status": "cant do that mate"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/setcoins", b"[1]", "body cannot be an array"),
        ("/api/addcoins", b"[]", "body cannot be an array"),
        ("/api/setplan", b"[]", "body cannot be an array"),
        ("/api/setresources", b"[{}]", "body cannot be an array"),
        ("/api/setcoins", b'{"id": 123456789, "coins": 5}', "id must be a string"),
        ("/api/setcoins", b'{"id": "404", "coins": 5}', "invalid id"),
        ("/api/setcoins", b'{"id": "123456789", "coins": "5"}', "coins must be number"),
        ("/api/setcoins", b'{"id": "123456789", "coins": -1}', "too small or big coins"),
        ("/api/addcoins", b'{"id": "123456789", "coins": -1}', "too small or big coins"),
        ("/api/setplan", b'{"package": "premium"}', "missing id"),
        ("/api/setplan", b'{"id": "123456789", "package": "gold"}', "invalid package"),
        ("/api/setresources", b'{"id": "123456789"}', "missing variables"),
        ("/api/setresources", b'{"id": "123456789", "ram": "512"}', "missing variables"),
        ("/api/setresources", b'{"id": "123456789", "disk": -5}', "disk size"),
    ],
)
async def test_refusals_are_the_older_statuses_and_change_nothing(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, path: str, body: bytes, status: str
) -> None:
    await assert_refused(api, runtime, user.id, path, body, status)


async def test_setplan_with_a_non_string_package_removes_it(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    chosen = await api.post("/api/setplan", **axios_json({"id": "123456789", "package": "premium"}))
    assert chosen.json() == {"status": "success"}
    assert (await snapshot(runtime, user.id)).plan.package_name == "premium"
    removed = await api.post("/api/setplan", **axios_json({"id": "123456789", "package": 2}))
    assert removed.json() == {"status": "success"}
    assert (await snapshot(runtime, user.id)).plan.package_name == "default"


async def test_setresources_takes_the_numbers_and_ignores_the_rest(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    body = {"id": "123456789", "ram": 4096, "disk": "lots", "cpu": 50, "servers": None}
    response = await api.post("/api/setresources/", **axios_json(body))
    assert response.json() == {"status": "success"}
    extra = (await snapshot(runtime, user.id)).plan.extra
    assert (extra.ram, extra.disk, extra.cpu, extra.servers) == (4096, 0, 50, 0)


@pytest.mark.parametrize("path", ["/api/createcoupon", "/api/revokecoupon", "/api/removeaccount"])
async def test_older_admin_calls_core_cannot_back_are_not_found_never_a_fake_success(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, path: str
) -> None:
    before = await snapshot(runtime, user.id)
    response = await api.post(path, **axios_json({"id": "123456789", "code": "abc", "coins": 5}))
    assert response.status_code == 404
    assert response.json()["status"] == "error"
    assert await snapshot(runtime, user.id) == before


async def test_the_unversioned_api_needs_the_key_as_v3_does(
    heliactyl: httpx.AsyncClient, user: AccountRef
) -> None:
    missing = await heliactyl.get("/api/userinfo", params={"id": "123456789"}, headers=AXIOS)
    assert missing.status_code == 401
    wrong = await heliactyl.post(
        "/api/addcoins",
        **axios_json({"id": "123456789", "coins": 5}),
    )
    assert wrong.status_code == 401
    bad = await heliactyl.get(
        "/api/userinfo", params={"id": "123456789"}, headers={**AXIOS, "Authorization": "Bearer x"}
    )
    assert bad.status_code == 403
