"""A fake Discord, served for real on a loopback port: REST v10 and the v10 gateway.

A real client (hikari, aiohttp underneath) connects to it as it would to
discord.com: ``rest_url`` is :attr:`DiscordPeer.api_url`, and ``GET
/gateway/bot`` hands out ``ws://127.0.0.1:{port}/gateway``. The peer holds one
guild with members, roles, a category and text channels, DM channels and every
message, and lets a test change that state and push gateway events.

What it speaks, and where it is as strict as Discord:

REST (under ``/api/v10``)
    ``Authorization: Bot <BOT_TOKEN>`` on every route but ``GET /gateway``,
    else 401 ``{"message": "401: Unauthorized", "code": 0}``. Bodies are read
    as JSON only with ``Content-Type: application/json`` (anything else reads
    as an empty body, so a message is then 50006 "Cannot send an empty
    message"); broken JSON is 50109. Invalid fields answer 400 code 50035
    "Invalid Form Body" with Discord's nested ``errors.<field>._errors`` list.
    Path snowflakes are validated (50035 NUMBER_TYPE_COERCE); unknown things
    are 404 with Discord's codes (10003 channel, 10004 guild, 10007 member,
    10008 message, 10011 role, 10013 user). Every response carries the
    ``X-RateLimit-*`` headers with a bucket per route; a bucket holds 50
    requests a second and the 51st gets a real 429, and
    :meth:`DiscordPeer.rate_limit_next` forces one. Text channel names are
    lower-cased with whitespace turned into ``-`` as Discord does; a category
    takes 50 channels (50035 CHANNEL_PARENT_MAX_CHANNELS), a guild 500 (30013).
    Messages sent by the bot over REST come back without ``guild_id`` and
    ``member`` (as Discord's REST does) and are dispatched as MESSAGE_CREATE.

Gateway (``/gateway``)
    Requires ``v=10`` (else close 4012) and ``encoding=json`` (else 4002);
    ``compress=zlib-stream`` makes every server frame a binary frame out of one
    zlib stream per connection, each ending with a Z_SYNC_FLUSH; without it
    frames are text. HELLO, then IDENTIFY (wrong token 4004, wrong shard 4010,
    missing or malformed intents or no GUILDS intent 4013 (stricter than
    Discord, which accepts intents 0), a privileged intent the app lacks 4014:
    it has GUILD_MEMBERS and MESSAGE_CONTENT, not GUILD_PRESENCES, see
    ``privileged_intents``). Anything but heartbeat/identify/resume before
    IDENTIFY is 4003, a second IDENTIFY 4005, an unknown opcode 4001, a frame
    that is not a JSON object 4002. READY then GUILD_CREATE; like Discord, the
    GUILD_CREATE member list holds only the bot unless the GUILD_PRESENCES
    intent is given, the rest come from REQUEST_GUILD_MEMBERS (op 8 ->
    GUILD_MEMBERS_CHUNK, nonce echoed). Dispatches are filtered by intents
    (member events need GUILD_MEMBERS, guild messages GUILD_MESSAGES, DMs
    DIRECT_MESSAGES) and guild message content is blanked without
    MESSAGE_CONTENT unless the bot is mentioned. Heartbeats are ACKed, op 3
    presences recorded. Sequence numbers increase per session; RESUME replays
    what the session missed, then RESUMED; an unknown session or one the
    client closed with 1000/1001 gets op 9 ``d=false``.

Moderation
    ``PATCH /guilds/{g}/members/{u}`` (``communication_disabled_until`` at most 28
    days ahead, else 50035 INVALID_COMMUNICATION_DISABLED_TIMESTAMP; ``nick``;
    ``roles``), kick (``DELETE .../members/{u}``), ban/unban/get ban/list bans,
    ``GET /guilds/{g}/audit-logs``. The bot holds the permissions named in
    :attr:`DiscordPeer.bot_permissions`; a missing one, or acting on the guild
    owner (or timing out an administrator), is 403 50013. ``X-Audit-Log-Reason``
    is URL-decoded into the audit log entry and :attr:`DiscordPeer.moderation`.
    Each action dispatches what Discord does (GUILD_MEMBER_UPDATE / _REMOVE,
    GUILD_BAN_ADD / _REMOVE) and GUILD_AUDIT_LOG_ENTRY_CREATE (GUILD_MODERATION
    intent, and only while the bot has VIEW_AUDIT_LOG). ``moderator_*`` drive the
    same from a moderator inside Discord.

Interactions
    Guild commands are bulk-overwritten (``PUT /applications/{app}/guilds/{g}/commands``,
    validated as Discord does) and run by :meth:`DiscordPeer.member_runs`; buttons
    on the bot's messages are clicked by :meth:`DiscordPeer.member_clicks`. Both
    dispatch INTERACTION_CREATE (every session gets it). Callbacks need no bot
    token; one answer per interaction (40060), within ``interaction_deadline``
    (3 s, else 10062); the token then works for ``interaction_token_lifetime``
    (15 min) on ``/webhooks/{app}/{token}`` (follow-ups) and ``.../messages/@original``.
    Ephemeral answers are kept apart from ``messages`` (only the member sees them)
    and dispatch nothing. :meth:`DiscordPeer.answer_to` gives what the member sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import inspect
import json
import math
import re
import secrets
import socket
import time
import unicodedata
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.peers.discord import payloads

# hikari reads the bot's id out of the token's first segment (base64 of the id),
# so the token has Discord's shape: base64(BOT_USER_ID).<timestamp>.<hmac>.
BOT_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAy.peer.bot-token"
GUILD_ID = "100000000000000001"
BOT_USER_ID = "100000000000000002"
APPLICATION_ID = BOT_USER_ID
OWNER_USER_ID = "100000000000000003"
STAFF_ROLE_ID = "100000000000000010"
TICKETS_CATEGORY_ID = "100000000000000020"
GENERAL_CHANNEL_ID = "100000000000000030"
BOT_USERNAME = "guildhall-bot"

# Gateway intents (bits).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MODERATION = 1 << 2
GUILD_VOICE_STATES = 1 << 7
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
GUILD_MESSAGE_TYPING = 1 << 11
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
DIRECT_MESSAGE_TYPING = 1 << 14
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
KNOWN_INTENTS = (1 << 26) - 1  # up to DIRECT_MESSAGE_POLLS; Discord rejects higher bits

# GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED: an unverified app with both.
APPLICATION_FLAGS = (1 << 15) | (1 << 19)

CATEGORY_CHANNEL_LIMIT = 50
GUILD_CHANNEL_LIMIT = 500
BUCKET_LIMIT = 50
BUCKET_WINDOW = 1.0

_CLOSE_REASONS = {
    4000: "Unknown error.",
    4001: "Unknown opcode.",
    4002: "Error while decoding payload.",
    4003: "Not authenticated.",
    4004: "Authentication failed.",
    4005: "Already authenticated.",
    4007: "Invalid seq.",
    4010: "Invalid shard.",
    4012: "Invalid API version.",
    4013: "Invalid intent(s).",
    4014: "Disallowed intent(s).",
}

_GUILDS_EVENTS = {
    "GUILD_CREATE",
    "GUILD_UPDATE",
    "GUILD_DELETE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "CHANNEL_DELETE",
    "THREAD_CREATE",
    "THREAD_UPDATE",
    "THREAD_DELETE",
    "THREAD_LIST_SYNC",
    "STAGE_INSTANCE_CREATE",
    "STAGE_INSTANCE_UPDATE",
    "STAGE_INSTANCE_DELETE",
}
_MEMBER_EVENTS = {"GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"}
_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}
_REACTION_EVENTS = {
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_ALL",
    "MESSAGE_REACTION_REMOVE_EMOJI",
}


def required_intent(event: str, data: dict) -> int:
    """The intent a session needs to receive ``event`` (0: every session gets it)."""
    in_guild = "guild_id" in data
    if event in _GUILDS_EVENTS:
        return GUILDS
    if event == "CHANNEL_PINS_UPDATE":
        return GUILDS if in_guild else DIRECT_MESSAGES
    if event in _MEMBER_EVENTS:
        return GUILD_MEMBERS
    if event in ("GUILD_BAN_ADD", "GUILD_BAN_REMOVE", "GUILD_AUDIT_LOG_ENTRY_CREATE"):
        return GUILD_MODERATION
    if event in _MESSAGE_EVENTS:
        return GUILD_MESSAGES if in_guild else DIRECT_MESSAGES
    if event in _REACTION_EVENTS:
        return GUILD_MESSAGE_REACTIONS if in_guild else DIRECT_MESSAGE_REACTIONS
    if event == "TYPING_START":
        return GUILD_MESSAGE_TYPING if in_guild else DIRECT_MESSAGE_TYPING
    if event == "PRESENCE_UPDATE":
        return GUILD_PRESENCES
    if event == "VOICE_STATE_UPDATE":
        return GUILD_VOICE_STATES
    return 0


class HTTPProblem(Exception):
    """An error answer, in Discord's JSON shape."""

    def __init__(self, status: int, code: int, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors is not None:
            self.body["errors"] = errors


def form_error(problems: dict[str, tuple[str, str]]) -> HTTPProblem:
    """50035 Invalid Form Body; keys are dotted paths (``embeds.0.title``)."""
    errors: dict[str, Any] = {}
    for path, (code, message) in problems.items():
        node = errors
        for part in path.split("."):
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    return HTTPProblem(400, 50035, "Invalid Form Body", errors)


def _is_snowflake(value: object) -> bool:
    return isinstance(value, str | int) and str(value).isdigit() and 0 <= int(value) < 1 << 64


def _snowflake_field(body: dict, name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise form_error({name: ("BASE_TYPE_REQUIRED", "This field is required")})
        return None
    if not _is_snowflake(value):
        raise form_error({name: ("NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')})
    return str(value)


def _text_channel_name(name: str) -> str:
    # Discord lower-cases text channel names and turns whitespace into dashes.
    return re.sub(r"\s+", "-", name.strip()).lower()


# Discord's permission bits, by the names the peer's ``bot_permissions`` uses.
PERMISSIONS = {
    "CREATE_INSTANT_INVITE": 1 << 0,
    "KICK_MEMBERS": 1 << 1,
    "BAN_MEMBERS": 1 << 2,
    "ADMINISTRATOR": 1 << 3,
    "MANAGE_CHANNELS": 1 << 4,
    "MANAGE_GUILD": 1 << 5,
    "ADD_REACTIONS": 1 << 6,
    "VIEW_AUDIT_LOG": 1 << 7,
    "VIEW_CHANNEL": 1 << 10,
    "SEND_MESSAGES": 1 << 11,
    "MANAGE_MESSAGES": 1 << 13,
    "EMBED_LINKS": 1 << 14,
    "ATTACH_FILES": 1 << 15,
    "READ_MESSAGE_HISTORY": 1 << 16,
    "MENTION_EVERYONE": 1 << 17,
    "MANAGE_NICKNAMES": 1 << 27,
    "MANAGE_ROLES": 1 << 28,
    "MANAGE_WEBHOOKS": 1 << 29,
    "USE_APPLICATION_COMMANDS": 1 << 31,
    "MANAGE_THREADS": 1 << 34,
    "MODERATE_MEMBERS": 1 << 40,
}
DEFAULT_BOT_PERMISSIONS = frozenset(
    {"MODERATE_MEMBERS", "KICK_MEMBERS", "BAN_MEMBERS", "MANAGE_CHANNELS", "VIEW_AUDIT_LOG"}
)

# Audit log action types.
MEMBER_KICK = 20
MEMBER_BAN_ADD = 22
MEMBER_BAN_REMOVE = 23
MEMBER_UPDATE = 24
MEMBER_ROLE_UPDATE = 25

MAX_TIMEOUT = datetime.timedelta(days=28)

# Interaction types and callback types.
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
MODAL = 9
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12
SELECT_MENU_TYPES = {3, 5, 6, 7, 8}
OPTION_TYPES = {
    1: "SUB_COMMAND",
    2: "SUB_COMMAND_GROUP",
    3: "STRING",
    4: "INTEGER",
    5: "BOOLEAN",
    6: "USER",
    7: "CHANNEL",
    8: "ROLE",
    9: "MENTIONABLE",
    10: "NUMBER",
    11: "ATTACHMENT",
}


def _command_name_ok(name: object) -> bool:
    """Discord's ``^[-_\\p{L}\\p{N}]{1,32}$``, lower case where a letter has a lower case."""
    return (
        isinstance(name, str)
        and 1 <= len(name) <= 32
        and all(c in "-_" or unicodedata.category(c)[0] in "LN" for c in name)
        and name == name.lower()
    )


def _parse_iso(value: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def _iso(value: str | None) -> str | None:
    """An ISO 8601 timestamp in Discord's own spelling (UTC, ``+00:00``)."""
    return None if value is None else _parse_iso(value).isoformat()


def _change(key: str, old: Any, new: Any) -> dict:
    """An audit log change; Discord leaves out the side that is null."""
    change: dict[str, Any] = {"key": key}
    if old is not None:
        change["old_value"] = old
    if new is not None:
        change["new_value"] = new
    return change


def _reason(request: Request) -> str | None:
    raw = request.headers.get("x-audit-log-reason")
    return None if raw is None else urllib.parse.unquote(raw)


@dataclass(eq=False)
class _Interaction:
    id: str
    token: str
    kind: int  # APPLICATION_COMMAND or MESSAGE_COMPONENT
    channel_id: str
    user_id: str
    dispatched_at: float
    command_name: str | None = None
    source: dict | None = None  # the message whose component was used
    callback_type: int | None = None
    original: dict | None = None  # what @original names
    visible: bool = False  # the original shows an answer (not "thinking", not untouched)
    followups: list[dict] = field(default_factory=list)


_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


@dataclass(eq=False)
class _Session:
    id: str
    intents: int
    large_threshold: int
    seq: int = 0
    history: list[tuple[int, str, dict]] = field(default_factory=list)
    conn: _Connection | None = None


@dataclass(eq=False)
class _Connection:
    ws: WebSocket
    compressor: Any | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    session: _Session | None = None
    ready: bool = False
    closed: bool = False
    server_closed: bool = False  # the peer sent (or queued) the close frame
    writer: asyncio.Task | None = None

    def send(self, frame: dict) -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        if self.closed:
            done.set_result(None)
        else:
            self.queue.put_nowait(("frame", frame, done))
        return done

    def close(self, code: int) -> asyncio.Future:
        self.server_closed = True
        done = asyncio.get_running_loop().create_future()
        if self.closed:
            done.set_result(None)
        else:
            self.queue.put_nowait(("close", code, done))
        return done

    async def write_forever(self) -> None:
        while True:
            kind, value, done = await self.queue.get()
            try:
                if kind == "close":
                    self.closed = True
                    await self.ws.close(code=value, reason=_CLOSE_REASONS.get(value, ""))
                else:
                    text = json.dumps(value, separators=(",", ":"))
                    if self.compressor is None:
                        await self.ws.send_text(text)
                    else:
                        data = self.compressor.compress(text.encode())
                        await self.ws.send_bytes(data + self.compressor.flush(zlib.Z_SYNC_FLUSH))
            except Exception:  # the socket went away under us
                self.closed = True
            finally:
                if not done.done():
                    done.set_result(None)
            if self.closed:
                self.release()
                return

    def release(self) -> None:
        self.closed = True
        while not self.queue.empty():
            _, _, done = self.queue.get_nowait()
            if not done.done():
                done.set_result(None)


def _frame(op: int, d: Any = None, *, s: int | None = None, t: str | None = None) -> dict:
    return {"t": t, "s": s, "op": op, "d": d}


@dataclass
class DiscordPeer:
    port: int
    heartbeat_interval_ms: int = 41250
    # Privileged intents this application has been granted in the developer portal.
    privileged_intents: int = GUILD_MEMBERS | MESSAGE_CONTENT
    guild: dict = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)
    members: dict[str, dict] = field(default_factory=dict)
    roles: dict[str, dict] = field(default_factory=dict)
    channels: dict[str, dict] = field(default_factory=dict)
    deleted_channels: list[str] = field(default_factory=list)
    dm_channels: dict[str, dict] = field(default_factory=dict)
    messages: dict[str, list[dict]] = field(default_factory=dict)
    closed_dms: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    identifies: int = 0
    resumes: int = 0
    presences: list[dict] = field(default_factory=list)
    intents: int | None = None
    member_requests: list[dict] = field(default_factory=list)
    # Guild permissions the bot holds (names as in PERMISSIONS); moderation checks them.
    bot_permissions: set[str] = field(default_factory=lambda: set(DEFAULT_BOT_PERMISSIONS))
    moderation: list[dict] = field(default_factory=list)
    bans: dict[str, dict] = field(default_factory=dict)
    audit_log: list[dict] = field(default_factory=list)  # oldest first, without guild_id
    commands: list[dict] = field(default_factory=list)
    interaction_responses: dict[str, list[dict]] = field(default_factory=dict)
    # Discord's windows: 3 s for the first answer, 15 min for the token (tests may shrink them).
    interaction_deadline: float = 3.0
    interaction_token_lifetime: float = 900.0
    _interactions: dict[str, _Interaction] = field(default_factory=dict, repr=False)
    _ephemeral: dict[str, dict] = field(default_factory=dict, repr=False)
    _sessions: dict[str, _Session] = field(default_factory=dict, repr=False)
    _connections: list[_Connection] = field(default_factory=list, repr=False)
    _forced_limits: list[tuple[str, str, float]] = field(default_factory=list, repr=False)
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False)
    _blocked: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.joined_at = payloads.timestamp()
        owner = payloads.user(OWNER_USER_ID, "guild-owner")
        self.users[OWNER_USER_ID] = owner
        self.members[OWNER_USER_ID] = payloads.member(owner, roles=[STAFF_ROLE_ID])
        own = payloads.own_user(BOT_USER_ID, BOT_USERNAME)
        self.own_user = own
        self.users[BOT_USER_ID] = payloads.user(BOT_USER_ID, BOT_USERNAME, bot=True)
        self.members[BOT_USER_ID] = payloads.member(
            self.users[BOT_USER_ID], joined_at=self.joined_at
        )
        self.roles[GUILD_ID] = payloads.role(GUILD_ID, "@everyone")
        self.roles[STAFF_ROLE_ID] = payloads.role(
            STAFF_ROLE_ID, "Staff", color=0x3498DB, position=1, permissions="8"
        )
        self.guild = payloads.guild(
            GUILD_ID,
            "Guildhall Test Guild",
            owner_id=OWNER_USER_ID,
            roles=[],
            system_channel_id=GENERAL_CHANNEL_ID,
        )
        self.channels[TICKETS_CATEGORY_ID] = payloads.category(
            TICKETS_CATEGORY_ID, GUILD_ID, "Tickets"
        )
        self.channels[GENERAL_CHANNEL_ID] = payloads.text_channel(
            GENERAL_CHANNEL_ID, GUILD_ID, "general"
        )

    # ------------------------------------------------------------------ urls

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # --------------------------------------------------------- guild state

    def add_member(
        self,
        user_id: str | None,
        username: str,
        *,
        roles: list[str] = [],  # noqa: B006 - never mutated
        bot: bool = False,
        created_days_ago: int = 400,
    ) -> dict:
        """Add a member (and its user); dispatch GUILD_MEMBER_ADD to connected gateways.

        A user's creation time is encoded in its id, so ``created_days_ago`` only
        matters when ``user_id`` is empty: the peer then makes an id that old.
        """
        user_id = user_id or payloads.snowflake_days_ago(created_days_ago)
        if not _is_snowflake(user_id):
            raise ValueError(f"{user_id!r} is not a snowflake")
        unknown = [role_id for role_id in roles if role_id not in self.roles]
        if unknown:
            raise ValueError(f"unknown roles {unknown}")
        user = self.users.get(user_id) or payloads.user(user_id, username, bot=bot)
        user["username"] = username
        self.users[user_id] = user
        member = payloads.member(user, roles=[r for r in roles if r != GUILD_ID])
        self.members[user_id] = member
        self._dispatch_now("GUILD_MEMBER_ADD", {**member, "guild_id": GUILD_ID})
        return member

    def add_user(self, user_id: str, username: str, *, bot: bool = False) -> dict:
        """A user who is not in the guild (can still DM the bot)."""
        user = payloads.user(user_id, username, bot=bot)
        self.users[user_id] = user
        return user

    def remove_member(self, user_id: str) -> None:
        member = self.members.pop(user_id)
        self._dispatch_now("GUILD_MEMBER_REMOVE", {"guild_id": GUILD_ID, "user": member["user"]})

    def add_role(self, role_id: str, name: str, *, color: int = 0) -> dict:
        role = payloads.role(role_id, name, color=color, position=len(self.roles))
        self.roles[role_id] = role
        self._dispatch_now("GUILD_ROLE_CREATE", {"guild_id": GUILD_ID, "role": role})
        return role

    def add_category(self, name: str) -> str:
        channel_id = payloads.snowflake()
        position = sum(1 for c in self.channels.values() if c["type"] == payloads.GUILD_CATEGORY)
        channel = payloads.category(channel_id, GUILD_ID, name, position=position)
        self.channels[channel_id] = channel
        self._dispatch_now("CHANNEL_CREATE", channel)
        return channel_id

    def add_channel(self, name: str, *, parent_id: str | None = None) -> str:
        """A text channel made outside the bot (by staff in the client, say)."""
        if parent_id is not None and self._category(parent_id) is None:
            raise ValueError(f"{parent_id} is not a category")
        channel_id = payloads.snowflake()
        channel = payloads.text_channel(
            channel_id,
            GUILD_ID,
            _text_channel_name(name),
            parent_id=parent_id,
            position=self._next_text_position(),
        )
        self.channels[channel_id] = channel
        self._dispatch_now("CHANNEL_CREATE", channel)
        return channel_id

    def update_member(
        self, user_id: str, *, username: str | None = None, roles: list[str] | None = None
    ) -> dict:
        """Change a member outside the bot; dispatch GUILD_MEMBER_UPDATE."""
        member = self.members.get(user_id)
        if member is None:
            raise ValueError(f"{user_id} is not a member")
        if roles is not None:
            unknown = [role_id for role_id in roles if role_id not in self.roles]
            if unknown:
                raise ValueError(f"unknown roles {unknown}")
            member["roles"] = [r for r in roles if r != GUILD_ID]
        if username is not None:
            member["user"]["username"] = username
        self._dispatch_now("GUILD_MEMBER_UPDATE", {**member, "guild_id": GUILD_ID})
        return member

    def remove_role(self, role_id: str) -> None:
        """Delete a role (members lose it); dispatch GUILD_ROLE_DELETE."""
        if role_id == GUILD_ID or role_id not in self.roles:
            raise ValueError(f"{role_id} is not a deletable role")
        del self.roles[role_id]
        for member in self.members.values():
            if role_id in member["roles"]:
                member["roles"].remove(role_id)
        self._dispatch_now("GUILD_ROLE_DELETE", {"guild_id": GUILD_ID, "role_id": role_id})

    def remove_channel(self, channel_id: str) -> None:
        """Delete a guild channel outside the bot; dispatch CHANNEL_DELETE.

        Children of a deleted category lose their parent (CHANNEL_UPDATE each),
        as on Discord. Not recorded in ``deleted_channels`` (the bot's deletions).
        """
        channel = self.channels.pop(channel_id, None)
        if channel is None:
            raise ValueError(f"{channel_id} is not a guild channel")
        self._dispatch_now("CHANNEL_DELETE", channel)
        if channel["type"] == payloads.GUILD_CATEGORY:
            for child in self.channels.values():
                if child["parent_id"] == channel_id:
                    child["parent_id"] = None
                    self._dispatch_now("CHANNEL_UPDATE", child)

    def dm_channel_of(self, user_id: str) -> str | None:
        channel = self.dm_channels.get(user_id)
        return channel["id"] if channel else None

    def dms_to(self, user_id: str) -> list[str]:
        channel_id = self.dm_channel_of(user_id)
        return [
            m["content"]
            for m in self.messages.get(channel_id or "", [])
            if m["author"]["id"] == BOT_USER_ID
        ]

    def rate_limit_next(self, method: str, path_prefix: str, retry_after: float) -> None:
        """The next ``method`` request whose path (after /api/v10) starts so gets a 429."""
        prefix = path_prefix.removeprefix("/api/v10")
        self._forced_limits.append((method.upper(), prefix, retry_after))

    def requests_to(self, method: str, path_prefix: str) -> list[str]:
        """Paths of the REST requests so far with that method and path prefix."""
        prefix = path_prefix.removeprefix("/api/v10")
        return [p for m, p in self.requests if m == method.upper() and p.startswith(prefix)]

    # ------------------------------------------------------------ gateway

    @property
    def connected(self) -> int:
        return sum(1 for c in self._connections if c.ready and not c.closed)

    async def user_sends_dm(
        self, user_id: str, content: str, *, attachments: list[dict] | None = None
    ) -> dict:
        user = self.users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}; add_member or add_user first")
        channel = self._open_dm(user_id)
        message = payloads.message(
            payloads.snowflake(),
            channel["id"],
            user,
            content,
            attachments=[payloads.attachment(**a) for a in attachments or []],
        )
        self._record(channel, message)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def member_says(self, channel_id: str, user_id: str, content: str) -> dict:
        channel = self.channels.get(channel_id)
        if channel is None or channel["type"] != payloads.GUILD_TEXT:
            raise ValueError(f"{channel_id} is not a text channel of the guild")
        member = self.members.get(user_id)
        if member is None:
            raise ValueError(f"{user_id} is not a member")
        message = self._new_message(channel, member["user"], content)
        self._record(channel, message)
        await self.dispatch("MESSAGE_CREATE", self._gateway_message(message, channel))
        return message

    # ------------------------------------------------------- interactions

    def _member_permissions(self, user_id: str) -> int:
        if user_id == OWNER_USER_ID:
            return int(payloads.ALL_PERMISSIONS)
        member = self.members[user_id]
        value = int(self.roles[GUILD_ID]["permissions"])
        for role_id in member["roles"]:
            if role_id in self.roles:
                value |= int(self.roles[role_id]["permissions"])
        if value & PERMISSIONS["ADMINISTRATOR"]:
            return int(payloads.ALL_PERMISSIONS)
        return value

    def _app_permissions(self) -> int:
        value = int(self.roles[GUILD_ID]["permissions"])
        for name in self.bot_permissions:
            value |= PERMISSIONS[name]
        if value & PERMISSIONS["ADMINISTRATOR"]:
            return int(payloads.ALL_PERMISSIONS)
        return value

    def _interaction_base(
        self, kind: int, user_id: str, channel_id: str, data: dict
    ) -> tuple[_Interaction, dict]:
        member = self.members.get(user_id)
        if member is None:
            raise ValueError(f"{user_id} is not a member")
        channel = self.channels.get(channel_id)
        if channel is None or channel["type"] != payloads.GUILD_TEXT:
            raise ValueError(f"{channel_id} is not a text channel of the guild")
        permissions = str(self._member_permissions(user_id))
        interaction = _Interaction(
            id=payloads.snowflake(),
            token="aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48),
            kind=kind,
            channel_id=channel_id,
            user_id=user_id,
            dispatched_at=0.0,
        )
        payload = {
            "id": interaction.id,
            "application_id": APPLICATION_ID,
            "type": kind,
            "data": data,
            "guild": {"id": GUILD_ID, "locale": "en-US", "features": []},
            "guild_id": GUILD_ID,
            "channel": {**channel, "permissions": permissions},
            "channel_id": channel_id,
            "member": {**member, "permissions": permissions},
            "token": interaction.token,
            "version": 1,
            "app_permissions": str(self._app_permissions()),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": GUILD_ID},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        return interaction, payload

    async def _send_interaction(self, interaction: _Interaction, payload: dict) -> str:
        self._interactions[interaction.id] = interaction
        self.interaction_responses[interaction.id] = []
        interaction.dispatched_at = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction.id

    def _command_options(
        self, definitions: list[dict], given: dict, resolved: dict, where: str
    ) -> list[dict]:
        by_name = {d["name"]: d for d in definitions}
        options = []
        for name, value in given.items():
            definition = by_name.get(name)
            if definition is None:
                raise ValueError(f"{where} has no option {name!r}")
            kind = definition["type"]
            option: dict[str, Any] = {"name": name, "type": kind}
            if kind in (1, 2):
                if not isinstance(value, dict):
                    raise ValueError(f"{where} {name}: give a subcommand's options as a dict")
                option["options"] = self._command_options(
                    definition.get("options") or [], value, resolved, f"{where} {name}"
                )
                options.append(option)
                continue
            option["value"] = self._option_value(kind, value, resolved, f"{where} {name}")
            choices = definition.get("choices")
            if choices and option["value"] not in [c["value"] for c in choices]:
                raise ValueError(f"{where} {name}: {value!r} is not one of the choices")
            options.append(option)
        if not any(d["type"] in (1, 2) for d in definitions):
            missing = [
                d["name"] for d in definitions if d.get("required") and d["name"] not in given
            ]
            if missing:
                raise ValueError(f"{where}: required options missing: {missing}")
        return options

    def _option_value(self, kind: int, value: Any, resolved: dict, where: str) -> Any:
        if kind == 3 and isinstance(value, str):
            return value
        if kind == 4 and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == 5 and isinstance(value, bool):
            return value
        if kind == 10 and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        value = str(value)
        if kind in (6, 9) and value in self.users:
            resolved.setdefault("users", {})[value] = self.users[value]
            if value in self.members:
                member = {k: v for k, v in self.members[value].items() if k != "user"}
                member["permissions"] = str(self._member_permissions(value))
                resolved.setdefault("members", {})[value] = member
            return value
        if kind in (8, 9) and value in self.roles:
            resolved.setdefault("roles", {})[value] = self.roles[value]
            return value
        if kind == 7 and value in self.channels:
            channel = self.channels[value]
            resolved.setdefault("channels", {})[value] = {
                "id": value,
                "name": channel["name"],
                "type": channel["type"],
                "parent_id": channel["parent_id"],
                "flags": channel["flags"],
                "permissions": payloads.ALL_PERMISSIONS,
            }
            return value
        raise ValueError(f"{where}: {value!r} does not fit a {OPTION_TYPES.get(kind)} option")

    async def member_runs(
        self,
        user_id: str,
        command_name: str,
        options: dict | None = None,
        *,
        channel_id: str = GENERAL_CHANNEL_ID,
    ) -> str:
        """A member runs a registered slash command: INTERACTION_CREATE type 2.

        ``options`` maps option names to values (a subcommand's value is a dict of
        its own options); USER/ROLE/CHANNEL/MENTIONABLE values are ids and come
        resolved. Returns the interaction id.
        """
        command = next(
            (c for c in self.commands if c["name"] == command_name and c["type"] == 1), None
        )
        if command is None:
            raise ValueError(f"/{command_name} is not a registered slash command")
        resolved: dict[str, dict] = {}
        built = self._command_options(
            command.get("options") or [], options or {}, resolved, f"/{command_name}"
        )
        data: dict[str, Any] = {
            "id": command["id"],
            "name": command_name,
            "type": 1,
            "guild_id": GUILD_ID,
        }
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        interaction, payload = self._interaction_base(
            APPLICATION_COMMAND, user_id, channel_id, data
        )
        interaction.command_name = command_name
        return await self._send_interaction(interaction, payload)

    async def member_clicks(
        self,
        user_id: str,
        message_id: str,
        custom_id: str,
        *,
        channel_id: str = GENERAL_CHANNEL_ID,
    ) -> str:
        """A member clicks a button of a bot message: INTERACTION_CREATE type 3.

        The message may be an ephemeral one the bot answered with. Returns the
        interaction id.
        """
        message = self._find_message(channel_id, message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in {channel_id}")
        if message["author"]["id"] != BOT_USER_ID:
            raise ValueError("only the bot's own components reach the bot")
        button = next(
            (
                c
                for row in message["components"]
                for c in row.get("components", [])
                if c.get("type") == 2 and c.get("custom_id") == custom_id
            ),
            None,
        )
        if button is None:
            raise ValueError(f"message {message_id} has no button {custom_id!r}")
        if button.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled")
        data = {"custom_id": custom_id, "component_type": 2}
        interaction, payload = self._interaction_base(MESSAGE_COMPONENT, user_id, channel_id, data)
        interaction.source = message
        payload["message"] = message
        return await self._send_interaction(interaction, payload)

    def answer_to(self, interaction_id: str) -> dict | None:
        """The answer a member sees: the original response once it shows something (after
        edits), else the last follow-up, else None. Keys: content, embeds, components,
        ephemeral, message_id."""
        interaction = self._interactions.get(interaction_id)
        if interaction is None:
            return None
        if interaction.visible and interaction.original is not None:
            message = interaction.original
        elif interaction.followups:
            message = interaction.followups[-1]
        else:
            return None
        return {
            "content": message["content"],
            "embeds": message["embeds"],
            "components": message["components"],
            "ephemeral": bool(message["flags"] & EPHEMERAL),
            "message_id": message["id"],
        }

    def _find_message(self, channel_id: str, message_id: str) -> dict | None:
        for message in self.messages.get(channel_id, []):
            if message["id"] == message_id:
                return message
        ephemeral = self._ephemeral.get(message_id)
        if ephemeral is not None and ephemeral["channel_id"] == channel_id:
            return ephemeral
        return None

    # -------------------------------------------------- moderators in Discord

    def _moderator(self, moderator_id: str) -> None:
        if moderator_id not in self.members:
            raise ValueError(f"moderator {moderator_id} is not a member")

    async def moderator_bans(
        self, moderator_id: str, user_id: str, reason: str | None = None
    ) -> dict:
        """A moderator bans from Discord's client: GUILD_BAN_ADD, GUILD_MEMBER_REMOVE (if a
        member), GUILD_AUDIT_LOG_ENTRY_CREATE (MEMBER_BAN_ADD). Returns the audit log entry."""
        self._moderator(moderator_id)
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}")
        return await self._apply_ban(moderator_id, user_id, reason)

    async def moderator_times_out(
        self, moderator_id: str, user_id: str, until_iso: str | None, reason: str | None = None
    ) -> dict:
        """A moderator times a member out (``until_iso`` None lifts it): GUILD_MEMBER_UPDATE,
        GUILD_AUDIT_LOG_ENTRY_CREATE (MEMBER_UPDATE). Returns the audit log entry."""
        self._moderator(moderator_id)
        if user_id not in self.members:
            raise ValueError(f"{user_id} is not a member")
        return await self._apply_timeout(moderator_id, user_id, _iso(until_iso), reason)

    async def moderator_kicks(
        self, moderator_id: str, user_id: str, reason: str | None = None
    ) -> dict:
        """A moderator kicks a member: GUILD_MEMBER_REMOVE, GUILD_AUDIT_LOG_ENTRY_CREATE
        (MEMBER_KICK). Returns the audit log entry."""
        self._moderator(moderator_id)
        if user_id not in self.members:
            raise ValueError(f"{user_id} is not a member")
        return await self._apply_kick(moderator_id, user_id, reason)

    async def _apply_timeout(
        self, actor_id: str, user_id: str, until: str | None, reason: str | None
    ) -> dict:
        member = self.members[user_id]
        old = member["communication_disabled_until"]
        member["communication_disabled_until"] = until
        await self.dispatch("GUILD_MEMBER_UPDATE", {**member, "guild_id": GUILD_ID})
        change = _change("communication_disabled_until", old, until)
        return await self._audit(MEMBER_UPDATE, actor_id, user_id, reason, changes=[change])

    async def _apply_kick(self, actor_id: str, user_id: str, reason: str | None) -> dict:
        member = self.members.pop(user_id)
        await self.dispatch("GUILD_MEMBER_REMOVE", {"guild_id": GUILD_ID, "user": member["user"]})
        return await self._audit(MEMBER_KICK, actor_id, user_id, reason)

    async def _apply_ban(
        self, actor_id: str, user_id: str, reason: str | None, delete_seconds: int = 0
    ) -> dict:
        user = self.users[user_id]
        self.bans[user_id] = {"reason": reason, "user": user}
        await self.dispatch("GUILD_BAN_ADD", {"guild_id": GUILD_ID, "user": user})
        member = self.members.pop(user_id, None)
        if member is not None:
            await self.dispatch("GUILD_MEMBER_REMOVE", {"guild_id": GUILD_ID, "user": user})
        if delete_seconds:
            since = time.time() - delete_seconds
            for channel_id, messages in self.messages.items():
                if channel_id not in self.channels:
                    continue
                gone = [
                    m["id"]
                    for m in messages
                    if m["author"]["id"] == user_id
                    and payloads.snowflake_time(m["id"]).timestamp() >= since
                ]
                if gone:
                    messages[:] = [m for m in messages if m["id"] not in gone]
                    await self.dispatch(
                        "MESSAGE_DELETE_BULK",
                        {"ids": gone, "channel_id": channel_id, "guild_id": GUILD_ID},
                    )
        return await self._audit(MEMBER_BAN_ADD, actor_id, user_id, reason)

    async def _audit(
        self,
        action_type: int,
        actor_id: str,
        target_id: str | None,
        reason: str | None,
        *,
        changes: list[dict] | None = None,
    ) -> dict:
        entry: dict[str, Any] = {
            "id": payloads.snowflake(),
            "user_id": actor_id,
            "target_id": target_id,
            "action_type": action_type,
        }
        if changes:
            entry["changes"] = changes
        if reason is not None:
            entry["reason"] = reason
        self.audit_log.append(entry)
        if "VIEW_AUDIT_LOG" in self.bot_permissions:
            # Discord sends it to GUILD_MODERATION sessions of apps that may view the log.
            await self.dispatch("GUILD_AUDIT_LOG_ENTRY_CREATE", {**entry, "guild_id": GUILD_ID})
        return entry

    async def dispatch(self, event: str, data: dict) -> None:
        """Send a dispatch to every session whose intents cover it; wait until written."""
        await asyncio.gather(*self._dispatch_now(event, data))

    async def drop_connection(self, *, resumable: bool = True) -> None:
        """Break every live gateway connection.

        ``resumable``: close with 4000, the session stays and can be RESUMEd.
        Otherwise: op 9 INVALID_SESSION ``d=false`` and the session is gone.
        """
        waits = []
        for conn in list(self._connections):
            if conn.closed:
                continue
            if resumable:
                waits.append(conn.close(4000))
            else:
                if conn.session is not None:
                    self._sessions.pop(conn.session.id, None)
                    conn.session.conn = None
                waits.append(conn.send(_frame(9, False)))
            conn.ready = False
        await asyncio.gather(*waits)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                try:
                    name = inspect.getsource(predicate).strip()
                except (OSError, TypeError):
                    name = getattr(predicate, "__name__", repr(predicate))
                raise AssertionError(
                    f"discord peer: condition {name} not met within {timeout}s "
                    f"(connected={self.connected}, identifies={self.identifies}, "
                    f"resumes={self.resumes}, last requests={self.requests[-5:]})"
                )
            await asyncio.sleep(0.01)

    def _dispatch_now(self, event: str, data: dict) -> list[asyncio.Future]:
        # Sequence numbers are given here, synchronously, so order is the call order.
        needed = required_intent(event, data)
        sent = []
        for session in self._sessions.values():
            if needed and not session.intents & needed:
                continue
            payload = self._for_session(session, event, data)
            session.seq += 1
            session.history.append((session.seq, event, payload))
            conn = session.conn
            if conn is not None and conn.ready and not conn.closed:
                sent.append(conn.send(_frame(0, payload, s=session.seq, t=event)))
        return sent

    def _for_session(self, session: _Session, event: str, data: dict) -> dict:
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or "guild_id" not in data:
            return data
        if session.intents & MESSAGE_CONTENT or data.get("author", {}).get("id") == BOT_USER_ID:
            return data
        if any(u["id"] == BOT_USER_ID for u in data.get("mentions", [])):
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    # ------------------------------------------------------------ helpers

    def _category(self, channel_id: str) -> dict | None:
        channel = self.channels.get(channel_id)
        if channel and channel["type"] == payloads.GUILD_CATEGORY:
            return channel
        return None

    def _next_text_position(self) -> int:
        return sum(1 for c in self.channels.values() if c["type"] == payloads.GUILD_TEXT)

    def _open_dm(self, user_id: str) -> dict:
        if user_id not in self.dm_channels:
            self.dm_channels[user_id] = payloads.dm_channel(
                payloads.snowflake(), self.users[user_id]
            )
        return self.dm_channels[user_id]

    def _dm_by_id(self, channel_id: str) -> dict | None:
        return next((c for c in self.dm_channels.values() if c["id"] == channel_id), None)

    def _new_message(
        self,
        channel: dict,
        author: dict,
        content: str,
        *,
        embeds: list[dict] | None = None,
        nonce: str | int | None = None,
        tts: bool = False,
    ) -> dict:
        mentions = [self.users[u] for u in _MENTION.findall(content) if u in self.users]
        mention_roles = [r for r in _ROLE_MENTION.findall(content) if r in self.roles]
        return payloads.message(
            payloads.snowflake(),
            channel["id"],
            author,
            content,
            embeds=embeds,
            mentions=mentions,
            mention_roles=mention_roles,
            nonce=nonce,
            tts=tts,
        )

    def _record(self, channel: dict, message: dict) -> None:
        self.messages.setdefault(channel["id"], []).append(message)
        channel["last_message_id"] = message["id"]

    def _gateway_message(self, message: dict, channel: dict) -> dict:
        if channel["type"] == payloads.DM:
            return message
        member = dict(self.members.get(message["author"]["id"], {}))
        member.pop("user", None)
        return {**message, "guild_id": GUILD_ID, "member": member}

    def _rest_guild(self) -> dict:
        roles = sorted(self.roles.values(), key=lambda r: r["position"])
        return {**self.guild, "roles": roles}

    def _gateway_guild(self, session: _Session) -> dict:
        if session.intents & GUILD_PRESENCES:
            members = list(self.members.values())
        else:
            members = [self.members[BOT_USER_ID]]
        guild = payloads.gateway_guild(
            self._rest_guild(),
            channels=[dict(c) for c in self._sorted_channels()],
            members=members,
            member_count=len(self.members),
            joined_at=self.joined_at,
        )
        guild["large"] = len(self.members) > session.large_threshold
        for channel in guild["channels"]:
            channel.pop("guild_id", None)  # GUILD_CREATE channels come without it
        return guild

    def _sorted_channels(self) -> list[dict]:
        return sorted(self.channels.values(), key=lambda c: (c["position"], int(c["id"])))

    # ================================================================ REST

    def _routes(self) -> list[tuple[str, str, Callable[..., Awaitable[Any]]]]:
        return [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._get_me),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/users/@me/guilds", self._get_my_guilds),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            ("POST", "/guilds/{guild_id}/channels", self._create_guild_channel),
            ("GET", "/guilds/{guild_id}/roles", self._get_roles),
            ("GET", "/guilds/{guild_id}/members", self._list_members),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self._add_member_role),
            (
                "DELETE",
                "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
                self._remove_member_role,
            ),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("PATCH", "/channels/{channel_id}", self._edit_channel),
            ("DELETE", "/channels/{channel_id}", self._delete_channel),
            ("GET", "/channels/{channel_id}/messages", self._get_messages),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            ("PATCH", "/guilds/{guild_id}/members/{user_id}", self._edit_member),
            ("DELETE", "/guilds/{guild_id}/members/{user_id}", self._kick_member),
            ("GET", "/guilds/{guild_id}/bans", self._list_bans),
            ("GET", "/guilds/{guild_id}/bans/{user_id}", self._get_ban),
            ("PUT", "/guilds/{guild_id}/bans/{user_id}", self._ban),
            ("DELETE", "/guilds/{guild_id}/bans/{user_id}", self._unban),
            ("GET", "/guilds/{guild_id}/audit-logs", self._get_audit_log),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._get_commands,
            ),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._put_commands,
            ),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("POST", "/webhooks/{application_id}/{token}", self._followup),
            ("GET", "/webhooks/{application_id}/{token}/messages/@original", self._get_original),
            ("PATCH", "/webhooks/{application_id}/{token}/messages/@original", self._edit_original),
        ]

    def _match(self, path: str) -> tuple[list[tuple[str, str, Callable]], dict[str, str]]:
        parts = path.strip("/").split("/")
        found: list[tuple[str, str, Callable]] = []
        params: dict[str, str] = {}
        for method, template, handler in self._routes():
            t_parts = template.strip("/").split("/")
            if len(t_parts) != len(parts):
                continue
            candidate: dict[str, str] = {}
            for t, p in zip(t_parts, parts, strict=True):
                if t.startswith("{"):
                    if p == "@me":
                        break
                    candidate[t[1:-1]] = p
                elif t != p:
                    break
            else:
                if not found or candidate.keys() == params.keys():
                    found.append((method, template, handler))
                    params = candidate
        return found, params

    def _rate_headers(self, bucket_key: str, template: str) -> tuple[dict[str, str], bool]:
        now = time.time()
        start, count = self._windows.get(bucket_key, (now, 0))
        if now - start >= BUCKET_WINDOW:
            start, count = now, 0
        count += 1
        self._windows[bucket_key] = (start, count)
        reset_at = start + BUCKET_WINDOW
        headers = {
            "X-RateLimit-Limit": str(BUCKET_LIMIT),
            "X-RateLimit-Remaining": str(max(BUCKET_LIMIT - count, 0)),
            "X-RateLimit-Reset": f"{reset_at:.3f}",
            "X-RateLimit-Reset-After": f"{max(reset_at - now, 0):.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(template.encode()).hexdigest()[:32],
        }
        return headers, count > BUCKET_LIMIT

    async def _rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        method = request.method
        self.requests.append((method, path))
        found, params = self._match(path)
        route = next(((t, h) for m, t, h in found if m == method), None)
        template = route[0] if route else path
        major = params.get("channel_id") or params.get("guild_id") or params.get("token") or ""
        bucket_key = f"{method} {template} {major}"
        headers, over = self._rate_headers(bucket_key, f"{method} {template}")
        # Interaction callbacks and webhooks authenticate by their token, as on Discord.
        tokened = path.startswith(("/interactions/", "/webhooks/"))
        authorized = request.headers.get("authorization") == f"Bot {BOT_TOKEN}"
        if not authorized and not tokened and path != "/gateway":
            body = {"message": "401: Unauthorized", "code": 0}
            return JSONResponse(body, status_code=401, headers=headers)
        if route is None:
            if found:
                body = {"message": "405: Method Not Allowed", "code": 0}
                return JSONResponse(body, status_code=405, headers=headers)
            body = {"message": "404: Not Found", "code": 0}
            return JSONResponse(body, status_code=404, headers=headers)
        handler = route[1]
        forced = next(
            (f for f in self._forced_limits if f[0] == method and path.startswith(f[1])),
            None,
        )
        now = time.time()
        if forced is not None:
            # The bucket is spent until retry_after has passed, as on Discord: a
            # request that comes early gets another 429. Never before the bucket's
            # window ends: Discord's reset only moves forward (clients ignore one
            # that goes back as stale and retry at once).
            self._forced_limits.remove(forced)
            window_reset = float(headers["X-RateLimit-Reset"])
            self._blocked[bucket_key] = max(now + forced[2], window_reset)
        blocked_until = self._blocked.get(bucket_key, 0.0)
        if blocked_until - now > 0.005 or over:
            if blocked_until - now > 0.005:
                retry_after, limit = blocked_until - now, 1
            else:
                retry_after, limit = float(headers["X-RateLimit-Reset-After"]), BUCKET_LIMIT
            headers.update(
                {
                    "Retry-After": str(math.ceil(retry_after)),
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{now + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Scope": "user",
                }
            )
            limited = {"message": "You are being rate limited.", "retry_after": retry_after}
            return JSONResponse({**limited, "global": False}, status_code=429, headers=headers)
        try:
            for name, value in params.items():
                if name.endswith("_id") and not _is_snowflake(value):
                    raise form_error(
                        {name: ("NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')}
                    )
            if "guild_id" in params and params["guild_id"] != GUILD_ID:
                raise HTTPProblem(404, 10004, "Unknown Guild")
            payload: Any = None
            if method in ("POST", "PATCH", "PUT"):
                payload = await self._json_body(request, allow_list=handler == self._put_commands)
            status, result = await handler(request, payload, **params)
        except HTTPProblem as problem:
            return JSONResponse(problem.body, status_code=problem.status, headers=headers)
        if status == 204:
            return Response(status_code=204, headers=headers)
        return JSONResponse(result, status_code=status, headers=headers)

    async def _json_body(self, request: Request, *, allow_list: bool = False) -> Any:
        raw = await request.body()
        if not request.headers.get("content-type", "").startswith("application/json"):
            return [] if allow_list else {}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise HTTPProblem(400, 50109, "The request body contains invalid JSON.") from None
        if not isinstance(body, dict) and not (allow_list and isinstance(body, list)):
            raise HTTPProblem(400, 50109, "The request body contains invalid JSON.")
        return body

    # -------------------------------------------------------- REST routes

    async def _get_gateway(self, request: Request, body: None) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, request: Request, body: None) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": max(1000 - self.identifies, 0),
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    async def _get_me(self, request: Request, body: None) -> tuple[int, Any]:
        return 200, self.own_user

    async def _get_user(self, request: Request, body: None, user_id: str) -> tuple[int, Any]:
        if user_id not in self.users:
            raise HTTPProblem(404, 10013, "Unknown User")
        return 200, self.users[user_id]

    async def _get_application(self, request: Request, body: None) -> tuple[int, Any]:
        app = payloads.application(
            APPLICATION_ID, self.users[OWNER_USER_ID], flags=APPLICATION_FLAGS
        )
        app["bot"] = self.users[BOT_USER_ID]
        app["name"] = BOT_USERNAME
        return 200, app

    async def _get_my_guilds(self, request: Request, body: None) -> tuple[int, Any]:
        query = request.query_params
        for key in ("before", "after"):
            if key in query and not _is_snowflake(query[key]):
                raise form_error(
                    {key: ("NUMBER_TYPE_COERCE", f'Value "{query[key]}" is not snowflake.')}
                )
        if int(query.get("after", "0")) >= int(GUILD_ID) or (
            "before" in query and int(query["before"]) <= int(GUILD_ID)
        ):
            return 200, []
        own = {
            "id": GUILD_ID,
            "name": self.guild["name"],
            "icon": None,
            "banner": None,
            "owner": False,
            "permissions": payloads.ALL_PERMISSIONS,
            "features": [],
        }
        if query.get("with_counts") == "true":
            own["approximate_member_count"] = len(self.members)
            own["approximate_presence_count"] = 0
        return 200, [own]

    async def _create_dm(self, request: Request, body: dict) -> tuple[int, Any]:
        recipient_id = _snowflake_field(body, "recipient_id", required=True)
        assert recipient_id is not None
        if recipient_id not in self.users or recipient_id == BOT_USER_ID:
            raise HTTPProblem(400, 50033, "Invalid Recipient(s)")
        return 200, self._open_dm(recipient_id)

    async def _get_guild(self, request: Request, body: None, guild_id: str) -> tuple[int, Any]:
        guild = self._rest_guild()
        if request.query_params.get("with_counts") == "true":
            guild["approximate_member_count"] = len(self.members)
            guild["approximate_presence_count"] = 0
        return 200, guild

    async def _get_guild_channels(
        self, request: Request, body: None, guild_id: str
    ) -> tuple[int, Any]:
        return 200, self._sorted_channels()

    async def _get_roles(self, request: Request, body: None, guild_id: str) -> tuple[int, Any]:
        return 200, sorted(self.roles.values(), key=lambda r: r["position"])

    async def _list_members(self, request: Request, body: None, guild_id: str) -> tuple[int, Any]:
        query = request.query_params
        problems: dict[str, tuple[str, str]] = {}
        limit_raw = query.get("limit", "1")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 1000:
            problems["limit"] = ("NUMBER_TYPE_MAX", "int value should be between 1 and 1000.")
        after_raw = query.get("after", "0")
        if not _is_snowflake(after_raw):
            problems["after"] = ("NUMBER_TYPE_COERCE", f'Value "{after_raw}" is not snowflake.')
        if problems:
            raise form_error(problems)
        ordered = sorted(self.members.items(), key=lambda kv: int(kv[0]))
        chosen = [m for uid, m in ordered if int(uid) > int(after_raw)][: int(limit_raw)]
        return 200, chosen

    async def _get_member(
        self, request: Request, body: None, guild_id: str, user_id: str
    ) -> tuple[int, Any]:
        if user_id not in self.members:
            if user_id not in self.users:
                raise HTTPProblem(404, 10013, "Unknown User")
            raise HTTPProblem(404, 10007, "Unknown Member")
        return 200, self.members[user_id]

    def _member_role_target(self, user_id: str, role_id: str) -> dict:
        if user_id not in self.members:
            raise HTTPProblem(404, 10007, "Unknown Member")
        if role_id not in self.roles:
            raise HTTPProblem(404, 10011, "Unknown Role")
        return self.members[user_id]

    async def _add_member_role(
        self, request: Request, body: dict, guild_id: str, user_id: str, role_id: str
    ) -> tuple[int, Any]:
        member = self._member_role_target(user_id, role_id)
        if role_id != GUILD_ID and role_id not in member["roles"]:
            member["roles"].append(role_id)
            await self.dispatch("GUILD_MEMBER_UPDATE", {**member, "guild_id": GUILD_ID})
        return 204, None

    async def _remove_member_role(
        self, request: Request, body: None, guild_id: str, user_id: str, role_id: str
    ) -> tuple[int, Any]:
        member = self._member_role_target(user_id, role_id)
        if role_id in member["roles"]:
            member["roles"].remove(role_id)
            await self.dispatch("GUILD_MEMBER_UPDATE", {**member, "guild_id": GUILD_ID})
        return 204, None

    def _validate_channel_fields(
        self, body: dict, *, channel_type: int, channel_id: str | None
    ) -> dict[str, Any]:
        """Check the writable channel fields Discord checks; return the clean ones."""
        problems: dict[str, tuple[str, str]] = {}
        clean: dict[str, Any] = {}
        if "name" in body or channel_id is None:
            name = body.get("name")
            if name is None:
                problems["name"] = ("BASE_TYPE_REQUIRED", "This field is required")
            elif not isinstance(name, str):
                problems["name"] = ("BASE_TYPE_STRING", "Could not interpret value as string.")
            elif not 1 <= len(name.strip()) <= 100:
                problems["name"] = ("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            elif channel_type == payloads.GUILD_TEXT:
                clean["name"] = _text_channel_name(name)
            else:
                clean["name"] = name.strip()
        if "topic" in body and body["topic"] is not None:
            if not isinstance(body["topic"], str) or len(body["topic"]) > 1024:
                problems["topic"] = ("BASE_TYPE_MAX_LENGTH", "Must be 1024 or fewer in length.")
            elif channel_type == payloads.GUILD_TEXT:
                clean["topic"] = body["topic"]
        if "position" in body and body["position"] is not None:
            if not isinstance(body["position"], int) or isinstance(body["position"], bool):
                problems["position"] = ("NUMBER_TYPE_COERCE", "Value is not int.")
            else:
                clean["position"] = body["position"]
        if "nsfw" in body and body["nsfw"] is not None:
            if not isinstance(body["nsfw"], bool):
                problems["nsfw"] = ("BASE_TYPE_BOOLEAN", "Must be either true or false.")
            else:
                clean["nsfw"] = body["nsfw"]
        if "rate_limit_per_user" in body and body["rate_limit_per_user"] is not None:
            value = body["rate_limit_per_user"]
            if not isinstance(value, int) or not 0 <= value <= 21600:
                problems["rate_limit_per_user"] = (
                    "NUMBER_TYPE_MAX",
                    "int value should be less than or equal to 21600.",
                )
            elif channel_type == payloads.GUILD_TEXT:
                clean["rate_limit_per_user"] = value
        if "permission_overwrites" in body and body["permission_overwrites"] is not None:
            overwrites = body["permission_overwrites"]
            if not isinstance(overwrites, list):
                problems["permission_overwrites"] = ("BASE_TYPE_LIST", "Must be a list.")
            else:
                clean["permission_overwrites"] = []
                for i, ow in enumerate(overwrites):
                    if not isinstance(ow, dict) or not _is_snowflake(ow.get("id")):
                        problems[f"permission_overwrites.{i}.id"] = (
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        )
                        continue
                    if ow.get("type") not in (0, 1):
                        problems[f"permission_overwrites.{i}.type"] = (
                            "BASE_TYPE_CHOICES",
                            "Value must be one of {0, 1}.",
                        )
                        continue
                    clean["permission_overwrites"].append(
                        {
                            "id": str(ow["id"]),
                            "type": ow["type"],
                            "allow": str(ow.get("allow") or 0),
                            "deny": str(ow.get("deny") or 0),
                        }
                    )
        if "parent_id" in body:
            parent_id = body["parent_id"]
            if parent_id is None:
                clean["parent_id"] = None
            elif not _is_snowflake(parent_id):
                problems["parent_id"] = (
                    "NUMBER_TYPE_COERCE",
                    f'Value "{parent_id}" is not snowflake.',
                )
            elif channel_type == payloads.GUILD_CATEGORY:
                problems["parent_id"] = (
                    "CHANNEL_PARENT_INVALID_TYPE",
                    "Categories cannot have subcategories",
                )
            elif self._category(str(parent_id)) is None:
                problems["parent_id"] = ("CHANNEL_PARENT_INVALID", "Category does not exist")
            else:
                siblings = sum(
                    1
                    for c in self.channels.values()
                    if c["parent_id"] == str(parent_id) and c["id"] != channel_id
                )
                if siblings >= CATEGORY_CHANNEL_LIMIT:
                    problems["parent_id"] = (
                        "CHANNEL_PARENT_MAX_CHANNELS",
                        "Maximum number of channels in category reached (50)",
                    )
                else:
                    clean["parent_id"] = str(parent_id)
        if problems:
            raise form_error(problems)
        return clean

    async def _create_guild_channel(
        self, request: Request, body: dict, guild_id: str
    ) -> tuple[int, Any]:
        channel_type = body.get("type", payloads.GUILD_TEXT)
        if channel_type is None:
            channel_type = payloads.GUILD_TEXT
        if channel_type not in (payloads.GUILD_TEXT, payloads.GUILD_CATEGORY):
            raise form_error(
                {"type": ("BASE_TYPE_CHOICES", "Value must be one of {0, 4}.")}
            )  # the peer has text channels and categories only
        self._require("MANAGE_CHANNELS")
        clean = self._validate_channel_fields(body, channel_type=channel_type, channel_id=None)
        if len(self.channels) >= GUILD_CHANNEL_LIMIT:
            raise HTTPProblem(
                400, 30013, f"Maximum number of guild channels reached ({GUILD_CHANNEL_LIMIT})"
            )
        channel_id = payloads.snowflake()
        if channel_type == payloads.GUILD_CATEGORY:
            position = sum(
                1 for c in self.channels.values() if c["type"] == payloads.GUILD_CATEGORY
            )
            channel = payloads.category(channel_id, GUILD_ID, clean.pop("name"), position=position)
        else:
            channel = payloads.text_channel(
                channel_id, GUILD_ID, clean.pop("name"), position=self._next_text_position()
            )
        channel.update(clean)
        self.channels[channel_id] = channel
        await self.dispatch("CHANNEL_CREATE", channel)
        return 201, channel

    def _any_channel(self, channel_id: str) -> dict:
        channel = self.channels.get(channel_id) or self._dm_by_id(channel_id)
        if channel is None:
            raise HTTPProblem(404, 10003, "Unknown Channel")
        return channel

    async def _get_channel(self, request: Request, body: None, channel_id: str) -> tuple[int, Any]:
        return 200, self._any_channel(channel_id)

    async def _edit_channel(self, request: Request, body: dict, channel_id: str) -> tuple[int, Any]:
        channel = self._any_channel(channel_id)
        if channel["type"] == payloads.DM:
            raise HTTPProblem(400, 50024, "Cannot execute action on this channel type")
        self._require("MANAGE_CHANNELS")
        clean = self._validate_channel_fields(
            body, channel_type=channel["type"], channel_id=channel_id
        )
        channel.update(clean)
        await self.dispatch("CHANNEL_UPDATE", channel)
        return 200, channel

    async def _delete_channel(
        self, request: Request, body: None, channel_id: str
    ) -> tuple[int, Any]:
        channel = self._any_channel(channel_id)
        if channel["type"] == payloads.DM:
            return 200, channel  # closes the DM; it opens again, same id
        self._require("MANAGE_CHANNELS")
        del self.channels[channel_id]
        self.deleted_channels.append(channel_id)
        await self.dispatch("CHANNEL_DELETE", channel)
        if channel["type"] == payloads.GUILD_CATEGORY:
            for child in self.channels.values():
                if child["parent_id"] == channel_id:
                    child["parent_id"] = None
                    await self.dispatch("CHANNEL_UPDATE", child)
        return 200, channel

    def _message_channel(self, channel_id: str) -> dict:
        channel = self._any_channel(channel_id)
        if channel["type"] not in (payloads.GUILD_TEXT, payloads.DM):
            raise HTTPProblem(400, 50008, "Cannot send messages in a non-text channel")
        return channel

    async def _get_messages(self, request: Request, body: None, channel_id: str) -> tuple[int, Any]:
        channel = self._message_channel(channel_id)
        query = request.query_params
        limit_raw = query.get("limit", "50")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 100:
            raise form_error(
                {"limit": ("NUMBER_TYPE_MAX", "int value should be between 1 and 100.")}
            )
        found = list(reversed(self.messages.get(channel["id"], [])))  # newest first
        for key in ("before", "after", "around"):
            if key in query and not _is_snowflake(query[key]):
                raise form_error(
                    {key: ("NUMBER_TYPE_COERCE", f'Value "{query[key]}" is not snowflake.')}
                )
        if "before" in query:
            found = [m for m in found if int(m["id"]) < int(query["before"])]
        if "after" in query:
            found = [m for m in found if int(m["id"]) > int(query["after"])]
            found = found[-int(limit_raw) :]
        return 200, found[: int(limit_raw)]

    async def _get_message(
        self, request: Request, body: None, channel_id: str, message_id: str
    ) -> tuple[int, Any]:
        channel = self._message_channel(channel_id)
        for message in self.messages.get(channel["id"], []):
            if message["id"] == message_id:
                return 200, message
        raise HTTPProblem(404, 10008, "Unknown Message")

    async def _edit_message(
        self, request: Request, body: dict, channel_id: str, message_id: str
    ) -> tuple[int, Any]:
        """Edit the bot's own message (content, embeds, components), as Discord allows."""
        channel = self._message_channel(channel_id)
        message = next(
            (m for m in self.messages.get(channel["id"], []) if m["id"] == message_id), None
        )
        if message is None:
            raise HTTPProblem(404, 10008, "Unknown Message")
        if message["author"]["id"] != BOT_USER_ID:
            raise HTTPProblem(403, 50005, "Cannot edit a message authored by another user")
        fields = self._message_fields(body, partial=True, ephemeral_ok=False)
        fields.pop("flags", None)  # a message's flags are not the edit's to change here
        message.update(fields)
        if not message["content"].strip() and not message["embeds"] and not message["components"]:
            raise HTTPProblem(400, 50006, "Cannot send an empty message")
        message["edited_timestamp"] = payloads.timestamp()
        await self.dispatch("MESSAGE_UPDATE", self._gateway_message(message, channel))
        return 200, message

    def _validate_embeds(self, embeds: Any) -> list[dict]:
        if not isinstance(embeds, list):
            raise form_error({"embeds": ("BASE_TYPE_LIST", "Must be a list.")})
        if len(embeds) > 10:
            raise form_error({"embeds": ("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")})
        problems: dict[str, tuple[str, str]] = {}
        total = 0
        limits = {"title": 256, "description": 4096}
        for i, embed in enumerate(embeds):
            if not isinstance(embed, dict):
                problems[f"embeds.{i}"] = ("MODEL_TYPE_CONVERT", "Only dictionaries may be used.")
                continue
            for key, limit in limits.items():
                value = embed.get(key) or ""
                total += len(value)
                if len(value) > limit:
                    problems[f"embeds.{i}.{key}"] = (
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {limit} or fewer in length.",
                    )
            fields = embed.get("fields") or []
            if len(fields) > 25:
                problems[f"embeds.{i}.fields"] = (
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 25 or fewer in length.",
                )
            for j, embed_field in enumerate(fields):
                name, value = embed_field.get("name"), embed_field.get("value")
                for key, text, limit in (("name", name, 256), ("value", value, 1024)):
                    if not text:
                        problems[f"embeds.{i}.fields.{j}.{key}"] = (
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        )
                    elif len(text) > limit:
                        problems[f"embeds.{i}.fields.{j}.{key}"] = (
                            "BASE_TYPE_MAX_LENGTH",
                            f"Must be {limit} or fewer in length.",
                        )
                    else:
                        total += len(text)
            total += len((embed.get("footer") or {}).get("text") or "")
            total += len((embed.get("author") or {}).get("name") or "")
        if total > 6000 and not problems:
            problems["embeds"] = (
                "MAX_EMBED_SIZE_EXCEEDED",
                "Embed size exceeds maximum size of 6000",
            )
        if problems:
            raise form_error(problems)
        return [{"type": "rich", **e, "content_scan_version": 0} for e in embeds]

    async def _create_message(
        self, request: Request, body: dict, channel_id: str
    ) -> tuple[int, Any]:
        channel = self._message_channel(channel_id)
        content = body.get("content")
        if content is not None and not isinstance(content, str):
            raise form_error(
                {"content": ("BASE_TYPE_STRING", "Could not interpret value as string.")}
            )
        content = content or ""
        if len(content) > 2000:
            raise form_error(
                {"content": ("BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")}
            )
        embeds = self._validate_embeds(body["embeds"]) if body.get("embeds") is not None else []
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            raise form_error({"nonce": ("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")})
        components = (
            self._validate_components(body["components"])
            if body.get("components") is not None
            else []
        )
        has_other = any(body.get(k) for k in ("sticker_ids", "poll", "attachments"))
        if not content.strip() and not embeds and not components and not has_other:
            raise HTTPProblem(400, 50006, "Cannot send an empty message")
        if channel["type"] == payloads.DM:
            recipient = channel["recipients"][0]["id"]
            if recipient in self.closed_dms:
                raise HTTPProblem(403, 50007, "Cannot send messages to this user")
        message = self._new_message(
            channel,
            self.users[BOT_USER_ID],
            content,
            embeds=embeds,
            nonce=nonce,
            tts=bool(body.get("tts")),
        )
        message["components"] = components
        self._record(channel, message)
        await self.dispatch("MESSAGE_CREATE", self._gateway_message(message, channel))
        return 200, message

    # ------------------------------------------------------ moderation routes

    def _require(self, permission: str) -> None:
        if permission not in self.bot_permissions and "ADMINISTRATOR" not in self.bot_permissions:
            raise HTTPProblem(403, 50013, "Missing Permissions")

    def _protected(self, user_id: str) -> bool:
        """The guild owner is out of any bot's reach."""
        return user_id == OWNER_USER_ID

    async def _edit_member(
        self, request: Request, body: dict, guild_id: str, user_id: str
    ) -> tuple[int, Any]:
        reason = _reason(request)
        timing_out = "communication_disabled_until" in body
        if timing_out:
            self._require("MODERATE_MEMBERS")
        member = self.members.get(user_id)
        if member is None:
            raise HTTPProblem(404, 10007, "Unknown Member")
        problems: dict[str, tuple[str, str]] = {}
        until: str | None = None
        if timing_out and body["communication_disabled_until"] is not None:
            invalid = (
                "INVALID_COMMUNICATION_DISABLED_TIMESTAMP",
                "Invalid communication disabled timestamp",
            )
            raw = body["communication_disabled_until"]
            try:
                moment = _parse_iso(raw)
            except (TypeError, ValueError):
                problems["communication_disabled_until"] = invalid
            else:
                if moment - datetime.datetime.now(datetime.UTC) > MAX_TIMEOUT:
                    problems["communication_disabled_until"] = invalid
                until = moment.isoformat()
        nick = member["nick"]
        if "nick" in body:
            nick = body["nick"] or None
            if nick is not None and (not isinstance(nick, str) or len(nick) > 32):
                problems["nick"] = ("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        roles = member["roles"]
        if body.get("roles") is not None:
            if not isinstance(body["roles"], list):
                problems["roles"] = ("BASE_TYPE_LIST", "Must be a list.")
            else:
                roles = []
                for i, role_id in enumerate(body["roles"]):
                    if not _is_snowflake(role_id):
                        problems[f"roles.{i}"] = (
                            "NUMBER_TYPE_COERCE",
                            f'Value "{role_id}" is not snowflake.',
                        )
                    elif str(role_id) not in self.roles:
                        raise HTTPProblem(404, 10011, "Unknown Role")
                    elif str(role_id) != GUILD_ID and str(role_id) not in roles:
                        roles.append(str(role_id))
        if problems:
            raise form_error(problems)
        admin = self._member_permissions(user_id) & PERMISSIONS["ADMINISTRATOR"]
        if self._protected(user_id) or (timing_out and admin):
            raise HTTPProblem(403, 50013, "Missing Permissions")
        changes: list[dict] = []
        if timing_out:
            old = member["communication_disabled_until"]
            member["communication_disabled_until"] = until
            changes.append(_change("communication_disabled_until", old, until))
            self.moderation.append(
                {"action": "timeout", "user_id": user_id, "reason": reason, "until": until}
            )
        if nick != member["nick"]:
            changes.append(_change("nick", member["nick"], nick))
            member["nick"] = nick
        added = [r for r in roles if r not in member["roles"]]
        removed = [r for r in member["roles"] if r not in roles]
        member["roles"] = roles
        await self.dispatch("GUILD_MEMBER_UPDATE", {**member, "guild_id": GUILD_ID})
        if changes:
            await self._audit(MEMBER_UPDATE, BOT_USER_ID, user_id, reason, changes=changes)
        if added or removed:
            role_changes = []
            for key, ids in (("$add", added), ("$remove", removed)):
                if ids:
                    named = [{"id": r, "name": self.roles[r]["name"]} for r in ids]
                    role_changes.append({"key": key, "new_value": named})
            await self._audit(
                MEMBER_ROLE_UPDATE, BOT_USER_ID, user_id, reason, changes=role_changes
            )
        return 200, member

    async def _kick_member(
        self, request: Request, body: None, guild_id: str, user_id: str
    ) -> tuple[int, Any]:
        self._require("KICK_MEMBERS")
        if user_id not in self.members:
            raise HTTPProblem(404, 10007, "Unknown Member")
        if self._protected(user_id):
            raise HTTPProblem(403, 50013, "Missing Permissions")
        reason = _reason(request)
        self.moderation.append(
            {"action": "kick", "user_id": user_id, "reason": reason, "until": None}
        )
        await self._apply_kick(BOT_USER_ID, user_id, reason)
        return 204, None

    async def _ban(
        self, request: Request, body: dict, guild_id: str, user_id: str
    ) -> tuple[int, Any]:
        self._require("BAN_MEMBERS")
        seconds = body.get("delete_message_seconds")
        if seconds is None and body.get("delete_message_days") is not None:
            days = body["delete_message_days"]
            if not isinstance(days, int) or not 0 <= days <= 7:
                raise form_error(
                    {
                        "delete_message_days": (
                            "NUMBER_TYPE_MAX",
                            "int value should be less than or equal to 7.",
                        )
                    }
                )
            seconds = days * 86400
        if seconds is not None and (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 <= seconds <= 604800
        ):
            raise form_error(
                {
                    "delete_message_seconds": (
                        "NUMBER_TYPE_MAX",
                        "int value should be less than or equal to 604800.",
                    )
                }
            )
        if user_id not in self.users:
            raise HTTPProblem(404, 10013, "Unknown User")
        if self._protected(user_id):
            raise HTTPProblem(403, 50013, "Missing Permissions")
        reason = _reason(request)
        self.moderation.append(
            {"action": "ban", "user_id": user_id, "reason": reason, "until": None}
        )
        await self._apply_ban(BOT_USER_ID, user_id, reason, int(seconds or 0))
        return 204, None

    async def _unban(
        self, request: Request, body: None, guild_id: str, user_id: str
    ) -> tuple[int, Any]:
        self._require("BAN_MEMBERS")
        ban = self.bans.pop(user_id, None)
        if ban is None:
            raise HTTPProblem(404, 10026, "Unknown Ban")
        reason = _reason(request)
        self.moderation.append(
            {"action": "unban", "user_id": user_id, "reason": reason, "until": None}
        )
        await self.dispatch("GUILD_BAN_REMOVE", {"guild_id": GUILD_ID, "user": ban["user"]})
        await self._audit(MEMBER_BAN_REMOVE, BOT_USER_ID, user_id, reason)
        return 204, None

    async def _get_ban(
        self, request: Request, body: None, guild_id: str, user_id: str
    ) -> tuple[int, Any]:
        self._require("BAN_MEMBERS")
        if user_id not in self.bans:
            raise HTTPProblem(404, 10026, "Unknown Ban")
        return 200, self.bans[user_id]

    def _page_query(self, request: Request, *, max_limit: int, default: int) -> dict[str, int]:
        query = request.query_params
        problems: dict[str, tuple[str, str]] = {}
        found: dict[str, int] = {}
        limit_raw = query.get("limit", str(default))
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= max_limit:
            problems["limit"] = (
                "NUMBER_TYPE_MAX",
                f"int value should be between 1 and {max_limit}.",
            )
        else:
            found["limit"] = int(limit_raw)
        for key in ("before", "after", "user_id"):
            if key in query:
                if _is_snowflake(query[key]):
                    found[key] = int(query[key])
                else:
                    problems[key] = (
                        "NUMBER_TYPE_COERCE",
                        f'Value "{query[key]}" is not snowflake.',
                    )
        if "action_type" in query:
            if query["action_type"].isdigit():
                found["action_type"] = int(query["action_type"])
            else:
                problems["action_type"] = ("NUMBER_TYPE_COERCE", "Value is not int.")
        if problems:
            raise form_error(problems)
        return found

    async def _list_bans(self, request: Request, body: None, guild_id: str) -> tuple[int, Any]:
        self._require("BAN_MEMBERS")
        q = self._page_query(request, max_limit=1000, default=1000)
        ordered = sorted(self.bans.items(), key=lambda kv: int(kv[0]))
        if "before" in q:
            chosen = [b for uid, b in ordered if int(uid) < q["before"]][-q["limit"] :]
        else:
            chosen = [b for uid, b in ordered if int(uid) > q.get("after", 0)][: q["limit"]]
        return 200, chosen

    async def _get_audit_log(self, request: Request, body: None, guild_id: str) -> tuple[int, Any]:
        self._require("VIEW_AUDIT_LOG")
        q = self._page_query(request, max_limit=100, default=50)
        entries = [
            e
            for e in self.audit_log
            if ("action_type" not in q or e["action_type"] == q["action_type"])
            and ("user_id" not in q or e["user_id"] == str(q["user_id"]))
            and ("before" not in q or int(e["id"]) < q["before"])
            and ("after" not in q or int(e["id"]) > q["after"])
        ]
        if "after" in q and "before" not in q:
            entries = entries[: q["limit"]]
        else:
            entries = entries[-q["limit"] :]
        entries.reverse()  # newest first
        user_ids = {e["user_id"] for e in entries} | {e["target_id"] for e in entries}
        return 200, {
            "audit_log_entries": entries,
            "users": [self.users[u] for u in sorted(user_ids - {None}) if u in self.users],
            "integrations": [],
            "webhooks": [],
            "guild_scheduled_events": [],
            "threads": [],
            "application_commands": [],
            "auto_moderation_rules": [],
        }

    # ------------------------------------------------------ command routes

    def _check_application(self, application_id: str) -> None:
        if application_id != APPLICATION_ID:
            raise HTTPProblem(403, 50001, "Missing Access")

    async def _get_commands(
        self, request: Request, body: None, application_id: str, guild_id: str
    ) -> tuple[int, Any]:
        self._check_application(application_id)
        return 200, self.commands

    def _validate_options(
        self, options: Any, path: str, problems: dict[str, tuple[str, str]], depth: int = 0
    ) -> list[dict]:
        if not isinstance(options, list):
            problems[path] = ("BASE_TYPE_LIST", "Must be a list.")
            return []
        if len(options) > 25:
            problems[path] = ("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        clean: list[dict] = []
        seen: set[str] = set()
        optional_seen = False
        for j, option in enumerate(options):
            where = f"{path}.{j}"
            if not isinstance(option, dict):
                problems[where] = ("MODEL_TYPE_CONVERT", "Only dictionaries may be used.")
                continue
            kind = option.get("type")
            if kind not in OPTION_TYPES or isinstance(kind, bool):
                choices = ", ".join(str(k) for k in OPTION_TYPES)
                problems[f"{where}.type"] = (
                    "BASE_TYPE_CHOICES",
                    f"Value must be one of {{{choices}}}.",
                )
                continue
            name = option.get("name")
            if not _command_name_ok(name):
                problems[f"{where}.name"] = (
                    "APPLICATION_COMMAND_INVALID_NAME",
                    "Command name is invalid",
                )
            elif name in seen:
                problems[f"{where}.name"] = (
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Command option names must be unique",
                )
            else:
                seen.add(name)
            description = option.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 100:
                problems[f"{where}.description"] = (
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            required = bool(option.get("required"))
            if required and optional_seen:
                problems[f"{where}.required"] = (
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
            optional_seen = optional_seen or not required
            out: dict[str, Any] = {"type": kind, "name": name, "description": description}
            if required:
                out["required"] = True
            for key in (
                "name_localizations",
                "description_localizations",
                "channel_types",
                "min_value",
                "max_value",
                "min_length",
                "max_length",
                "autocomplete",
            ):
                if option.get(key) is not None:
                    out[key] = option[key]
            choices = option.get("choices")
            if choices:
                if kind not in (3, 4, 10) or not isinstance(choices, list) or len(choices) > 25:
                    problems[f"{where}.choices"] = (
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 25 or fewer in length.",
                    )
                else:
                    out["choices"] = choices
            if kind in (1, 2):
                if depth >= (1 if kind == 2 else 2):
                    problems[f"{where}.type"] = (
                        "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                        "Sub-command and sub-command group option types are mutually exclusive",
                    )
                out["options"] = self._validate_options(
                    option.get("options") or [], f"{where}.options", problems, depth + 1
                )
            clean.append(out)
        return clean

    async def _put_commands(
        self, request: Request, body: Any, application_id: str, guild_id: str
    ) -> tuple[int, Any]:
        self._check_application(application_id)
        if not isinstance(body, list):
            raise HTTPProblem(
                400,
                50035,
                "Invalid Form Body",
                {"_errors": [{"code": "BASE_TYPE_LIST", "message": "Must be a list."}]},
            )
        if len(body) > 100:
            raise HTTPProblem(
                400,
                50035,
                "Invalid Form Body",
                {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": "Must be 100 or fewer in length.",
                        }
                    ]
                },
            )
        problems: dict[str, tuple[str, str]] = {}
        seen: set[tuple[str, int]] = set()
        definitions: list[dict] = []
        for i, command in enumerate(body):
            if not isinstance(command, dict):
                problems[str(i)] = ("MODEL_TYPE_CONVERT", "Only dictionaries may be used.")
                continue
            kind = command.get("type", 1) or 1
            if kind not in (1, 2, 3):
                problems[f"{i}.type"] = ("BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.")
                continue
            name = command.get("name")
            if kind == 1 and not _command_name_ok(name):
                problems[f"{i}.name"] = (
                    "APPLICATION_COMMAND_INVALID_NAME",
                    "Command name is invalid",
                )
            elif not isinstance(name, str) or not 1 <= len(name) <= 32:
                problems[f"{i}.name"] = (
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 32 in length.",
                )
            elif (name, kind) in seen:
                problems[str(i)] = (
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            else:
                seen.add((name, kind))
            description = command.get("description") or ""
            if kind == 1 and not 1 <= len(description) <= 100:
                problems[f"{i}.description"] = (
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            elif kind != 1 and description:
                problems[f"{i}.description"] = (
                    "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION_INVALID",
                    "Context menu commands cannot have description",
                )
            options = self._validate_options(command.get("options") or [], f"{i}.options", problems)
            permissions = command.get("default_member_permissions")
            if permissions is not None and not str(permissions).isdigit():
                problems[f"{i}.default_member_permissions"] = (
                    "NUMBER_TYPE_COERCE",
                    "Value is not int.",
                )
            definitions.append(
                {
                    "type": kind,
                    "name": name,
                    "name_localizations": command.get("name_localizations") or None,
                    "description": description,
                    "description_localizations": command.get("description_localizations") or None,
                    "default_member_permissions": None if permissions is None else str(permissions),
                    "nsfw": bool(command.get("nsfw")),
                    "options": options,
                }
            )
        if problems:
            raise form_error(problems)
        old = {(c["name"], c["type"]): c for c in self.commands}
        created = []
        for definition in definitions:
            previous = old.get((definition["name"], definition["type"]))
            options = definition.pop("options")
            command = {
                "id": previous["id"] if previous else payloads.snowflake(),
                "application_id": APPLICATION_ID,
                "version": previous["version"] if previous else payloads.snowflake(),
                **definition,
                "guild_id": GUILD_ID,
                "contexts": None,
                "integration_types": [0],
            }
            if options:
                command["options"] = options
            if previous is not None and previous != command:
                command["version"] = payloads.snowflake()
            created.append(command)
        self.commands = created
        return 200, created

    # -------------------------------------------------- interaction routes

    def _validate_components(self, components: Any) -> list[dict]:
        if not isinstance(components, list):
            raise form_error({"components": ("BASE_TYPE_LIST", "Must be a list.")})
        if len(components) > 5:
            raise form_error(
                {"components": ("BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")}
            )
        problems: dict[str, tuple[str, str]] = {}
        custom_ids: set[str] = set()
        clean: list[dict] = []
        next_id = 1
        for i, row in enumerate(components):
            where = f"components.{i}"
            if not isinstance(row, dict) or row.get("type") != 1:
                problems[where] = (
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
                continue
            children = row.get("components")
            if not isinstance(children, list) or not 1 <= len(children) <= 5:
                problems[f"{where}.components"] = (
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
                continue
            out_row = {"type": 1, "id": row.get("id") or next_id, "components": []}
            next_id = max(next_id, out_row["id"]) + 1
            for j, child in enumerate(children):
                at = f"{where}.components.{j}"
                kind = child.get("type") if isinstance(child, dict) else None
                if kind == 2:
                    self._validate_button(child, at, problems)
                elif kind in SELECT_MENU_TYPES:
                    if len(children) > 1:
                        problems[at] = (
                            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                            "The specified component exceeds the maximum width",
                        )
                    if kind == 3 and not 1 <= len(child.get("options") or []) <= 25:
                        problems[f"{at}.options"] = (
                            "BASE_TYPE_BAD_LENGTH",
                            "Must be between 1 and 25 in length.",
                        )
                else:
                    problems[at] = (
                        "UNION_TYPE_CHOICES",
                        'Value of field "type" must be one of (2, 3, 5, 6, 7, 8).',
                    )
                    continue
                custom_id = child.get("custom_id")
                if kind in SELECT_MENU_TYPES or custom_id is not None:
                    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
                        problems[f"{at}.custom_id"] = (
                            "BASE_TYPE_BAD_LENGTH",
                            "Must be between 1 and 100 in length.",
                        )
                    elif custom_id in custom_ids:
                        problems[f"{at}.custom_id"] = (
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        )
                    else:
                        custom_ids.add(custom_id)
                out = {k: v for k, v in child.items() if v is not None}
                out["id"] = child.get("id") or next_id
                next_id = max(next_id, out["id"]) + 1
                out_row["components"].append(out)
            clean.append(out_row)
        if problems:
            raise form_error(problems)
        return clean

    @staticmethod
    def _validate_button(button: dict, at: str, problems: dict[str, tuple[str, str]]) -> None:
        style = button.get("style")
        if style not in (1, 2, 3, 4, 5) or isinstance(style, bool):
            problems[f"{at}.style"] = (
                "BASE_TYPE_CHOICES",
                "Value must be one of {1, 2, 3, 4, 5, 6}.",
            )
            return
        label = button.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > 80):
            problems[f"{at}.label"] = ("BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
        if not label and not button.get("emoji"):
            problems[f"{at}.label"] = (
                "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
                "A label or emoji is required",
            )
        if style == 5:
            if not button.get("url"):
                problems[f"{at}.url"] = ("BASE_TYPE_REQUIRED", "This field is required")
            if button.get("custom_id") is not None:
                problems[f"{at}.custom_id"] = (
                    "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE",
                    "A custom id and url cannot both be specified",
                )
        else:
            if button.get("url") is not None:
                problems[f"{at}.url"] = (
                    "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE",
                    "A custom id and url cannot both be specified",
                )
            if button.get("custom_id") is None:
                problems[f"{at}.custom_id"] = ("BASE_TYPE_REQUIRED", "This field is required")

    def _message_fields(self, body: Any, *, partial: bool, ephemeral_ok: bool) -> dict:
        """The message fields of a create (``partial=False``) or edit body, validated."""
        if not isinstance(body, dict):
            raise form_error({"data": ("MODEL_TYPE_CONVERT", "Only dictionaries may be used.")})
        clean: dict[str, Any] = {}
        if "content" in body:
            content = body["content"]
            if content is not None and not isinstance(content, str):
                raise form_error(
                    {"content": ("BASE_TYPE_STRING", "Could not interpret value as string.")}
                )
            if content is not None and len(content) > 2000:
                raise form_error(
                    {"content": ("BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")}
                )
            clean["content"] = content or ""
        if "embeds" in body:
            embeds = body["embeds"]
            clean["embeds"] = [] if embeds is None else self._validate_embeds(embeds)
        if "components" in body:
            components = body["components"]
            clean["components"] = (
                [] if components is None else self._validate_components(components)
            )
        flags = body.get("flags")
        if flags is not None:
            if not isinstance(flags, int) or isinstance(flags, bool):
                raise form_error({"flags": ("NUMBER_TYPE_COERCE", "Value is not int.")})
            kept = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | (EPHEMERAL if ephemeral_ok else 0)
            clean["flags"] = flags & kept
        if not partial and not (
            clean.get("content", "").strip() or clean.get("embeds") or clean.get("components")
        ):
            raise HTTPProblem(400, 50006, "Cannot send an empty message")
        return clean

    def _interaction_message(
        self,
        interaction: _Interaction,
        clean: dict,
        *,
        loading: bool = False,
        followup: bool = False,
    ) -> dict:
        channel = self._any_channel(interaction.channel_id)
        message = self._new_message(
            channel,
            self.users[BOT_USER_ID],
            clean.get("content", ""),
            embeds=clean.get("embeds"),
        )
        user = self.users[interaction.user_id]
        metadata: dict[str, Any] = {
            "id": interaction.id,
            "type": interaction.kind,
            "user": user,
            "authorizing_integration_owners": {"0": GUILD_ID},
        }
        if interaction.kind == APPLICATION_COMMAND:
            metadata["name"] = interaction.command_name
            metadata["command_type"] = 1
        else:
            assert interaction.source is not None
            metadata["interacted_message_id"] = interaction.source["id"]
        if followup and interaction.original is not None:
            metadata["original_response_message_id"] = interaction.original["id"]
        command_reply = interaction.kind == APPLICATION_COMMAND and not followup
        message.update(
            {
                "type": 20 if command_reply else 0,
                "flags": clean.get("flags", 0) | (LOADING if loading else 0),
                "components": clean.get("components", []),
                "webhook_id": APPLICATION_ID,
                "application_id": APPLICATION_ID,
                "interaction_metadata": metadata,
            }
        )
        return message

    async def _post_interaction_message(self, message: dict) -> None:
        if message["flags"] & EPHEMERAL:
            self._ephemeral[message["id"]] = message  # only the member sees it; no event
            return
        channel = self._any_channel(message["channel_id"])
        self._record(channel, message)
        await self.dispatch("MESSAGE_CREATE", self._gateway_message(message, channel))

    async def _edit_interaction_message(self, message: dict, clean: dict) -> None:
        after = {**message, **{k: v for k, v in clean.items() if k != "flags"}}
        if not (after["content"].strip() or after["embeds"] or after["components"]):
            raise HTTPProblem(400, 50006, "Cannot send an empty message")
        was_loading = bool(message["flags"] & LOADING)
        message.update({k: v for k, v in clean.items() if k != "flags"})
        message["flags"] = (message["flags"] & ~LOADING) | (clean.get("flags", 0) & SUPPRESS_EMBEDS)
        if "content" in clean:
            message["mentions"] = [
                self.users[u] for u in _MENTION.findall(message["content"]) if u in self.users
            ]
        if not was_loading:
            message["edited_timestamp"] = payloads.timestamp()
        if not message["flags"] & EPHEMERAL and message["channel_id"] in self.channels:
            channel = self.channels[message["channel_id"]]
            await self.dispatch("MESSAGE_UPDATE", self._gateway_message(message, channel))

    async def _callback(
        self, request: Request, body: dict, interaction_id: str, token: str
    ) -> tuple[int, Any]:
        interaction = self._interactions.get(interaction_id)
        if (
            interaction is None
            or interaction.token != token
            or time.monotonic() - interaction.dispatched_at > self.interaction_deadline
        ):
            raise HTTPProblem(404, 10062, "Unknown interaction")
        if interaction.callback_type is not None:
            raise HTTPProblem(400, 40060, "Interaction has already been acknowledged")
        kind = body.get("type")
        allowed = [CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, MODAL]
        if interaction.kind == MESSAGE_COMPONENT:
            allowed += [DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE]
        if kind not in allowed or isinstance(kind, bool):
            names = ", ".join(str(k) for k in sorted(allowed))
            raise form_error({"type": ("BASE_TYPE_CHOICES", f"Value must be one of {{{names}}}.")})
        data = body.get("data")
        data = {} if data is None else data
        source_ephemeral = bool(interaction.source and interaction.source["flags"] & EPHEMERAL)
        if kind == CHANNEL_MESSAGE_WITH_SOURCE:
            clean = self._message_fields(data, partial=False, ephemeral_ok=True)
            message = self._interaction_message(interaction, clean)
            await self._post_interaction_message(message)
            interaction.original, interaction.visible = message, True
        elif kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
            clean = self._message_fields(data, partial=True, ephemeral_ok=True)
            clean = {"flags": clean.get("flags", 0) & EPHEMERAL}
            message = self._interaction_message(interaction, clean, loading=True)
            await self._post_interaction_message(message)
            interaction.original = message
        elif kind == DEFERRED_UPDATE_MESSAGE:
            interaction.original = interaction.source
        elif kind == UPDATE_MESSAGE:
            assert interaction.source is not None
            clean = self._message_fields(data, partial=True, ephemeral_ok=False)
            await self._edit_interaction_message(interaction.source, clean)
            interaction.original, interaction.visible = interaction.source, True
        else:  # MODAL
            problems: dict[str, tuple[str, str]] = {}
            for key, limit in (("title", 45), ("custom_id", 100)):
                value = data.get(key) if isinstance(data, dict) else None
                if not isinstance(value, str) or not 1 <= len(value) <= limit:
                    problems[f"data.{key}"] = (
                        "BASE_TYPE_BAD_LENGTH",
                        f"Must be between 1 and {limit} in length.",
                    )
            if not isinstance(data, dict) or not data.get("components"):
                problems["data.components"] = ("BASE_TYPE_REQUIRED", "This field is required")
            if problems:
                raise form_error(problems)
        interaction.callback_type = kind
        original = interaction.original
        if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            ephemeral = source_ephemeral
        else:
            ephemeral = bool(original and original["flags"] & EPHEMERAL)
        self.interaction_responses[interaction.id].append(
            {"type": kind, "data": data, "ephemeral": ephemeral}
        )
        if request.query_params.get("with_response") != "true":
            return 204, None
        callback: dict[str, Any] = {
            "id": interaction.id,
            "type": interaction.kind,
            "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            "response_message_ephemeral": ephemeral,
        }
        answer: dict[str, Any] = {"interaction": callback}
        if original is not None and kind != DEFERRED_UPDATE_MESSAGE:
            callback["response_message_id"] = original["id"]
            answer["resource"] = {"type": kind, "message": original}
        return 200, answer

    def _webhook_interaction(self, application_id: str, token: str) -> _Interaction:
        if application_id != APPLICATION_ID:
            raise HTTPProblem(404, 10015, "Unknown Webhook")
        interaction = next((i for i in self._interactions.values() if i.token == token), None)
        if (
            interaction is None
            or time.monotonic() - interaction.dispatched_at > self.interaction_token_lifetime
        ):
            raise HTTPProblem(401, 50027, "Invalid Webhook Token")
        return interaction

    async def _get_original(
        self, request: Request, body: None, application_id: str, token: str
    ) -> tuple[int, Any]:
        interaction = self._webhook_interaction(application_id, token)
        if interaction.original is None:
            raise HTTPProblem(404, 10008, "Unknown Message")
        return 200, interaction.original

    async def _edit_original(
        self, request: Request, body: dict, application_id: str, token: str
    ) -> tuple[int, Any]:
        interaction = self._webhook_interaction(application_id, token)
        original = interaction.original
        if original is None:
            raise HTTPProblem(404, 10008, "Unknown Message")
        clean = self._message_fields(body, partial=True, ephemeral_ok=False)
        await self._edit_interaction_message(original, clean)
        interaction.visible = True
        self.interaction_responses[interaction.id].append(
            {"type": "edit", "data": body, "ephemeral": bool(original["flags"] & EPHEMERAL)}
        )
        return 200, original

    async def _followup(
        self, request: Request, body: dict, application_id: str, token: str
    ) -> tuple[int, Any]:
        interaction = self._webhook_interaction(application_id, token)
        if interaction.callback_type is None:
            raise HTTPProblem(404, 10015, "Unknown Webhook")
        original = interaction.original
        deferred = interaction.callback_type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        if deferred and original is not None and not interaction.visible:
            # Discord: the first follow-up after a deferral edits the "thinking" message.
            clean = self._message_fields(body, partial=False, ephemeral_ok=False)
            await self._edit_interaction_message(original, clean)
            interaction.visible = True
            message = original
        else:
            clean = self._message_fields(body, partial=False, ephemeral_ok=True)
            message = self._interaction_message(interaction, clean, followup=True)
            await self._post_interaction_message(message)
            interaction.followups.append(message)
        self.interaction_responses[interaction.id].append(
            {"type": "followup", "data": body, "ephemeral": bool(message["flags"] & EPHEMERAL)}
        )
        return 200, message

    # ============================================================= gateway

    async def _gateway(self, websocket: WebSocket) -> None:
        await websocket.accept()
        params = websocket.query_params
        compress = params.get("compress")
        conn = _Connection(websocket, zlib.compressobj() if compress == "zlib-stream" else None)
        conn.writer = asyncio.create_task(conn.write_forever())
        self._connections.append(conn)
        client_code: int | None = None
        try:
            if params.get("v") != "10":
                await conn.close(4012)
                return
            if params.get("encoding") != "json" or compress not in (None, "zlib-stream"):
                await conn.close(4002)
                return
            conn.send(_frame(10, {"heartbeat_interval": self.heartbeat_interval_ms}))
            while not conn.closed:
                try:
                    message = await websocket.receive()
                except Exception:
                    break
                if message["type"] == "websocket.disconnect":
                    client_code = message.get("code")
                    break
                raw = message.get("text") or message.get("bytes") or b""
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = None
                if not isinstance(frame, dict) or not isinstance(frame.get("op"), int):
                    await conn.close(4002)
                    break
                await self._handle_op(conn, frame)
        finally:
            conn.ready = False
            conn.release()
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                if client_code in (1000, 1001) and not conn.server_closed:
                    # The client closing cleanly ends its session, as on Discord.
                    self._sessions.pop(session.id, None)
            self._connections.remove(conn)

    async def _handle_op(self, conn: _Connection, frame: dict) -> None:
        op, d = frame["op"], frame.get("d")
        if op == 1:
            conn.send(_frame(11))
        elif op == 2:
            await self._identify(conn, d)
        elif op == 6:
            await self._resume(conn, d)
        elif op in (3, 4, 8):
            if conn.session is None:
                await conn.close(4003)
            elif op == 3:
                if not isinstance(d, dict):
                    await conn.close(4002)
                else:
                    self.presences.append(d)
            elif op == 8:
                await self._request_members(conn, d)
        else:
            await conn.close(4001)

    async def _identify(self, conn: _Connection, d: Any) -> None:
        if conn.session is not None:
            await conn.close(4005)
            return
        if not isinstance(d, dict) or not isinstance(d.get("properties"), dict):
            await conn.close(4002)
            return
        if d.get("token") != BOT_TOKEN:
            await conn.close(4004)
            return
        if d.get("shard", [0, 1]) != [0, 1]:
            await conn.close(4010)
            return
        intents = d.get("intents")
        if (
            not isinstance(intents, int)
            or isinstance(intents, bool)
            or intents < 0
            or intents & ~KNOWN_INTENTS
            or not intents & GUILDS
        ):
            await conn.close(4013)
            return
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await conn.close(4014)
            return
        large_threshold = d.get("large_threshold", 50)
        if not isinstance(large_threshold, int) or not 50 <= large_threshold <= 250:
            await conn.close(4002)
            return
        self.identifies += 1
        self.intents = intents
        if isinstance(d.get("presence"), dict):
            self.presences.append(d["presence"])
        session = _Session(secrets.token_hex(16), intents, large_threshold)
        self._sessions[session.id] = session
        session.conn = conn
        conn.session = session
        conn.ready = True
        ready = payloads.ready(
            own=self.own_user,
            guild_ids=[GUILD_ID],
            session_id=session.id,
            resume_gateway_url=self.gateway_url,
            application_id=APPLICATION_ID,
            application_flags=APPLICATION_FLAGS,
        )
        self._dispatch_to(session, "READY", ready)
        self._dispatch_to(session, "GUILD_CREATE", self._gateway_guild(session))

    def _dispatch_to(self, session: _Session, event: str, data: dict) -> asyncio.Future:
        session.seq += 1
        session.history.append((session.seq, event, data))
        assert session.conn is not None
        return session.conn.send(_frame(0, data, s=session.seq, t=event))

    async def _resume(self, conn: _Connection, d: Any) -> None:
        if conn.session is not None:
            await conn.close(4005)
            return
        if not isinstance(d, dict) or not isinstance(d.get("session_id"), str):
            await conn.close(4002)
            return
        if d.get("token") != BOT_TOKEN:
            await conn.close(4004)
            return
        session = self._sessions.get(d["session_id"])
        if session is None:
            conn.send(_frame(9, False))
            return
        seq = d.get("seq")
        if not isinstance(seq, int) or seq > session.seq:
            await conn.close(4007)
            return
        if session.conn is not None and session.conn is not conn:
            session.conn.close(4009)
            session.conn.ready = False
        session.conn = conn
        conn.session = session
        # Replay until nothing is left; the last check and `ready` happen without
        # an await between them, so no dispatch can fall in the gap.
        sent = seq
        while pending := [h for h in session.history if h[0] > sent]:
            for s, event, data in pending:
                conn.send(_frame(0, data, s=s, t=event))
                sent = s
        conn.ready = True
        self.resumes += 1
        session.seq += 1
        conn.send(_frame(0, None, s=session.seq, t="RESUMED"))

    async def _request_members(self, conn: _Connection, d: Any) -> None:
        session = conn.session
        assert session is not None
        if not isinstance(d, dict) or d.get("guild_id") != GUILD_ID:
            await conn.close(4002)
            return
        self.member_requests.append(d)
        query, limit = d.get("query"), d.get("limit", 0)
        user_ids = d.get("user_ids")
        if user_ids is None and query is None:
            await conn.close(4002)
            return
        if user_ids is None and not query and not limit and not session.intents & GUILD_MEMBERS:
            await conn.close(4013)
            return
        if user_ids is not None:
            wanted = [user_ids] if isinstance(user_ids, str) else list(user_ids)
            wanted = [str(u) for u in wanted]
            found = [self.members[u] for u in wanted if u in self.members]
            not_found = [u for u in wanted if u not in self.members]
        else:
            prefix = (query or "").lower()
            found = [
                m
                for m in sorted(self.members.values(), key=lambda m: int(m["user"]["id"]))
                if m["user"]["username"].lower().startswith(prefix)
            ]
            if limit:
                found = found[:limit]
            not_found = None
        chunks = [found[i : i + 1000] for i in range(0, len(found), 1000)] or [[]]
        for index, members in enumerate(chunks):
            data: dict[str, Any] = {
                "guild_id": GUILD_ID,
                "members": members,
                "chunk_index": index,
                "chunk_count": len(chunks),
            }
            if not_found is not None:
                data["not_found"] = not_found
            if d.get("presences"):
                data["presences"] = []
            if d.get("nonce") is not None:
                data["nonce"] = d["nonce"]
            self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", data)

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(1001) for c in self._connections if not c.closed))


@contextlib.asynccontextmanager
async def running_discord() -> AsyncIterator[DiscordPeer]:
    # IPPROTO_TCP spelled out: asyncio only sets TCP_NODELAY on sockets whose proto
    # says TCP, and without it every reused keep-alive request waits ~40 ms on
    # Nagle and delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    peer = DiscordPeer(port=sock.getsockname()[1])
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(
        routes=[
            Route("/api/v10/{path:path}", peer._rest, methods=methods),
            WebSocketRoute("/gateway", peer._gateway),
        ]
    )
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield peer
    finally:
        await peer.close_all()
        server.should_exit = True
        await task
        sock.close()
