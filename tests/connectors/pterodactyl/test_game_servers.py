"""Heliactyl's game servers on a real panel's application API (the loopback peer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.core.economy.models import LedgerEntry
from guildhall.core.errors import Invalid, LimitExceeded, Unavailable
from guildhall.core.hosting.games import GameServers
from guildhall.core.hosting.models import PanelUser, Server
from guildhall.core.plans import service as plans
from guildhall.db.base import utcnow
from guildhall.events import outbox
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.connectors.pterodactyl.conftest import (
    DISCORD_ID,
    heliactyl_client,
    panel_get,
    panel_servers,
)
from tests.peers.pterodactyl.peer import API_KEY, PterodactylPeer
from tests.process import guildhall, last_line, write_config
from tests.waiting import eventually


async def create(games: GameServers, owner: AccountRef, name: str = "survival", **size: int):
    resources = {"ram": 1024, "disk": 5120, "cpu": 50} | size
    return await games.create(str(owner.id), name, "paper", **resources, actor=TEST_ACTOR)


async def events_named(runtime: Runtime, prefix: str) -> list[dict[str, object]]:
    async with runtime.database.unit_of_work(write=False) as session:
        found = reversed(await outbox.recent(session, limit=200))
        return [e for e in found if str(e["event"]).startswith(prefix)]


async def test_a_panel_user_is_made_once_and_found_again(
    games: GameServers, owner: AccountRef, panel: PterodactylPeer, runtime_on_panel: Runtime
) -> None:
    first = await games.panel_user(owner)
    again = await games.panel_user(owner)
    assert first == again
    users = (await panel_get(panel, "/users"))["data"]
    assert len(users) == 1
    made = users[0]["attributes"]
    async with runtime_on_panel.database.unit_of_work(write=False) as session:
        stored = await session.scalar(
            select(PanelUser.panel_user_id).where(PanelUser.account_id == owner.id)
        )
        account = await accounts.view(session, owner.id)
    assert stored == made["id"] == first
    assert made["external_id"] == account.uuid
    assert made["email"] == "alice@example.com"
    assert made["username"] == "alice.smith"  # lowercase, as the panel wants
    posts = [path for method, path in panel.requests if method == "POST"]
    assert len(posts) == 1


async def test_an_existing_panel_user_is_found_by_email_not_duplicated(
    runtime_on_panel: Runtime, games: GameServers, panel: PterodactylPeer
) -> None:
    async with httpx.AsyncClient(
        base_url=f"{panel.url}/api/application",
        headers={"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"},
    ) as client:
        made = await client.post(
            "/users",
            json={
                "email": "bob@example.com",
                "username": "bob",
                "first_name": "Bob",
                "last_name": "Builder",
            },
        )
        assert made.status_code == 201, made.text
    bob = await make_account(runtime_on_panel, "bob", email="bob@example.com")
    assert await games.panel_user(bob) == made.json()["attributes"]["id"]
    assert len((await panel_get(panel, "/users"))["data"]) == 1


async def test_a_failed_creation_is_settled_and_can_be_retried(
    games: GameServers, owner: AccountRef, panel: PterodactylPeer, runtime_on_panel: Runtime
) -> None:
    panel.fail_next(500)
    with pytest.raises(Unavailable, match="try again later"):
        await create(games, owner)
    async with runtime_on_panel.database.unit_of_work(write=False) as session:
        assert list(await session.scalars(select(PanelUser))) == []
    # The panel may have made it before failing: the reservation waits for the refresh
    # pass, which finds no such server on the panel and lets it go.
    assert await games.settle_unfinished(older_than=timedelta(0)) == 1
    async with runtime_on_panel.database.unit_of_work(write=False) as session:
        assert list(await session.scalars(select(Server))) == []
    made = await create(games, owner)
    [on_panel] = await panel_servers(panel)
    assert on_panel["external_id"] == made.public_id
    assert len((await panel_get(panel, "/users"))["data"]) == 1


async def test_a_server_within_the_package_is_made_on_the_panel_and_shown_by_userinfo(
    games: GameServers,
    owner: AccountRef,
    panel: PterodactylPeer,
    heliactyl_api: httpx.AsyncClient,
    runtime_on_panel: Runtime,
) -> None:
    made = await create(games, owner)
    [on_panel] = await panel_servers(panel)
    assert on_panel["name"] == "survival"
    assert on_panel["limits"]["memory"] == 1024 and on_panel["limits"]["cpu"] == 50
    assert on_panel["container"]["environment"]["BUILD_NUMBER"] == "42"  # the operator's value
    assert on_panel["container"]["environment"]["SERVER_JARFILE"] == "server.jar"  # the egg's
    info = (await heliactyl_api.get("/api/v3/userinfo", params={"id": DISCORD_ID})).json()
    user = info["userinfo"]
    on_panel_user = await panel_get(panel, f"/users/{on_panel['user']}", include="servers")
    assert user == on_panel_user  # the panel's own object, servers included
    async with runtime_on_panel.database.unit_of_work(write=False) as session:
        account = await accounts.view(session, owner.id)
    assert user["attributes"]["external_id"] == account.uuid
    [shown] = user["attributes"]["relationships"]["servers"]["data"]
    assert shown["attributes"]["external_id"] == made.public_id
    legacy = (await heliactyl_api.get("/api/userinfo", params={"id": DISCORD_ID})).json()
    assert legacy["userinfo"] == on_panel_user


async def test_a_server_beyond_the_package_is_refused_naming_what_is_short(
    games: GameServers, owner: AccountRef, panel: PterodactylPeer
) -> None:
    await create(games, owner, ram=1536)
    with pytest.raises(LimitExceeded) as refused:
        await create(games, owner, "second", ram=1024, disk=1024, cpu=10)
    assert "not enough RAM (asked 1024 MB, 512 MB left of 2048 MB)" in refused.value.message
    await create(games, owner, "second", ram=512, disk=1024, cpu=10)
    with pytest.raises(LimitExceeded, match=r"servers \(asked 1, 0 left of 2\)"):
        await create(games, owner, "third", ram=1, disk=1, cpu=1)
    assert len(await panel_servers(panel)) == 2


async def test_concurrent_creations_cannot_overspend_the_package(
    games: GameServers, owner: AccountRef, panel: PterodactylPeer
) -> None:
    attempts = [create(games, owner, f"s{n}", ram=1024, disk=1024, cpu=10) for n in range(5)]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(made) == 2
    assert all(isinstance(o, LimitExceeded) for o in outcomes if isinstance(o, BaseException))
    assert len(await panel_servers(panel)) == 2


async def test_the_panels_refusal_reaches_the_operator_and_nothing_is_kept(
    games: GameServers,
    owner: AccountRef,
    panel: PterodactylPeer,
    heliactyl_api: httpx.AsyncClient,
    runtime_on_panel: Runtime,
) -> None:
    grown = await heliactyl_api.post(
        "/api/v3/setresources", json={"id": DISCORD_ID, "ram": 100_000, "disk": 0, "cpu": 0}
    )
    assert grown.json() == {"status": "success"}
    with pytest.raises(Invalid, match="No nodes satisfying the requirements"):
        await create(games, owner, ram=20_000)
    assert await panel_servers(panel) == []
    async with runtime_on_panel.database.unit_of_work(write=False) as session:
        assert list(await session.scalars(select(Server))) == []


async def test_userinfo_answers_from_the_cache_while_the_panel_is_down(
    games: GameServers, owner: AccountRef, panel: PterodactylPeer, heliactyl_api: httpx.AsyncClient
) -> None:
    await create(games, owner)
    before = (await heliactyl_api.get("/api/v3/userinfo", params={"id": DISCORD_ID})).json()
    await panel.stop()
    try:
        during = await heliactyl_api.get("/api/v3/userinfo", params={"id": DISCORD_ID})
        assert during.status_code == 200
        assert during.json()["userinfo"] == before["userinfo"]
        with pytest.raises(Unavailable, match="cannot be reached"):
            await games.refresh()
    finally:
        await panel.start()


async def test_the_background_refresh_keeps_userinfo_within_cache_seconds(
    hosted: Callable[..., Runtime], panel: PterodactylPeer
) -> None:
    runtime = hosted(pterodactyl__cache_seconds=1)
    await runtime.prepare()
    owner = await make_account(runtime, "alice", discord=DISCORD_ID, email="alice@example.com")
    assert runtime.games is not None
    await create(runtime.games, owner)
    [on_panel] = await panel_servers(panel)
    panel.servers[on_panel["id"]]["name"] = "renamed on the panel"
    await runtime.start({"heliactyl"})
    async with heliactyl_client(runtime) as client:

        async def names() -> list[str]:
            info = (await client.get("/api/v3/userinfo", params={"id": DISCORD_ID})).json()
            servers = info["userinfo"]["attributes"]["relationships"]["servers"]["data"]
            return [s["attributes"]["name"] for s in servers]

        assert await eventually(names, lambda found: found == ["renamed on the panel"])


async def test_a_ban_suspends_the_owners_servers_and_unban_lifts_it(
    runtime_on_panel: Runtime,
    games: GameServers,
    owner: AccountRef,
    panel: PterodactylPeer,
    heliactyl_api: httpx.AsyncClient,
) -> None:
    await create(games, owner)
    await runtime_on_panel.start({"heliactyl"})

    banned = await heliactyl_api.post("/api/v3/ban", json={"id": DISCORD_ID, "reason": "cheating"})
    assert banned.status_code == 200
    await eventually(lambda: suspended(panel), lambda found: found == [True])
    unbanned = await heliactyl_api.post("/api/v3/unban", json={"id": DISCORD_ID})
    assert unbanned.status_code == 200
    await eventually(lambda: suspended(panel), lambda found: found == [False])

    async def kinds() -> list[str]:  # recorded once the panel has done it
        return [str(e["event"]) for e in await events_named(runtime_on_panel, "server.")]

    expected = ["server.created", "server.suspended", "server.unsuspended"]
    await eventually(kinds, lambda found: found == expected)
    await heliactyl_api.post("/api/v3/ban", json={"id": DISCORD_ID})
    with pytest.raises(Invalid, match="is banned"):
        await create(games, owner, "while banned")


@dataclass
class Renewing:
    """A runtime whose servers cost 100 coins every 30 days (7 days' grace), with one
    owner's server made on the panel."""

    runtime: Runtime
    games: GameServers
    owner: AccountRef
    server_id: str
    due: datetime  # just past the server's first renewal date


@pytest.fixture
async def renewing(hosted: Callable[..., Runtime]) -> Renewing:
    rule = {"enabled": True, "cost": 100, "every_days": 30, "grace_days": 7}
    runtime = hosted(pterodactyl__renewal=rule)
    await runtime.prepare()
    owner = await make_account(runtime, "alice", discord=DISCORD_ID, email="alice@example.com")
    assert runtime.games is not None
    made = await create(runtime.games, owner)
    due = utcnow() + timedelta(days=30, minutes=1)
    return Renewing(runtime, runtime.games, owner, made.public_id, due)


async def suspended(panel: PterodactylPeer) -> list[bool]:
    """Whether each server on the panel is suspended, as the panel says."""
    return [s["suspended"] for s in await panel_servers(panel)]


async def balance(runtime: Runtime, owner: AccountRef) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return await economy.balance_of(session, owner.id)


async def give(runtime: Runtime, owner: AccountRef, coins: int) -> None:
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, owner, coins, actor=TEST_ACTOR)


async def test_renewal_is_paid_once_even_when_the_pass_runs_twice(renewing: Renewing) -> None:
    runtime, games, owner = renewing.runtime, renewing.games, renewing.owner
    await give(runtime, owner, 150)
    first, second = await asyncio.gather(
        games.renew_due(renewing.due), games.renew_due(renewing.due)
    )
    assert first.renewed + second.renewed == [renewing.server_id]
    assert await balance(runtime, owner) == 50
    async with runtime.database.unit_of_work(write=False) as session:
        charged = list(
            await session.scalars(select(LedgerEntry.amount).where(LedgerEntry.type == "renewal"))
        )
    assert charged == [-100]
    again = await games.renew_due(renewing.due)
    assert again.renewed == [] and await balance(runtime, owner) == 50
    [event] = await events_named(runtime, "server.renewed")
    assert event["data"]["cost"] == 100


async def test_an_unpaid_renewal_suspends_then_deletes_after_the_grace(
    renewing: Renewing, panel: PterodactylPeer
) -> None:
    runtime, games, due = renewing.runtime, renewing.games, renewing.due
    await give(runtime, renewing.owner, 40)
    await runtime.start({"heliactyl"})
    assert (await games.renew_due(due)).unpaid == [renewing.server_id]
    assert await balance(runtime, renewing.owner) == 40  # nothing taken
    await eventually(lambda: suspended(panel), lambda found: found == [True])
    assert (await games.renew_due(due + timedelta(days=6))).deleted == []
    past_grace = due + timedelta(days=7, minutes=1)
    assert (await games.renew_due(past_grace)).deleted == [renewing.server_id]
    assert await panel_servers(panel) == []
    kinds = [e["event"] for e in await events_named(runtime, "server.")]
    assert kinds[-1] == "server.deleted" and "server.renewal_failed" in kinds


async def test_coins_arriving_within_the_grace_renew_and_unsuspend(
    renewing: Renewing, panel: PterodactylPeer
) -> None:
    runtime, games, due = renewing.runtime, renewing.games, renewing.due
    await runtime.start({"heliactyl"})
    await games.renew_due(due)
    await eventually(lambda: suspended(panel), lambda found: found == [True])
    await give(runtime, renewing.owner, 100)
    assert (await games.renew_due(due + timedelta(days=1))).renewed == [renewing.server_id]
    await eventually(lambda: suspended(panel), lambda found: found == [False])
    assert await balance(runtime, renewing.owner) == 0


async def test_a_renewal_bypass_renews_free(renewing: Renewing, panel: PterodactylPeer) -> None:
    async with renewing.runtime.database.unit_of_work() as session:
        await plans.set_renewal_bypass(session, renewing.owner, True, TEST_ACTOR)
    result = await renewing.games.renew_due(renewing.due)
    assert result.bypassed == [renewing.server_id]
    assert await balance(renewing.runtime, renewing.owner) == 0
    assert await suspended(panel) == [False]


@pytest.mark.e2e
async def test_the_servers_commands_create_within_the_plan_and_delete_on_the_panel(
    database_url: str, tmp_path: Path, panel: PterodactylPeer
) -> None:
    config = write_config(
        tmp_path,
        database_url,
        tables={
            "pterodactyl": {"url": panel.url, "api_key": API_KEY, "location_ids": [1]},
            "pterodactyl.eggs.paper": {"egg_id": 1},
            "hosting.plans.Basic": {"driver": "process"},
            "hosting.plans.Game": {"driver": "pterodactyl", "egg": "paper", "ram": 512},
        },
    )

    def run(*args: str, check: bool = True):
        return guildhall(config, *args, check=check)

    await asyncio.to_thread(
        run, "users", "create", "--username", "alice", "--email", "alice@example.com"
    )
    size = ["--egg", "paper", "--ram", "1024", "--disk", "2048", "--cpu", "50"]
    made = await asyncio.to_thread(
        run, "servers", "create", "--owner", "alice", "--name", "mc", *size
    )
    server_id = last_line(made.stdout)
    [on_panel] = await panel_servers(panel)
    assert on_panel["external_id"] == server_id
    big = ["--egg", "paper", "--ram", "4096", "--disk", "2048", "--cpu", "50"]
    refused = await asyncio.to_thread(
        run, "servers", "create", "--owner", "alice", "--name", "big", *big, check=False
    )
    assert refused.returncode == 1
    assert "not enough RAM (asked 4096 MB, 1024 MB left of 2048 MB)" in refused.stderr
    gone = await asyncio.to_thread(run, "servers", "delete", server_id)
    assert gone.stdout.strip() == f"deleted server {server_id} (mc)"
    assert await panel_servers(panel) == []

    # Plans name their driver: one on the panel, one a local process, side by side.
    on_plan = await asyncio.to_thread(
        run, "servers", "create", "--owner", "alice", "--name", "planned", "--plan", "Game"
    )
    [planned] = await panel_servers(panel)
    assert planned["external_id"] == last_line(on_plan.stdout)
    assert planned["limits"]["memory"] == 512
    local = await asyncio.to_thread(
        run, "servers", "create", "--owner", "alice", "--name", "vps", "--plan", "Basic"
    )
    assert last_line(local.stdout).startswith("server-")
    assert len(await panel_servers(panel)) == 1


async def test_a_game_servers_power_is_left_to_the_panel(
    games: GameServers, owner: AccountRef, runtime_on_panel: Runtime
) -> None:
    made = await create(games, owner)
    with pytest.raises(Invalid, match="its power is controlled there"):
        await runtime_on_panel.hosting.power(made.public_id, "start", TEST_ACTOR)
