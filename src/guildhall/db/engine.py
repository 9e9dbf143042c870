"""Engines and the unit of work.

One request, one transaction: :meth:`Database.unit_of_work` commits when the
block ends and rolls back when it raises. Services only ``flush()``.

SQLite allows one writer at a time. Letting many connections race for the
write lock makes SQLite sleep and retry (slow, and a deferred transaction
that reads then writes can fail outright), so on SQLite writes go through a
one-connection pool whose transactions start with ``BEGIN IMMEDIATE``:
writers queue in order inside the process, and readers use a separate pool
that WAL lets run beside the writer. SQLite calls run on the event loop's
thread (``sqlite_inline``); its connections start no transaction of their
own, so the ``BEGIN`` is ours. On PostgreSQL both are one engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from guildhall.db import sqlite_inline

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)


def _sqlite_engine(url: str, *, pool_size: int, begin: str) -> AsyncEngine:
    path = make_url(url).database or ":memory:"
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        async_creator=lambda: sqlite_inline.connect(path),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Straight to the driver: a statement through SQLAlchemy costs ~200 µs.
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite_inline.Connection)
        driver.begin(begin)

    return engine


class Database:
    """The engines for one database URL, and the sessions made from them."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(url, pool_size=1, begin="BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(url, pool_size=pool_size, begin="BEGIN")
        else:
            # A fixed pool: overflow connections would be opened and closed
            # under load, and a new PostgreSQL connection (a forked backend,
            # TLS, auth) costs more than waiting for a pooled one. No pre-ping
            # (a round trip per request, ~35% of a small request): after a
            # database restart, SQLAlchemy invalidates the pool on the first
            # failed request and reconnects.
            self.write_engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=0, pool_recycle=3600
            )
            self.read_engine = self.write_engine
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        # A fair (first come, first served) queue in front of each pool: the
        # pool itself hands a returned connection to whoever asks next, so
        # under load some requests waited seconds while others went first.
        self._write_gate = asyncio.Semaphore(self.write_engine.pool.size())
        self._read_gate = (
            self._write_gate
            if self.read_engine is self.write_engine
            else asyncio.Semaphore(self.read_engine.pool.size())
        )

    @asynccontextmanager
    async def unit_of_work(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits at the end of the block, or rolls back.

        Units of work do not nest: each holds a place in its pool's queue.
        """
        gate = self._write_gate if write else self._read_gate
        async with gate:
            session = (self._write_sessions if write else self._read_sessions)()
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            finally:
                # Plain close(): ``async with session`` closes in a shielded
                # task, which yields to the loop while holding the connection.
                await session.close()

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
