"""Engines and the unit of work.

One request, one transaction: :meth:`Database.unit_of_work` commits when the
block ends and rolls back when it raises. Services only ``flush()``.

SQLite allows one writer at a time. Letting many connections race for the
write lock makes SQLite sleep and retry (slow, and a deferred transaction
that reads then writes can fail outright), so on SQLite writes go through one
connection whose transactions start with ``BEGIN IMMEDIATE``: writers queue in
order inside the process, and readers use separate connections that WAL lets
run beside the writer. SQLite calls run on the event loop's thread
(``sqlite_inline``).

On SQLite the unit of work is also light. SQLAlchemy's session and pool cost
about 300 µs a transaction here (checkout, reset, four greenlet hand-offs),
where SQLite needs about 10 µs for ``BEGIN``, a lookup and ``COMMIT``. So each
SQLite connection is held for the life of the process in a :class:`_Slot`,
with a session bound to it that carries the driver connection. The unit of
work begins and commits the transaction on the driver itself, and
:class:`~guildhall.db.prepared.Prepared` statements run on the driver too. The
session does SQLAlchemy work only when a service uses the ORM: it then joins
the transaction already open on the same connection, and commits it. A unit
of work that ran only prepared statements never wakes SQLAlchemy.

On PostgreSQL both pools are one engine, and a unit of work is an ordinary
session from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from guildhall.db import sqlite_inline

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)
DRIVER_KEY = "guildhall.sqlite_driver"
"""``session.info`` key of the SQLite driver connection a unit of work runs on."""


def _sqlite_engine(url: str, *, begin: str) -> AsyncEngine:
    """An engine without a pool: units of work hold their own connections (``_Slot``),
    and the engine only opens short-lived ones (migrations, the start-up check)."""
    path = make_url(url).database or ":memory:"
    engine = create_async_engine(
        url, poolclass=NullPool, async_creator=lambda: sqlite_inline.connect(path)
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
        # A unit of work has begun already when its session joins.
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite_inline.Connection)
        if not driver.in_transaction:
            driver.begin(begin)

    return engine


class _Slot:
    """One SQLite connection held by the process, its driver connection, and the
    session bound to it (reused: a unit of work that used the ORM closes it,
    which leaves it as good as new)."""

    __slots__ = ("connection", "driver", "session")

    def __init__(self, connection: AsyncConnection, driver: sqlite_inline.Connection) -> None:
        self.connection = connection
        self.driver = driver
        self.session = AsyncSession(bind=connection, expire_on_commit=False)
        self.session.info[DRIVER_KEY] = driver

    @classmethod
    async def open(cls, engine: AsyncEngine) -> _Slot:
        connection = await engine.connect()
        driver = (await connection.get_raw_connection()).driver_connection
        assert isinstance(driver, sqlite_inline.Connection)
        return cls(connection, driver)


class _SqlitePool:
    """``size`` connections of one engine, lent first come, first served.

    The semaphore is the queue (it wakes waiters in order, and one that asks
    the moment a connection comes back waits behind them); a holder of the
    semaphore always finds an idle slot.
    """

    def __init__(self, engine: AsyncEngine, size: int, begin: str) -> None:
        self.engine = engine
        self.begin = begin
        self._gate = asyncio.Semaphore(size)
        self._idle: list[_Slot] = []

    async def acquire(self) -> _Slot:
        await self._gate.acquire()
        try:
            return self._idle.pop() if self._idle else await _Slot.open(self.engine)
        except BaseException:
            self._gate.release()
            raise

    def release(self, slot: _Slot) -> None:
        self._idle.append(slot)
        self._gate.release()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for slot in idle:
            await slot.connection.close()
        await self.engine.dispose()


class _SqliteUnitOfWork:
    """One transaction on a slot of ``pool``: begun and ended on the driver, with the
    slot's session joining it only if a service uses the ORM."""

    __slots__ = ("_pool", "_slot")

    def __init__(self, pool: _SqlitePool) -> None:
        self._pool = pool

    async def __aenter__(self) -> AsyncSession:
        slot = await self._pool.acquire()
        try:
            slot.driver.begin(self._pool.begin)
        except BaseException:
            self._pool.release(slot)
            raise
        self._slot = slot
        return slot.session

    async def __aexit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        slot = self._slot
        session = slot.session
        try:
            if exc_type is None:
                try:
                    if session.in_transaction():  # ORM work to flush and commit
                        await session.commit()
                    slot.driver.commit_now()
                except BaseException:
                    await self._roll_back(slot)
                    raise
            else:
                await self._roll_back(slot)
        finally:
            try:
                if session.in_transaction() or session.identity_map:
                    await session.close()
            finally:
                self._pool.release(slot)

    @staticmethod
    async def _roll_back(slot: _Slot) -> None:
        if slot.session.in_transaction():
            await slot.session.rollback()
        slot.driver.rollback_now()


class Database:
    """The engines for one database URL, and the units of work made from them."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(url, begin="BEGIN")
            self._writers = _SqlitePool(self.write_engine, 1, "BEGIN IMMEDIATE")
            self._readers = _SqlitePool(self.read_engine, pool_size, "BEGIN")
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
            self._sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
            # A fair (first come, first served) queue in front of the pool: the
            # pool itself hands a returned connection to whoever asks next, so
            # under load some requests waited seconds while others went first.
            self._gate = asyncio.Semaphore(pool_size)

    def unit_of_work(self, *, write: bool = True) -> AbstractAsyncContextManager[AsyncSession]:
        """A session whose transaction commits at the end of the block, or rolls back.

        Units of work do not nest: each holds a place in its pool's queue.
        """
        if self.is_sqlite:
            return _SqliteUnitOfWork(self._writers if write else self._readers)
        return self._pooled_unit_of_work()

    @asynccontextmanager
    async def _pooled_unit_of_work(self) -> AsyncIterator[AsyncSession]:
        async with self._gate:
            session = self._sessions()
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
        if self.is_sqlite:
            await self._writers.close()
            await self._readers.close()
        else:
            await self.write_engine.dispose()
