"""The unit of work: fair queueing for connections, and writes that fail alone, on both
databases; on SQLite, group commit."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from guildhall.config import load_settings
from guildhall.core.accounts import service as accounts
from guildhall.core.community.models import GuildClass
from guildhall.core.economy import service as economy
from guildhall.db.engine import CHECKPOINT_SECONDS, Database, GroupLost, TransactionAborted
from guildhall.db.prepared import Prepared
from guildhall.db.sql import flush_unless_duplicate
from guildhall.events import audit
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account


async def test_writers_are_served_first_come_first_served(database_url: str) -> None:
    """A request arriving as a connection frees up waits behind those already waiting."""
    database = Database(database_url, pool_size=1)
    order: list[str] = []
    release = asyncio.Event()

    async def take(name: str) -> None:
        async with database.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
            order.append(name)

    async def hold_then_ask_again() -> None:
        async with database.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
            order.append("A")
            await release.wait()
        await take("D")  # asks the moment it let go, before B and C have woken

    try:
        holder = asyncio.create_task(hold_then_ask_again())
        await asyncio.sleep(0.05)
        waiters = [asyncio.create_task(take(name)) for name in "BC"]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, *waiters), 10)
    finally:
        await database.dispose()
    assert order == ["A", "B", "C", "D"]


class Refused(Exception):
    """A unit of work's own failure, after it changed something."""


async def _add_coin(runtime: Runtime, account: accounts.AccountRef, *, fail: bool = False) -> None:
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 100 if fail else 1, actor=TEST_ACTOR)
        if fail:
            raise Refused


async def test_a_failing_write_undoes_only_its_own_changes(runtime: Runtime) -> None:
    """Writers that run together (and on SQLite share one commit) keep their changes
    when one of them fails, and lose none of theirs to it."""
    account = await make_account(runtime, "ledger")
    writers = [_add_coin(runtime, account) for _ in range(20)]
    writers.insert(7, _add_coin(runtime, account, fail=True))
    outcomes = await asyncio.gather(*writers, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes].count(Refused) == 1
    assert outcomes.count(None) == 20
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 20
        assert await economy.ledger_sum(session, account.id) == 20


async def _found_class(runtime: Runtime, class_id: str) -> None:
    """Make the class "Warrior" as a service does: a unique constraint decides who wins."""
    async with runtime.database.unit_of_work() as session:
        session.add(GuildClass(id=class_id, name="Warrior", balance=0))
        if not await flush_unless_duplicate(session):
            raise Refused


async def test_a_write_refused_by_a_unique_constraint_spoils_no_other(runtime: Runtime) -> None:
    """Five try to make the same class beside ten coin writers: one class, four refused,
    and every coin kept (on SQLite they share one transaction and commit)."""
    account = await make_account(runtime, "bystander")
    outcomes = await asyncio.gather(
        *(_found_class(runtime, f"class{n}") for n in range(5)),
        *(_add_coin(runtime, account) for _ in range(10)),
        return_exceptions=True,
    )
    assert [type(outcome) for outcome in outcomes[:5]].count(Refused) == 4
    assert outcomes[5:] == [None] * 10
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 10
        assert await economy.ledger_sum(session, account.id) == 10
        classes = list(await session.scalars(select(GuildClass.name)))
    assert classes == ["Warrior"]


async def _create_account(runtime: Runtime, name: str, *, fail: bool = False) -> None:
    async with runtime.database.unit_of_work() as session:
        await accounts.create(session, username=name, actor=TEST_ACTOR)
        if fail:
            raise Refused


async def test_orm_changes_commit_with_the_writes_beside_them(runtime: Runtime) -> None:
    """Services that add objects through the ORM flush into the same transaction: the
    failing writer's account is gone, the others' are there."""
    names = [f"member{n}" for n in range(6)]
    outcomes = await asyncio.gather(
        *(_create_account(runtime, name) for name in names),
        _create_account(runtime, "refused", fail=True),
        return_exceptions=True,
    )
    assert outcomes[:6] == [None] * 6 and isinstance(outcomes[6], Refused)
    async with runtime.database.unit_of_work(write=False) as session:
        stored = {account.username for account in await accounts.list_accounts(session)}
    assert stored == set(names)


async def test_a_nested_part_that_fails_undoes_its_prepared_writes(runtime: Runtime) -> None:
    """A prepared statement that is the first thing in ``begin_nested()`` runs inside
    that savepoint: when the part fails, its write goes, and the rest commits."""
    async with runtime.database.unit_of_work() as session:
        await audit.record(session, TEST_ACTOR, "test.kept", "kept")
        with contextlib.suppress(Refused):
            async with session.begin_nested():
                await audit.record(session, TEST_ACTOR, "test.undone", "undone")
                raise Refused
    async with runtime.database.unit_of_work(write=False) as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert actions == ["test.kept"]


@pytest.fixture
def sqlite_runtime_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database with a scratch table for raw writes."""
    path = tmp_path / "guildhall.db"
    shutil.copyfile(sqlite_template, path)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE scratch (key TEXT PRIMARY KEY)")
        connection.commit()
    return f"sqlite+aiosqlite:///{path}"


async def test_sqlite_group_fails_together_when_its_transaction_is_lost(
    sqlite_runtime_url: str,
) -> None:
    """Writers that run together share one transaction and one commit. If SQLite ends
    that transaction under a member (here one that sends its own ROLLBACK), no member of
    the group is told its work was saved."""
    database = Database(sqlite_runtime_url)

    async def write(statement: str) -> None:
        async with database.unit_of_work() as session:
            await session.execute(text(statement))

    try:
        outcomes = await asyncio.gather(
            write("INSERT INTO scratch (key) VALUES ('first')"),
            write("ROLLBACK"),
            return_exceptions=True,
        )
        async with database.unit_of_work(write=False) as session:
            stored = await session.scalar(text("SELECT count(*) FROM scratch"))
        # The next writer starts a new group and is saved.
        await write("INSERT INTO scratch (key) VALUES ('later')")
        async with database.unit_of_work(write=False) as session:
            later = await session.scalar(text("SELECT count(*) FROM scratch"))
    finally:
        await database.dispose()
    assert all(isinstance(outcome, GroupLost) for outcome in outcomes)
    assert stored == 0
    assert later == 1


async def test_sqlite_read_unit_of_work_refuses_writes(sqlite_runtime_url: str) -> None:
    """A read unit of work that writes fails at once on SQLite and changes nothing. On
    PostgreSQL a read unit of work has no transaction, so such a write would not be
    atomic there: this is how the suite, run on both databases, finds one."""
    database = Database(sqlite_runtime_url)
    try:
        with pytest.raises(OperationalError, match="readonly"):
            async with database.unit_of_work(write=False) as session:
                await session.execute(text("INSERT INTO scratch (key) VALUES ('read')"))
        async with database.unit_of_work(write=False) as session:
            stored = await session.scalar(text("SELECT count(*) FROM scratch"))
    finally:
        await database.dispose()
    assert stored == 0


async def test_postgresql_connection_closed_by_the_server_is_replaced(
    postgres_database: str,
) -> None:
    """After PostgreSQL ends a pooled connection (a restart, an administrator), the next
    unit of work gets a new one instead of an error, and a failed unit of work returns
    its connection to the pool outside any transaction."""
    database = Database(postgres_database, pool_size=1)

    async def backend_pid() -> int:
        async with database.unit_of_work(write=False) as session:
            return int(await session.scalar(text("SELECT pg_backend_pid()")))

    try:
        first = await backend_pid()
        admin = await asyncpg.connect(postgres_database.replace("+asyncpg", "", 1))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the server's close reaches the pooled connection
        second = await backend_pid()

        async with database.unit_of_work() as session:
            # A table of this connection only: it is gone if the connection is replaced.
            await session.execute(text("CREATE TEMPORARY TABLE scratch (key text)"))
        with pytest.raises(Refused):
            async with database.unit_of_work() as session:
                await session.execute(text("INSERT INTO scratch VALUES ('lost')"))
                raise Refused
        async with database.unit_of_work(write=False) as session:
            # Still inside the failed transaction, this would count its row.
            stored = await session.scalar(text("SELECT count(*) FROM scratch"))
        third = await backend_pid()
    finally:
        await database.dispose()
    assert second != first
    assert third == second  # the failed unit's connection was rolled back and kept
    assert stored == 0


async def _hold_the_write_lock(
    other: Database, holding: asyncio.Event, release: asyncio.Event
) -> None:
    """Another process's write ('theirs'), holding the write lock until ``release``."""
    async with other.unit_of_work() as session:
        await session.execute(text("INSERT INTO scratch (key) VALUES ('theirs')"))
        holding.set()
        await release.wait()


async def test_sqlite_waiting_for_another_processs_write_keeps_this_process_serving(
    sqlite_runtime_url: str,
) -> None:
    """Another process writing the same file (here a second Database, with its own hold
    on the write lock) makes a writer wait, but not the event loop: reads still answer,
    and the write lands once the other commits. A writer given up while it waits leaves
    the lock free for the next."""
    other, ours = Database(sqlite_runtime_url), Database(sqlite_runtime_url)
    holding, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    async def write(key: str) -> None:
        async with ours.unit_of_work() as session:
            await session.execute(text("INSERT INTO scratch (key) VALUES (:key)"), {"key": key})

    async def count() -> int:
        async with ours.unit_of_work(write=False) as session:
            return int(await session.scalar(text("SELECT count(*) FROM scratch")))

    try:
        holder = asyncio.create_task(_hold_the_write_lock(other, holding, release))
        await asyncio.wait_for(holding.wait(), 5)
        given_up = asyncio.create_task(write("given up"))
        waiting = asyncio.create_task(write("ours"))
        await asyncio.sleep(0.1)
        started = loop.time()
        assert await count() == 0
        assert loop.time() - started < 0.5
        assert not given_up.done() and not waiting.done()
        given_up.cancel()
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, waiting), 10)
        await asyncio.wait_for(write("later"), 10)
        async with other.unit_of_work() as session:  # the other process can write again
            await session.execute(text("INSERT INTO scratch (key) VALUES ('theirs again')"))
        async with ours.unit_of_work(write=False) as session:
            keys = set(await session.scalars(text("SELECT key FROM scratch")))
    finally:
        await other.dispose()
        await ours.dispose()
    assert given_up.cancelled()
    assert keys == {"theirs", "ours", "later", "theirs again"}


_INSERT_SCRATCH = Prepared(text("INSERT INTO scratch (key) VALUES (:key)"))


async def test_sqlite_writers_queued_behind_another_processs_write_commit_together(
    sqlite_runtime_url: str,
) -> None:
    """While another process writes, this process's writers queue; once it commits,
    they share one commit, so with two workers each commit carries the writes that
    queued meanwhile (two at a time made two workers write slower than one). Counted
    in the write-ahead log: twenty commits would append at least twenty frames."""
    other, ours = Database(sqlite_runtime_url), Database(sqlite_runtime_url)
    holding, release = asyncio.Event(), asyncio.Event()

    async def write(key: str) -> None:
        # As the hot paths do: a prepared statement, a turn that never yields.
        async with ours.unit_of_work() as session:
            await _INSERT_SCRATCH.all(session, {"key": key})

    try:
        holder = asyncio.create_task(_hold_the_write_lock(other, holding, release))
        await asyncio.wait_for(holding.wait(), 5)
        writers = [asyncio.create_task(write(f"ours {n}")) for n in range(20)]
        await asyncio.sleep(0.1)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, *writers), 10)
        async with ours.unit_of_work(write=False) as session:
            stored = await session.scalar(text("SELECT count(*) FROM scratch"))
        # Before the last connection closes, which copies the log away.
        with contextlib.closing(sqlite3.connect(_file_of(sqlite_runtime_url))) as connection:
            log = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        await other.dispose()
        await ours.dispose()
    _busy, frames, _copied = log
    assert stored == 21
    assert frames <= 6  # their commit and ours: a page or two each


async def test_sqlite_a_group_waiting_for_a_writer_that_gives_up_still_commits(
    sqlite_runtime_url: str,
) -> None:
    """A group due to commit waits for the writers queued behind it; one cancelled in
    the queue (a client gone) must not leave the group's members waiting forever."""
    database = Database(sqlite_runtime_url)
    first_in, first_out = asyncio.Event(), asyncio.Event()
    second_in, second_out = asyncio.Event(), asyncio.Event()
    late: list[asyncio.Task[None]] = []

    async def write(key: str, entered: asyncio.Event, until: asyncio.Event) -> None:
        async with database.unit_of_work() as session:
            await session.execute(text("INSERT INTO scratch (key) VALUES (:key)"), {"key": key})
            entered.set()
            await until.wait()
            if late:
                late[0].cancel()  # queued behind this turn, it gives up as the turn ends

    async def plain(key: str) -> None:
        async with database.unit_of_work() as session:
            await session.execute(text("INSERT INTO scratch (key) VALUES (:key)"), {"key": key})

    try:
        first = asyncio.create_task(write("first", first_in, first_out))
        await asyncio.wait_for(first_in.wait(), 5)
        second = asyncio.create_task(write("second", second_in, second_out))
        await asyncio.sleep(0.05)
        first_out.set()  # the group is due to commit once the second's turn ends
        await asyncio.wait_for(second_in.wait(), 5)
        late.append(asyncio.create_task(plain("given up")))
        await asyncio.sleep(0.05)
        second_out.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        with pytest.raises(asyncio.CancelledError):
            await late[0]
        await asyncio.wait_for(plain("next"), 5)
        async with database.unit_of_work(write=False) as session:
            keys = set(await session.scalars(text("SELECT key FROM scratch")))
    finally:
        await database.dispose()
    assert keys == {"first", "second", "next"}


async def test_sqlite_a_group_due_does_not_wait_for_writers_who_came_later(
    sqlite_runtime_url: str,
) -> None:
    """A group that fell due commits once the writers queued at that moment have had
    their turn; a writer queued after that starts the next group, so the members
    already done do not wait for its turn (however long it is)."""
    database = Database(sqlite_runtime_url)
    first_in, first_out = asyncio.Event(), asyncio.Event()
    second_in, second_out = asyncio.Event(), asyncio.Event()
    late_in, late_out = asyncio.Event(), asyncio.Event()

    async def write(key: str, entered: asyncio.Event, until: asyncio.Event) -> None:
        async with database.unit_of_work() as session:
            await _INSERT_SCRATCH.all(session, {"key": key})
            entered.set()
            await until.wait()

    try:
        first = asyncio.create_task(write("first", first_in, first_out))
        await asyncio.wait_for(first_in.wait(), 5)
        second = asyncio.create_task(write("second", second_in, second_out))
        await asyncio.sleep(0.05)
        first_out.set()  # the group falls due during the second's turn
        await asyncio.wait_for(second_in.wait(), 5)
        late = asyncio.create_task(write("late", late_in, late_out))
        await asyncio.sleep(0.05)
        second_out.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        await asyncio.wait_for(late_in.wait(), 5)
        assert not late.done()
        late_out.set()
        await asyncio.wait_for(late, 5)
        async with database.unit_of_work(write=False) as session:
            keys = set(await session.scalars(text("SELECT key FROM scratch")))
    finally:
        await database.dispose()
    assert keys == {"first", "second", "late"}


@pytest.fixture
async def postgres_scratch(postgres_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A table of the run's PostgreSQL database for raw writes, seen from outside."""
    admin = await asyncpg.connect(postgres_database.replace("+asyncpg", "", 1))
    await admin.execute("DROP TABLE IF EXISTS uow_scratch; CREATE TABLE uow_scratch (key text)")
    try:
        yield admin
    finally:
        await admin.execute("DROP TABLE uow_scratch")
        await admin.close()


async def _insert(database: Database, key: str) -> None:
    async with database.unit_of_work() as session:
        await session.execute(text("INSERT INTO uow_scratch VALUES (:key)"), {"key": key})


async def test_postgresql_a_unit_cancelled_anywhere_leaves_later_ones_committed(
    postgres_database: str, postgres_scratch: asyncpg.Connection
) -> None:
    """A request given up at any point (its BEGIN on the way, say) leaves no connection
    behind that would run later units of work in a transaction never committed."""
    database = Database(postgres_database, pool_size=1)
    try:
        await _insert(database, "warm")
        for steps in range(12):
            given_up = asyncio.create_task(_insert(database, f"given up {steps}"))
            for _ in range(steps):
                await asyncio.sleep(0)
            given_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await given_up
            await _insert(database, f"after {steps}")
            seen = await postgres_scratch.fetch("SELECT key FROM uow_scratch")
            assert f"after {steps}" in {row["key"] for row in seen}, steps
    finally:
        await database.dispose()


async def test_postgresql_a_transaction_aborted_by_an_ignored_error_is_not_reported_saved(
    postgres_database: str, postgres_scratch: asyncpg.Connection
) -> None:
    """PostgreSQL aborts a transaction at a failed statement; if the error is caught
    without a begin_nested() part around it, the unit of work fails at its end rather
    than let its caller report success for what was not saved."""
    database = Database(postgres_database, pool_size=1)
    try:
        with pytest.raises(TransactionAborted):
            async with database.unit_of_work() as session:
                await session.execute(text("INSERT INTO uow_scratch VALUES ('lost')"))
                with contextlib.suppress(DBAPIError):
                    await session.execute(text("SELECT 1 / 0"))
        await _insert(database, "next")  # the connection is fit for the next one
    finally:
        await database.dispose()
    assert [row["key"] for row in await postgres_scratch.fetch("SELECT key FROM uow_scratch")] == [
        "next"
    ]


async def test_sqlite_writers_that_give_up_waiting_leave_the_lock_to_the_one_writing(
    sqlite_runtime_url: str,
) -> None:
    """Writers of this process that stop waiting for another process's write (timeouts)
    tie up no thread each, and none of them lets go of the lock a later writer holds."""
    other, ours = Database(sqlite_runtime_url), Database(sqlite_runtime_url)
    lock_file = sqlite_runtime_url.removeprefix("sqlite+aiosqlite:///") + ".write-lock"
    holding, release = asyncio.Event(), asyncio.Event()
    inside, checked = asyncio.Event(), asyncio.Event()

    async def hold(
        database: Database, key: str, entered: asyncio.Event, until: asyncio.Event
    ) -> None:
        async with database.unit_of_work() as session:
            await session.execute(text("INSERT INTO scratch (key) VALUES (:key)"), {"key": key})
            entered.set()
            await until.wait()

    async def write(key: str) -> None:
        async with ours.unit_of_work() as session:
            await session.execute(text("INSERT INTO scratch (key) VALUES (:key)"), {"key": key})

    def someone_else_can_lock() -> bool:
        descriptor = os.open(lock_file, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(descriptor)
        return True

    try:
        theirs = asyncio.create_task(hold(other, "theirs", holding, release))
        await asyncio.wait_for(holding.wait(), 5)
        for attempt in range(10):  # more than the default executor has threads
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(write(f"given up {attempt}"), 0.05)
        await asyncio.wait_for(asyncio.to_thread(lambda: None), 2)  # threads are free
        release.set()
        await asyncio.wait_for(theirs, 5)
        mine = asyncio.create_task(hold(ours, "mine", inside, checked))
        await asyncio.wait_for(inside.wait(), 5)
        locked_while_mine = not someone_else_can_lock()
        checked.set()
        await asyncio.wait_for(mine, 5)
        free_after = someone_else_can_lock()
        async with ours.unit_of_work(write=False) as session:
            keys = set(await session.scalars(text("SELECT key FROM scratch")))
    finally:
        await other.dispose()
        await ours.dispose()
    assert locked_while_mine and free_after
    assert keys == {"theirs", "mine"}


def _file_of(url: str) -> Path:
    return Path(url.removeprefix("sqlite+aiosqlite:///"))


async def _insert_scratch(database: Database, keys: Iterable[str]) -> None:
    """One row per key, each committed by a unit of work of its own."""
    for key in keys:
        async with database.unit_of_work() as session:
            await session.execute(text("INSERT INTO scratch (key) VALUES (:key)"), {"key": key})


def _rows_in_the_file_alone(database_file: Path, copy: Path) -> int:
    """Rows a copy of the database file holds without its write-ahead log (what a
    backup tool that copies only ``guildhall.db`` would get)."""
    shutil.copyfile(database_file, copy)
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        return connection.execute("SELECT count(*) FROM scratch").fetchone()[0]


async def test_sqlite_a_serving_process_copies_commits_into_the_database_file(
    sqlite_runtime_url: str, tmp_path: Path
) -> None:
    """SQLite leaves commits in its write-ahead log until a checkpoint; a serving
    process checkpoints in the background every ``CHECKPOINT_SECONDS``."""
    database_file = _file_of(sqlite_runtime_url)
    runtime = Runtime(load_settings(None, data_dir=str(tmp_path), database_url=sqlite_runtime_url))
    try:
        await _insert_scratch(runtime.database, map(str, range(20)))
        before = _rows_in_the_file_alone(database_file, tmp_path / "before.db")
        await runtime.start({"heliactyl"})
        after = before
        async with asyncio.timeout(10):
            while after < 20:
                await asyncio.sleep(CHECKPOINT_SECONDS)
                after = _rows_in_the_file_alone(database_file, tmp_path / "after.db")
    finally:
        await runtime.close()
    assert before == 0
    assert after == 20


async def test_sqlite_commits_a_reader_held_back_are_copied_once_it_is_done(
    sqlite_runtime_url: str, tmp_path: Path
) -> None:
    """A checkpoint cannot copy past the snapshot of a read still in progress; the
    next one copies the rest, although nothing new was committed meanwhile."""
    database_file = _file_of(sqlite_runtime_url)
    database = Database(sqlite_runtime_url)
    try:
        async with database.unit_of_work(write=False) as reading:
            await reading.execute(text("SELECT count(*) FROM scratch"))  # takes a snapshot
            await _insert_scratch(database, map(str, range(10)))
            await database.checkpoint()
            held_back = _rows_in_the_file_alone(database_file, tmp_path / "held.db")
        await database.checkpoint()
        copied = _rows_in_the_file_alone(database_file, tmp_path / "copied.db")
    finally:
        await database.dispose()
    assert held_back == 0
    assert copied == 10


async def test_sqlite_the_log_starts_over_after_each_checkpoint(
    sqlite_runtime_url: str, tmp_path: Path
) -> None:
    """Checkpointed, the write-ahead log is reused from its start instead of growing."""
    copy = tmp_path / "unchecked.db"
    shutil.copyfile(_file_of(sqlite_runtime_url), copy)

    async def log_size_after_writes(url: str, *, checkpoint: bool) -> int:
        database = Database(url)
        try:
            for batch in range(15):
                await _insert_scratch(database, (f"{batch}-{i}-" + "x" * 1000 for i in range(20)))
                if checkpoint:
                    await database.checkpoint()
            return os.stat(f"{_file_of(url)}-wal").st_size
        finally:
            await database.dispose()

    checkpointed = await log_size_after_writes(sqlite_runtime_url, checkpoint=True)
    unchecked = await log_size_after_writes(f"sqlite+aiosqlite:///{copy}", checkpoint=False)
    assert unchecked > 1_000_000  # 300 commits, each a page or two of log
    assert checkpointed < unchecked / 4
