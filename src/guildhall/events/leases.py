"""Leases: one holder per installation for work that must not run twice.

A long-lived connection (the Discord gateway) or a once-per-installation job is
held by the process whose lease is current. Taking and renewing are one atomic
upsert, so two processes racing for a free lease cannot both win; a holder that
dies stops renewing, and another takes the lease once it has expired.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.db.base import utcnow
from guildhall.db.sql import dialect_of
from guildhall.events.models import Lease


async def acquire(session: AsyncSession, name: str, holder: str, seconds: float) -> bool:
    """Take or renew ``name`` for ``holder`` for ``seconds``; False when another holds it."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    module = postgresql if dialect_of(session).name == "postgresql" else sqlite
    statement = module.insert(Lease).values(name=name, holder=holder, expires_at=until)
    statement = statement.on_conflict_do_update(
        index_elements=[Lease.name],
        set_={"holder": holder, "expires_at": until},
        where=(Lease.holder == holder) | (Lease.expires_at < now),
    )
    await session.execute(statement)
    return await session.scalar(select(Lease.holder).where(Lease.name == name)) == holder


async def release(session: AsyncSession, name: str, holder: str) -> None:
    """Give ``name`` up at once (a clean stop), so another process need not wait for expiry."""
    await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


async def current(session: AsyncSession, name: str) -> str | None:
    """Who holds ``name`` now, or None when it is free or expired."""
    row = await session.get(Lease, name)
    if row is None or row.expires_at < utcnow():
        return None
    return row.holder
