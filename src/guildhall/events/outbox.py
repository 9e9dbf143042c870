"""Core events: one row in the outbox per change worth announcing.

Services call :func:`emit` in the transaction that makes the change; the
event carries the SkyPANEL webhook shape ``{event, data, timestamp}`` so
every consumer (webhooks, live clients) reads one format.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Insert, bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.db.base import utcnow
from guildhall.db.prepared import Prepared
from guildhall.db.sql import rowcount
from guildhall.events.models import OutboxEvent
from guildhall.times import iso_millis

EVENTS = (
    # SkyPANEL's documented webhook events
    "server.created",
    "server.updated",
    "server.deleted",
    "invoice.created",
    "invoice.paid",
    "ticket.created",
    "ticket.updated",
    # and the rest of the core's
    "user.banned",
    "user.unbanned",
    "user.updated",
    "coins.changed",
    "session.status",
    "session.message",
    "ticket.message",
    "ticket.closed",
    "moderation.case_created",
    "moderation.case_cleared",
    "moderation.carried_out",
    "moderation.failed",
    "item.created",
    "item.updated",
    "item.deleted",
    "inventory.changed",
    "class.created",
    "class.updated",
    "class.deleted",
    "quest.created",
    "quest.updated",
    "quest.deleted",
    "quest.completed",
    "settings.updated",
    "maintenance.changed",
    "commands.reloaded",
    "cache.cleared",
)
"""Every event the core emits; webhook endpoints subscribe to these (or ``*``)."""

_table = OutboxEvent.__table__
_INSERT = Prepared(insert(_table))


def insert_from(
    source: FromClause, event: str, payload: ColumnElement[Any], in_order: ColumnElement[Any]
) -> Insert:
    """The events :func:`emit` writes, for a statement that computes the payload in SQL
    (``INSERT ... SELECT`` from ``source``, one event per row of it, their ids
    ``in_order``); ``created_at`` is bound by that name."""
    return insert(_table).from_select(
        ["created_at", "event", "payload"],
        select(
            bindparam("created_at", type_=_table.c.created_at.type),
            bindparam("event", event, type_=_table.c.event.type),
            payload,
        )
        .select_from(source)
        .order_by(in_order),
    )


async def emit(session: AsyncSession, event: str, data: dict[str, Any]) -> None:
    """Record ``event`` with ``data``; it exists only if the surrounding transaction commits."""
    await _INSERT.later(session, {"created_at": utcnow(), "event": event, "payload": data})


async def recent(
    session: AsyncSession, event: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest events first, as ``{event, data, timestamp}``."""
    query = select(OutboxEvent).order_by(OutboxEvent.id.desc()).limit(limit)
    if event is not None:
        query = query.where(OutboxEvent.event == event)
    return [
        {"event": row.event, "data": row.payload, "timestamp": row.created_at.isoformat()}
        for row in await session.scalars(query)
    ]


async def committed_after(session: AsyncSession, after: int, limit: int) -> list[dict[str, Any]]:
    """Events with an id above ``after``, oldest first, at most ``limit``: a reader that
    asks again from the last id it got misses none (the console's live feed)."""
    query = select(OutboxEvent).where(OutboxEvent.id > after).order_by(OutboxEvent.id).limit(limit)
    return [
        {
            "id": row.id,
            "event": row.event,
            "data": row.payload,
            "timestamp": iso_millis(row.created_at),
        }
        for row in await session.scalars(query)
    ]


async def newest_id(session: AsyncSession) -> int:
    """The id of the newest event (0: none yet)."""
    return int(await session.scalar(select(func.max(OutboxEvent.id))) or 0)


async def prune(session: AsyncSession, older_than: timedelta) -> int:
    """Drop dispatched events older than ``older_than``; the outbox is a queue, not an archive
    (the audit log is the record). Returns how many went."""
    cutoff = utcnow() - older_than
    result = await session.execute(
        delete(OutboxEvent).where(
            OutboxEvent.dispatched_at.is_not(None), OutboxEvent.created_at < cutoff
        )
    )
    return rowcount(result) or 0
