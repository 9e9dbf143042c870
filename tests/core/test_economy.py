"""The ledger: atomic balance changes, each with its ledger row; never a lost update."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.core.economy.models import LedgerEntry
from guildhall.core.errors import Invalid, LimitExceeded, NotFound
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
