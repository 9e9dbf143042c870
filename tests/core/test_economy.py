"""The ledger: atomic balance changes, each with its ledger row; never a lost update."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.core.economy.models import LedgerEntry
from guildhall.core.errors import Invalid, LimitExceeded, NotFound
from guildhall.events import outbox
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account


async def test_balance_always_equals_the_sum_of_its_ledger(runtime: Runtime) -> None:
    account = await make_account(runtime, "ledgered", discord="1")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 100, actor=TEST_ACTOR)
        await economy.adjust(session, account, -30, actor=TEST_ACTOR)
        await economy.set_balance(session, account, 500, actor=TEST_ACTOR)
        await economy.adjust(session, account, 7, actor=TEST_ACTOR, reason="bonus")
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 507
        assert await economy.ledger_sum(session, account.id) == 507
        entries = list(await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))
    assert [(e.amount, e.balance_after) for e in entries] == [
        (100, 100),
        (-30, 70),
        (430, 500),
        (7, 507),
    ]
    assert entries[-1].reason == "bonus"
    assert entries[-1].actor == str(TEST_ACTOR)
    assert {e.type for e in entries} == {"ADMIN_ADJUSTMENT"}


async def test_a_refused_change_writes_nothing(runtime: Runtime) -> None:
    account = await make_account(runtime, "careful", discord="2")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 10, actor=TEST_ACTOR)
    for delta, error in ((-11, LimitExceeded), (0, Invalid), (economy.MAX_AMOUNT, LimitExceeded)):
        with pytest.raises(error):
            async with runtime.database.unit_of_work() as session:
                await economy.adjust(session, account, delta, actor=TEST_ACTOR)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 10
        assert await economy.ledger_sum(session, account.id) == 10


async def test_currencies_are_separate_balances(runtime: Runtime) -> None:
    account = await make_account(runtime, "multi", discord="3")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 5, actor=TEST_ACTOR, currency="gems")
        await economy.adjust(session, account, 9, actor=TEST_ACTOR)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id, "gems") == 5
        assert await economy.balance_of(session, account.id) == 9


async def test_concurrent_changes_in_separate_transactions_lose_nothing(
    runtime: Runtime,
) -> None:
    account = await make_account(runtime, "busy", discord="4")
    async with runtime.database.unit_of_work() as session:
        await economy.set_balance(session, account, 1000, actor=TEST_ACTOR)

    async def change(delta: int) -> None:
        async with runtime.database.unit_of_work() as session:
            if delta == 0:
                await economy.set_balance(session, account, 1000, actor=TEST_ACTOR)
            else:
                await economy.adjust(session, account, delta, actor=TEST_ACTOR)

    deltas = [3, -2] * 100
    await asyncio.gather(*(change(delta) for delta in deltas))
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 1000 + 100
        assert await economy.ledger_sum(session, account.id) == 1000 + 100


async def test_the_first_coins_of_new_accounts_are_never_refused(runtime: Runtime) -> None:
    """Many first writers of an account with no balance row yet: the one whose update
    looked before another's row was committed still gets its coin (no spurious
    "must stay between" refusal)."""

    async def add_one(account: AccountRef) -> None:
        async with runtime.database.unit_of_work() as session:
            await economy.adjust(session, account, 1, actor=TEST_ACTOR)

    fresh = [await make_account(runtime, f"fresh{n}") for n in range(12)]
    await asyncio.gather(*(add_one(account) for account in fresh for _ in range(20)))
    async with runtime.database.unit_of_work(write=False) as session:
        for account in fresh:
            assert await economy.balance_of(session, account.id) == 20
            assert await economy.ledger_sum(session, account.id) == 20


async def test_a_rolled_back_unit_of_work_leaves_no_trace(runtime: Runtime) -> None:
    """The hot statements run in the unit of work's transaction, even on SQLite's fast path."""
    account = await make_account(runtime, "undone", discord="5")
    with pytest.raises(RuntimeError):
        async with runtime.database.unit_of_work() as session:
            await economy.adjust(session, account, 50, actor=TEST_ACTOR)
            assert await economy.balance_of(session, account.id) == 50
            raise RuntimeError("the request failed after the change")
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 0
        assert await economy.ledger_sum(session, account.id) == 0


async def test_a_change_by_identity_finds_the_account_the_identity_names(
    runtime: Runtime,
) -> None:
    """adjust_by_identity: the account found inside the change, with the same ranking of
    providers as find_by_identity; the ledger and the audit name it."""
    first = await make_account(runtime, "firstcomer", discord="700")
    # Another account holds "700" as its GitHub id: Discord's identity ranks first.
    other = await make_account(runtime, "githubber", github="700")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, first, 10, actor=TEST_ACTOR)  # its balance exists
        found, balance = await economy.adjust_by_identity(
            session, "700", 5, actor=TEST_ACTOR, reason="by id"
        )
    assert (found, balance) == (AccountRef(first.id, "firstcomer", "700"), 15)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, first.id) == 15
        assert await economy.ledger_sum(session, first.id) == 15
        assert await economy.balance_of(session, other.id) == 0
        last = (await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc()))).first()
        said = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()))).first()
    assert last is not None and (last.amount, last.balance_after, last.reason) == (5, 15, "by id")
    assert said is not None and said.message.endswith("user firstcomer (700); balance now 15")


async def test_a_change_by_identity_opens_refuses_and_reports_as_adjust_does(
    runtime: Runtime,
) -> None:
    """The cases the one statement changes nothing in go the general way: a first balance
    is opened, a result out of range and an unknown identity are refused, with nothing
    written."""
    account = await make_account(runtime, "newcomer", discord="701")
    async with runtime.database.unit_of_work() as session:
        assert (await economy.adjust_by_identity(session, "701", 3, actor=TEST_ACTOR))[1] == 3
    for subject, delta, error in (
        ("701", -4, LimitExceeded),
        ("701", 0, Invalid),
        ("701", economy.MAX_AMOUNT + 1, LimitExceeded),
        ("702", 1, NotFound),
        ("x" * 500, 1, NotFound),
    ):
        with pytest.raises(error):
            async with runtime.database.unit_of_work() as session:
                await economy.adjust_by_identity(session, subject, delta, actor=TEST_ACTOR)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 3
        assert await economy.ledger_sum(session, account.id) == 3


async def test_changes_that_meet_on_one_balance_each_get_their_own_records(
    runtime: Runtime,
) -> None:
    """adjust_by_identity_committed from many requests at once: on PostgreSQL those that
    meet go as one statement (``db/together.py``), yet each has its own ledger row,
    audit row and event, in order, and answers the balance right after it."""
    account = await make_account(runtime, "popular", discord="710")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 100, actor=TEST_ACTOR)
    deltas = [5, -3] * 30

    async def change(n: int) -> int:
        _found, balance = await economy.adjust_by_identity_committed(
            runtime.database, "710", deltas[n], actor=TEST_ACTOR, reason=f"change {n}"
        )
        return balance

    answered = await asyncio.gather(*(change(n) for n in range(len(deltas))))
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 100 + sum(deltas)
        assert await economy.ledger_sum(session, account.id) == 100 + sum(deltas)
        rows = list(await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))
        said = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        events = await outbox.recent(session, "coins.changed", limit=100)
    opening, *changes = rows
    assert len(changes) == len(deltas)
    balance = opening.balance_after
    for row in changes:  # every row carries the balance right after it
        balance += row.amount
        assert row.balance_after == balance
        n = int(row.reason.removeprefix("change "))
        assert (row.amount, row.balance_after) == (deltas[n], answered[n])
    messages = [entry.message for entry in said[-len(deltas) :]]
    assert messages == [
        f"{TEST_ACTOR.name} {'added 5 coins to' if row.amount > 0 else 'took 3 coins from'}"
        f" user popular (710); balance now {row.balance_after}"
        for row in changes
    ]
    in_order = [int(event["data"]["balance"]) for event in reversed(events)]
    assert in_order[-len(deltas) :] == [row.balance_after for row in changes]
    if not runtime.database.is_sqlite:  # they met: fewer transactions than changes
        async with runtime.database.unit_of_work(write=False) as session:
            transactions = await session.scalar(
                text("SELECT count(DISTINCT xmin::text) FROM ledger_entries WHERE id > :opening"),
                {"opening": opening.id},
            )
        assert transactions < len(changes)


async def test_changes_that_together_would_leave_the_range_are_refused_one_by_one(
    runtime: Runtime,
) -> None:
    """Three takings of 3 from 6 at once: together they would go below zero, so each is
    tried by itself, and exactly one is refused, with nothing of it written."""
    account = await make_account(runtime, "thrifty", discord="711")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 6, actor=TEST_ACTOR)
    outcomes = await asyncio.gather(
        *(
            economy.adjust_by_identity_committed(runtime.database, "711", -3, actor=TEST_ACTOR)
            for _ in range(3)
        ),
        economy.adjust_by_identity_committed(runtime.database, "719", 1, actor=TEST_ACTOR),
        return_exceptions=True,
    )
    refused = [outcome for outcome in outcomes[:3] if isinstance(outcome, Exception)]
    assert [type(error) for error in refused] == [LimitExceeded]
    assert sorted(outcome[1] for outcome in outcomes[:3] if isinstance(outcome, tuple)) == [0, 3]
    assert isinstance(outcomes[3], NotFound)  # an unknown id is said, beside them
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, account.id) == 0
        assert await economy.ledger_sum(session, account.id) == 0


async def test_a_change_given_up_while_it_waits_holds_up_no_other(runtime: Runtime) -> None:
    """A request cancelled while its change waits for its turn (a client gone, a server
    stopping): the changes after it still run, and the balance stays its ledger's sum."""
    account = await make_account(runtime, "patient", discord="712")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 1, actor=TEST_ACTOR)

    def add(coins: int) -> asyncio.Task[tuple[AccountRef, int]]:
        return asyncio.create_task(
            economy.adjust_by_identity_committed(runtime.database, "712", coins, actor=TEST_ACTOR)
        )

    first, given_up, last = add(10), add(100), add(1000)
    await asyncio.sleep(0)  # each has started: the first leads, the others wait
    given_up.cancel()
    assert (await asyncio.wait_for(last, 10))[0].id == account.id
    await first
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert (await asyncio.wait_for(add(5), 10))[1] in (1 + 10 + 1000 + 5, 1 + 10 + 100 + 1000 + 5)
    async with runtime.database.unit_of_work(write=False) as session:
        balance = await economy.balance_of(session, account.id)
        assert balance == await economy.ledger_sum(session, account.id)
