"""The console's servers: the list with live state, power, creating within a plan.

Servers run real (small) processes, as SkyPANEL's tests do; a game-server plan
runs on the loopback Pterodactyl peer, where the owner's package is checked.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import func, select

from guildhall.config import Settings
from guildhall.core.accounts.models import Role
from guildhall.core.accounts.service import AccountRef
from guildhall.core.hosting.models import Server
from guildhall.events.models import AuditEntry
from guildhall.faces.console.app import create_app
from guildhall.faces.skypanel.app import create_app as skypanel_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.console.conftest import (
    CONSOLE_URL,
    STAFF_PASSWORD,
    form_token,
    make_staff,
    post_form,
    sign_in,
)
from tests.faces.skypanel.conftest import login, make_user
from tests.peers.pterodactyl.peer import API_KEY, PterodactylPeer, running_pterodactyl

CONSOLE_ACTOR = "account:console:root"
PLANS = {"Basic": {"command": "sleep 3600"}, "Standard": {"command": "sleep 3600"}}


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Plans that run a small real command; every server process left is killed."""
    data = settings.model_dump()
    data["hosting"] = {"plans": PLANS, "shutdown_grace_seconds": 0.5, "start_check_seconds": 0.1}
    runtime = Runtime(Settings(**data))
    yield runtime
    async with runtime.database.unit_of_work(write=False) as session:
        refs = list(await session.scalars(select(Server.runtime_ref)))
    for ref in refs:
        if ref and runtime.hosting.driver.is_running(ref):
            await runtime.hosting.driver.kill(ref)
        assert not runtime.hosting.driver.is_running(ref)
    await runtime.close()


async def _server(runtime: Runtime, owner: AccountRef, name: str = "My VPS") -> str:
    async with runtime.database.unit_of_work() as session:
        view = await runtime.hosting.create(session, owner, name, "Basic", TEST_ACTOR)
        return view.public_id


async def _servers(runtime: Runtime) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Server)) or 0)


async def _status(runtime: Runtime, public_id: str) -> str:
    async with runtime.database.unit_of_work(write=False) as session:
        return (await runtime.hosting.get(session, public_id)).status.value


async def _console_audit(runtime: Runtime, action: str) -> list[str]:
    async with runtime.database.unit_of_work(write=False) as session:
        rows = await session.scalars(
            select(AuditEntry.message).where(
                AuditEntry.actor == CONSOLE_ACTOR, AuditEntry.action == action
            )
        )
        return list(rows)


async def test_the_list_shows_every_server_with_owner_plan_and_live_state(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    john = await make_user(runtime)
    jane = await make_user(runtime, "jane", "jane@example.com")
    mine, theirs = await _server(runtime, john), await _server(runtime, jane, "Game box")
    page = await admin.get("/servers")
    assert page.status_code == 200
    for text in (mine, theirs, "john", "jane", "Game box", "Basic"):
        assert text in page.text
    assert page.text.count('<span class="state stopped">stopped</span>') == 2
    assert f'action="/servers/{mine}/power"' in page.text
    assert 'name="action" value="start"' in page.text
    assert 'name="action" value="stop"' not in page.text  # nothing runs yet
    detail = await admin.get(f"/servers/{mine}")
    assert detail.status_code == 200
    assert "john" in detail.text and '<span class="state stopped">' in detail.text


async def test_power_start_changes_the_state_shown_and_what_skypanel_reports(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    john = await make_user(runtime)
    public_id = await _server(runtime, john)
    answer = await post_form(admin, "/servers", f"/servers/{public_id}/power", {"action": "start"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/servers"
    page = await admin.get("/servers")
    assert f"Server {public_id} (My VPS): start done; it is running." in page.text
    assert '<span class="state running">running</span>' in page.text
    assert 'name="action" value="stop"' in page.text
    assert await _status(runtime, public_id) == "running"
    transport = httpx.ASGITransport(app=skypanel_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://skypanel.test") as sky:
        sky.headers["Authorization"] = f"Bearer {await login(sky)}"
        [reported] = (await sky.get("/api/servers")).json()["data"]
    assert (reported["id"], reported["status"]) == (public_id, "running")
    assert any(public_id in line for line in await _console_audit(runtime, "server.updated"))

    # From the server's own page, back to it; a refused action is an error page.
    again = await post_form(
        admin,
        f"/servers/{public_id}",
        f"/servers/{public_id}/power",
        {"action": "start", "back": f"/servers/{public_id}"},
    )
    assert again.status_code == 400
    assert "already running" in again.text
    stopped = await post_form(
        admin,
        f"/servers/{public_id}",
        f"/servers/{public_id}/power",
        {"action": "stop", "back": f"/servers/{public_id}"},
    )
    assert stopped.status_code == 303
    assert stopped.headers["location"] == f"/servers/{public_id}"
    assert await _status(runtime, public_id) == "stopped"


async def test_power_refuses_bad_actions_and_unknown_servers(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    public_id = await _server(runtime, await make_user(runtime))
    bad = await post_form(admin, "/servers", f"/servers/{public_id}/power", {"action": "explode"})
    assert bad.status_code == 400
    for target in ("server-nonexistent", "server-%00x"):
        unknown = await post_form(
            admin, "/servers", f"/servers/{target}/power", {"action": "start"}
        )
        assert unknown.status_code == 404
        assert (await admin.get(f"/servers/{target}")).status_code == 404
    assert await _status(runtime, public_id) == "stopped"
    elsewhere = await post_form(
        admin, "/servers", f"/servers/{public_id}/power", {"action": "start", "back": "//evil.test"}
    )
    assert elsewhere.headers["location"] == "/servers"


async def test_creating_a_server_within_a_plan(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    john = await make_user(runtime)
    page = await admin.get("/servers")
    assert '<option value="Basic"' in page.text and '<option value="Standard"' in page.text
    answer = await post_form(
        admin, "/servers", "/servers", {"owner": john.subject, "name": "Web", "plan": "Standard"}
    )
    assert answer.status_code == 303, answer.text
    public_id = answer.headers["location"].removeprefix("/servers/")
    async with runtime.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(Server).where(Server.public_id == public_id))
    assert row is not None
    assert (row.account_id, row.name, row.plan, row.driver) == (
        john.id,
        "Web",
        "Standard",
        "process",
    )
    detail = await admin.get(answer.headers["location"])
    assert f"Server {public_id} (Web) created for {john.subject} on plan Standard." in detail.text
    assert "Standard" in detail.text and "john" in detail.text
    assert any(public_id in line for line in await _console_audit(runtime, "server.created"))
    by_id = await post_form(
        admin, "/servers", "/servers", {"owner": str(john.id), "name": "Db", "plan": "Basic"}
    )
    assert by_id.status_code == 303
    assert await _servers(runtime) == 2


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"plan": "Gold"}, 400, "plan &#39;Gold&#39; does not exist"),
        ({"owner": "nobody"}, 404, "no account has the id"),
        ({"owner": "no\x00body"}, 404, "no account has the id"),
        ({"owner": ""}, 400, "name the owner"),
        ({"name": ""}, 400, "a server name is 1 to 100 characters"),
        ({"name": "x" * 101}, 400, "a server name is 1 to 100 characters"),
        ({"name": "a\x00b"}, 400, "a server name is 1 to 100 characters"),
    ],
)
async def test_a_refused_creation_shows_why_in_place_and_makes_nothing(
    admin: httpx.AsyncClient,
    runtime: Runtime,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    await make_user(runtime)
    answer = await post_form(
        admin, "/servers", "/servers", {"owner": "john", "name": "Web", "plan": "Basic", **fields}
    )
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert 'class="field-error"' in answer.text
    assert await _servers(runtime) == 0
    async with runtime.database.unit_of_work(write=False) as session:
        created = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "server.created")
        )
    assert created == 0


async def test_the_list_pages_in_the_database(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    john = await make_user(runtime)
    async with runtime.database.unit_of_work() as session:
        for number in range(51):
            await runtime.hosting.create(session, john, f"box-{number:02}", "Basic", TEST_ACTOR)
    first = await admin.get("/servers")
    assert "box-50" in first.text and "box-01" in first.text and "box-00" not in first.text
    assert 'href="/servers?page=2"' in first.text
    second = await admin.get("/servers", params={"page": "2"})
    assert "box-00" in second.text and "box-01" not in second.text
    assert 'href="/servers?page=1"' in second.text and "page=3" not in second.text
    for bad in ("0", "abc", "-1", "1" * 30):
        assert (await admin.get("/servers", params={"page": bad})).status_code == 400


async def test_without_its_token_nothing_is_powered_or_made(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    public_id = await _server(runtime, await make_user(runtime))
    await admin.get("/servers")
    power = await admin.post(f"/servers/{public_id}/power", data={"action": "start"})
    assert power.status_code == 403
    made = await admin.post("/servers", data={"owner": "john", "name": "Web", "plan": "Basic"})
    assert made.status_code == 403
    stale = await admin.post(
        "/servers", data={"csrf": "0" * 64, "owner": "john", "name": "Web", "plan": "Basic"}
    )
    assert stale.status_code == 403
    assert await _status(runtime, public_id) == "stopped"
    assert await _servers(runtime) == 1


async def test_a_moderator_cannot_open_servers(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    public_id = await _server(runtime, await make_user(runtime))
    for path in ("/servers", f"/servers/{public_id}"):
        assert (await moderator.get(path)).status_code == 403
    token = form_token((await moderator.get("/tickets")).text)
    power = await moderator.post(
        f"/servers/{public_id}/power", data={"csrf": token, "action": "start"}
    )
    assert power.status_code == 403
    made = await moderator.post(
        "/servers", data={"csrf": token, "owner": "john", "name": "Web", "plan": "Basic"}
    )
    assert made.status_code == 403
    assert await _status(runtime, public_id) == "stopped"
    assert await _servers(runtime) == 1


# ---- game servers: a plan on the Pterodactyl panel, within the owner's package ----------


@pytest.fixture
async def panel() -> AsyncIterator[PterodactylPeer]:
    async with running_pterodactyl() as running:
        yield running


@pytest.fixture
async def panel_console(
    panel: PterodactylPeer, other_runtime: Callable[..., Runtime]
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A runtime with game-server plans on the peer, and its console signed in as root.

    The peer is asked for first, so it stops last: after the runtime has closed its
    connections to it, not waiting on them."""
    runtime = other_runtime(
        pterodactyl__url=panel.url,
        pterodactyl__api_key=API_KEY,
        pterodactyl__location_ids=[1],
        pterodactyl__eggs={"paper": {"egg_id": 1, "environment": {"BUILD_NUMBER": 42}}},
        hosting__plans={
            "Game": {"driver": "pterodactyl", "egg": "paper", "ram": 1024, "disk": 5120, "cpu": 50},
            # More memory than the default package (2048 MB) covers.
            "Huge": {"driver": "pterodactyl", "egg": "paper", "ram": 4096, "disk": 5120, "cpu": 50},
        },
    )
    await make_staff(runtime, "root", Role.ADMIN)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as client:
        assert (await sign_in(client, "root", STAFF_PASSWORD)).status_code == 303
        yield runtime, client


async def test_a_game_server_plan_is_made_on_the_panel_within_the_package(
    panel_console: tuple[Runtime, httpx.AsyncClient], panel: PterodactylPeer
) -> None:
    runtime, console = panel_console
    await make_user(runtime)
    page = await console.get("/servers")
    assert re.search(r'<option value="Game"[^>]*>Game \(game server: egg paper', page.text)
    too_big = await post_form(
        console, "/servers", "/servers", {"owner": "john", "name": "Big", "plan": "Huge"}
    )
    assert too_big.status_code == 400
    assert "does not cover this server: not enough RAM" in too_big.text
    assert await _servers(runtime) == 0 and panel.servers == {}
    made = await post_form(
        console, "/servers", "/servers", {"owner": "john", "name": "Survival", "plan": "Game"}
    )
    assert made.status_code == 303, made.text
    public_id = made.headers["location"].removeprefix("/servers/")
    [on_panel] = panel.servers.values()
    assert on_panel["external_id"] == public_id
    detail = await console.get(made.headers["location"])
    assert "paper" in detail.text and "power is controlled on its panel" in detail.text
    listed = await console.get("/servers")
    assert "on the panel" in listed.text
    refused = await post_form(
        console, "/servers", f"/servers/{public_id}/power", {"action": "start"}
    )
    assert refused.status_code == 400
    assert await _console_audit(runtime, "server.created")
