"""Engines and the unit of work.

One request, one transaction: :meth:`Database.unit_of_work` commits when the
block ends and rolls back when it raises. Services only ``flush()``. (On
PostgreSQL a change run alone, ``Prepared.alone``, is committed when it
returns: it is its unit of work's last statement, see ``held.py``.)

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
work begins and ends the transaction on the driver itself, and
:class:`~guildhall.db.prepared.Prepared` statements run on the driver too. The
session does SQLAlchemy work only when a service uses the ORM: it then joins
the transaction already open on the same connection and flushes into it
(the driver ignores SQLAlchemy's own COMMIT and ROLLBACK). A unit of work
that ran only prepared statements never wakes SQLAlchemy.

Writes on SQLite are committed in groups (:class:`_Writer`): a commit costs
about as much as a whole small write, so writers that run together share one.
A serving process copies SQLite's write-ahead log into the database file from
a thread (:class:`_Checkpointer`), not inside a commit on the event loop.

On PostgreSQL a unit of work takes one of the connections the process holds
(:class:`_HeldConnections`: no pool checkout, no session made per request)
and begins and ends its transaction on asyncpg itself, so
prepared statements run straight on asyncpg too: SQLAlchemy's session, its
transaction bookkeeping and a greenlet hand-off per statement cost more than
the round trip to the server (see ``_pooled_unit_of_work``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from guildhall import filemodes
from guildhall.db import held, sqlite_inline

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 30
"""How long a SQLite writer waits for another's write before it fails."""
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}",
    # A savepoint (each unit of work in a group commit is one) keeps the pages it
    # changes first in a journal of its own: in memory instead of a temporary file,
    # which took a write 15 µs of a 60 µs SQLite share.
    "PRAGMA temp_store=MEMORY",
)
CHECKPOINT_SECONDS = 0.1
"""How often a serving process copies SQLite's write-ahead log into the database
(:meth:`Database.checkpoint`)."""
DRIVER_KEY = "guildhall.driver"
"""``session.info`` key of the driver connection a unit of work runs on: the
sqlite3 one (``sqlite_inline``) or the asyncpg one; ``Prepared`` runs on it."""
LOCAL_CACHES = "guildhall.local_caches"
"""``session.info`` key of :attr:`Database.local_caches`: what this process keeps
in memory about this database (verified API keys, say), found by core code
through the session it already has. Each cache is named by its owner."""
MAX_GROUP = 64
"""Units of work one SQLite commit may carry at most (see ``_Writer``). Above the
number of writers usually ready together: a cap below it (it was 32) split the
writers of one pass of the loop in two groups, and those of the second waited a
pass longer (at 50 connections, addcoins' p99 fell from 38 to 30 ms at 64)."""
SAVEPOINT = "guildhall_unit"


_LONG_NUMBER = re.compile(r"\d{20}")


def read_json(text: str) -> Any:
    """A JSON column's value: orjson reads standard JSON several times faster than the json
    module (API key scopes are read on every request). What only the json module reads
    exactly falls back to it: NaN and Infinity, which it writes, and integers beyond 64
    bits, which orjson would turn into floats (any run of 20 digits sends the text there)."""
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _sqlite_engine(url: str, *, begin: str, read_only: bool = False) -> AsyncEngine:
    """An engine without a pool: units of work hold their own connections (``_Slot``),
    and the engine only opens short-lived ones (migrations, the start-up check).

    ``read_only`` connections refuse every write (``query_only``), so a read
    unit of work that tries one fails at once: on PostgreSQL a read unit of
    work runs without a transaction, and a write there would not be atomic.
    """
    path = make_url(url).database or ":memory:"
    engine = create_async_engine(
        url,
        poolclass=NullPool,
        async_creator=lambda: sqlite_inline.connect(path),
        json_deserializer=read_json,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
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
    """One connection held by the process, its driver connection (sqlite3's or
    asyncpg's), and the session bound to it (reused: a unit of work that used the
    ORM closes it, which leaves it as good as new)."""

    __slots__ = ("connection", "driver", "session")

    def __init__(self, connection: AsyncConnection, driver: Any, caches: dict[str, Any]) -> None:
        self.connection = connection
        self.driver = driver
        self.session = AsyncSession(bind=connection, expire_on_commit=False)
        self.session.info[DRIVER_KEY] = driver
        self.session.info[LOCAL_CACHES] = caches
        if isinstance(driver, sqlite_inline.Connection):
            driver.managed = True
        else:
            event.listen(self.session.sync_session, "after_begin", _flush_held_first)

    @classmethod
    async def open(cls, engine: AsyncEngine, caches: dict[str, Any]) -> _Slot:
        connection = await engine.connect()
        driver = (await connection.get_raw_connection()).driver_connection
        return cls(connection, driver, caches)


def _flush_held_first(session: Session, *_args: Any) -> None:
    """The ORM is about to run its first statement in a PostgreSQL unit of work (this is
    SQLAlchemy's ``after_begin``, inside its greenlet): what is held goes first (the
    BEGIN, the INSERTs; ``held.py``)."""
    await_only(held.flush(session.info, session.info[DRIVER_KEY]))


class _Lender:
    """``size`` connections held by the process, lent first come, first served.

    The semaphore is the queue (it wakes waiters in order, and one that asks
    the moment a connection comes back waits behind them); a holder of the
    semaphore always finds an idle slot, or opens one.
    """

    def __init__(self, engine: AsyncEngine, size: int, caches: dict[str, Any]) -> None:
        self.engine = engine
        self._caches = caches
        self._gate = asyncio.Semaphore(size)
        self._idle: list[_Slot] = []

    def _usable(self, _slot: _Slot) -> bool:
        return True

    async def _take(self) -> _Slot:
        await self._gate.acquire()
        try:
            while self._idle:
                slot = self._idle.pop()
                if self._usable(slot):
                    return slot
                await self._drop(slot)
            return await _Slot.open(self.engine, self._caches)
        except BaseException:
            self._gate.release()
            raise

    def give_back(self, slot: _Slot) -> None:
        self._idle.append(slot)
        self._gate.release()

    async def discard(self, slot: _Slot) -> None:
        """Close a lent connection that must not be lent again; its place opens a new one."""
        try:
            await self._drop(slot)
        finally:
            self._gate.release()

    @staticmethod
    async def _drop(slot: _Slot) -> None:
        with contextlib.suppress(Exception):
            await slot.connection.invalidate()  # closes the driver's connection

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for slot in idle:
            with contextlib.suppress(Exception):
                await slot.connection.close()
        await self.engine.dispose()


class _Readers(_Lender):
    """SQLite's read connections, one transaction each."""

    async def enter(self) -> _Slot:
        slot = await self._take()
        try:
            slot.driver.run("BEGIN", ())
        except BaseException:
            self._release(slot)
            raise
        return slot

    async def leave(self, slot: _Slot, failed: bool) -> None:
        try:
            if failed:
                slot.driver.rollback_now()
            else:
                slot.driver.commit_now()
        finally:
            self._release(slot)

    def _release(self, slot: _Slot) -> None:
        try:
            if slot.driver.in_transaction:
                slot.driver.rollback_now()
        finally:
            self.give_back(slot)


class _WriteLock:
    """The right to write one SQLite file, shared by every process that writes it.

    SQLite's own lock is no good to wait on here: ``BEGIN IMMEDIATE`` waits
    for it inside SQLite, on the event loop's thread, sleeping 25 to 100 ms
    at a time, so a process whose neighbour (another ``--workers`` process,
    a CLI command) was writing stopped serving anything, reads included, for
    as long. An ``flock`` on a file beside the database is taken first
    instead: at once when free, otherwise in a thread while the loop goes on,
    and the kernel hands it over the moment it is released. BEGIN IMMEDIATE
    then finds SQLite's lock free. (Writers that do not take it, such as a
    migration, still meet SQLite's own wait.)

    The process's writers ask for it one at a time (``_Writer``'s queue), so at
    most one thread waits for it. A writer that gives up while waiting (a
    timeout, a cancelled request) leaves that wait to the next writer, who
    takes the lock over; if none comes, it is let go as soon as it is taken.
    Waiting is bounded by SQLite's own busy timeout, as before.
    """

    def __init__(self, database_path: str, timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        # Read-only suffices for flock, so whichever user made the file first
        # does not lock the others out of it.
        path = f"{database_path}.write-lock"
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        self._timeout = timeout
        self._held = False
        self._pending: asyncio.Future[None] | None = None  # a thread waiting for the lock
        self._waiters = 0

    async def acquire(self) -> None:
        assert self._fd is not None and not self._held
        if self._pending is None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pending: asyncio.Future[None] = asyncio.ensure_future(
                    asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_EX)
                )
                pending.add_done_callback(self._let_go_unclaimed)
                self._pending = pending
            else:
                self._held = True
                return
        pending = self._pending
        self._waiters += 1
        try:
            await asyncio.wait_for(asyncio.shield(pending), self._timeout)
        except BaseException:
            self._waiters -= 1
            self._let_go_unclaimed(pending)
            raise
        self._waiters -= 1
        self._pending = None
        self._held = True

    def _let_go_unclaimed(self, pending: asyncio.Future[None]) -> None:
        """Once the thread is done: if no writer is there to take the lock, let it go."""
        if not pending.done() or self._waiters or pending is not self._pending:
            return
        self._pending = None
        if not pending.cancelled() and pending.exception() is None and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._held and self._fd is not None:
            self._held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file; a thread still waiting holds its own reference to it, and
        the lock it may take ends with that reference."""
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _HeldConnections(_Lender):
    """``size`` PostgreSQL connections held for the life of the process, lent first
    come, first served.

    Taking a connection from SQLAlchemy's pool and giving it back (an
    ``AsyncConnection`` and a session made each time, greenlet hand-offs, the
    pool's reset) held userinfo at about 1,950 req/s, where held connections
    serve 3,300 (bench/README.md); lending a held one costs a list pop. A
    connection the server has closed (a restart, an idle timeout) is replaced
    when it is next lent, at no round trip; one a unit of work may have left
    busy is closed rather than lent again (``_abandon``).
    """

    def _usable(self, slot: _Slot) -> bool:
        return not slot.driver.is_closed() and not slot.connection.invalidated

    async def enter(self) -> _Slot:
        return await self._take()


class TransactionAborted(Exception):
    """PostgreSQL answered COMMIT with ROLLBACK: a statement had failed inside the
    transaction and the error was caught without a ``begin_nested()`` part around
    it. Nothing of the unit of work was saved, and its caller must not say so."""


class GroupLost(Exception):
    """SQLite ended a group's transaction on its own (after an I/O error, say), so no
    unit of work in it was saved."""


class _Group:
    """Units of work sharing one transaction; ``committed`` resolves when it commits."""

    __slots__ = ("commit_due", "commit_scheduled", "committed", "size", "turns_left")

    def __init__(self) -> None:
        self.size = 0
        self.commit_scheduled = False
        self.commit_due = False
        self.turns_left = 0  # once due: the turns it still waits for
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read the outcome even when no member waits for it (all of them failed).
        self.committed.add_done_callback(lambda done: done.cancelled() or done.exception())


class _Writer:
    """The process's one SQLite write connection, with group commit.

    Writers take turns, first come, first served. Each turn's unit of work
    is a savepoint in the current group's transaction: released at the end
    of the turn, or rolled back, which undoes that unit of work alone. The
    group commits once the writers queued when its commit fell due have had
    their turn (a lone writer's commit waits one pass of the event loop), or
    after ``MAX_GROUP`` turns; each member returns only once it has committed.
    Waiting for the queue, not for one pass of the loop, matters with several processes: a process
    that waited for the write lock has many writers queued by then, but a
    turn that never yields lets only one of them into the group before the
    loop's commit, so groups of 18 writes (one process) fell to 2 (two
    processes) and two workers wrote at 0.7x the rate of one.
    Under load one commit carries many writes: a commit costs about as much
    as a whole small write transaction here (the log's pages, file locks).
    A lone writer waits one pass of the loop. A turn that waits on something
    slow (a password hash on a thread, say) holds back the members before it
    in its group, as it holds back every writer while it has the write lock.

    So a client never sees success for work that is then lost; if the commit
    fails, every member of the group fails.
    """

    def __init__(
        self, engine: AsyncEngine, lock: _WriteLock | None, caches: dict[str, Any]
    ) -> None:
        self.engine = engine
        self._caches = caches
        self._lock = lock  # None for an in-memory database, which no one else sees
        self._gate = asyncio.Semaphore(1)
        self._slot: _Slot | None = None
        self._group: _Group | None = None
        self._in_turn = False
        self._queued = 0  # writers waiting for their turn

    async def enter(self) -> _Slot:
        self._queued += 1
        try:
            await self._gate.acquire()
        except BaseException:  # cancelled while queued
            self._queued -= 1
            group = self._group
            if group is not None and group.commit_due:
                group.turns_left -= 1  # it may have waited for this writer, which will not come
                if not self._in_turn and (group.turns_left <= 0 or not self._queued):
                    self._commit(group)
            raise
        self._queued -= 1
        self._in_turn = True
        try:
            if self._slot is None:
                self._slot = await _Slot.open(self.engine, self._caches)
            driver = self._slot.driver
            if self._group is not None and not driver.in_transaction:
                self._fail(self._group, GroupLost("the shared transaction ended on its own"))
            if self._group is None:
                if driver.in_transaction:  # left over by a rollback that failed
                    driver.rollback_now()
                # Still ours if the last group's rollback failed (see _fail).
                if self._lock is not None and not self._lock.held:
                    await self._lock.acquire()
                try:
                    driver.run("BEGIN IMMEDIATE", ())
                except BaseException:
                    self._release_lock()
                    raise
                self._group = _Group()
            driver.run(f"SAVEPOINT {SAVEPOINT}", ())
            self._group.size += 1
        except BaseException:
            self._end_turn()
            raise
        return self._slot

    async def leave(self, slot: _Slot, failed: bool) -> None:
        group = self._group
        assert group is not None
        driver = slot.driver
        try:
            if not driver.in_transaction:
                raise GroupLost("the shared transaction ended on its own")
            if failed:
                driver.run(f"ROLLBACK TO {SAVEPOINT}", ())
            driver.run(f"RELEASE {SAVEPOINT}", ())
        except BaseException as exc:
            self._fail(group, exc)
            self._end_turn()
            raise
        self._end_turn()
        if not failed:
            # Shielded: the group's outcome is shared, and one member's
            # cancellation must not cancel it for the others.
            await asyncio.shield(group.committed)

    def _end_turn(self) -> None:
        self._in_turn = False
        group = self._group
        try:
            if group is not None and group.commit_due:
                group.turns_left -= 1
            if group is not None and (
                group.size >= MAX_GROUP
                or (group.commit_due and (group.turns_left <= 0 or not self._queued))
            ):
                self._commit(group)
                group = None
        finally:
            self._gate.release()
        if group is not None and not group.commit_scheduled:
            # After the gate's release: the writer it wakes is scheduled first, and joins.
            group.commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit_between_turns, group)

    def _commit_between_turns(self, group: _Group) -> None:
        if group is not self._group:
            return  # committed already, or failed
        if self._in_turn or self._queued:
            # The writers queued now join it, the last commits as its turn ends; those
            # who come later start the next group, so a member waits for a known few.
            group.commit_due = True
            group.turns_left = self._queued + self._in_turn
        else:
            self._commit(group)

    def _commit(self, group: _Group) -> None:
        """Commit ``group``; its members learn the outcome whatever happens here."""
        assert self._slot is not None
        driver = self._slot.driver
        try:
            if not driver.in_transaction:
                raise GroupLost("the shared transaction ended on its own")
            driver.commit_now()
        except Exception as exc:
            self._fail(group, exc)
            return
        self._group = None
        self._release_lock()
        group.committed.set_result(None)

    def _fail(self, group: _Group, error: BaseException) -> None:
        """Tell ``group``'s members it failed, then undo what is left of it."""
        self._group = None
        if not group.committed.done():
            group.committed.set_exception(error)
        try:
            if self._slot is not None and self._slot.driver.in_transaction:
                self._slot.driver.rollback_now()
        except Exception:  # the next group rolls it back before it begins
            logger.exception("rolling back a failed group of writes failed")
        else:
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    async def close(self) -> None:
        if self._group is not None and not self._in_turn:
            self._commit(self._group)  # its members' work is done; only the commit waits
        if self._slot is not None:
            await self._slot.connection.close()
            self._slot = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        await self.engine.dispose()


class _Checkpointer:
    """Copies SQLite's write-ahead log into the database file, from a thread.

    Left to itself, SQLite does this at the end of the commit that takes the log
    past 1,000 pages, on the committing connection: here the event loop's
    thread, where copying 4 MB and syncing the file stopped every request for
    milliseconds about once a second under writes, and cost each write about
    11 µs on average. A serving process instead runs a PASSIVE checkpoint every
    :data:`CHECKPOINT_SECONDS` on a connection of its own in a worker thread
    (sqlite3 lets go of the GIL while SQLite works), which blocks neither
    readers nor the writer; the next write transaction then starts the log
    over, so it seldom reaches SQLite's threshold. That threshold stays as the
    backstop, and is all a CLI command needs (the last connection to close a
    database checkpoints it). Nothing committed since a pass that copied it
    all, no thread.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        # SQLite's count of commits by other connections, when a pass last copied them all.
        self._copied: int | None = None
        self._failing = False
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._lock = threading.Lock()  # close() waits for a pass in progress

    async def run_once(self) -> None:
        if self._lock.locked():  # a pass left running by a cancelled call
            return
        try:
            version = self._data_version()
            if version is None or version == self._copied:
                return
            copied_all = await asyncio.to_thread(self._checkpoint)
        except sqlite3.Error as error:
            if not self._failing:  # once, not ten times a second
                logger.warning("checkpointing %s failed: %s; will keep trying", self._path, error)
            self._failing = True
            return
        self._failing = False
        # A pass copies only up to the oldest snapshot still being read, and
        # another process's pass can hold it off: then the next pass tries again
        # even if nothing new was committed.
        if copied_all:
            self._copied = version

    def _open(self) -> sqlite3.Connection | None:
        """The pass's own connection; None once closed, or while there is no database
        file yet (connecting would create an empty one)."""
        if self._connection is None and not self._closed and os.path.exists(self._path):
            self._connection = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False
            )
        return self._connection

    def _data_version(self) -> int | None:
        """Changes whenever another connection commits (a few µs: no thread)."""
        with self._lock:
            connection = self._open()
            if connection is None:
                return None
            version: int = connection.execute("PRAGMA data_version").fetchone()[0]
            return version

    def _checkpoint(self) -> bool:
        """One PASSIVE checkpoint; True if it copied the whole log."""
        with self._lock:
            connection = self._open()
            if connection is None:
                return False
            busy, in_log, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return bool(busy == 0 and in_log == copied)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class _SqliteUnitOfWork:
    """One unit of work on a slot lent by ``lender`` (readers or the writer), which begins
    and ends its transaction on the driver; the slot's session takes part only if a
    service uses the ORM, and then only flushes into that transaction.

    So ``session.rollback()`` inside the block undoes nothing: to give up, raise (or
    use ``session.begin_nested()`` for a part that may fail on its own)."""

    __slots__ = ("_lender", "_slot")

    def __init__(self, lender: _Readers | _Writer) -> None:
        self._lender = lender

    async def __aenter__(self) -> AsyncSession:
        self._slot = await self._lender.enter()
        return self._slot.session

    async def __aexit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        slot = self._slot
        session = slot.session
        failed = exc_type is not None
        try:
            if session.in_transaction():
                # The driver ignores SQLAlchemy's COMMIT and ROLLBACK (``managed``):
                # commit() only flushes, and the lender ends the transaction.
                if failed:
                    await session.rollback()
                else:
                    await session.commit()
        except BaseException:
            failed = True
            raise
        finally:
            try:
                if session.in_transaction() or session.identity_map:
                    await session.close()
            finally:
                await self._lender.leave(slot, failed)


async def _abandon(driver: Any, error: BaseException) -> bool:
    """Roll back what a failed unit of work began; True when that surely left the
    connection idle, so it may be lent again: not after a cancellation (a statement
    may still be on its way, its answer not yet read), nor when it is closed or
    still in a transaction. (A cancellation of the rollback itself propagates.)"""
    clean = False
    with contextlib.suppress(Exception):
        if not driver.is_closed() and driver.is_in_transaction():
            await driver.execute("ROLLBACK")
        clean = isinstance(error, Exception)
    return clean and not driver.is_closed() and not driver.is_in_transaction()


def _private_database_files(path: Path) -> None:
    """The database file made 0600 before SQLite opens it (its ``-wal`` and ``-shm``
    files then get the same mode), its folder 0700 if it has to be made; files left
    wider by an older installation are tightened (see ``guildhall.filemodes``)."""
    filemodes.private_directory(path.parent, tighten_existing=False)
    filemodes.private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        filemodes.tighten(path.with_name(path.name + suffix), filemodes.PRIVATE_FILE)


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection PostgreSQL has closed (a restart, an idle
    timeout) is replaced at once. Costs no round trip, unlike a pre-ping."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")


class Database:
    """The engines for one database URL, and the units of work made from them.

    On PostgreSQL every held connection may carry a write. The workers of one
    ``serve`` once shared ``pool_size`` for writes (each opened pool / N write
    transactions at once), so that writers waiting on one hot row did not pile up;
    since changes to one balance go together (``together.py``) that share saved
    nothing there and cost writes spread over many rows about 10 % with two workers
    (bench/README.md).
    """

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.local_caches: dict[str, Any] = {}
        if self.is_sqlite:
            path = make_url(url).database or ":memory:"
            on_disk = path != ":memory:"
            if on_disk:
                _private_database_files(Path(path))
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(url, begin="BEGIN", read_only=True)
            lock = _WriteLock(path) if on_disk else None
            self._writer = _Writer(self.write_engine, lock, self.local_caches)
            self._readers = _Readers(self.read_engine, pool_size, self.local_caches)
            self._checkpointer = _Checkpointer(path) if on_disk else None
        else:
            # Units of work run on connections the process holds (_HeldConnections).
            # This pool serves the rest (the start-up check, a backup's export).
            # A fixed pool: overflow connections would be opened and closed
            # under load, and a new PostgreSQL connection (a forked backend,
            # TLS, auth) costs more than waiting for a pooled one. No pre-ping
            # (a round trip per request, ~35% of a small request): a connection
            # the server has closed is replaced at checkout (_drop_closed).
            self.write_engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=0,
                pool_recycle=3600,
            )
            event.listen(self.write_engine.sync_engine.pool, "checkout", _drop_closed)
            self.read_engine = self.write_engine
            # The unit of work owns the transaction (see _pooled_unit_of_work):
            # to SQLAlchemy its connections are in autocommit, so it sends no
            # BEGIN or COMMIT of its own. They are lent first come, first served:
            # SQLAlchemy's pool hands a returned connection to whoever asks next,
            # so under load some requests waited seconds while others went first.
            held = create_async_engine(url, poolclass=NullPool)
            self._held = _HeldConnections(
                held.execution_options(isolation_level="AUTOCOMMIT"), pool_size, self.local_caches
            )

    def unit_of_work(self, *, write: bool = True) -> AbstractAsyncContextManager[AsyncSession]:
        """A session whose transaction commits at the end of the block, or rolls back
        (except a change run alone, already committed: ``Prepared.alone``).

        Units of work do not nest: each holds a place in its pool's queue.
        """
        if self.is_sqlite:
            return _SqliteUnitOfWork(self._writer if write else self._readers)
        return self._pooled_unit_of_work(write)

    @asynccontextmanager
    async def _pooled_unit_of_work(self, write: bool) -> AsyncIterator[AsyncSession]:
        """A held connection whose transaction is begun and ended on asyncpg itself.

        The session joins it (``session.info[DRIVER_KEY]`` is the asyncpg
        connection, for ``Prepared``) and its COMMIT and ROLLBACK reach nothing,
        as on SQLite: commit() only flushes. So ``Prepared`` statements run
        straight on asyncpg, inside the same transaction as ORM work, and
        ``begin_nested()`` still gives a SAVEPOINT in it.

        Plain BEGIN and COMMIT, not asyncpg's transaction objects: those keep
        their own state on the connection, which a BEGIN cancelled on its way
        left behind, turning every later unit of work on that connection into
        a savepoint of a transaction never committed. And COMMIT's answer is
        read: PostgreSQL answers ROLLBACK when a statement had failed inside.
        The BEGIN waits for the first statement (``held.py``): a unit of work
        that runs none sends nothing, and one whose only statement runs alone
        (``Prepared.alone``) sends that statement and nothing else.

        A read unit of work has no transaction at all: under READ COMMITTED
        each statement reads its own snapshot either way, so BEGIN and COMMIT
        would only add two round trips. (SQLite's read connections refuse
        writes, so the tests, run on both databases, catch a read unit of work
        that writes.)
        """
        slot = await self._held.enter()
        driver, session = slot.driver, slot.session
        info = session.info
        try:
            if write:
                info[held.BEGIN_DUE] = True  # sent with the first statement (held.flush)
            try:
                yield session
                # The ORM's part, only if it took part: its commit() only
                # flushes, and its bookkeeping costs more than a statement.
                if session.in_transaction():
                    await session.commit()
                # Still due: no statement ran, and what is held (if anything) is
                # one statement, atomic by itself.
                begun = write and not info.pop(held.BEGIN_DUE, False) and held.DONE not in info
                holding: held.Held | None = info.get(held.KEY)
                if holding:
                    await held.send(driver, holding)
                if begun and await driver.execute("COMMIT") != "COMMIT":
                    raise TransactionAborted(
                        "an error inside the transaction was caught and ignored, so "
                        "PostgreSQL had aborted it: nothing of it was saved"
                    )
            finally:
                # What a failed unit of work held goes with it.
                for key in (held.KEY, held.BEGIN_DUE, held.DONE):
                    info.pop(key, None)
                # Plain close(): ``async with session`` closes in a shielded
                # task, which yields to the loop while holding the connection.
                if session.in_transaction() or session.identity_map:
                    await session.close()
        except BaseException as error:
            reusable = False
            try:
                reusable = await _abandon(driver, error)
            finally:
                if reusable:
                    self._held.give_back(slot)
                else:
                    await self._held.discard(slot)
            raise
        self._held.give_back(slot)

    async def checkpoint(self) -> None:
        """Copy what SQLite's write-ahead log holds into the database (see
        ``_Checkpointer``); a serving process calls this every ``CHECKPOINT_SECONDS``.
        Nothing to do on PostgreSQL or an in-memory database."""
        if self.is_sqlite and self._checkpointer is not None:
            await self._checkpointer.run_once()

    async def dispose(self) -> None:
        if self.is_sqlite:
            if self._checkpointer is not None:
                self._checkpointer.close()
            await self._writer.close()
            await self._readers.close()
        else:
            await self._held.close()
            await self.write_engine.dispose()
