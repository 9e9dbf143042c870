"""Apply the Alembic migrations: the only way the schema changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from guildhall.db.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _current_and_head(connection: Connection) -> tuple[str | None, str | None]:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return MigrationContext.configure(connection).get_current_revision(), head


async def is_current(database: Database) -> bool:
    """True when the schema is at the newest migration."""
    async with database.read_engine.connect() as connection:
        current, head = await connection.run_sync(_current_and_head)
    return current == head


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the database to ``revision`` over one of our own connections."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        await run_schema_work(database, run)
    except DanglingRows as exc:
        raise RuntimeError(f"the migration left rows that refer to nothing: {exc}") from None


class DanglingRows(Exception):
    """Rows refer to rows that do not exist (SQLite's foreign key check, before commit)."""


async def run_schema_work(database: Database, work: Callable[[Connection], object]) -> None:
    """Run ``work`` on one connection in one transaction that may rebuild tables.

    On SQLite, foreign keys are off before the transaction begins (SQLite
    ignores the setting inside one): a migration that rebuilds a table drops
    the old one, and with foreign keys on that would delete every row
    referring to it (ON DELETE CASCADE); a restore inserts table by table.
    They are checked before the commit instead (``DanglingRows``).
    """
    async with database.write_engine.connect() as connection:
        if database.is_sqlite:
            raw = await connection.get_raw_connection()
            assert raw.driver_connection is not None  # None only once it is closed
            raw.driver_connection.run("PRAGMA foreign_keys=OFF", ())
        async with connection.begin():
            await connection.run_sync(work)
            if database.is_sqlite:
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise DanglingRows(str(broken[:3]))
