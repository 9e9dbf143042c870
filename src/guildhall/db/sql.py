"""Small statements both databases need but spell differently."""

from __future__ import annotations

import sys
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Result, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_of(session: AsyncSession) -> Dialect:
    """The dialect of the database behind ``session``. Every session here is made bound
    to a connection (see :mod:`guildhall.db.engine`)."""
    assert session.bind is not None, "the session is bound to no connection"
    return session.bind.dialect


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows the UPDATE or DELETE that gave ``result`` matched. Executing one
    returns a CursorResult, which ``AsyncSession.execute``'s signature does not say."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


async def insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any]) -> None:
    """INSERT a row unless one with the same key exists (ON CONFLICT DO NOTHING)."""
    dialect = dialect_of(session).name
    module = postgresql if dialect == "postgresql" else sqlite
    await session.execute(module.insert(table).values(**values).on_conflict_do_nothing())


async def upsert(
    session: AsyncSession, table: Table, values: dict[str, Any], keys: tuple[str, ...]
) -> None:
    """INSERT a row, or UPDATE the one with the same ``keys`` (ON CONFLICT DO UPDATE):
    safe when concurrent transactions write the same row."""
    dialect = dialect_of(session).name
    module = postgresql if dialect == "postgresql" else sqlite
    changes = {name: value for name, value in values.items() if name not in keys}
    statement = module.insert(table).values(**values)
    await session.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))


Model = TypeVar("Model")


async def ensure_row(
    session: AsyncSession, model: type[Model], values: dict[str, Any], *, lock: bool = True
) -> Model:
    """The row of ``model`` whose primary key ``values`` holds, made from ``values`` and
    the columns' defaults if there is none yet, and locked when ``lock``.

    Two requests may both find none and both insert: the second insert gives way
    (ON CONFLICT DO NOTHING) and both read the one row back. Flushing an added
    object would instead spoil the second transaction on PostgreSQL.
    """
    table = model.__table__  # type: ignore[attr-defined]
    key = tuple(values[column.key] for column in table.primary_key)
    row = await session.get(model, key, with_for_update=lock)
    if row is None:
        await insert_ignore(session, table, values)
        row = await session.get(model, key, with_for_update=lock, populate_existing=True)
        assert row is not None
    return row


async def flush_unless_duplicate(session: AsyncSession) -> bool:
    """Flush pending changes; False when a unique constraint refuses them, as it does
    when a concurrent transaction got there first.

    After False the transaction is spoiled (PostgreSQL aborts it), so the caller
    raises. A savepoint would not help: ``begin_nested`` flushes what is pending
    before it opens one. To create a row another request may be creating, use
    :func:`ensure_row`.
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


_SURROGATES = range(0xD800, 0xE000)


def prefix_end(prefix: str) -> str | None:
    """The least text above every text that starts with ``prefix`` (None: there is none),
    so ``prefix <= x < prefix_end(prefix)`` is a range an index serves: on SQLite, whose
    LIKE ignores case and skips indexes, and on PostgreSQL in the "C" collation.
    No text holds a lone surrogate, so the character after U+D7FF is U+E000."""
    following = ord(prefix[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    if following > sys.maxunicode:
        return None
    return prefix[:-1] + chr(following)
