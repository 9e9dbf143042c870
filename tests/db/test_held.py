"""Rows a change writes without reading them back (ledger, audit, outbox): on PostgreSQL
held and sent together with the unit of work's next statement or its COMMIT
(``db/held.py``), on SQLite written at once. Either way a unit of work reads back what
it wrote, keeps its events in order, and leaves nothing behind when it fails."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, update

from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.core.economy.models import LedgerEntry
from guildhall.db import held
from guildhall.db.engine import DRIVER_KEY, Database
from guildhall.db.prepared import Prepared
from guildhall.events import audit, outbox
from guildhall.events.models import AuditEntry, OutboxEvent
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account


class Refused(Exception):
    pass


async def test_a_change_reads_back_what_it_wrote_in_the_same_unit_of_work(
    runtime: Runtime,
) -> None:
    user = await make_account(runtime, "reader", discord="5001")
    async with runtime.database.unit_of_work() as session:
        balance = await economy.adjust(session, user, 40, actor=TEST_ACTOR)
        ledger = await economy.ledger_sum(session, user.id)  # a prepared statement
        events = await outbox.recent(session, "coins.changed")  # the ORM
        trail = await audit.for_account(session, user.id, 10)
    assert balance == ledger == 40
    assert [event["data"]["balance"] for event in events] == ["40"]
    assert [record.action for record in trail if record.action == "coins.changed"] == [
        "coins.changed"
    ]


async def test_events_of_one_unit_of_work_keep_their_order(runtime: Runtime) -> None:
    user = await make_account(runtime, "orderly", discord="5002")
    async with runtime.database.unit_of_work() as session:
        before = await outbox.newest_id(session)
    async with runtime.database.unit_of_work() as session:
        for amount in (1, 2, 3, 4):
            await economy.adjust(session, user, amount, actor=TEST_ACTOR)
    async with runtime.database.unit_of_work(write=False) as session:
        events = await outbox.committed_after(session, before, 10)
    assert [event["data"]["amount"] for event in events] == ["1", "2", "3", "4"]
    assert [event["data"]["balance"] for event in events] == ["1", "3", "6", "10"]


async def test_a_failed_unit_of_work_leaves_none_of_its_rows_for_the_next(
    database_url: str, runtime: Runtime
) -> None:
    """One connection, so the unit of work after the failed one runs where it ran."""
    user = await make_account(runtime, "careful", discord="5003")
    database = Database(database_url, pool_size=1)
    try:
        with pytest.raises(Refused):
            async with database.unit_of_work() as session:
                await economy.adjust(session, user, 7, actor=TEST_ACTOR)
                raise Refused
        async with database.unit_of_work() as session:
            await economy.adjust(session, user, 5, actor=TEST_ACTOR)
        async with database.unit_of_work(write=False) as session:
            entries = list(await session.scalars(select(LedgerEntry.amount)))
            audited = await session.scalar(select(func.count()).select_from(AuditEntry))
            events = await session.scalar(select(func.count()).select_from(OutboxEvent))
            balance = await economy.balance_of(session, user.id)
    finally:
        await database.dispose()
    assert entries == [5]
    assert balance == 5
    assert (audited, events) >= (1, 1)
    async with runtime.database.unit_of_work(write=False) as session:
        trail = await audit.for_account(session, user.id, 10)
        changes = await outbox.recent(session, "coins.changed")
    coins = [record.message for record in trail if record.action == "coins.changed"]
    assert [message.rsplit(" ", 1)[-1] for message in coins] == ["5"]
    assert [event["data"]["amount"] for event in changes] == ["5"]


async def _with_one_coin(runtime: Runtime, username: str, discord: str) -> AccountRef:
    """An account whose balance row exists (1 coin), so addcoins' UPDATE finds it."""
    account = await make_account(runtime, username, discord=discord)
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 1, actor=TEST_ACTOR)
    return account


class StatementLog:
    """The statements one ``Database`` of one connection sends, in order."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.sent: list[str] = []
        self.driver: Any = None

    async def __aenter__(self) -> list[str]:
        async with self.database.unit_of_work(write=False) as session:
            self.driver = session.info[DRIVER_KEY]
        self.driver.add_query_logger(self._log)
        return self.sent

    async def __aexit__(self, *_exc: object) -> None:
        self.driver.remove_query_logger(self._log)

    def _log(self, record: Any) -> None:
        self.sent.append(record.query)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_addcoins_is_one_statement_without_begin_or_commit(
    database_url: str, runtime: Runtime
) -> None:
    """The balance of the account the identity names, its ledger row, audit row and
    event: one WITH statement, which PostgreSQL runs atomically by itself (seven round
    trips before rows were held, four before the UPDATE's statement wrote them)."""
    counted = await _with_one_coin(runtime, "counted", "5004")
    database = Database(database_url, pool_size=1)
    try:
        async with StatementLog(database) as sent, database.unit_of_work() as session:
            account, balance = await economy.adjust_by_identity(
                session, "5004", 9, actor=TEST_ACTOR, reason="a prize"
            )
    finally:
        await database.dispose()
    assert (account.id, account.username, balance) == (counted.id, "counted", 10)
    assert len(sent) == 1, "\n".join(sent)
    assert sent[0].startswith("WITH moved AS")
    for table in ("balances", "ledger_entries", "audit_log", "event_outbox"):
        assert table in sent[0]
    async with runtime.database.unit_of_work(write=False) as session:
        entry = (
            await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc()).limit(1))
        ).one()
        trail = await audit.for_account(session, counted.id, 1)
        event = (await outbox.recent(session, "coins.changed", limit=1))[0]
    assert (entry.account_id, entry.amount, entry.balance_after, entry.reason) == (
        counted.id,
        9,
        10,
        "a prize",
    )
    assert entry.actor == str(TEST_ACTOR)
    assert (
        trail[0].message
        == f"{TEST_ACTOR.name} added 9 coins to user counted (5004); balance now 10"
    )
    assert trail[0].target == f"account:{counted.id}"
    assert event["data"] == {
        "userId": "5004",
        "currency": "coins",
        "type": "ADMIN_ADJUSTMENT",
        "amount": "9",
        "balance": "10",
    }


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_nothing_may_follow_a_change_that_ran_alone(
    database_url: str, runtime: Runtime
) -> None:
    """It committed by itself: a later statement would not be atomic with it."""
    user = await _with_one_coin(runtime, "alone", "5005")
    for follow in (
        lambda session: economy.balance_of(session, user.id),  # a prepared statement
        lambda session: outbox.emit(session, "coins.changed", {}),  # a held row
        lambda session: session.scalar(select(func.count()).select_from(LedgerEntry)),  # ORM
    ):
        with pytest.raises(held.AlreadyCommitted):
            async with runtime.database.unit_of_work() as session:
                await economy.adjust_by_identity(session, "5005", 2, actor=TEST_ACTOR)
                await follow(session)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, user.id) == 7
        assert await economy.ledger_sum(session, user.id) == 7


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_change_runs_alone_only_as_the_first_statement(
    database_url: str, runtime: Runtime
) -> None:
    """After another statement it runs inside the transaction, and goes with it when the
    unit of work fails."""
    user = await _with_one_coin(runtime, "inside", "5006")
    database = Database(database_url, pool_size=1)
    try:
        with pytest.raises(Refused):
            async with StatementLog(database) as sent, database.unit_of_work() as session:
                await economy.balance_of(session, user.id)
                await economy.adjust_by_identity(session, "5006", 5, actor=TEST_ACTOR)
                raise Refused
    finally:
        await database.dispose()
    assert sent[0] == "BEGIN" and sent[-1] == "ROLLBACK"
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, user.id) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_change_after_pending_orm_work_runs_inside_the_transaction(
    database_url: str, runtime: Runtime
) -> None:
    """An object added to the session but not yet flushed is part of the unit of work too:
    the change then runs with it, not alone, and both go when the unit of work fails."""
    user = await _with_one_coin(runtime, "pending", "5008")
    with pytest.raises(Refused):
        async with runtime.database.unit_of_work() as session:
            session.add(
                AuditEntry(actor=str(TEST_ACTOR), action="test.pending", target="", message="x")
            )
            await economy.adjust_by_identity(session, "5008", 5, actor=TEST_ACTOR)
            raise Refused
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, user.id) == 1
        pending = select(func.count()).where(AuditEntry.action == "test.pending")
        assert await session.scalar(pending) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_sends_what_a_unit_of_work_needs_and_no_more(
    database_url: str, runtime: Runtime
) -> None:
    """No statement: no BEGIN or COMMIT. Only held rows: they go as one statement, which
    is atomic by itself."""
    user = await make_account(runtime, "sparing", discord="5007")
    database = Database(database_url, pool_size=1)
    try:
        async with StatementLog(database) as idle, database.unit_of_work():
            pass
        async with StatementLog(database) as holding, database.unit_of_work() as session:
            await audit.record(
                session, TEST_ACTOR, "test.noted", "noted", target_account_id=user.id
            )
            await outbox.emit(session, "coins.changed", {"userId": "5007"})
    finally:
        await database.dispose()
    assert idle == []
    assert len(holding) == 1 and holding[0].startswith("WITH held_0 AS (INSERT INTO audit_log")
    async with runtime.database.unit_of_work(write=False) as session:
        trail = await audit.for_account(session, user.id, 5)
    assert [record.message for record in trail if record.action == "test.noted"] == ["noted"]


def test_held_statements_are_numbered_one_after_another() -> None:
    joined = held.together(
        ("INSERT INTO a (x, y) VALUES ($1, $2::JSON)", "INSERT INTO b (z) VALUES ($1)")
    )
    assert joined == (
        "WITH held_0 AS (INSERT INTO a (x, y) VALUES ($1, $2::JSON)) INSERT INTO b (z) VALUES ($3)"
    )


def test_a_held_statement_with_a_literal_is_refused() -> None:
    """Renumbering would change a '$1' inside a string: such a statement is not held."""
    with pytest.raises(ValueError, match="bind its values"):
        held.together(("INSERT INTO a (x) VALUES ('$1')", "INSERT INTO b (z) VALUES ($1)"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_only_an_insert_can_be_held(database_url: str) -> None:
    database = Database(database_url, pool_size=1)
    statement = Prepared(update(LedgerEntry.__table__).values(reason=bindparam("reason")))
    try:
        with pytest.raises(TypeError, match="INSERT"):
            async with database.unit_of_work() as session:
                await statement.later(session, {"reason": "nothing"})
    finally:
        await database.dispose()
