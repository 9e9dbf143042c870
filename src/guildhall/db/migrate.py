"""Apply the Alembic migrations: the only way the schema changes."""

from __future__ import annotations

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

    async with database.write_engine.connect() as connection:
        if database.is_sqlite:
            # Off before the transaction begins (SQLite ignores it inside one): a
            # migration that rebuilds a table drops the old one, and with foreign
            # keys on that would delete every row referring to it (ON DELETE
            # CASCADE). Checked again before the commit instead.
            raw = await connection.get_raw_connection()
            raw.driver_connection.run("PRAGMA foreign_keys=OFF", ())
        async with connection.begin():
            await connection.run_sync(run)
            if database.is_sqlite:
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"the migration left rows that refer to nothing: {broken}")
