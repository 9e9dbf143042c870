"""Moderation cases: ``CASE-0001``, ``CASE-0002``... numbered by the database.

The number is the row's identity, so concurrent creates never share one and
no number is ever given twice. A case is cleared (resolved) once: the clear
is a conditional UPDATE on ``active``, so a second or concurrent clear is a
conflict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.service import find_by_identity
from guildhall.core.actor import Actor
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.moderation.models import ModerationCase
from guildhall.db.base import utcnow
from guildhall.events.announce import announce

TYPES = ("warn", "timeout", "kick", "ban", "note", "prune")
CASE_ID = re.compile(r"CASE-(\d{4,18})")


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


async def create(session: AsyncSession, new: NewCase, actor: Actor) -> ModerationCase:
    if new.type not in TYPES:
        raise Invalid(f"type must be one of {', '.join(TYPES)}", field="type")
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
    return row


async def get(session: AsyncSession, label: str) -> ModerationCase:
    row = await session.get(ModerationCase, case_number(label))
    if row is None:
        raise NotFound(f"case {label} does not exist", code="case_not_found")
    return row


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
    query = select(ModerationCase)
    if user_id:
        query = query.where(ModerationCase.user_id == user_id)
    if moderator_id:
        query = query.where(ModerationCase.moderator_id == moderator_id)
    if case_type:
        query = query.where(ModerationCase.type == case_type)
    if active is not None:
        query = query.where(ModerationCase.active == active)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(ModerationCase.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def clear(
    session: AsyncSession,
    label: str,
    actor: Actor,
    *,
    cleared_by: str,
    cleared_by_name: str = "",
    reason: str = "",
) -> ModerationCase:
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
    if not changed.rowcount:
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
    return row
