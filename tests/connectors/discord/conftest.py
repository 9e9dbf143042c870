"""A Guildhall runtime connected to the loopback Discord peer, with the Rustmail face."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest

from guildhall.core.access import panel
from guildhall.core.community import service as community
from guildhall.faces.rustmail.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.peers.discord.peer import BOT_TOKEN, GUILD_ID, DiscordPeer, running_discord

ADMIN = "111111111111111111"
STAFF_ROLE = "100000000000000010"  # the peer's "Staff" role
LOG_CHANNEL = "100000000000000030"  # the peer's "general"
MEMBER = "300000000000000001"
MODERATOR = "300000000000000002"


@pytest.fixture
async def peer() -> AsyncIterator[DiscordPeer]:
    async with running_discord() as running:
        running.add_member(MEMBER, "alice")
        running.add_member(MODERATOR, "mod", roles=[STAFF_ROLE])
        yield running


@pytest.fixture
def connected(other_runtime: Callable[..., Runtime], peer: DiscordPeer) -> Callable[..., Runtime]:
    """Runtimes on the test database whose bot connects to the peer."""

    def make(**changes: object) -> Runtime:
        base: dict[str, object] = {
            "discord__token": BOT_TOKEN,
            "discord__api_url": peer.api_url,
            "discord__guild_id": GUILD_ID,
            "discord__modmail__staff_role_ids": [STAFF_ROLE],
            "discord__modmail__log_channel_id": LOG_CHANNEL,
            "faces__rustmail__super_admin_users": [ADMIN],
        }
        return other_runtime(**{**base, **changes})

    return make


@pytest.fixture
async def bot(connected: Callable[..., Runtime]) -> Runtime:
    runtime = connected()
    await runtime.prepare()
    await runtime.start({"rustmail"})
    return runtime


@pytest.fixture
async def panel_client(bot: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The Rustmail panel, logged in as a super admin."""
    account = await make_account(bot, "admin", discord=ADMIN)
    async with bot.database.unit_of_work() as session:
        await community.put_member(session, ADMIN, "admin", [], TEST_ACTOR)
        cookie = await panel.open_session(session, account.id, ADMIN, None, timedelta(hours=1))
    transport = httpx.ASGITransport(app=create_app(bot))
    async with httpx.AsyncClient(transport=transport, base_url="http://panel.test") as client:
        client.cookies.set("rustmail_session", cookie)
        yield client


async def status_of(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get("/api/bot/status")
    assert response.status_code == 200, response.text
    return response.json()


async def wait_online(client: httpx.AsyncClient, peer: DiscordPeer, online: bool = True) -> None:
    async def check() -> bool:
        return (await status_of(client))["online"] is online

    for _ in range(100):
        if await check():
            return
        await peer_sleep()
    raise AssertionError(f"the bot never became {'online' if online else 'offline'}")


async def peer_sleep() -> None:
    await asyncio.sleep(0.05)
