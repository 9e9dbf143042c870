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
    """Flush pending changes; False when a unique constraint refuses them, as it does
    when a concurrent transaction got there first.

    After False the transaction is spoiled (PostgreSQL aborts it), so the caller
    raises. A savepoint would not help: ``begin_nested`` flushes what is pending
    before it opens one. To create a row another request may be creating, use
    :func:`insert_ignore` and read it back instead.
    """
    try:
        await session.flush()
    except IntegrityError:
        return False
    return True


KEEP_ROW: dict[str, bool] = {"key_share": True}
"""``with_for_update`` for a row this transaction is about to refer to (an item
given to someone, a class assigned): ``FOR KEY SHARE`` on PostgreSQL, so a
concurrent delete waits for the commit, or, if it came first, the read finds the
row gone and the caller answers "not found" instead of breaking a foreign key.
SQLite runs writers one at a time and needs no lock."""
