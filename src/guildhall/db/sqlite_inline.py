"""SQLite for the async engine, run on the event loop's own thread.

SQLAlchemy reaches SQLite asynchronously through aiosqlite, which gives each
connection a thread and hands every call (cursor, execute, fetch, close)
across to it. Each hand-over waits for the GIL; under load the loop thread
holds it for up to the switch interval (5 ms), so a request of a dozen calls
spent most of its time waiting: measured here, 40 requests/s at 100
concurrent clients.

SQLite itself answers an indexed query in microseconds from its page cache,
and in WAL mode with ``synchronous=NORMAL`` a commit does not wait for the
disk. So this module gives the aiosqlite dialect (through SQLAlchemy's
``async_creator`` hook) a connection with aiosqlite's interface that calls
the ``sqlite3`` module directly: no threads, no hand-overs. The price is
that a statement blocks the loop while it runs; Guildhall's statements are
small, and writers are queued in Python (see ``engine.py``) rather than
left to wait on SQLite's lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

Parameters = Sequence[Any] | dict[str, Any]


class Cursor:
    """aiosqlite's Cursor interface over a ``sqlite3.Cursor``."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._cursor.close()

    def __await__(self) -> Generator[Any, None, Cursor]:
        async def itself() -> Cursor:
            return self

        return itself().__await__()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Parameters | None = None) -> Cursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Parameters]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class Connection:
    """aiosqlite's Connection interface over a ``sqlite3.Connection``."""

    __slots__ = ("_conn", "managed")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = connection
        # True when a Guildhall unit of work owns the transactions: then SQLAlchemy's
        # commit and rollback (the async ones it calls) do nothing.
        self.managed = False

    @property
    def _connection(self) -> sqlite3.Connection | None:
        # SQLAlchemy's adapter checks this to see whether the connection is open.
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self._open().cursor())

    async def execute(self, sql: str, parameters: Parameters | None = None) -> Cursor:
        return await self.cursor().execute(sql, parameters)

    @property
    def in_transaction(self) -> bool:
        return self._open().in_transaction

    def begin(self, statement: str) -> None:
        """Start a transaction at once; called from SQLAlchemy's ``begin`` event."""
        self._open().execute(statement)

    def run(self, sql: str, parameters: Parameters) -> list[Any]:
        """Execute and fetch at once, for ``guildhall.db.prepared``."""
        cursor = self._open().execute(sql, parameters)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    async def commit(self) -> None:
        if not self.managed:
            self._open().commit()

    async def rollback(self) -> None:
        if not self.managed:
            self._open().rollback()

    def commit_now(self) -> None:
        """Commit without a coroutine, for the unit of work (a no-op outside a transaction)."""
        self._open().commit()

    def rollback_now(self) -> None:
        self._open().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self) -> None:
        """Close at once; SQLAlchemy calls this to terminate a connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def connect(database: str, *, busy_timeout_seconds: float = 30.0) -> Connection:
    """Open ``database`` with transactions left to us (``isolation_level=None``)."""
    connection = sqlite3.connect(
        database,
        timeout=busy_timeout_seconds,
        isolation_level=None,
        check_same_thread=False,
        detect_types=0,
    )
    return Connection(connection)
