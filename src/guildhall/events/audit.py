"""The audit log: every change writes one row, in the transaction that makes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Insert, bindparam, insert, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from guildhall.core.actor import Actor
from guildhall.core.errors import is_digits
from guildhall.db.base import utcnow
from guildhall.db.prepared import Prepared
from guildhall.db.sql import dialect_of, prefix_end
from guildhall.events.models import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditRecord:
    created_at: datetime
    actor: str
    action: str
    target: str
    message: str


_table = AuditEntry.__table__
_INSERT = Prepared(insert(_table))  # every change runs it


def insert_from(
    source: FromClause,
    *,
    actor: ColumnElement[Any],
    actor_account_id: ColumnElement[Any],
    target_account_id: ColumnElement[Any],
    target: ColumnElement[Any],
    message: ColumnElement[Any],
    in_order: ColumnElement[Any],
) -> Insert:
    """The rows :func:`record` writes, for a statement that computes them in SQL
    (``INSERT ... SELECT`` from ``source``, one row per row of it, ``in_order``);
    ``created_at`` and ``action`` are bound by those names, as :func:`record` binds
    them."""
    return insert(_table).from_select(
        [
            "created_at",
            "action",
            "actor",
            "actor_account_id",
            "target_account_id",
            "target",
            "message",
        ],
        select(
            *(bindparam(name, type_=_table.c[name].type) for name in ("created_at", "action")),
            actor,
            actor_account_id,
            target_account_id,
            target,
            message,
        )
        .select_from(source)
        .order_by(in_order),
    )


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    message: str,
    *,
    target_account_id: int | None = None,
    target: str = "",
) -> None:
    """Write one audit row; it commits or rolls back with the change it describes."""
    await _INSERT.later(
        session,
        {
            "created_at": utcnow(),
            "actor": str(actor),
            "actor_account_id": actor.account_id,
            "action": action,
            "target_account_id": target_account_id,
            "target": target,
            "message": message,
        },
    )


async def for_account(session: AsyncSession, account_id: int, limit: int) -> list[AuditRecord]:
    """What was done to or by an account, newest first.

    Matched by account id, never by text, so user 12 never sees user 123's rows.
    """
    rows = await session.execute(
        select(
            AuditEntry.created_at,
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.target,
            AuditEntry.message,
        )
        .where(
            or_(
                AuditEntry.target_account_id == account_id,
                AuditEntry.actor_account_id == account_id,
            )
        )
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return [AuditRecord(*row) for row in rows]


PREFIX_ENDINGS = ("*", ".", ":")
"""A filter value ending in one of these is a prefix (``coins.``, ``account:console:``,
``webhook*``); any other value must match exactly, so ``account:1`` is not ``account:12``."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the trail is narrowed to; an empty text or None does not narrow it.

    ``subject`` is a target (``account:12``, ``webhook:3``) or, all digits, the id of
    the account the rows are about. ``since`` is inclusive and ``until`` exclusive.
    """

    actor: str = ""
    subject: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditLine:
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str
    target_account_id: int | None
    message: str


def _text_filter(
    column: InstrumentedAttribute[str], value: str, dialect: str
) -> ColumnElement[bool]:
    """Exact, or a prefix, compared byte for byte on both databases and served by the
    column's index: on PostgreSQL a LIKE on its pattern-ops index, on
    SQLite (whose LIKE ignores case and skips indexes) a range on its binary order."""
    if not value.endswith(PREFIX_ENDINGS):
        return column == value
    prefix = value.removesuffix("*")
    if not prefix:
        return true()
    if dialect == "postgresql":
        return column.startswith(prefix, autoescape=True)
    end = prefix_end(prefix)
    return column >= prefix if end is None else (column >= prefix) & (column < end)


async def search(
    session: AsyncSession, where: AuditFilter, *, limit: int, offset: int = 0
) -> list[AuditLine]:
    """The trail newest first (by time, then id), narrowed in the database; ``limit``
    rows from ``offset``.

    Each filter has an index that also holds the order (``(actor, created_at, id)``,
    ``(action, ...)``, ``(target, ...)``, ``(created_at, id)``; an account id uses
    ``(target_account_id, id)``), so a rare value or a past time range is found
    without reading the table.
    """
    dialect = dialect_of(session).name
    query = select(
        AuditEntry.id,
        AuditEntry.created_at,
        AuditEntry.actor,
        AuditEntry.action,
        AuditEntry.target,
        AuditEntry.target_account_id,
        AuditEntry.message,
    )
    if where.actor:
        query = query.where(_text_filter(AuditEntry.actor, where.actor, dialect))
    if where.action:
        query = query.where(_text_filter(AuditEntry.action, where.action, dialect))
    if is_digits(where.subject):
        query = query.where(AuditEntry.target_account_id == int(where.subject))
    elif where.subject:
        query = query.where(_text_filter(AuditEntry.target, where.subject, dialect))
    if where.since is not None:
        query = query.where(AuditEntry.created_at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.created_at < where.until)
    newest_first = query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    rows = await session.execute(newest_first.limit(limit).offset(offset))
    return [AuditLine(*row) for row in rows]
