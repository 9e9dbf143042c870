"""The modmail bot end to end: hikari against the loopback Discord peer, on both databases.

What a member and staff see on Discord, and what the Rustmail panel and API
report, for: connecting and presence, a DM opening a ticket, staff replies
and notes, closing, closed DMs, the external API, a dropped connection, a
second process, a refused token and Discord's rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx

from guildhall.connectors.discord.connection import LEASE
from guildhall.core.access import panel
from guildhall.core.actor import SYSTEM
from guildhall.core.support import service as support
from guildhall.events import leases, outbox
from guildhall.faces.rustmail.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import make_key
from tests.connectors.discord.conftest import (
    LOG_CHANNEL,
    MEMBER,
    MODERATOR,
    status_of,
    wait_online,
)
from tests.peers.discord.peer import BOT_TOKEN, GUILD_ID, DiscordPeer
from tests.process import guildhall, write_config
from tests.waiting import eventually

WELCOME = "Thanks for your message! Staff will answer you here."
CLOSING = "This ticket is now closed. Send a message to open a new one."


async def started(client: httpx.AsyncClient, peer: DiscordPeer) -> None:
    response = await client.post("/api/bot/start", headers={"Origin": "http://panel.test"})
    assert response.json() == {"success": True, "message": "Bot started"}
    await wait_online(client, peer)


async def open_tickets(client: httpx.AsyncClient) -> list[dict[str, object]]:
    return (await client.get("/api/bot/tickets")).json()["tickets"]


async def ticket_of_member(client: httpx.AsyncClient, peer: DiscordPeer) -> dict[str, object]:
    """The member's open ticket once its opening message is kept, as a moderator sees it
    before answering (the channel appears on Discord a moment before the record)."""
    found: list[dict[str, object]] = []

    async def look() -> bool:
        found[:] = await open_tickets(client)
        return bool(found) and int(str(found[0]["message_count"])) >= 1

    for _ in range(100):
        if await look():
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no ticket was opened")


async def test_start_connects_and_status_is_online_only_while_ready(
    panel_client: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    before = await status_of(panel_client)
    assert before["online"] is False and peer.identifies == 0
    await started(panel_client, peer)
    status = await status_of(panel_client)
    assert status["guild_count"] == 1 and status["offline_reason"] is None
    assert peer.identifies == 1 and peer.connected == 1
    intents = peer.intents or 0
    for bit in (1 << 0, 1 << 1, 1 << 9, 1 << 12, 1 << 15):  # the five the README names
        assert intents & bit, f"intent bit {bit} missing from {intents}"
    assert any("DM for support" in str(p) for p in peer.presences)

    stop = await panel_client.post("/api/bot/stop", headers={"Origin": "http://panel.test"})
    assert stop.json() == {"success": True, "message": "Bot stopped"}
    await wait_online(panel_client, peer, online=False)
    await peer.wait_for(lambda: peer.connected == 0)
    assert (await status_of(panel_client))["offline_reason"] == "stopped"


async def test_presence_reaches_the_gateway_and_the_next_connection(
    panel_client: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await started(panel_client, peer)
    response = await panel_client.post(
        "/api/bot/presence",
        json={"status": "Answering tickets"},
        headers={"Origin": "http://panel.test"},
    )
    assert response.json() == {"success": True}
    await peer.wait_for(lambda: "Answering tickets" in str(peer.presences[-1]))
    restart = await panel_client.post("/api/bot/restart", headers={"Origin": "http://panel.test"})
    assert restart.json() == {"success": True, "message": "Bot restarted"}
    await peer.wait_for(lambda: peer.identifies == 2)
    await wait_online(panel_client, peer)
    assert "Answering tickets" in str(peer.presences[-1])


async def test_a_members_dm_opens_a_ticket_channel_and_later_dms_join_it(
    panel_client: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await started(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "My server will not start")
    ticket = await ticket_of_member(panel_client, peer)
    channel_id = str(ticket["channel_id"])
    assert ticket["user_id"] == MEMBER
    channel = peer.channels[channel_id]
    category = peer.channels[channel["parent_id"]]  # none configured: one is made
    assert (category["type"], category["name"]) == (4, "Modmail")
    await peer.wait_for(lambda: len(peer.messages.get(channel_id, [])) >= 2)
    header, relayed = peer.messages[channel_id][:2]
    assert "alice" in header["content"] and MEMBER in header["content"]
    assert "Account age:" in header["content"] and "Earlier tickets: 0" in header["content"]
    assert relayed["content"] == "**alice**: My server will not start"
    await peer.wait_for(lambda: WELCOME in peer.dms_to(MEMBER))

    await peer.user_sends_dm(
        MEMBER, "Here is the log", attachments=[{"url": "https://cdn.example/log.txt"}]
    )
    await peer.wait_for(lambda: len(peer.messages[channel_id]) >= 3)
    assert "https://cdn.example/log.txt" in peer.messages[channel_id][2]["content"]
    [still] = await eventually(
        lambda: open_tickets(panel_client), lambda found: found[0]["message_count"] == 2
    )
    assert still["channel_id"] == channel_id


async def test_someone_outside_the_guild_gets_the_refusal_and_no_ticket(
    panel_client: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await started(panel_client, peer)
    peer.add_user("399999999999999999", "stranger")  # on Discord, not in the guild
    await peer.user_sends_dm("399999999999999999", "hello?")
    await peer.wait_for(
        lambda: peer.dms_to("399999999999999999") == ["User not found in community server"]
    )
    assert await open_tickets(panel_client) == []


async def test_staff_reply_anonymously_or_not_and_other_messages_stay_notes(
    panel_client: httpx.AsyncClient, peer: DiscordPeer, bot: Runtime
) -> None:
    await started(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "help")
    channel_id = str((await ticket_of_member(panel_client, peer))["channel_id"])
    [ticket] = await open_tickets(panel_client)

    async def transcript() -> list[tuple[str, str]]:
        async with bot.database.unit_of_work(write=False) as session:
            _, messages = await support.transcript(session, str(ticket["id"]))
        return [(m.direction, m.content) for m in messages]

    def echoed(text: str) -> bool:
        return any(m["content"] == text for m in peer.messages.get(channel_id, []))

    # Each step waits until the last is kept: Discord delivers events one by one, but
    # the bot handles them side by side, so a transcript's order is the order kept.
    await eventually(transcript, lambda found: len(found) == 1)
    await peer.member_says(channel_id, MODERATOR, "!reply Try restarting it")
    await peer.wait_for(lambda: "**mod**: Try restarting it" in peer.dms_to(MEMBER))
    await peer.wait_for(lambda: echoed("**mod** (reply): Try restarting it"))
    await eventually(transcript, lambda found: len(found) == 2)
    await peer.member_says(channel_id, MODERATOR, "!ar Still there?")
    await peer.wait_for(lambda: "**Staff**: Still there?" in peer.dms_to(MEMBER))
    await peer.wait_for(lambda: echoed("**mod** (anonymous reply): Still there?"))
    await eventually(transcript, lambda found: len(found) == 3)
    await peer.member_says(channel_id, MODERATOR, "they had this last week too")
    await eventually(transcript, lambda found: len(found) == 4)
    await peer.member_says(channel_id, MEMBER, "!reply I am staff now")  # not staff
    await peer.wait_for(
        lambda: any("Only staff" in m["content"] for m in peer.messages.get(channel_id, []))
    )
    assert not any("last week" in text or "I am staff" in text for text in peer.dms_to(MEMBER))
    kept = await eventually(transcript, lambda found: len(found) == 4)
    [ticket] = await open_tickets(panel_client)
    assert ticket["message_count"] == 3  # one in, two out; the note is not relayed
    assert kept == [
        ("in", "help"),
        ("out", "Try restarting it"),
        ("out", "Still there?"),
        ("note", "they had this last week too"),
    ]


async def test_close_tells_the_member_posts_the_transcript_and_deletes_the_channel(
    panel_client: httpx.AsyncClient, peer: DiscordPeer, bot: Runtime
) -> None:
    await started(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "help")
    channel_id = str((await ticket_of_member(panel_client, peer))["channel_id"])
    await peer.member_says(channel_id, MODERATOR, "!close solved by a restart")
    await peer.wait_for(lambda: channel_id in peer.deleted_channels)
    assert CLOSING in peer.dms_to(MEMBER)
    async with bot.database.unit_of_work(write=False) as session:  # for webhooks and /ws
        events = [e["event"] for e in reversed(await outbox.recent(session, limit=100))]
    ticket_events = [e for e in events if e.startswith("ticket.")]
    assert ticket_events == ["ticket.created", "ticket.message", "ticket.closed"]
    log = "\n".join(m["content"] for m in peer.messages[LOG_CHANNEL])
    assert "member alice: help" in log and "solved by a restart" in log
    assert await open_tickets(panel_client) == []
    closed = (await panel_client.get("/api/bot/tickets?status=closed")).json()["tickets"]
    assert [t["channel_id"] for t in closed] == [channel_id]

    await peer.user_sends_dm(MEMBER, "one more thing")  # a new ticket, a new channel
    again = await ticket_of_member(panel_client, peer)
    assert again["channel_id"] != channel_id
    await peer.wait_for(lambda: bool(peer.messages.get(str(again["channel_id"]))))
    header = peer.messages[str(again["channel_id"])][0]["content"]
    assert "Earlier tickets: 1" in header


async def test_a_member_with_closed_dms_is_reported_in_the_ticket_channel(
    panel_client: httpx.AsyncClient, peer: DiscordPeer, bot: Runtime
) -> None:
    await started(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "help")
    channel_id = str((await ticket_of_member(panel_client, peer))["channel_id"])
    await eventually(
        lambda: open_tickets(panel_client), lambda found: found[0]["message_count"] == 1
    )
    peer.closed_dms.add(MEMBER)
    await peer.member_says(channel_id, MODERATOR, "!r hello")
    await peer.wait_for(lambda: any("50007" in m["content"] for m in peer.messages[channel_id]))

    async def transcript() -> list[tuple[str, str]]:
        async with bot.database.unit_of_work(write=False) as session:
            ticket = await support.ticket_in_channel(session, channel_id)
            assert ticket is not None
            _, messages = await support.transcript(session, ticket.public_id)
        return [(m.direction, m.content) for m in messages]

    kept = await eventually(transcript, lambda found: len(found) == 2)
    assert kept == [("in", "help"), ("note", "hello")]  # kept, not counted as delivered
    [ticket] = await open_tickets(panel_client)
    assert ticket["message_count"] == 1  # the reply did not reach them


@contextlib.asynccontextmanager
async def external_api(
    runtime: Runtime,
) -> AsyncIterator[Callable[[str], Awaitable[httpx.Response]]]:
    """``POST /api/externals/tickets/create`` as an integration calls it, with its key."""
    key = await make_key(runtime, "write:tickets")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://panel.test") as api:

        async def create(discord_id: str) -> httpx.Response:
            return await api.post(
                "/api/externals/tickets/create",
                json={"discord_id": discord_id},
                headers={"X-API-Key": key},
            )

        yield create


async def test_the_external_api_creates_the_channel_on_discord(
    bot: Runtime, peer: DiscordPeer
) -> None:
    async with external_api(bot) as create:
        response = await create(MEMBER)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["channel_id"] in peer.channels
        assert peer.channels[body["channel_id"]]["type"] == 0
        assert (await create(MEMBER)).status_code == 409
        stranger = await create("398888888888888888")
        assert stranger.status_code == 404
        assert stranger.json()["error"] == "User not found in community server"
    text_channels = [c for c in peer.channels.values() if c["type"] == 0]
    assert len(text_channels) == 2  # "general" and the one ticket: nothing left behind


async def test_a_dropped_connection_resumes_and_events_keep_flowing(
    panel_client: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await started(panel_client, peer)
    await peer.drop_connection()
    await peer.wait_for(lambda: peer.resumes == 1, timeout=15)
    await wait_online(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "after the drop")
    assert (await ticket_of_member(panel_client, peer))["user_id"] == MEMBER
    await peer.drop_connection(resumable=False)
    await peer.wait_for(lambda: peer.identifies == 2, timeout=15)
    await wait_online(panel_client, peer)


async def test_a_second_process_serves_but_does_not_connect_until_the_first_stops(
    panel_client: httpx.AsyncClient,
    peer: DiscordPeer,
    bot: Runtime,
    connected: Callable[..., Runtime],
) -> None:
    await started(panel_client, peer)
    second = connected()
    await second.start({"rustmail"})
    second.wake_discord()
    await asyncio.sleep(1)
    assert peer.identifies == 1 and peer.connected == 1
    async with bot.database.unit_of_work(write=False) as session:
        assert await leases.current(session, LEASE) == bot.discord.holder
    await bot.close()  # the holder goes away; the second takes the gateway over
    await peer.wait_for(lambda: peer.identifies == 2 and peer.connected == 1, timeout=15)
    async with second.database.unit_of_work(write=False) as session:
        assert await leases.current(session, LEASE) == second.discord.holder


async def test_a_refused_token_leaves_the_bot_offline_with_the_reason(
    connected: Callable[..., Runtime], peer: DiscordPeer
) -> None:
    runtime = connected(discord__token="MTAwMDAwMDAwMDAwMDAwMDAy.wrong.token")
    await runtime.prepare()
    await runtime.start({"rustmail"})
    async with runtime.database.unit_of_work() as session:
        await support.start(session, SYSTEM)
    runtime.wake_discord()
    for _ in range(100):
        async with runtime.database.unit_of_work(write=False) as session:
            status = await support.status(session, gateway=LEASE)
        if status.reason and "token" in status.reason:
            break
        await asyncio.sleep(0.05)
    assert status.online is False
    assert status.reason == "Discord refused the bot token (401 Unauthorized)"
    assert peer.identifies == 0


async def test_discords_429_is_waited_out_and_the_message_still_arrives(
    panel_client: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await started(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "first")
    channel_id = str((await ticket_of_member(panel_client, peer))["channel_id"])
    await peer.wait_for(lambda: len(peer.messages.get(channel_id, [])) >= 2)
    peer.rate_limit_next("POST", f"/channels/{channel_id}/messages", 0.5)
    sent = time.monotonic()
    await peer.user_sends_dm(MEMBER, "second")
    await peer.wait_for(lambda: len(peer.messages[channel_id]) >= 3)
    assert time.monotonic() - sent >= 0.45  # Discord's retry_after was waited out
    assert [m["content"] for m in peer.messages[channel_id][1:]] == [
        "**alice**: first",
        "**alice**: second",
    ]
    posts = peer.requests_to("POST", f"/channels/{channel_id}/messages")
    assert len(posts) <= 5  # header, first, the refused second, at most one early try, the retry


async def test_the_cli_closes_on_discord_and_prints_the_transcript(
    panel_client: httpx.AsyncClient, peer: DiscordPeer, database_url: str, tmp_path: Path
) -> None:
    await started(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "please close me")
    ticket = await ticket_of_member(panel_client, peer)
    (tmp_path / "cli").mkdir()
    config = write_config(
        tmp_path / "cli",
        database_url,
        # write_config names a PostgreSQL database; the SQLite file is this test's own.
        top={"database_url": database_url} if database_url.startswith("sqlite") else None,
        tables={"discord": {"token": BOT_TOKEN, "api_url": peer.api_url, "guild_id": GUILD_ID}},
    )
    await peer.wait_for(lambda: len(peer.messages.get(str(ticket["channel_id"]), [])) >= 2)
    closed = await asyncio.to_thread(
        guildhall, config, "tickets", "close", str(ticket["id"]), "--reason", "done"
    )
    assert closed.stdout.strip() == f"closed ticket {ticket['id']} (alice)"
    await peer.wait_for(lambda: str(ticket["channel_id"]) in peer.deleted_channels)
    printed = await asyncio.to_thread(guildhall, config, "tickets", "transcript", str(ticket["id"]))
    lines = printed.stdout.splitlines()
    assert lines[0] == f"Ticket {ticket['id']} with alice ({MEMBER})"
    assert lines[2].endswith("member alice: please close me")
    assert lines[-1].endswith(": done")


async def test_a_full_category_spills_into_the_next(
    connected: Callable[..., Runtime], peer: DiscordPeer
) -> None:
    first, second = peer.add_category("Tickets A"), peer.add_category("Tickets B")
    for number in range(50):
        peer.add_channel(f"old-{number}", parent_id=first)
    runtime = connected(discord__modmail__category_ids=[first, second])
    await runtime.prepare()
    await runtime.start({"rustmail"})
    async with external_api(runtime) as create:
        response = await create(MEMBER)
    assert response.status_code == 200, response.text
    assert peer.channels[response.json()["channel_id"]]["parent_id"] == second


async def test_the_panel_permission_manage_tickets_makes_staff_too(
    panel_client: httpx.AsyncClient, peer: DiscordPeer, bot: Runtime
) -> None:
    helper = "300000000000000009"
    peer.add_member(helper, "helper")  # no staff role on Discord
    async with bot.database.unit_of_work() as session:
        await panel.grant(session, "user", helper, "manage_tickets", "admin", SYSTEM)
    await started(panel_client, peer)
    await peer.user_sends_dm(MEMBER, "help")
    channel_id = str((await ticket_of_member(panel_client, peer))["channel_id"])
    await peer.member_says(channel_id, helper, "!r on it")
    await peer.wait_for(lambda: "**helper**: on it" in peer.dms_to(MEMBER))
