"""The guild directory follows Discord: who is a member, the roles and channels,
as the Rustmail panel's admin pages (and Aurora's meta) read them."""

from __future__ import annotations

import httpx

from guildhall.core.community import service as community
from guildhall.runtime import Runtime
from tests.connectors.discord.conftest import ADMIN, MEMBER, MODERATOR, wait_online
from tests.peers.discord.peer import BOT_USER_ID, DiscordPeer
from tests.waiting import eventually


async def member_ids(client: httpx.AsyncClient) -> set[str]:
    return {m["id"] for m in (await client.get("/api/admin/members")).json()["members"]}


async def test_the_directory_is_filled_from_the_guild_and_follows_its_events(
    panel_client: httpx.AsyncClient, peer: DiscordPeer, bot: Runtime
) -> None:
    response = await panel_client.post("/api/bot/start", headers={"Origin": "http://panel.test"})
    assert response.status_code == 200
    await wait_online(panel_client, peer)
    # GUILD_CREATE holds the bot only; the rest come in member chunks hikari asks for.
    found = await eventually(
        lambda: member_ids(panel_client), lambda ids: {MEMBER, MODERATOR} <= ids
    )
    assert BOT_USER_ID in found and ADMIN in found  # the admin was put there by the fixture
    roles = (await panel_client.get("/api/admin/roles")).json()["roles"]
    assert {r["name"] for r in roles} == {"Staff"}  # @everyone is no role to grant
    async with bot.database.unit_of_work(write=False) as session:
        channels = {e.name: e.detail for e in await community.directory(session, "channel")}
        assert channels["general"] == "guild_text"
        assert channels["Tickets"] == "guild_category"
        assert await community.roles_of(session, MODERATOR) == ["100000000000000010"]

    peer.add_member("300000000000000003", "carol")
    await eventually(lambda: member_ids(panel_client), lambda ids: "300000000000000003" in ids)
    peer.remove_member(MEMBER)
    await eventually(lambda: member_ids(panel_client), lambda ids: MEMBER not in ids)
    peer.add_role("100000000000000011", "Helpers", color=0x00FF00)

    async def role_names() -> set[str]:
        roles = (await panel_client.get("/api/admin/roles")).json()["roles"]
        return {r["name"] for r in roles}

    await eventually(role_names, lambda names: names == {"Staff", "Helpers"})
