"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from guildhall.core.access.models import ApiKey
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Provider
from guildhall.core.community.models import GuildClass
from guildhall.core.items.models import Item
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.db.migrate import is_current, upgrade
from guildhall.db.models import metadata
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


# SQLAlchemy cannot read expression indexes back from SQLite; the test below checks
# that those indexes exist and hold, on both databases.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
async def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    async with runtime.database.read_engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []
    assert await is_current(runtime.database)


@pytest.mark.parametrize(
    ("table", "row"),
    [
        (Item.__table__, {"type": "T", "rarity": "C", "price": 0}),
        (GuildClass.__table__, {"balance": 0}),
    ],
)
async def test_item_and_class_names_are_unique_whatever_their_case(
    runtime: Runtime, table: object, row: dict[str, object]
) -> None:
    """The database itself refuses a second "sword" beside "Sword": two requests that
    pass the service's check at the same moment cannot both create one."""
    async with runtime.database.unit_of_work() as session:
        first = {"id": "c1"} if table is GuildClass.__table__ else {}
        await session.execute(insert(table).values(name="Sword", **first, **row))
    with pytest.raises(IntegrityError):
        async with runtime.database.unit_of_work() as session:
            second = {"id": "c2"} if table is GuildClass.__table__ else {}
            await session.execute(insert(table).values(name="sWORD", **second, **row))


async def test_names_that_clashed_before_the_case_rule_are_renamed(tmp_path: Path) -> None:
    """A database from before 0008 may hold "Sword" and "sword": the later one becomes
    "sword (<id>)" so the index can be built, and nothing else changes."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(database, "0007")
        async with database.unit_of_work() as session:
            for name in ("Sword", "Shield", "sword", "SWORD"):
                await session.execute(
                    insert(Item.__table__).values(name=name, type="T", rarity="C", price=0)
                )
        await upgrade(database)
        async with database.unit_of_work(write=False) as session:
            names = list(await session.scalars(select(Item.name).order_by(Item.id)))
    finally:
        await database.dispose()
    assert names == ["Sword", "Shield", "sword (3)", "SWORD (4)"]


async def test_ids_are_never_reused(runtime: Runtime) -> None:
    """A deleted row's id is not given to the next row (SQLite did so without
    AUTOINCREMENT): a token or a client holding the old id must not reach a new row."""
    for table, row in (
        (Account.__table__, {"username": "u", "first_name": "", "last_name": "", "role": "user"}),
        (ApiKey.__table__, {"name": "k", "prefix": "p", "key_hash": "h", "scopes": []}),
    ):
        now = {"created_at": utcnow()} | (
            {"updated_at": utcnow(), "uuid": "x"} if table is Account.__table__ else {}
        )
        async with runtime.database.unit_of_work() as session:
            first = await session.scalar(insert(table).values(**row, **now).returning(table.c.id))
            await session.execute(delete(table).where(table.c.id == first))
        async with runtime.database.unit_of_work() as session:
            second = await session.scalar(insert(table).values(**row, **now).returning(table.c.id))
        assert second > first, table.name


async def test_0009_keeps_every_row_and_id_on_sqlite(tmp_path: Path) -> None:
    """The rebuild copies rows with their ids, and rows that refer to a rebuilt table
    are kept (dropping the old table with foreign keys on would have cascaded)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(database, "0008")
        async with database.unit_of_work() as session:
            for username in ("ann", "bob", "cyd"):
                await accounts.create(
                    session,
                    username=username,
                    email=f"{username}@example.com",
                    identities={Provider.DISCORD: str(10**17 + len(username) * ord(username[0]))},
                    actor=TEST_ACTOR,
                )
            await session.execute(delete(Account.__table__).where(Account.id == 2))
            await session.execute(
                insert(Item.__table__).values(name="Sword", type="T", rarity="C", price=0)
            )
        before = await _snapshot(database)
        await upgrade(database)
        assert await _snapshot(database) == before
        async with database.unit_of_work() as session:
            await session.execute(delete(Account.__table__).where(Account.id == 3))
            fourth = await accounts.create(session, username="dee", actor=TEST_ACTOR)
        assert fourth.id == 4  # after the highest id ever given, not the highest left
        with pytest.raises(IntegrityError):  # the expression index was made again
            async with database.unit_of_work() as session:
                await session.execute(
                    insert(Item.__table__).values(name="SWORD", type="T", rarity="C", price=0)
                )
    finally:
        await database.dispose()


async def _snapshot(database: Database) -> dict[str, list[tuple[object, ...]]]:
    async with database.unit_of_work(write=False) as session:
        return {
            name: [tuple(row) for row in await session.execute(text(f"SELECT * FROM {name}"))]
            for name in ("accounts", "identities", "items", "audit_log")
        }
