"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from guildhall.core.community.models import GuildClass
from guildhall.core.items.models import Item
from guildhall.db.engine import Database
from guildhall.db.migrate import is_current, upgrade
from guildhall.db.models import metadata
from guildhall.runtime import Runtime


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
