"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from guildhall.db.migrate import is_current
from guildhall.db.models import metadata
from guildhall.runtime import Runtime


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


async def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    async with runtime.database.read_engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []
    assert await is_current(runtime.database)
