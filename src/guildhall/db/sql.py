"""Small statements both databases need but spell differently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any]) -> None:
    """INSERT a row unless one with the same key exists (ON CONFLICT DO NOTHING)."""
    dialect = session.bind.dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    await session.execute(module.insert(table).values(**values).on_conflict_do_nothing())


async def flush_unless_duplicate(session: AsyncSession) -> bool:
    """Flush pending changes in a savepoint; False (and they are undone) when a unique
    constraint refuses them, as it does when a concurrent transaction got there first."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        return False
    return True
