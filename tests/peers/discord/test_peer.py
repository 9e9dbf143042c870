"""The fake Discord, driven by hikari itself (and by a raw socket where hikari cannot go)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import time
import zlib
from collections.abc import AsyncIterator

import aiohttp
import hikari
import pytest

from tests.peers.discord.peer import (
    APPLICATION_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    GENERAL_CHANNEL_ID,
    GUILD_ID,
    OWNER_USER_ID,
    STAFF_ROLE_ID,
    TICKETS_CATEGORY_ID,
    DiscordPeer,
    running_discord,
)

INTENTS = (
    hikari.Intents.GUILDS
    | hikari.Intents.GUILD_MEMBERS
    | hikari.Intents.GUILD_MESSAGES
    | hikari.Intents.DM_MESSAGES
    | hikari.Intents.MESSAGE_CONTENT
)
ALICE = "200000000000000001"
BOB = "200000000000000002"
WRONG_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAy.wrong.token"


def make_bot(
    peer: DiscordPeer, *, token: str = BOT_TOKEN, intents: hikari.Intents = INTENTS
) -> hikari.GatewayBot:
    return hikari.GatewayBot(
        token,
        rest_url=peer.api_url,
        intents=intents,
        banner=None,
        logs=None,
        suppress_optimization_warning=True,
    )


@pytest.fixture
async def peer() -> AsyncIterator[DiscordPeer]:
    async with running_discord() as running:
        running.add_member(ALICE, "alice")
        yield running


@pytest.fixture
async def bot(peer: DiscordPeer) -> AsyncIterator[hikari.GatewayBot]:
    client = make_bot(peer)
    await client.start(check_for_updates=False)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def quick_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """hikari sleeps 1-2 s before reconnecting within 30 s of its last connect; skip that.

    Only the pause goes: the shard still closes, reconnects and RESUMEs or IDENTIFYs
    exactly as it would.
    """
    monkeypatch.setattr("hikari.impl.shard._BACKOFF_WINDOW", 0.0)


def collect(bot: hikari.GatewayBot, event_type: type[hikari.Event]) -> list:
    seen: list = []

    async def keep(event: hikari.Event) -> None:
        seen.append(event)

    bot.subscribe(event_type, keep)
    return seen


def test_the_token_carries_the_bot_id() -> None:
    first = BOT_TOKEN.split(".")[0]
    assert base64.b64decode(first + "=" * (-len(first) % 4)).decode() == BOT_USER_ID


async def test_bot_connects_and_caches_the_guild(peer: DiscordPeer, bot: hikari.GatewayBot):
    assert peer.connected == 1
    assert peer.identifies == 1
    assert peer.intents == int(INTENTS)
    assert peer.presences[-1]["status"] == "online"
    me = bot.get_me()
    assert me is not None and str(me.id) == BOT_USER_ID

    await peer.wait_for(lambda: bot.cache.get_guild(int(GUILD_ID)) is not None)
    guild = bot.cache.get_guild(int(GUILD_ID))
    assert guild is not None and guild.name == "Guildhall Test Guild"
    roles = bot.cache.get_roles_view_for_guild(int(GUILD_ID))
    assert {r.name for r in roles.values()} == {"@everyone", "Staff"}
    channels = bot.cache.get_guild_channels_view_for_guild(int(GUILD_ID))
    assert channels[int(TICKETS_CATEGORY_ID)].type == hikari.ChannelType.GUILD_CATEGORY
    assert channels[int(GENERAL_CHANNEL_ID)].name == "general"
    # Without GUILD_PRESENCES the members come from hikari's chunk request, as on Discord.
    await peer.wait_for(lambda: len(bot.cache.get_members_view_for_guild(int(GUILD_ID))) == 3)
    assert peer.member_requests and peer.member_requests[0]["guild_id"] == GUILD_ID
    alice = bot.cache.get_member(int(GUILD_ID), int(ALICE))
    assert alice is not None and alice.username == "alice"

    joined = collect(bot, hikari.MemberCreateEvent)
    peer.add_member(BOB, "bob", roles=[STAFF_ROLE_ID])
    await peer.wait_for(lambda: len(joined) == 1)
    assert int(STAFF_ROLE_ID) in joined[0].member.role_ids


async def test_dm_and_guild_messages_arrive_as_their_events(
    peer: DiscordPeer, bot: hikari.GatewayBot
):
    dms = collect(bot, hikari.DMMessageCreateEvent)
    guild_messages = collect(bot, hikari.GuildMessageCreateEvent)

    await peer.user_sends_dm(ALICE, "hello bot", attachments=[{"filename": "shot.png"}])
    await peer.wait_for(lambda: len(dms) == 1)
    assert dms[0].content == "hello bot"
    assert str(dms[0].author_id) == ALICE
    assert dms[0].message.attachments[0].filename == "shot.png"

    await peer.member_says(GENERAL_CHANNEL_ID, ALICE, "hi all")
    await peer.wait_for(lambda: len(guild_messages) == 1)
    assert guild_messages[0].content == "hi all"
    assert guild_messages[0].member is not None and guild_messages[0].member.username == "alice"


@pytest.mark.usefixtures("quick_reconnect")
async def test_a_dropped_connection_resumes_and_replays(peer: DiscordPeer, bot: hikari.GatewayBot):
    dms = collect(bot, hikari.DMMessageCreateEvent)
    resumed = collect(bot, hikari.ShardResumedEvent)

    await peer.drop_connection()
    assert peer.connected == 0
    await peer.user_sends_dm(ALICE, "sent while you were away")
    await peer.wait_for(lambda: peer.resumes == 1 and peer.connected == 1)
    await peer.user_sends_dm(ALICE, "and after")
    await peer.wait_for(lambda: len(dms) == 2)
    assert [e.content for e in dms] == ["sent while you were away", "and after"]
    assert peer.identifies == 1
    assert len(resumed) == 1


@pytest.mark.usefixtures("quick_reconnect")
async def test_an_invalid_session_makes_the_bot_identify_again(
    peer: DiscordPeer, bot: hikari.GatewayBot
):
    dms = collect(bot, hikari.DMMessageCreateEvent)

    await peer.drop_connection(resumable=False)
    await peer.wait_for(lambda: peer.identifies == 2 and peer.connected == 1)
    assert peer.resumes == 0
    await peer.user_sends_dm(ALICE, "new session")
    await peer.wait_for(lambda: len(dms) == 1)


async def test_a_bad_token_is_unauthorized(peer: DiscordPeer):
    client = make_bot(peer, token=WRONG_TOKEN)
    try:
        with pytest.raises(hikari.UnauthorizedError):
            await client.start(check_for_updates=False)
    finally:
        await client.close()
    assert peer.requests == [("GET", "/gateway/bot")]
    assert peer.identifies == 0


async def test_a_privileged_intent_the_app_lacks_closes_4014(peer: DiscordPeer):
    client = make_bot(peer, intents=INTENTS | hikari.Intents.GUILD_PRESENCES)
    try:
        with pytest.raises(hikari.GatewayServerClosedConnectionError) as caught:
            await client.start(check_for_updates=False)
    finally:
        await client.close()
    assert caught.value.code == 4014
    assert peer.identifies == 0


async def test_rest_channels_messages_and_dms(peer: DiscordPeer, bot: hikari.GatewayBot):
    channel = await bot.rest.create_guild_text_channel(
        int(GUILD_ID), "Ticket Alice", category=int(TICKETS_CATEGORY_ID), topic="alice"
    )
    assert channel.name == "ticket-alice"
    assert channel.parent_id == int(TICKETS_CATEGORY_ID)
    assert peer.channels[str(channel.id)]["parent_id"] == TICKETS_CATEGORY_ID
    await peer.wait_for(lambda: bot.cache.get_guild_channel(channel.id) is not None)

    sent = await bot.rest.create_message(channel.id, "Welcome", embed=hikari.Embed(title="T"))
    assert sent.author.id == int(BOT_USER_ID)
    assert [m["content"] for m in peer.messages[str(channel.id)]] == ["Welcome"]
    assert peer.messages[str(channel.id)][0]["embeds"][0]["title"] == "T"

    deleted = await bot.rest.delete_channel(channel.id)
    assert deleted.id == channel.id
    assert peer.deleted_channels == [str(channel.id)]
    await peer.wait_for(lambda: bot.cache.get_guild_channel(channel.id) is None)
    with pytest.raises(hikari.NotFoundError) as unknown:
        await bot.rest.create_message(channel.id, "too late")
    assert unknown.value.code == 10003

    dm = await bot.rest.create_dm_channel(int(ALICE))
    assert dm.type == hikari.ChannelType.DM and dm.recipient.id == int(ALICE)
    again = await bot.rest.create_dm_channel(int(ALICE))
    assert again.id == dm.id
    await bot.rest.create_message(dm.id, "Your ticket is open")
    assert peer.dm_channel_of(ALICE) == str(dm.id)
    assert peer.dms_to(ALICE) == ["Your ticket is open"]

    peer.add_member(BOB, "bob")
    peer.closed_dms.add(BOB)
    closed = await bot.rest.create_dm_channel(int(BOB))
    with pytest.raises(hikari.ForbiddenError) as forbidden:
        await bot.rest.create_message(closed.id, "hello?")
    assert forbidden.value.code == 50007
    assert peer.dms_to(BOB) == []


async def test_rest_reads_and_edits(peer: DiscordPeer, bot: hikari.GatewayBot):
    me = await bot.rest.fetch_my_user()
    assert str(me.id) == BOT_USER_ID and me.is_bot
    application = await bot.rest.fetch_application()
    assert str(application.id) == BOT_USER_ID
    guild = await bot.rest.fetch_guild(int(GUILD_ID))
    assert guild.name == "Guildhall Test Guild" and int(STAFF_ROLE_ID) in guild.roles
    assert [g.id async for g in bot.rest.fetch_my_guilds()] == [int(GUILD_ID)]
    members = [m.username async for m in bot.rest.fetch_members(int(GUILD_ID))]
    assert sorted(members) == ["alice", "guild-owner", "guildhall-bot"]
    alice = await bot.rest.fetch_member(int(GUILD_ID), int(ALICE))
    assert alice.guild_id == int(GUILD_ID)
    with pytest.raises(hikari.NotFoundError) as unknown:
        await bot.rest.fetch_member(int(GUILD_ID), 999)
    assert unknown.value.code == 10013

    await bot.rest.add_role_to_member(int(GUILD_ID), int(ALICE), int(STAFF_ROLE_ID))
    assert peer.members[ALICE]["roles"] == [STAFF_ROLE_ID]

    moved = await bot.rest.edit_channel(
        int(GENERAL_CHANNEL_ID), name="Lobby", parent_category=int(TICKETS_CATEGORY_ID)
    )
    assert (moved.name, moved.parent_id) == ("lobby", int(TICKETS_CATEGORY_ID))
    await peer.member_says(GENERAL_CHANNEL_ID, ALICE, "first")
    await bot.rest.create_message(int(GENERAL_CHANNEL_ID), "second")
    history = [m.content async for m in bot.rest.fetch_messages(int(GENERAL_CHANNEL_ID))]
    assert history == ["second", "first"]

    await bot.update_presence(status=hikari.Status.IDLE)
    await peer.wait_for(lambda: peer.presences[-1]["status"] == "idle")
    left = collect(bot, hikari.MemberDeleteEvent)
    peer.remove_member(ALICE)
    await peer.wait_for(lambda: len(left) == 1)
    assert left[0].user_id == int(ALICE)


async def test_a_429_is_waited_out(peer: DiscordPeer, bot: hikari.GatewayBot):
    path = f"/channels/{GENERAL_CHANNEL_ID}/messages"
    peer.rate_limit_next("POST", path, 0.4)
    started = time.monotonic()
    await bot.rest.create_message(int(GENERAL_CHANNEL_ID), "patience")
    assert time.monotonic() - started >= 0.4
    assert len(peer.requests_to("POST", path)) == 2
    assert len(peer.messages[GENERAL_CHANNEL_ID]) == 1


async def test_the_51st_channel_of_a_category_is_refused(peer: DiscordPeer, bot: hikari.GatewayBot):
    for n in range(50):
        peer.add_channel(f"ticket-{n}", parent_id=TICKETS_CATEGORY_ID)
    with pytest.raises(hikari.BadRequestError) as caught:
        await bot.rest.create_guild_text_channel(
            int(GUILD_ID), "ticket-50", category=int(TICKETS_CATEGORY_ID)
        )
    assert caught.value.code == 50035
    assert caught.value.errors["parent_id"]["_errors"][0]["code"] == "CHANNEL_PARENT_MAX_CHANNELS"
    other = peer.add_category("Tickets 2")
    overflow = await bot.rest.create_guild_text_channel(
        int(GUILD_ID), "ticket-50", category=int(other)
    )
    assert overflow.parent_id == int(other)


# ---------------------------------------------------------------- raw wire


async def test_rest_answers_as_discord_does(peer: DiscordPeer):
    api = peer.api_url
    auth = {"Authorization": f"Bot {BOT_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/users/@me") as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(f"{api}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert (await resp.json())["id"] == BOT_USER_ID
            for header in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
                assert f"X-RateLimit-{header}" in resp.headers
        url = f"{api}/channels/{GENERAL_CHANNEL_ID}/messages"
        async with http.post(url, data=b'{"content": "hi"}', headers=auth) as resp:
            assert resp.status == 400  # no Content-Type: application/json, so no body
            assert await resp.json() == {"message": "Cannot send an empty message", "code": 50006}
        async with http.post(url, json={"content": "x" * 2001}, headers=auth) as resp:
            body = await resp.json()
            assert body["code"] == 50035
            assert body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
        async with http.get(f"{api}/channels/nope", headers=auth) as resp:
            body = await resp.json()
            assert resp.status == 400
            assert body["errors"]["channel_id"]["_errors"][0]["code"] == "NUMBER_TYPE_COERCE"
        async with http.get(f"{api}/channels/123", headers=auth) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == 10003
        async with http.get(f"{api}/guilds/{GUILD_ID}/members/999", headers=auth) as resp:
            assert (await resp.json())["code"] == 10013
        async with http.get(f"{api}/guilds/{GUILD_ID}/members?limit=1000", headers=auth) as resp:
            assert len(await resp.json()) == 3


async def _frames(ws: aiohttp.ClientWebSocketResponse, inflator=None) -> dict:
    message = await ws.receive(timeout=2)
    if inflator is None:
        assert message.type == aiohttp.WSMsgType.TEXT
        return json.loads(message.data)
    assert message.type == aiohttp.WSMsgType.BINARY
    assert message.data.endswith(b"\x00\x00\xff\xff")
    return json.loads(inflator.decompress(message.data))


def _identify(token: str = BOT_TOKEN, intents: int = int(INTENTS)) -> dict:
    return {
        "op": 2,
        "d": {
            "token": token,
            "intents": intents,
            "properties": {"os": "linux", "browser": "raw", "device": "raw"},
        },
    }


async def test_gateway_plain_and_zlib_frames_and_member_chunks(peer: DiscordPeer):
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{peer.gateway_url}?v=10&encoding=json") as ws:
            hello = await _frames(ws)
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41250
            await ws.send_json({"op": 1, "d": None})
            assert (await _frames(ws))["op"] == 11
            await ws.send_json(_identify())
            ready = await _frames(ws)
            assert (ready["t"], ready["s"]) == ("READY", 1)
            guild = await _frames(ws)
            assert (guild["t"], guild["s"]) == ("GUILD_CREATE", 2)
            assert [m["user"]["id"] for m in guild["d"]["members"]] == [BOT_USER_ID]
            await ws.send_json(
                {"op": 8, "d": {"guild_id": GUILD_ID, "query": "", "limit": 0, "nonce": "n1"}}
            )
            chunk = await _frames(ws)
            assert chunk["t"] == "GUILD_MEMBERS_CHUNK" and chunk["d"]["nonce"] == "n1"
            assert (chunk["d"]["chunk_index"], chunk["d"]["chunk_count"]) == (0, 1)
            assert len(chunk["d"]["members"]) == 3

        inflator = zlib.decompressobj()
        url = f"{peer.gateway_url}?v=10&encoding=json&compress=zlib-stream"
        async with http.ws_connect(url) as ws:
            assert (await _frames(ws, inflator))["op"] == 10
            await ws.send_json(_identify())
            assert (await _frames(ws, inflator))["t"] == "READY"
            assert (await _frames(ws, inflator))["t"] == "GUILD_CREATE"


async def test_gateway_closes_with_discords_codes(peer: DiscordPeer):
    cases = [
        ("v=10&encoding=json", _identify(token=WRONG_TOKEN), 4004),
        ("v=10&encoding=json", _identify(intents=int(hikari.Intents.GUILD_MESSAGES)), 4013),
        ("v=10&encoding=json", _identify(intents=1 << 40), 4013),
        ("v=10&encoding=json", {"op": 3, "d": {"status": "online"}}, 4003),
        ("v=10&encoding=json", {"op": 99, "d": None}, 4001),
        ("v=9&encoding=json", None, 4012),
        ("v=10&encoding=etf", None, 4002),
    ]
    async with aiohttp.ClientSession() as http:
        for query, identify, code in cases:
            async with http.ws_connect(f"{peer.gateway_url}?{query}") as ws:
                if identify is not None:
                    assert (await _frames(ws))["op"] == 10
                    await ws.send_json(identify)
                closing = await ws.receive(timeout=2)
                assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, code), query
    assert peer.identifies == 0


# ---------------------------------------------------------------- moderation

MOD_INTENTS = INTENTS | hikari.Intents.GUILD_MODERATION


@pytest.fixture
async def mod_bot(peer: DiscordPeer) -> AsyncIterator[hikari.GatewayBot]:
    client = make_bot(peer, intents=MOD_INTENTS)
    await client.start(check_for_updates=False)
    try:
        yield client
    finally:
        await client.close()


def _in(days: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)


async def test_timeouts_kicks_and_bans_through_rest(peer: DiscordPeer, mod_bot: hikari.GatewayBot):
    rest, guild = mod_bot.rest, int(GUILD_ID)
    updates = collect(mod_bot, hikari.MemberUpdateEvent)
    left = collect(mod_bot, hikari.MemberDeleteEvent)
    banned = collect(mod_bot, hikari.BanCreateEvent)
    unbanned = collect(mod_bot, hikari.BanDeleteEvent)
    audits = collect(mod_bot, hikari.AuditLogEntryCreateEvent)
    peer.add_member(BOB, "bob")

    until = _in(1)
    member = await rest.edit_member(
        guild, int(ALICE), communication_disabled_until=until, reason="spam / é"
    )
    assert member.communication_disabled_until() is not None
    assert peer.moderation == [
        {"action": "timeout", "user_id": ALICE, "reason": "spam / é", "until": until.isoformat()}
    ]
    await peer.wait_for(lambda: len(updates) == 1 and len(audits) == 1)
    assert updates[0].member.raw_communication_disabled_until == until
    entry = audits[0].entry
    assert entry.action_type == hikari.AuditLogEventType.MEMBER_UPDATE
    assert (entry.user_id, entry.target_id, entry.reason) == (
        int(BOT_USER_ID),
        int(ALICE),
        "spam / é",
    )
    assert entry.changes[0].key == hikari.AuditLogChangeKey.COMMUNICATION_DISABLED_UNTIL
    assert entry.changes[0].new_value == until

    with pytest.raises(hikari.BadRequestError) as too_long:
        await rest.edit_member(guild, int(ALICE), communication_disabled_until=_in(29))
    assert too_long.value.code == 50035
    error = too_long.value.errors["communication_disabled_until"]["_errors"][0]
    assert error["code"] == "INVALID_COMMUNICATION_DISABLED_TIMESTAMP"
    with pytest.raises(hikari.ForbiddenError) as owner:
        await rest.edit_member(guild, int(OWNER_USER_ID), communication_disabled_until=_in(1))
    assert owner.value.code == 50013
    with pytest.raises(hikari.NotFoundError) as stranger:
        await rest.kick_user(guild, 999)
    assert stranger.value.code == 10007
    lifted = await rest.edit_member(guild, int(ALICE), communication_disabled_until=None)
    assert lifted.raw_communication_disabled_until is None

    await peer.member_says(GENERAL_CHANNEL_ID, ALICE, "spam")
    await rest.ban_user(guild, int(ALICE), delete_message_seconds=3600, reason="raid")
    await peer.wait_for(lambda: len(banned) == 1 and len(left) == 1)
    assert ALICE not in peer.members and peer.messages[GENERAL_CHANNEL_ID] == []
    ban = await rest.fetch_ban(guild, int(ALICE))
    assert (ban.user.id, ban.reason) == (int(ALICE), "raid")
    assert [b.user.id async for b in rest.fetch_bans(guild)] == [int(ALICE)]
    await rest.unban_user(guild, int(ALICE), reason="appeal")
    await peer.wait_for(lambda: len(unbanned) == 1)
    for call in (rest.unban_user(guild, int(ALICE)), rest.fetch_ban(guild, int(ALICE))):
        with pytest.raises(hikari.NotFoundError) as unknown:
            await call
        assert unknown.value.code == 10026

    renamed = await rest.edit_member(guild, int(BOB), nickname="bobby", roles=[int(STAFF_ROLE_ID)])
    assert (renamed.nickname, renamed.role_ids[:1]) == ("bobby", [int(STAFF_ROLE_ID)])
    await peer.wait_for(lambda: len(audits) == 6)
    role_entry = audits[-1].entry
    assert role_entry.action_type == hikari.AuditLogEventType.MEMBER_ROLE_UPDATE
    assert list(role_entry.changes[0].new_value) == [int(STAFF_ROLE_ID)]
    await rest.kick_user(guild, int(BOB), reason="bye")
    await peer.wait_for(lambda: len(left) == 2)
    assert [m["action"] for m in peer.moderation] == ["timeout", "timeout", "ban", "unban", "kick"]
    logs = [log async for log in rest.fetch_audit_log(guild)]
    types = [e.action_type for log in logs for e in log.entries.values()]
    assert sorted(types) == [20, 22, 23, 24, 24, 24, 25]
    kicks = [
        e
        async for log in rest.fetch_audit_log(
            guild, event_type=hikari.AuditLogEventType.MEMBER_KICK
        )
        for e in log.entries.values()
    ]
    assert [(e.target_id, e.reason) for e in kicks] == [(int(BOB), "bye")]

    peer.add_member(BOB, "bob")
    peer.bot_permissions.discard("KICK_MEMBERS")
    with pytest.raises(hikari.ForbiddenError) as missing:
        await rest.kick_user(guild, int(BOB))
    assert missing.value.code == 50013
    assert BOB in peer.members


async def test_moderators_act_inside_discord(peer: DiscordPeer, mod_bot: hikari.GatewayBot):
    audits = collect(mod_bot, hikari.AuditLogEntryCreateEvent)
    banned = collect(mod_bot, hikari.BanCreateEvent)
    updates = collect(mod_bot, hikari.MemberUpdateEvent)
    left = collect(mod_bot, hikari.MemberDeleteEvent)
    peer.add_member(BOB, "bob")

    until = _in(0.5).isoformat()
    await peer.moderator_times_out(OWNER_USER_ID, BOB, until, reason="calm down")
    await peer.moderator_kicks(OWNER_USER_ID, BOB)
    await peer.moderator_bans(OWNER_USER_ID, ALICE, reason="raid")
    await peer.wait_for(lambda: len(audits) == 3 and len(banned) == 1 and len(left) == 2)
    assert updates[0].member.raw_communication_disabled_until == datetime.datetime.fromisoformat(
        until
    )
    assert [(e.entry.action_type, e.entry.user_id, e.entry.reason) for e in audits] == [
        (hikari.AuditLogEventType.MEMBER_UPDATE, int(OWNER_USER_ID), "calm down"),
        (hikari.AuditLogEventType.MEMBER_KICK, int(OWNER_USER_ID), None),
        (hikari.AuditLogEventType.MEMBER_BAN_ADD, int(OWNER_USER_ID), "raid"),
    ]
    assert peer.moderation == []  # not done through the bot
    assert ALICE in peer.bans and BOB not in peer.members


async def test_audit_log_events_need_the_moderation_intent(
    peer: DiscordPeer, bot: hikari.GatewayBot
):
    raw = collect(bot, hikari.ShardPayloadEvent)
    left = collect(bot, hikari.MemberDeleteEvent)
    await peer.moderator_kicks(OWNER_USER_ID, ALICE)
    await peer.wait_for(lambda: len(left) == 1)
    assert "GUILD_AUDIT_LOG_ENTRY_CREATE" not in [e.name for e in raw]
    assert "GUILD_MEMBER_REMOVE" in [e.name for e in raw]


async def test_directory_changes_reach_the_bot(peer: DiscordPeer, bot: hikari.GatewayBot):
    updates = collect(bot, hikari.MemberUpdateEvent)
    roles_made = collect(bot, hikari.RoleCreateEvent)
    roles_gone = collect(bot, hikari.RoleDeleteEvent)
    made = collect(bot, hikari.GuildChannelCreateEvent)
    gone = collect(bot, hikari.GuildChannelDeleteEvent)

    peer.add_role("300000000000000001", "Helpers")
    peer.update_member(ALICE, username="alice2", roles=["300000000000000001"])
    await peer.wait_for(lambda: len(roles_made) == 1 and len(updates) == 1)
    assert updates[0].member.username == "alice2"
    assert int("300000000000000001") in updates[0].member.role_ids
    peer.remove_role("300000000000000001")
    channel_id = peer.add_channel("Side Room")
    await peer.wait_for(lambda: len(roles_gone) == 1 and len(made) == 1)
    assert peer.members[ALICE]["roles"] == []
    peer.remove_channel(channel_id)
    await peer.wait_for(lambda: len(gone) == 1)
    assert gone[0].channel_id == int(channel_id)
    assert bot.cache.get_guild_channel(int(channel_id)) is None


# -------------------------------------------------------------- interactions


def _warn_command(rest: hikari.api.RESTClient) -> hikari.api.SlashCommandBuilder:
    return (
        rest.slash_command_builder("warn", "Warn a member")
        .add_option(
            hikari.CommandOption(
                type=hikari.OptionType.USER, name="member", description="who", is_required=True
            )
        )
        .add_option(
            hikari.CommandOption(type=hikari.OptionType.STRING, name="reason", description="why")
        )
    )


async def test_commands_are_registered_as_discord_validates_them(
    peer: DiscordPeer, bot: hikari.GatewayBot
):
    app, guild = int(APPLICATION_ID), int(GUILD_ID)
    made = await bot.rest.set_application_commands(
        app, [_warn_command(bot.rest), bot.rest.slash_command_builder("ping", "Ping")], guild
    )
    assert [c.name for c in made] == ["warn", "ping"]
    warn = made[0]
    assert isinstance(warn, hikari.SlashCommand)
    assert (warn.guild_id, warn.application_id) == (guild, app)
    assert warn.options is not None and warn.options[0].type == hikari.OptionType.USER
    again = await bot.rest.set_application_commands(app, [_warn_command(bot.rest)], guild)
    assert again[0].id == warn.id  # same name, same id, as on Discord
    fetched = await bot.rest.fetch_application_commands(app, guild)
    assert [c.name for c in fetched] == ["warn"]

    bad = [
        bot.rest.slash_command_builder("Warn", "upper case"),
        bot.rest.slash_command_builder("ping", ""),
        bot.rest.slash_command_builder("ping", "twice"),
    ]
    with pytest.raises(hikari.BadRequestError) as caught:
        await bot.rest.set_application_commands(app, bad, guild)
    errors = caught.value.errors
    assert caught.value.code == 50035
    assert errors["0"]["name"]["_errors"][0]["code"] == "APPLICATION_COMMAND_INVALID_NAME"
    assert errors["1"]["description"]["_errors"][0]["code"] == "BASE_TYPE_BAD_LENGTH"
    assert errors["2"]["_errors"][0]["code"] == "APPLICATION_COMMANDS_DUPLICATE_NAME"
    assert [c["name"] for c in peer.commands] == ["warn"]


async def test_a_slash_command_is_deferred_then_edited(peer: DiscordPeer, bot: hikari.GatewayBot):
    await bot.rest.set_application_commands(
        int(APPLICATION_ID), [_warn_command(bot.rest)], int(GUILD_ID)
    )
    with pytest.raises(ValueError, match="not a registered"):
        await peer.member_runs(ALICE, "nope")
    peer.add_member(BOB, "bob")
    runs = collect(bot, hikari.InteractionCreateEvent)
    interaction_id = await peer.member_runs(
        OWNER_USER_ID, "warn", {"member": BOB, "reason": "rude"}
    )
    await peer.wait_for(lambda: len(runs) == 1)
    command = runs[0].interaction
    assert isinstance(command, hikari.CommandInteraction)
    assert str(command.id) == interaction_id and command.command_name == "warn"
    assert [(o.name, o.type, o.value) for o in command.options] == [
        ("member", hikari.OptionType.USER, int(BOB)),
        ("reason", hikari.OptionType.STRING, "rude"),
    ]
    assert command.resolved is not None and command.resolved.members[int(BOB)].username == "bob"
    assert command.member is not None and command.member.id == int(OWNER_USER_ID)
    assert hikari.Permissions.MODERATE_MEMBERS in command.app_permissions

    await command.create_initial_response(
        hikari.ResponseType.DEFERRED_MESSAGE_CREATE, flags=hikari.MessageFlag.EPHEMERAL
    )
    assert peer.answer_to(interaction_id) is None  # still "thinking"
    with pytest.raises(hikari.BadRequestError) as twice:
        await command.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "again")
    assert twice.value.code == 40060
    edited = await command.edit_initial_response("Bob was warned")
    assert edited.content == "Bob was warned"
    fetched = await command.fetch_initial_response()
    assert fetched.id == edited.id
    await bot.rest.execute_webhook(command.application_id, command.token, "and logged")
    assert peer.answer_to(interaction_id) == {
        "content": "Bob was warned",
        "embeds": [],
        "components": [],
        "ephemeral": True,
        "message_id": str(edited.id),
    }
    assert [(r["type"], r["ephemeral"]) for r in peer.interaction_responses[interaction_id]] == [
        (5, True),
        ("edit", True),
        ("followup", False),
    ]
    # The ephemeral answer is not in the channel; the public follow-up is.
    assert [m["content"] for m in peer.messages[GENERAL_CHANNEL_ID]] == ["and logged"]


async def test_late_answers_are_unknown_interactions(peer: DiscordPeer, bot: hikari.GatewayBot):
    ticket = bot.rest.slash_command_builder("ticket", "Tickets").add_option(
        hikari.CommandOption(
            type=hikari.OptionType.SUB_COMMAND,
            name="open",
            description="Open one",
            options=[
                hikari.CommandOption(
                    type=hikari.OptionType.STRING, name="topic", description="t", is_required=True
                )
            ],
        )
    )
    await bot.rest.set_application_commands(int(APPLICATION_ID), [ticket], int(GUILD_ID))
    peer.interaction_deadline = 0.05
    runs = collect(bot, hikari.CommandInteractionCreateEvent)
    with pytest.raises(ValueError, match="required options missing"):
        await peer.member_runs(ALICE, "ticket", {"open": {}})
    await peer.member_runs(ALICE, "ticket", {"open": {"topic": "billing"}})
    await peer.wait_for(lambda: len(runs) == 1)
    sub = runs[0].interaction.options[0]
    assert (sub.name, sub.type) == ("open", hikari.OptionType.SUB_COMMAND)
    assert sub.options is not None and sub.options[0].value == "billing"
    await asyncio.sleep(0.1)
    with pytest.raises(hikari.NotFoundError) as late:
        await runs[0].interaction.create_initial_response(
            hikari.ResponseType.MESSAGE_CREATE, "pong"
        )
    assert late.value.code == 10062


async def test_buttons_are_clicked_and_messages_updated(peer: DiscordPeer, bot: hikari.GatewayBot):
    row = bot.rest.build_message_action_row().add_interactive_button(
        hikari.ButtonStyle.PRIMARY, "claim:1", label="Claim"
    )
    panel = await bot.rest.create_message(int(GENERAL_CHANNEL_ID), "Ticket #1", component=row)
    stored = peer.messages[GENERAL_CHANNEL_ID][0]
    assert stored["components"][0]["components"][0]["custom_id"] == "claim:1"
    clicks = collect(bot, hikari.ComponentInteractionCreateEvent)

    with pytest.raises(ValueError, match="no button"):
        await peer.member_clicks(ALICE, str(panel.id), "other")
    first = await peer.member_clicks(ALICE, str(panel.id), "claim:1")
    await peer.wait_for(lambda: len(clicks) == 1)
    click = clicks[0].interaction
    assert isinstance(click, hikari.ComponentInteraction)
    assert click.custom_id == "claim:1" and click.message.id == panel.id
    assert click.component_type == hikari.ComponentType.BUTTON
    updates = collect(bot, hikari.GuildMessageUpdateEvent)
    done = bot.rest.build_message_action_row().add_interactive_button(
        hikari.ButtonStyle.SECONDARY, "claim:1", label="Claimed", is_disabled=True
    )
    await click.create_initial_response(
        hikari.ResponseType.MESSAGE_UPDATE, "Ticket #1 (claimed by alice)", component=done
    )
    await peer.wait_for(lambda: len(updates) == 1)
    assert stored["content"] == "Ticket #1 (claimed by alice)"
    assert stored["components"][0]["components"][0]["disabled"] is True
    assert peer.answer_to(first)["content"] == "Ticket #1 (claimed by alice)"

    with pytest.raises(ValueError, match="disabled"):
        await peer.member_clicks(ALICE, str(panel.id), "claim:1")

    # An ephemeral reply with its own button, then a click on that one.
    peer.add_member(BOB, "bob")
    again = bot.rest.build_message_action_row().add_interactive_button(
        hikari.ButtonStyle.PRIMARY, "claim:2", label="Claim"
    )
    panel2 = await bot.rest.create_message(int(GENERAL_CHANNEL_ID), "Ticket #2", component=again)
    confirm = bot.rest.build_message_action_row().add_interactive_button(
        hikari.ButtonStyle.DANGER, "close:2", label="Close"
    )
    third = await peer.member_clicks(BOB, str(panel2.id), "claim:2")
    await peer.wait_for(lambda: len(clicks) == 2)
    await clicks[-1].interaction.create_initial_response(
        hikari.ResponseType.MESSAGE_CREATE,
        "Sure?",
        component=confirm,
        flags=hikari.MessageFlag.EPHEMERAL,
    )
    answer = peer.answer_to(third)
    assert answer is not None and answer["ephemeral"] is True
    assert len(peer.messages[GENERAL_CHANNEL_ID]) == 2  # the two panels, not the reply
    await peer.member_clicks(BOB, answer["message_id"], "close:2")
    await peer.wait_for(lambda: len(clicks) == 3)
    assert clicks[-1].interaction.message.flags & hikari.MessageFlag.EPHEMERAL


async def test_interaction_routes_answer_as_discord_does(peer: DiscordPeer, bot: hikari.GatewayBot):
    await bot.rest.set_application_commands(
        int(APPLICATION_ID), [bot.rest.slash_command_builder("ping", "Ping")], int(GUILD_ID)
    )
    runs = collect(bot, hikari.CommandInteractionCreateEvent)
    interaction_id = await peer.member_runs(ALICE, "ping")
    await peer.wait_for(lambda: len(runs) == 1)
    token = runs[0].interaction.token
    url = f"{peer.api_url}/interactions/{interaction_id}/{token}/callback"
    async with aiohttp.ClientSession() as http:
        bad_button = {
            "type": 4,
            "data": {
                "content": "x",
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "L", "custom_id": "c" * 101}
                        ],
                    }
                ],
            },
        }
        async with http.post(url, json=bad_button) as resp:  # no Authorization: not needed
            body = await resp.json()
            assert resp.status == 400 and body["code"] == 50035
            error = body["errors"]["components"]["0"]["components"]["0"]["custom_id"]["_errors"]
            assert error[0]["code"] == "BASE_TYPE_BAD_LENGTH"
        async with http.post(url, json={"type": 7, "data": {"content": "x"}}) as resp:
            assert resp.status == 400  # UPDATE_MESSAGE is for component interactions only
        async with http.post(url, json={"type": 4, "data": {"content": "pong"}}) as resp:
            assert resp.status == 204
        async with http.post(url, json={"type": 4, "data": {"content": "pong"}}) as resp:
            assert (resp.status, (await resp.json())["code"]) == (400, 40060)
        async with http.post(
            f"{peer.api_url}/interactions/{interaction_id}/nope/callback", json={"type": 4}
        ) as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, 10062)
        webhook = f"{peer.api_url}/webhooks/{APPLICATION_ID}/nope/messages/@original"
        async with http.get(webhook) as resp:
            assert (resp.status, (await resp.json())["code"]) == (401, 50027)
    assert peer.answer_to(interaction_id)["content"] == "pong"
    assert peer.messages[GENERAL_CHANNEL_ID][0]["type"] == 20
