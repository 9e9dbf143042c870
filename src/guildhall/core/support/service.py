"""Tickets and the bot runtime.

The bot runtime owns the bot's state (online, uptime, presence, guild count)
in the database, so every server process reports the same bot; start, stop,
restart and presence change it and are audited. This is the built-in local
runtime: it allocates a ticket's channel id itself, from a database counter
(one atomic UPDATE ... RETURNING, safe under concurrency). A Discord
connector will later open real channels instead.

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

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.community import service as community
from guildhall.core.community.models import BotSettings
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.support.models import CLOSED, OPEN, BotState, Ticket
from guildhall.db.base import utcnow
from guildhall.db.sql import ensure_row, flush_unless_duplicate
from guildhall.events import audit
from guildhall.events.announce import announce
from guildhall.secrets import Sealer

_STATE_ID = 1
CHANNEL_BASE = 900_000_000_000_000_000
MAX_PRESENCE = 128


@dataclass(frozen=True, slots=True)
class BotStatus:
    online: bool
    uptime: int
    presence: str
    guild_count: int
    ticket_count: int


async def _state(session: AsyncSession, *, lock: bool = False) -> BotState:
    return await ensure_row(
        session,
        BotState,
        {"id": _STATE_ID, "online": False, "channel_counter": 0, "guild_count": 1},
        lock=lock,
    )


async def status(session: AsyncSession) -> BotStatus:
    state = await session.get(BotState, _STATE_ID)
    open_tickets = await session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.status == OPEN)
    )
    presence = (await community.settings(session, CONFIG))["bot"]["status"]
    if state is None:
        return BotStatus(False, 0, presence, 1, open_tickets or 0)
    uptime = (
        int((utcnow() - state.started_at).total_seconds())
        if state.online and state.started_at
        else 0
    )
    return BotStatus(state.online, uptime, presence, state.guild_count, open_tickets or 0)


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
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_PRESENCE or "\x00" in text:
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
    return str(CHANNEL_BASE + int(counter))


def _event(ticket: Ticket) -> dict[str, object]:
    return {
        "id": ticket.public_id,
        "user_id": ticket.user_id,
        "channel_id": ticket.channel_id,
        "status": "open" if ticket.status == OPEN else "closed",
    }


async def open_ticket(
    session: AsyncSession, account: AccountRef, user_name: str, actor: Actor
) -> Ticket:
    """Open a ticket for the member; Conflict if one is open already."""
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
        channel_id=await _allocate_channel(session),
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


async def open_ticket_for_member(session: AsyncSession, discord_id: str, actor: Actor) -> Ticket:
    """Open a ticket for a guild member by Discord id: only members of the community may
    have one, and a member with no account yet gets one, named after them."""
    member = await community.guild_member(session, discord_id)
    if member is None:
        raise NotFound("user not found in community server", code="member_not_found")
    account = await accounts.ensure_for_identity(
        session, Provider.DISCORD, discord_id, member.username, actor
    )
    return await open_ticket(session, account, member.username, actor)


async def close_ticket(session: AsyncSession, public_id: str, actor: Actor) -> Ticket:
    ticket = await session.scalar(
        select(Ticket).where(Ticket.public_id == public_id).with_for_update()
    )
    if ticket is None:
        raise NotFound(f"ticket {public_id} does not exist", code="ticket_not_found")
    if ticket.status == CLOSED:
        raise Conflict(f"ticket {public_id} is already closed", code="ticket_closed")
    ticket.status, ticket.closed_at = CLOSED, utcnow()
    await session.flush()
    await announce(
        session,
        actor,
        "ticket.updated",
        f"{actor.name} closed ticket {public_id}",
        _event(ticket),
        target_account_id=ticket.account_id,
        target=f"ticket:{public_id}",
    )
    return ticket


async def tickets(
    session: AsyncSession, status_filter: int | None, limit: int, offset: int
) -> tuple[list[Ticket], int]:
    query = select(Ticket)
    if status_filter is not None:
        query = query.where(Ticket.status == status_filter)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Ticket.id.desc()).limit(limit).offset(offset))
    return list(rows), total


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
