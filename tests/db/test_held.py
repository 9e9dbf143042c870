"""Rows a change writes without reading them back (ledger, audit, outbox): on PostgreSQL
held and sent together with the unit of work's next statement or its COMMIT
(``db/held.py``), on SQLite written at once. Either way a unit of work reads back what
it wrote, keeps its events in order, and leaves nothing behind when it fails."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, update

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


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_addcoins_sends_its_three_rows_as_one_statement(
    database_url: str, runtime: Runtime
) -> None:
    """BEGIN, the balance of the account the identity names, the ledger+audit+event
    rows, COMMIT: four round trips (seven before rows were held, five before the
    UPDATE found the account itself)."""
    counted = await make_account(runtime, "counted", discord="5004")
    async with runtime.database.unit_of_work() as session:  # its balance row exists
        await economy.adjust(session, counted, 1, actor=TEST_ACTOR)
    database = Database(database_url, pool_size=1)
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    try:
        async with database.unit_of_work(write=False) as session:
            driver = session.info[DRIVER_KEY]
        driver.add_query_logger(log)
        async with database.unit_of_work() as session:
            await economy.adjust_by_identity(session, "5004", 9, actor=TEST_ACTOR)
        driver.remove_query_logger(log)
    finally:
        await database.dispose()
    assert len(sent) == 4, "\n".join(sent)
    assert sent[0] == "BEGIN" and sent[-1] == "COMMIT"
    assert sent[1].startswith("UPDATE balances")
    together = sent[2]
    for table in ("ledger_entries", "audit_log", "event_outbox"):
        assert f"INSERT INTO {table}" in together


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
