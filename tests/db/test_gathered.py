"""The same read asked by many requests at once (``db/gathered.py``): on PostgreSQL sent
once at a time per key, each request still seeing every change committed before it
asked; a failure or a cancellation reaches only the requests it concerns; SQLite reads
and units of work that write read for themselves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.config import load_settings
from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.db.gathered import Gathered
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, empty_postgres, make_account


class Balances:
    """A gathered balance read that counts its reads; the first waits, after reading,
    until ``release`` (a read on its way while others ask)."""

    def __init__(self, name: str, *, fail_after_first: bool = False) -> None:
        self.reads = 0
        self.first_read = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_after_first = fail_after_first
        self.gathered = Gathered(name, self._read)

    async def _read(self, session: AsyncSession, account_id: int) -> int:
        self.reads += 1
        if self.reads > 1 and self.fail_after_first:
            raise RuntimeError("the database went away")
        amount = await economy.balance_of(session, account_id)
        if self.reads == 1:
            self.first_read.set()
            await self.release.wait()
        return amount


class Asking:
    """Requests asking ``balances`` for a balance, each in its own read unit of work."""

    def __init__(self, runtime: Runtime, balances: Balances) -> None:
        self.runtime = runtime
        self.balances = balances
        self.entered = 0
        self.tasks: list[asyncio.Task[int]] = []

    def ask(self, account_id: int) -> asyncio.Task[int]:
        task = asyncio.create_task(self._ask(account_id))
        self.tasks.append(task)
        return task

    async def _ask(self, account_id: int) -> int:
        async with self.runtime.database.unit_of_work(write=False) as session:
            self.entered += 1
            # Nothing awaits between here and the request's place in the queue.
            return await self.balances.gathered.get(session, account_id)

    async def first_on_its_way(self, account_id: int) -> asyncio.Task[int]:
        """A request whose read has read and now waits for ``release``."""
        first = self.ask(account_id)
        await self.balances.first_read.wait()
        return first

    async def all_asked(self) -> None:
        """Until every request began asking (its unit of work is open)."""
        while self.entered < len(self.tasks):
            await asyncio.sleep(0.001)


@contextlib.asynccontextmanager
async def asking_on(runtime: Runtime) -> AsyncIterator[tuple[Asking, AccountRef]]:
    """Requests for the balance of a new account; at the end, released and finished
    even if the test failed half way."""
    player = await make_account(runtime, "asked", discord="7001")
    asking = Asking(runtime, Balances("test.balances"))
    try:
        yield asking, player
    finally:
        asking.balances.release.set()
        for task in asking.tasks:
            task.cancel()
        await asyncio.gather(*asking.tasks, return_exceptions=True)


@pytest.fixture
async def postgres_runtime(postgres_database: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    await empty_postgres(postgres_database)
    runtime = Runtime(load_settings(None, data_dir=str(tmp_path), database_url=postgres_database))
    yield runtime
    await runtime.close()


async def pay(runtime: Runtime, player: AccountRef, amount: int) -> None:
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, player, amount, actor=TEST_ACTOR)


async def test_requests_asking_while_a_read_is_on_its_way_see_changes_committed_before(
    runtime: Runtime,
) -> None:
    """The read on its way read the balance before 10 coins were paid; those who ask
    after the payment must see it, as they would by reading for themselves."""
    async with asking_on(runtime) as (asking, player):
        async with asyncio.timeout(10):
            first = await asking.first_on_its_way(player.id)
            await pay(runtime, player, 10)
            later = [asking.ask(player.id) for _ in range(5)]
            await asking.all_asked()
            asking.balances.release.set()
            assert await first == 0
            assert await asyncio.gather(*later) == [10] * 5


async def test_requests_asking_at_once_share_one_read_on_postgresql(
    runtime: Runtime,
) -> None:
    async with asking_on(runtime) as (asking, player):
        async with asyncio.timeout(10):
            first = await asking.first_on_its_way(player.id)
            later = [asking.ask(player.id) for _ in range(6)]
            await asking.all_asked()
            asking.balances.release.set()
            await asyncio.gather(first, *later)
        # SQLite reads cost no round trip: each request read for itself.
        assert asking.balances.reads == (7 if runtime.database.is_sqlite else 2)


async def test_a_read_of_another_key_does_not_wait_for_one_on_its_way(
    runtime: Runtime,
) -> None:
    async with asking_on(runtime) as (asking, player):
        other = await make_account(runtime, "other", discord="7002")
        await pay(runtime, other, 3)
        async with asyncio.timeout(10):
            first = await asking.first_on_its_way(player.id)
            assert await asking.ask(other.id) == 3
            assert not first.done()


async def test_postgresql_a_failed_read_fails_only_the_requests_it_carried(
    postgres_runtime: Runtime,
) -> None:
    async with asking_on(postgres_runtime) as (asking, player):
        asking.balances.fail_after_first = True
        async with asyncio.timeout(10):
            first = await asking.first_on_its_way(player.id)
            carried = [asking.ask(player.id) for _ in range(3)]
            await asking.all_asked()
            asking.balances.release.set()
            assert await first == 0
            failures = await asyncio.gather(*carried, return_exceptions=True)
            assert [str(failure) for failure in failures] == ["the database went away"] * 3
            # Nothing is left waiting: the next request reads again.
            asking.balances.fail_after_first = False
            assert await asking.ask(player.id) == 0
        assert asking.balances.reads == 3


async def test_postgresql_a_cancelled_read_hands_the_next_one_on(
    postgres_runtime: Runtime,
) -> None:
    """The client of the read on its way hangs up, and so does the first one waiting:
    the others still get their answer, from a read sent by one of them."""
    async with asking_on(postgres_runtime) as (asking, player):
        async with asyncio.timeout(10):
            first = await asking.first_on_its_way(player.id)
            await pay(postgres_runtime, player, 4)
            waiting = [asking.ask(player.id) for _ in range(3)]
            await asking.all_asked()
            first.cancel()
            waiting[0].cancel()
            assert await asyncio.gather(*waiting[1:]) == [4, 4]
            gone = await asyncio.gather(first, waiting[0], return_exceptions=True)
            assert all(isinstance(answer, asyncio.CancelledError) for answer in gone)
            assert await asking.ask(player.id) == 4
        assert asking.balances.reads == 3


async def test_a_unit_of_work_that_writes_reads_its_own_changes(
    runtime: Runtime,
) -> None:
    """Its change is seen by no other unit of work until it commits: it reads for itself,
    at once, even while a read of the same key is on its way."""
    async with asking_on(runtime) as (asking, player):
        async with asyncio.timeout(10):
            first = await asking.first_on_its_way(player.id)
            async with runtime.database.unit_of_work() as session:
                await economy.adjust(session, player, 25, actor=TEST_ACTOR)
                assert await asking.balances.gathered.get(session, player.id) == 25
            assert not first.done()
            asking.balances.release.set()
            assert await first == 0
        assert asking.balances.reads == 2
