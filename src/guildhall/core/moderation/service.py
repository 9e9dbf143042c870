"""Bans. An expired ban stops counting by itself: "active" is computed from
``expires_at`` at the moment of asking, never by a job that has to run first.

A ban ends the account's panel sessions in its own transaction, so a banned
member's open browser loses the Rustmail panel at once, and records that its
game servers are to be suspended on the panel (``core/hosting/suspension.py``); every face that logs
an account in (SkyPANEL's login, Rustmail's OAuth callback) refuses one under
a ban in force.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.access import panel
from guildhall.core.accounts.models import Account, Identity, Provider
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.errors import Invalid
from guildhall.core.hosting import suspension
from guildhall.core.moderation.models import Ban
from guildhall.core.text import NUL
from guildhall.db.base import utcnow
from guildhall.db.sql import rowcount
from guildhall.events import audit, outbox

DEFAULT_REASON = "No reason provided"


def _active(now: datetime) -> ColumnElement[bool]:
    return (Ban.lifted_at.is_(None)) & (or_(Ban.expires_at.is_(None), Ban.expires_at > now))


def in_force(ban: Ban, now: datetime) -> bool:
    """What :func:`_active` asks of a row, asked of one already read."""
    return ban.lifted_at is None and (ban.expires_at is None or ban.expires_at > now)


async def active_ban(session: AsyncSession, account_id: int) -> Ban | None:
    return await session.scalar(
        select(Ban)
        .where(Ban.account_id == account_id, _active(utcnow()))
        .order_by(Ban.id.desc())
        .limit(1)
    )


async def bans_of(session: AsyncSession, account_id: int, limit: int) -> list[Ban]:
    """The account's newest ``limit`` bans, in force or not: its ban history. A ban in
    force is the newest one (a ban lifts those before it): ``in_force(bans[0], now)``."""
    return list(
        await session.scalars(
            select(Ban).where(Ban.account_id == account_id).order_by(Ban.id.desc()).limit(limit)
        )
    )


async def _lift(session: AsyncSession, account_id: int, actor: Actor, now: datetime) -> int:
    """Lift the account's bans in force; how many. The account row is locked first,
    so bans of one account take turns: on PostgreSQL each sees the ban the one
    before it committed, and lifts it, instead of leaving several in force."""
    await session.execute(select(Account.id).where(Account.id == account_id).with_for_update())
    result = await session.execute(
        update(Ban)
        .where(Ban.account_id == account_id, _active(now))
        .values(lifted_at=now, lifted_by=str(actor))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) or 0


async def ban(
    session: AsyncSession,
    account: AccountRef,
    *,
    actor: Actor,
    reason: str | None = None,
    expires_at: datetime | None = None,
) -> Ban:
    """Ban an account, replacing any ban it already has; ``expires_at=None`` is permanent."""
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise Invalid("the expiration must be in the future", code="expiry_in_past")
    reason = (reason or "").replace(NUL, "").strip() or DEFAULT_REASON
    if len(reason) > 500:
        raise Invalid("the reason must be at most 500 characters", field="reason")
    await _lift(session, account.id, actor, now)
    entry = Ban(
        account_id=account.id,
        reason=reason,
        expires_at=expires_at,
        created_at=now,
        actor=str(actor),
    )
    session.add(entry)
    await session.flush()
    ended = await panel.end_sessions(session, account.id)
    await suspension.recheck(session, account.id)
    until = f"until {expires_at.isoformat()}" if expires_at else "permanently"
    await outbox.emit(
        session,
        "user.banned",
        {
            "userId": account.subject,
            "reason": reason,
            "expiresAt": expires_at.isoformat() if expires_at else None,
        },
    )
    await audit.record(
        session,
        actor,
        "user.banned",
        f"{actor.name} banned {account.describe()} {until}: {reason}"
        + (f" ({ended} panel session{'s' if ended != 1 else ''} ended)" if ended else ""),
        target_account_id=account.id,
        target=f"account:{account.id}",
    )
    return entry


async def unban(session: AsyncSession, account: AccountRef, *, actor: Actor) -> bool:
    """Lift the account's ban; False (and nothing written) if it had none."""
    if not await _lift(session, account.id, actor, utcnow()):
        return False
    await suspension.recheck(session, account.id)
    await outbox.emit(session, "user.unbanned", {"userId": account.subject})
    await audit.record(
        session,
        actor,
        "user.unbanned",
        f"{actor.name} unbanned {account.describe()}",
        target_account_id=account.id,
        target=f"account:{account.id}",
    )
    return True


async def announce_expired(session: AsyncSession, actor: Actor) -> int:
    """Announce (``user.unbanned``, and an audit row) each ban that ran out by itself.

    The ban stopped counting at its expiry whatever this job does; this only
    tells webhooks and live clients, once: rows are locked and skipped by
    other processes, and marked announced.
    """
    now = utcnow()
    expired = list(
        await session.scalars(
            select(Ban)
            .where(
                Ban.lifted_at.is_(None),
                Ban.expires_at.is_not(None),
                Ban.expires_at <= now,
                Ban.expiry_announced_at.is_(None),
            )
            .order_by(Ban.id)
            .limit(500)
            .with_for_update(skip_locked=True)
        )
    )
    for entry in expired:
        entry.expiry_announced_at = now
        await suspension.recheck(session, entry.account_id)
        subject = await session.scalar(
            select(Identity.subject).where(
                Identity.account_id == entry.account_id,
                Identity.provider == Provider.DISCORD.value,
            )
        ) or await session.scalar(select(Account.uuid).where(Account.id == entry.account_id))
        await outbox.emit(session, "user.unbanned", {"userId": subject, "reason": "expired"})
        await audit.record(
            session,
            actor,
            "user.unbanned",
            f"The ban of account #{entry.account_id} ({subject}) expired",
            target_account_id=entry.account_id,
            target=f"account:{entry.account_id}",
        )
    await session.flush()
    return len(expired)
