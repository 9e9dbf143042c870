"""``GET /api/v3/userinfo`` and the renewal-bypass routes.

The document's response: status, id, renewalBypass, package {name, ram,
disk, cpu, servers}, extra {ram, disk, cpu, servers}, userinfo (a
Pterodactyl user object), coins. Errors: "missing id", "invalid id".
"""

from __future__ import annotations

import re

import httpx
import pytest

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.accounts.service import AccountRef
from guildhall.core.hosting.models import PanelUser
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.faces.heliactyl.state import assert_refused

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


async def test_userinfo_has_the_documented_fields(api: httpx.AsyncClient, user: AccountRef) -> None:
    response = await api.get("/api/v3/userinfo", params={"id": "123456789"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["id"] == "123456789"
    assert body["renewalBypass"] is False
    assert body["package"] == {
        "name": "default",
        "ram": 2048,
        "disk": 10240,
        "cpu": 100,
        "servers": 2,
    }
    assert body["extra"] == {"ram": 0, "disk": 0, "cpu": 0, "servers": 0}
    assert body["coins"] == 0
    user_object = body["userinfo"]
    assert user_object["object"] == "user"
    attributes = user_object["attributes"]
    assert attributes["id"] == user.id
    assert attributes["username"] == "user123"
    assert attributes["email"] == "user@example.com"
    assert attributes["root_admin"] is False
    assert re.fullmatch(r"[0-9a-f-]{36}", attributes["uuid"])
    assert ISO.match(attributes["created_at"])
    assert ISO.match(attributes["updated_at"])
    assert attributes["relationships"]["servers"] == {"object": "list", "data": []}


async def test_any_identity_finds_the_account(api: httpx.AsyncClient, runtime: Runtime) -> None:
    account = await make_account(runtime, "octo", github="583231")
    by_github = (await api.get("/api/v3/userinfo", params={"id": "583231"})).json()
    assert by_github["userinfo"]["attributes"]["id"] == account.id
    uuid = by_github["userinfo"]["attributes"]["uuid"]
    by_uuid = (await api.get("/api/v3/userinfo", params={"id": uuid})).json()
    assert by_uuid["status"] == "success"
    assert by_uuid["id"] == uuid
    assert by_uuid["userinfo"]["attributes"]["id"] == account.id


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", "missing id"),
        ("?id=", "missing id"),
        ("?id=nobody", "invalid id"),
        ("?id=1234567", "invalid id"),
        ("?id=123456789&id=2", "id must be a string"),
    ],
)
async def test_userinfo_errors(
    api: httpx.AsyncClient, user: AccountRef, query: str, status: str
) -> None:
    response = await api.get(f"/api/v3/userinfo{query}")
    assert response.status_code == 200
    assert response.json() == {"status": status}


@pytest.mark.parametrize(
    ("route", "message", "expected"),
    [
        ("give_renewalbypass", "Renewal bypass granted successfully.", True),
        ("remove_renewalbypass", "Renewal bypass removed successfully.", False),
    ],
)
async def test_renewal_bypass_routes(
    api: httpx.AsyncClient, user: AccountRef, route: str, message: str, expected: bool
) -> None:
    if not expected:
        await api.post("/api/v3/give_renewalbypass", json={"id": "123456789"})
    response = await api.post(f"/api/v3/{route}", json={"id": "123456789"})
    assert response.json() == {"status": "success", "message": message}
    info = await api.get("/api/v3/userinfo", params={"id": "123456789"})
    assert info.json()["renewalBypass"] is expected


@pytest.mark.parametrize("route", ["give_renewalbypass", "remove_renewalbypass"])
@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", "missing body"),
        (b"[]", "missing body"),
        (b"{}", "missing id"),
        (b'{"id": 5}', "missing id"),
        (b'{"id": "nobody"}', "invalid id"),
    ],
)
async def test_renewal_bypass_errors_change_nothing(
    api: httpx.AsyncClient,
    runtime: Runtime,
    user: AccountRef,
    route: str,
    body: bytes,
    status: str,
) -> None:
    await assert_refused(api, runtime, user.id, f"/api/v3/{route}", body, status)


async def test_userinfo_lists_the_accounts_servers(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    other = await make_account(runtime, "someone", discord="42")
    async with runtime.database.unit_of_work() as session:
        mine = await runtime.hosting.create(session, user, "Survival", "Basic", TEST_ACTOR)
        await runtime.hosting.create(session, other, "Not mine", "Basic", TEST_ACTOR)
    body = (await api.get("/api/v3/userinfo", params={"id": "123456789"})).json()
    servers = body["userinfo"]["attributes"]["relationships"]["servers"]
    assert servers["object"] == "list"
    assert [s["attributes"]["name"] for s in servers["data"]] == ["Survival"]
    attributes = servers["data"][0]["attributes"]
    assert servers["data"][0]["object"] == "server"
    assert (attributes["id"], attributes["status"], attributes["plan"]) == (
        mine.public_id,
        "stopped",
        "Basic",
    )
    assert ISO.match(attributes["created_at"])


async def test_userinfo_reads_plan_coins_and_servers_of_the_preferred_account(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    """userinfo is one statement joining identity, plan, balance and servers: each part
    must come from the account Discord's identity names, every server once, in order."""
    owner = await make_account(runtime, "twice", discord="777000", github="777000")
    shadow = await make_account(runtime, "shadow", github="777001")
    async with runtime.database.unit_of_work() as session:
        # The same subject under Google on another account: Discord's identity wins.
        await accounts.create(
            session, username="rival", identities={Provider.GOOGLE: "777000"}, actor=TEST_ACTOR
        )
        first = await runtime.hosting.create(session, owner, "First", "Basic", TEST_ACTOR)
        second = await runtime.hosting.create(session, owner, "Second", "Basic", TEST_ACTOR)
        await runtime.hosting.create(session, shadow, "Shadow's", "Basic", TEST_ACTOR)
    await api.post("/api/v3/addcoins", json={"id": "777000", "coins": 25})
    await api.post("/api/v3/addcoins", json={"id": "777001", "coins": 3})
    await api.post("/api/v3/setresources", json={"id": "777000", "ram": 512})
    await api.post("/api/v3/give_renewalbypass", json={"id": "777000"})

    body = (await api.get("/api/v3/userinfo", params={"id": "777000"})).json()
    assert body["status"] == "success"
    assert body["coins"] == 25
    assert body["extra"] == {"ram": 512, "disk": 0, "cpu": 0, "servers": 0}
    assert body["renewalBypass"] is True
    attributes = body["userinfo"]["attributes"]
    assert attributes["id"] == owner.id
    listed = attributes["relationships"]["servers"]["data"]
    assert [s["attributes"]["id"] for s in listed] == [first.public_id, second.public_id]

    other = (await api.get("/api/v3/userinfo", params={"id": "777001"})).json()
    assert (other["coins"], other["renewalBypass"], other["extra"]["ram"]) == (3, False, 0)
    servers = other["userinfo"]["attributes"]["relationships"]["servers"]["data"]
    assert [s["attributes"]["name"] for s in servers] == ["Shadow's"]


async def test_a_panel_document_left_from_an_earlier_panel_is_not_shown_without_one(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    """With no [pterodactyl] configured, userinfo builds the user from the account even
    if a panel's user object is still stored from when one was."""
    async with runtime.database.unit_of_work() as session:
        session.add(
            PanelUser(
                account_id=user.id,
                panel_user_id=99,
                document={"object": "user", "attributes": {"id": 99, "username": "stale"}},
            )
        )
    body = (await api.get("/api/v3/userinfo", params={"id": "123456789"})).json()
    attributes = body["userinfo"]["attributes"]
    assert (attributes["id"], attributes["username"]) == (user.id, "user123")
