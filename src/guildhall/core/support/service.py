"""Tickets and the bot runtime.

The bot runtime owns the bot's state (online, uptime, presence, guild count)
in the database, so every server process reports the same bot; start, stop,
restart and presence change it and are audited. Without a Discord
connection (``[discord] token`` empty) it is local: a ticket's channel id is
allocated from a database counter (one atomic UPDATE ... RETURNING, safe under
concurrency). With one, the modmail bot (``connectors/discord/modmail.py``)
opens the real channel first, with no unit of work open, and passes its id
in; the gateway's own state (READY since when, why offline) is kept in the
same row by the process holding the gateway, and ``status`` reports it.

A ticket's transcript is its messages (``TicketMessage``): what the member
sent (``in``), what staff sent them (``out``) and staff notes (``note``).
``message_count`` counts the messages relayed either way, not the notes.
Closing a ticket emits ``ticket.closed``; with Discord connected it also
records a platform job (``events/jobs.py``) that DMs the close message, posts
the transcript to the log channel and deletes the channel, whoever closed it
(the bot's ``!close``, the CLI), after commit.

One open ticket per member is enforced by a partial unique index; a second
concurrent create loses at the database and answers a conflict.

The bot's secrets (``token`` and ``client_secret`` in its configuration, at any
depth) are sealed with the installation secret before they are stored
(``SEALED_PREFIX`` and a Fernet token, in place of the text), so the database
never holds them in plain text. Reading the configuration masks them: the
document says sensitive fields are not returned, and the mask (rather than
leaving the field out) lets a panel send a document it read back unchanged
without clearing them. Secrets an older version stored in plain text are sealed
when a serving or CLI process prepares the database (``Runtime.prepare``), and
on the next configuration write in any case.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.community import service as community
from guildhall.core.community.models import BotSettings
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.support.models import (
    CLOSED,
    INBOUND,
    NOTE,
    OPEN,
    OUTBOUND,
    BotState,
    Ticket,
    TicketMessage,
)
from guildhall.core.text import storable
from guildhall.db.base import utcnow
from guildhall.db.sql import ensure_row, flush_unless_duplicate
from guildhall.events import audit, jobs, leases, outbox
from guildhall.events.announce import announce
from guildhall.secrets import Sealer

_STATE_ID = 1
CHANNEL_BASE = 900_000_000_000_000_000
MAX_PRESENCE = 128


CLOSE_JOB = "discord.ticket_closed"
"""The platform job a close records when Discord is connected (connectors/discord)."""


@dataclass(frozen=True, slots=True)
class BotStatus:
    online: bool
    uptime: int
    presence: str
    guild_count: int
    ticket_count: int
    reason: str | None = None


async def _state(session: AsyncSession, *, lock: bool = False) -> BotState:
    return await ensure_row(
        session,
        BotState,
        {"id": _STATE_ID, "online": False, "channel_counter": 0, "guild_count": 1},
        lock=lock,
    )


async def status(session: AsyncSession, *, gateway: str | None = None) -> BotStatus:
    """The bot's status. ``gateway`` names the lease of a real connection: then the bot
    is online only while that lease is held and its session is READY, and its uptime
    counts from READY; without one, it is the stored state."""
    state = await session.get(BotState, _STATE_ID)
    open_tickets = await session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.status == OPEN)
    )
    presence = (await community.settings(session, CONFIG))["bot"]["status"]
    if state is None:
        return BotStatus(False, 0, presence, 1, open_tickets or 0)
    since = state.started_at if state.online else None
    reason = None
    if gateway is not None:
        held = await leases.current(session, gateway) is not None
        since = state.ready_at if held else None
        reason = None if since else (state.offline_reason or _why_offline(state.online, held))
    uptime = int((utcnow() - since).total_seconds()) if since else 0
    return BotStatus(
        since is not None, uptime, presence, state.guild_count, open_tickets or 0, reason
    )


def _why_offline(wanted: bool, held: bool) -> str:
    if not wanted:
        return "stopped"
    return "connecting to Discord" if held else "waiting for a process to connect to Discord"


async def record_gateway(
    session: AsyncSession,
    *,
    ready: bool,
    reason: str | None = None,
    guild_count: int | None = None,
    new_session: bool = False,
) -> None:
    """What the process holding the gateway sees: READY (since now, for a new session)
    or not, and why."""
    state = await _state(session, lock=True)
    if ready:
        if new_session or state.ready_at is None:
            state.ready_at = utcnow()
        state.offline_reason = None
    else:
        state.ready_at = None
        state.offline_reason = reason
    if guild_count is not None:
        state.guild_count = guild_count
    await session.flush()


async def start(session: AsyncSession, actor: Actor) -> bool:
    """Start the bot; False (and nothing changed) when it already runs."""
    state = await _state(session, lock=True)
    if state.online:
        return False
    state.online, state.started_at = True, utcnow()
    await _announce(session, actor, "bot.started", "started the bot")
    return True


async def stop(session: AsyncSession, actor: Actor) -> bool:
    state = await _state(session, lock=True)
    if not state.online:
        return False
    state.online, state.started_at = False, None
    await _announce(session, actor, "bot.stopped", "stopped the bot")
    return True


async def restart(session: AsyncSession, actor: Actor) -> None:
    state = await _state(session, lock=True)
    state.online, state.started_at = True, utcnow()
    await _announce(session, actor, "bot.restarted", "restarted the bot")


def _check_presence(text: object, field: str) -> None:
    """The bot's status, whether set on its own or in the configuration."""
    if (
        not isinstance(text, str)
        or not text.strip()
        or len(text) > MAX_PRESENCE
        or not storable(text)
    ):
        raise Invalid(f"the status must be 1 to {MAX_PRESENCE} characters", field=field)


async def set_presence(session: AsyncSession, text: str, actor: Actor) -> None:
    text = text.strip()
    _check_presence(text, "status")
    await community.merge_settings(
        session, {"bot": {"status": text}}, actor, event="settings.updated", document=CONFIG
    )


async def _announce(session: AsyncSession, actor: Actor, action: str, what: str) -> None:
    await session.flush()
    await audit.record(session, actor, action, f"{actor.name} {what}", target="bot")


async def _allocate_channel(session: AsyncSession) -> str:
    await _state(session)
    counter = await session.scalar(
        update(BotState)
        .where(BotState.id == _STATE_ID)
        .values(channel_counter=BotState.channel_counter + 1)
        .returning(BotState.channel_counter)
    )
    assert counter is not None  # _state() made the row
    return str(CHANNEL_BASE + int(counter))


def _event(ticket: Ticket) -> dict[str, object]:
    return {
        "id": ticket.public_id,
        "user_id": ticket.user_id,
        "channel_id": ticket.channel_id,
        "status": "open" if ticket.status == OPEN else "closed",
    }


async def open_ticket(
    session: AsyncSession,
    account: AccountRef,
    user_name: str,
    actor: Actor,
    *,
    channel_id: str | None = None,
) -> Ticket:
    """Open a ticket for the member (in ``channel_id``, the Discord channel made for it,
    or a locally allocated one); Conflict if one is open already."""
    already = await session.scalar(
        select(Ticket.public_id).where(Ticket.account_id == account.id, Ticket.status == OPEN)
    )
    if already is not None:
        raise Conflict(f"{account.describe()} already has an open ticket", code="ticket_open")
    ticket = Ticket(
        public_id=secrets.token_hex(6),
        account_id=account.id,
        user_id=account.subject,
        user_name=user_name,
        channel_id=channel_id or await _allocate_channel(session),
        status=OPEN,
        message_count=0,
        created_at=utcnow(),
    )
    session.add(ticket)
    if not await flush_unless_duplicate(session):
        raise Conflict(f"{account.describe()} already has an open ticket", code="ticket_open")
    await announce(
        session,
        actor,
        "ticket.created",
        f"{actor.name} opened ticket {ticket.public_id} for {account.describe()}",
        _event(ticket),
        target_account_id=account.id,
        target=f"ticket:{ticket.public_id}",
    )
    return ticket


async def member_account(session: AsyncSession, discord_id: str, actor: Actor) -> AccountRef:
    """The account of a guild member by Discord id: only members of the community may
    have a ticket, and a member with no account yet gets one, named after them."""
    member = await community.guild_member(session, discord_id)
    if member is None:
        raise NotFound("user not found in community server", code="member_not_found")
    return await accounts.ensure_for_identity(
        session, Provider.DISCORD, discord_id, member.username, actor
    )


async def open_ticket_for_member(
    session: AsyncSession, discord_id: str, actor: Actor, *, channel_id: str | None = None
) -> Ticket:
    account = await member_account(session, discord_id, actor)
    member = await community.guild_member(session, discord_id)
    assert member is not None  # member_account found it
    return await open_ticket(session, account, member.username, actor, channel_id=channel_id)


async def open_ticket_of(session: AsyncSession, discord_id: str) -> Ticket | None:
    """The member's open ticket, if any."""
    return await session.scalar(
        select(Ticket).where(Ticket.user_id == discord_id, Ticket.status == OPEN)
    )


async def ticket_in_channel(session: AsyncSession, channel_id: str) -> Ticket | None:
    """The open ticket whose Discord channel this is, if any."""
    return await session.scalar(
        select(Ticket).where(Ticket.channel_id == channel_id, Ticket.status == OPEN)
    )


async def earlier_tickets(session: AsyncSession, discord_id: str) -> int:
    return (
        await session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.user_id == discord_id, Ticket.status == CLOSED)
        )
        or 0
    )


async def message_stored(session: AsyncSession, platform_id: str) -> bool:
    """Whether the platform message is in a transcript already (a replayed event)."""
    found = await session.scalar(
        select(TicketMessage.id).where(TicketMessage.platform_id == platform_id)
    )
    return found is not None


async def record_message(
    session: AsyncSession,
    ticket: Ticket,
    direction: str,
    author: tuple[str, str],
    content: str,
    *,
    platform_id: str | None = None,
) -> bool:
    """Add a message to the ticket's transcript; False (nothing stored) when the platform
    message ``platform_id`` is stored already (an event replayed after a resume)."""
    if platform_id is not None and await message_stored(session, platform_id):
        return False
    author_id, author_name = author
    session.add(
        TicketMessage(
            ticket_id=ticket.id,
            direction=direction,
            author_id=author_id,
            author_name=author_name[:100],
            content=content,
            platform_id=platform_id,
            created_at=utcnow(),
        )
    )
    if direction != NOTE:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(message_count=Ticket.message_count + 1)
        )
    await session.flush()
    await outbox.emit(
        session,
        "ticket.message",
        {
            **_event(ticket),
            "direction": direction,
            "author_id": author_id,
            "author_name": author_name,
            "content": content,
        },
    )
    return True


async def transcript(session: AsyncSession, public_id: str) -> tuple[Ticket, list[TicketMessage]]:
    ticket = await session.scalar(select(Ticket).where(Ticket.public_id == public_id))
    if ticket is None:
        raise NotFound(f"ticket {public_id} does not exist", code="ticket_not_found")
    rows = await session.scalars(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket.id).order_by(TicketMessage.id)
    )
    return ticket, list(rows)


def render_transcript(ticket: Ticket, messages: list[TicketMessage]) -> str:
    """A ticket's transcript as text: a header, then one line per message."""
    head = f"Ticket {ticket.public_id} with {ticket.user_name} ({ticket.user_id})"
    opened = ticket.created_at.strftime("%Y-%m-%d %H:%M UTC")
    lines = [head, f"opened {opened}"]
    marks = {INBOUND: "member", OUTBOUND: "staff", NOTE: "note"}
    for message in messages:
        when = message.created_at.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"[{when}] {marks[message.direction]} {message.author_name}: {message.content}"
        )
    if ticket.closed_at is not None:
        closed = ticket.closed_at.strftime("%Y-%m-%d %H:%M UTC")
        why = f": {ticket.close_reason}" if ticket.close_reason else ""
        lines.append(f"closed {closed}{why}")
    return "\n".join(lines)


async def close_ticket(
    session: AsyncSession,
    public_id: str,
    actor: Actor,
    *,
    reason: str | None = None,
    on_platform: bool = False,
) -> Ticket:
    """Close the ticket; ``on_platform`` also records the job that closes it on Discord."""
    ticket = await session.scalar(
        select(Ticket).where(Ticket.public_id == public_id).with_for_update()
    )
    if ticket is None:
        raise NotFound(f"ticket {public_id} does not exist", code="ticket_not_found")
    if ticket.status == CLOSED:
        raise Conflict(f"ticket {public_id} is already closed", code="ticket_closed")
    ticket.status, ticket.closed_at = CLOSED, utcnow()
    ticket.close_reason = reason[:500] if reason else None
    await session.flush()
    await announce(
        session,
        actor,
        "ticket.closed",
        f"{actor.name} closed ticket {public_id}" + (f": {reason}" if reason else ""),
        {**_event(ticket), "reason": ticket.close_reason},
        target_account_id=ticket.account_id,
        target=f"ticket:{public_id}",
    )
    if on_platform:
        await jobs.enqueue(session, CLOSE_JOB, {"ticket": public_id})
    return ticket


def _tickets_query(status_filter: int | None) -> Select[Ticket]:
    query = select(Ticket)
    if status_filter is not None:
        query = query.where(Ticket.status == status_filter)
    return query


async def tickets(
    session: AsyncSession, status_filter: int | None, limit: int, offset: int
) -> tuple[list[Ticket], int]:
    """``limit`` tickets from ``offset``, newest first, and how many there are in all."""
    query = _tickets_query(status_filter)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return await ticket_page(session, status_filter, limit, offset), total


async def ticket_page(
    session: AsyncSession, status_filter: int | None, limit: int, offset: int
) -> list[Ticket]:
    """``limit`` tickets from ``offset``, newest first, without counting them all (a
    list that reads one row more to know whether another page follows)."""
    query = _tickets_query(status_filter).order_by(Ticket.id.desc()).limit(limit).offset(offset)
    return list(await session.scalars(query))


async def tickets_of(session: AsyncSession, account_id: int, limit: int) -> list[Ticket]:
    """The account's newest ``limit`` tickets, open or closed."""
    return list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.account_id == account_id)
            .order_by(Ticket.id.desc())
            .limit(limit)
        )
    )


# ---- the bot's configuration ---------------------------------------------

CONFIG = community.Document(
    2,
    {
        "bot": {
            "token": "",
            "client_secret": "",
            "status": "DM for support",
            "welcome_message": "Thanks for your message! Staff will answer you here.",
            "close_message": "This ticket is now closed. Send a message to open a new one.",
            "enable_logs": True,
            "enable_features": False,
            "enable_panel": True,
        },
        "thread": {"embedded_message": True, "user_message_color": "5865f2"},
    },
)
SECRET_KEYS = frozenset({"token", "client_secret"})
MASK = "********"
SEAL_PURPOSE = "support:bot-config"
"""The purpose of the sealer (``Secrets.sealer``) that keeps the bot's secrets."""
SEALED_PREFIX = "sealed:v1:"
"""A stored secret's text: this prefix, then the Fernet token of the plaintext."""


def _masked(document: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _masked(value)
        if isinstance(value, dict)
        else (MASK if key in SECRET_KEYS and value else value)
        for key, value in document.items()
    }


def _without_masks(update: dict[str, Any]) -> dict[str, Any]:
    """A secret sent back as its mask means "keep it": drop it from the update."""
    return {
        key: _without_masks(value) if isinstance(value, dict) else value
        for key, value in update.items()
        if not (key in SECRET_KEYS and value == MASK)
    }


def _is_plain_secret(key: str, value: Any, *, stored: bool) -> bool:
    """A secret's text that must be sealed: any sent (even one that looks sealed), and a
    stored one not sealed yet (from before sealing). Empty text is no secret."""
    return (
        key in SECRET_KEYS
        and isinstance(value, str)
        and value != ""
        and not (stored and value.startswith(SEALED_PREFIX))
    )


def _sealed(document: dict[str, Any], sealer: Sealer, *, stored: bool) -> dict[str, Any]:
    return {
        key: _sealed(value, sealer, stored=stored)
        if isinstance(value, dict)
        else (
            SEALED_PREFIX + sealer.seal(value.encode()).decode("ascii")
            if _is_plain_secret(key, value, stored=stored)
            else value
        )
        for key, value in document.items()
    }


def _plain_secrets(document: dict[str, Any]) -> int:
    return sum(
        _plain_secrets(value)
        if isinstance(value, dict)
        else _is_plain_secret(key, value, stored=True)
        for key, value in document.items()
    )


async def config(session: AsyncSession) -> dict[str, Any]:
    """The configuration with secrets masked."""
    return _masked(await community.settings(session, CONFIG))


async def update_config(
    session: AsyncSession, update: Any, actor: Actor, sealer: Sealer
) -> dict[str, Any]:
    """Merge ``update`` into the configuration; secrets are sealed before they are stored,
    and any stored in plain text by an older version are sealed too."""
    if not isinstance(update, dict):
        raise Invalid("the configuration must be an object", field="config")
    bot = update.get("bot")
    if isinstance(bot, dict) and "status" in bot:
        _check_presence(bot["status"], "bot.status")
    document = await community.merge_settings(
        session,
        _sealed(_without_masks(update), sealer, stored=False),
        actor,
        event="settings.updated",
        document=CONFIG,
    )
    await seal_stored_secrets(session, sealer, actor)
    return _masked(document)


async def has_plain_secrets(session: AsyncSession) -> bool:
    row = await session.get(BotSettings, CONFIG.id)
    return row is not None and _plain_secrets(row.document or {}) > 0


async def seal_stored_secrets(session: AsyncSession, sealer: Sealer, actor: Actor) -> int:
    """Seal the secrets an older version stored in plain text; how many were."""
    row = await session.get(BotSettings, CONFIG.id, with_for_update=True)
    found = _plain_secrets(row.document or {}) if row is not None else 0
    if row is None or not found:
        return 0
    row.document = _sealed(row.document, sealer, stored=True)
    row.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor,
        "settings.sealed",
        f"{actor.name} sealed {found} bot secret{'s' if found != 1 else ''} kept in plain text",
        target="settings",
    )
    return found


async def bot_secret(session: AsyncSession, name: str, sealer: Sealer) -> str:
    """The plaintext of the bot's ``token`` or ``client_secret`` ("" when unset), for the
    code that talks to Discord; never for a face."""
    value = (await community.settings(session, CONFIG))["bot"].get(name, "")
    if isinstance(value, str) and value.startswith(SEALED_PREFIX):
        return sealer.open(value.removeprefix(SEALED_PREFIX).encode("ascii")).decode()
    return value if isinstance(value, str) else ""
