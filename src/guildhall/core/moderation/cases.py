"""Moderation cases: ``CASE-0001``, ``CASE-0002``... numbered by the database.

The number is the row's identity, so concurrent creates never share one and
no number is ever given twice. A case is cleared (resolved) once: the clear
is a conditional UPDATE on ``active``, so a second or concurrent clear is a
conflict.

With the Discord bot running, a timeout, kick or ban case is carried out on
Discord (``on_platform``): the create records a platform job in its own
transaction, the bot carries it out after commit (``connectors/discord/
moderation.py``) and the case records the outcome in its metadata under
``discord`` (``{"outcome": "done"|"failed", "detail": ...}``) and announced
(``moderation.carried_out`` or ``moderation.failed``): a failure (a missing
permission, a member who left) is recorded, never hidden. Clearing a
ban or timeout case lifts it the same way. A timeout lasts the case's
``metadata.duration`` ("24h", "30m", "7d", "1h30m", or a number of seconds;
24 hours when absent, at most Discord's 28 days), checked when the case is to
be carried out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.models import Provider
from guildhall.core.accounts.service import find_by_identity, list_identities
from guildhall.core.actor import Actor
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.moderation.models import ModerationCase
from guildhall.db.base import utcnow
from guildhall.db.sql import rowcount
from guildhall.events import jobs
from guildhall.events.announce import announce

TYPES = ("warn", "timeout", "kick", "ban", "note", "prune")
CASE_ID = re.compile(r"CASE-(\d{4,18})")
CARRIED_OUT = ("timeout", "kick", "ban")
LIFTED = ("timeout", "ban")
ACTION_JOB = "discord.case_action"
LIFT_JOB = "discord.case_lift"
DEFAULT_TIMEOUT = timedelta(hours=24)
MAX_TIMEOUT = timedelta(days=28)
MAX_MEMBER_ID = 32
"""A case's user and moderator ids are stored in 32 characters (Discord ids are 20 at most)."""
_DURATION = re.compile(
    r"(?:(\d{1,6})w)?(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,9})s)?"
)


def timeout_length(metadata: dict[str, Any] | None) -> timedelta:
    """How long a timeout case lasts: ``metadata.duration``, or 24 hours."""
    text = (metadata or {}).get("duration")
    if text is None:
        return DEFAULT_TIMEOUT
    if isinstance(text, int) and not isinstance(text, bool):
        text = f"{text}s"  # a number is seconds
    match = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise Invalid(
            'metadata.duration must be like "30m", "24h", "7d" or "1h30m"', field="metadata"
        )
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    length = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not timedelta(0) < length <= MAX_TIMEOUT:
        raise Invalid("a timeout lasts more than 0 seconds and at most 28 days", field="metadata")
    return length


def case_label(number: int) -> str:
    return f"CASE-{number:04d}"


def case_number(label: str) -> int:
    match = CASE_ID.fullmatch(label.strip().upper())
    if match is None:
        raise NotFound(f"case {label} does not exist", code="case_not_found")
    return int(match.group(1))


@dataclass
class NewCase:
    type: str
    user_id: str
    moderator_id: str
    username: str = ""
    moderator_name: str = ""
    reason: str = ""
    metadata: dict[str, Any] | None = None
    platform_ref: str | None = None


async def create(
    session: AsyncSession, new: NewCase, actor: Actor, *, on_platform: bool = False
) -> ModerationCase:
    """Open a case; ``on_platform`` also records the job that carries it out on Discord."""
    if new.type not in TYPES:
        raise Invalid(f"type must be one of {', '.join(TYPES)}", field="type")
    if new.type == "timeout" and on_platform:
        timeout_length(new.metadata)  # what Discord will be asked for must make sense
    target = await find_by_identity(session, new.user_id)
    row = ModerationCase(
        type=new.type,
        user_id=new.user_id,
        username=new.username,
        account_id=target.id if target else None,
        moderator_id=new.moderator_id,
        moderator_name=new.moderator_name,
        reason=new.reason,
        details=new.metadata or {},
        platform_ref=new.platform_ref,
        active=True,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    label = case_label(row.id)
    await announce(
        session,
        actor,
        "moderation.case_created",
        f"{new.moderator_name or new.moderator_id} opened {label} ({new.type}) against "
        f"user {new.username or new.user_id} ({new.user_id}): {new.reason or 'no reason'}",
        {"caseId": label, "type": new.type, "userId": new.user_id},
        target_account_id=row.account_id,
        target=f"case:{label}",
    )
    if on_platform and new.type in CARRIED_OUT:
        await jobs.enqueue(session, ACTION_JOB, {"case": row.id})
    return row


async def record_outcome(
    session: AsyncSession, number: int, what: str, outcome: str, detail: str, actor: Actor
) -> None:
    """What Discord made of a case (``what``: carried out or lifted): kept in its metadata
    under ``discord``, with an audit row."""
    row = await session.get(ModerationCase, number, with_for_update=True)
    if row is None:
        return
    row.details = {
        **(row.details or {}),
        "discord": {
            "action": what,
            "outcome": outcome,
            "detail": detail,
            "at": utcnow().isoformat(),
        },
    }
    await session.flush()
    label = case_label(number)
    await announce(
        session,
        actor,
        "moderation.carried_out" if outcome == "done" else "moderation.failed",
        f"{actor.name} {what} {label} ({row.type}) on Discord: {outcome}; {detail}",
        {
            "caseId": label,
            "type": row.type,
            "userId": row.user_id,
            "action": what,
            "outcome": outcome,
            "detail": detail,
        },
        target_account_id=row.account_id,
        target=f"case:{label}",
    )


async def from_platform(session: AsyncSession, ref: str) -> ModerationCase | None:
    """The case already made from a platform event (events may be replayed)."""
    return await session.scalar(select(ModerationCase).where(ModerationCase.platform_ref == ref))


async def get(session: AsyncSession, label: str) -> ModerationCase:
    row = await session.get(ModerationCase, case_number(label))
    if row is None:
        raise NotFound(f"case {label} does not exist", code="case_not_found")
    return row


def _search_query(
    user_id: str | None, moderator_id: str | None, case_type: str | None, active: bool | None
) -> Select[ModerationCase]:
    query = select(ModerationCase)
    if user_id:
        query = query.where(ModerationCase.user_id == user_id)
    if moderator_id:
        query = query.where(ModerationCase.moderator_id == moderator_id)
    if case_type:
        query = query.where(ModerationCase.type == case_type)
    if active is not None:
        query = query.where(ModerationCase.active == active)
    return query


async def search(
    session: AsyncSession,
    *,
    user_id: str | None,
    moderator_id: str | None,
    case_type: str | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[ModerationCase], int]:
    """``limit`` matching cases from ``offset``, newest first, and how many match in all."""
    query = _search_query(user_id, moderator_id, case_type, active)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(ModerationCase.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def search_page(
    session: AsyncSession,
    *,
    user_id: str | None,
    case_type: str | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> list[ModerationCase]:
    """``limit`` matching cases from ``offset``, newest first, without counting them all
    (a list that reads one row more to know whether another page follows)."""
    query = _search_query(user_id, None, case_type, active)
    rows = await session.scalars(
        query.order_by(ModerationCase.id.desc()).limit(limit).offset(offset)
    )
    return list(rows)


async def moderator_id(session: AsyncSession, account_id: int) -> str:
    """The id a case names a moderator by who acts through Guildhall itself (the console):
    the Discord id linked to their account, as Aurora's clients name moderators, else
    ``console:<account id>``. Either fits the column's :data:`MAX_MEMBER_ID` characters."""
    for identity in await list_identities(session, account_id):
        if identity.provider == Provider.DISCORD.value and len(identity.subject) <= MAX_MEMBER_ID:
            return identity.subject
    return f"console:{account_id}"


async def clear(
    session: AsyncSession,
    label: str,
    actor: Actor,
    *,
    cleared_by: str,
    cleared_by_name: str = "",
    reason: str = "",
    on_platform: bool = False,
) -> ModerationCase:
    """Clear a case; ``on_platform`` also lifts a ban or timeout on Discord."""
    number = case_number(label)
    changed = await session.execute(
        update(ModerationCase)
        .where(ModerationCase.id == number, ModerationCase.active.is_(True))
        .values(
            active=False,
            resolved_at=utcnow(),
            resolved_by=cleared_by,
            resolved_by_name=cleared_by_name,
            resolved_reason=reason,
        )
        .execution_options(synchronize_session=False)
    )
    row = await session.get(ModerationCase, number, populate_existing=True)
    if row is None:
        raise NotFound(f"case {label} does not exist", code="case_not_found")
    if not rowcount(changed):
        raise Conflict(f"{case_label(number)} is already cleared", code="case_cleared")
    await announce(
        session,
        actor,
        "moderation.case_cleared",
        f"{cleared_by_name or cleared_by} cleared {case_label(number)}: {reason or 'no reason'}",
        {"caseId": case_label(number), "userId": row.user_id},
        target_account_id=row.account_id,
        target=f"case:{case_label(number)}",
    )
    if on_platform and row.type in LIFTED:
        await jobs.enqueue(session, LIFT_JOB, {"case": row.id, "lift": True})
    return row
