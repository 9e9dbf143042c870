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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import math
import re
import secrets
import socket
import time
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
        major = params.get("channel_id") or params.get("guild_id") or ""
        bucket_key = f"{method} {template} {major}"
        headers, over = self._rate_headers(bucket_key, f"{method} {template}")
        if request.headers.get("authorization") != f"Bot {BOT_TOKEN}" and path != "/gateway":
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
                if not _is_snowflake(value):
                    raise form_error(
                        {name: ("NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')}
                    )
            if "guild_id" in params and params["guild_id"] != GUILD_ID:
                raise HTTPProblem(404, 10004, "Unknown Guild")
            payload: Any = None
            if method in ("POST", "PATCH", "PUT"):
                payload = await self._json_body(request)
            status, result = await handler(request, payload, **params)
        except HTTPProblem as problem:
            return JSONResponse(problem.body, status_code=problem.status, headers=headers)
        if status == 204:
            return Response(status_code=204, headers=headers)
        return JSONResponse(result, status_code=status, headers=headers)

    async def _json_body(self, request: Request) -> dict:
        raw = await request.body()
        if not request.headers.get("content-type", "").startswith("application/json"):
            return {}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise HTTPProblem(400, 50109, "The request body contains invalid JSON.") from None
        if not isinstance(body, dict):
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
        has_other = any(body.get(k) for k in ("sticker_ids", "components", "poll", "attachments"))
        if not content.strip() and not embeds and not has_other:
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
        self._record(channel, message)
        await self.dispatch("MESSAGE_CREATE", self._gateway_message(message, channel))
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
