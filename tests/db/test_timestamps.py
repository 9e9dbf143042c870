"""Timestamps go in aware, are kept in UTC, and come out aware UTC, on both databases."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from guildhall.db.engine import Database
from guildhall.events.models import OutboxEvent

EAST = timezone(timedelta(hours=5, minutes=30))


async def _store(database: Database, *moments: datetime) -> list[int]:
    async with database.unit_of_work() as session:
        rows = [OutboxEvent(created_at=at, event="user.updated", payload={}) for at in moments]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def test_timestamps_come_back_as_the_same_moment_in_utc(database_url: str) -> None:
    database = Database(database_url)
    moments = [
        datetime(2026, 3, 4, 1, 2, 3, 456789, tzinfo=EAST),
        datetime(2026, 3, 4, 1, 2, 3, tzinfo=UTC),  # no microseconds
    ]
    try:
        ids = await _store(database, *moments)
        async with database.unit_of_work(write=False) as session:
            stored = await session.scalars(
                select(OutboxEvent.created_at)
                .where(OutboxEvent.id.in_(ids))
                .order_by(OutboxEvent.id)
            )
            back = list(stored)
            # Compared in the database: the earlier moment sorts first although its
            # local clock reads the same hour.
            earlier = await session.scalar(
                select(OutboxEvent.id).where(
                    OutboxEvent.id.in_(ids), OutboxEvent.created_at < moments[1]
                )
            )
    finally:
        await database.dispose()
    assert back == moments
    assert all(moment.tzinfo is UTC for moment in back)
    assert earlier == ids[0]


async def test_sqlite_keeps_timestamps_as_utc_text_in_sqlalchemys_format(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """The stored text is what SQLAlchemy's SQLite DATETIME writes, so rows written
    before and after read, sort and compare alike."""
    path = tmp_path / "guildhall.db"
    path.write_bytes(sqlite_template.read_bytes())
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        (row_id,) = await _store(database, datetime(2026, 3, 4, 1, 2, 3, tzinfo=EAST))
    finally:
        await database.dispose()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        (text,) = connection.execute(
            "SELECT created_at FROM event_outbox WHERE id = ?", (row_id,)
        ).fetchone()
    assert text == "2026-03-03 19:32:03.000000"


async def test_a_naive_timestamp_is_refused_and_nothing_is_stored(database_url: str) -> None:
    database = Database(database_url)
    try:
        with pytest.raises(StatementError, match="naive datetimes are not stored"):
            await _store(database, datetime(2026, 3, 4, 1, 2, 3))
        async with database.unit_of_work(write=False) as session:
            count = len(list(await session.scalars(select(OutboxEvent.id))))
    finally:
        await database.dispose()
    assert count == 0


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-03-03 19:32:03", datetime(2026, 3, 3, 19, 32, 3, tzinfo=UTC)),
        ("2026-03-03 19:32:03.250000", datetime(2026, 3, 3, 19, 32, 3, 250000, tzinfo=UTC)),
        ("2026-03-04T01:02:03+05:30", datetime(2026, 3, 3, 19, 32, 3, tzinfo=UTC)),
        ("2026-03-03", datetime(2026, 3, 3, tzinfo=UTC)),
    ],
)
async def test_sqlite_text_written_by_other_tools_reads_as_utc(
    sqlite_template: Path, tmp_path: Path, text: str, moment: datetime
) -> None:
    """Rows an operator edited with the sqlite3 shell: without microseconds, or with
    an offset of their own, they still come back as the aware UTC moment they name."""
    path = tmp_path / "guildhall.db"
    path.write_bytes(sqlite_template.read_bytes())
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        (row_id,) = await _store(database, datetime(2020, 1, 1, tzinfo=UTC))
        with contextlib.closing(sqlite3.connect(path)) as connection, connection:
            connection.execute(
                "UPDATE event_outbox SET created_at = ? WHERE id = ?", (text, row_id)
            )
        async with database.unit_of_work(write=False) as session:
            back = await session.scalar(
                select(OutboxEvent.created_at).where(OutboxEvent.id == row_id)
            )
    finally:
        await database.dispose()
    assert back == moment
    assert back.tzinfo is UTC
