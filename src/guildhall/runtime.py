"""What a running Guildhall process holds: settings, the database, the catalogue.

One :class:`Runtime` per process is shared by every face, so all faces see
one database and one ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from guildhall.config import ConfigError, Settings
from guildhall.core.access.service import LastUsedTracker
from guildhall.core.plans.service import Catalogue, Resources
from guildhall.db.engine import Database
from guildhall.db.migrate import is_current, upgrade

CONNECT_TIMEOUT_SECONDS = 10
BACKGROUND_DRAIN_SECONDS = 10

logger = logging.getLogger(__name__)


def catalogue_from(settings: Settings) -> Catalogue:
    return Catalogue(
        default=settings.packages.default,
        packages={
            name: Resources(**package.model_dump())
            for name, package in settings.packages.list.items()
        },
    )


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(
            settings.resolved_database_url, pool_size=settings.database_pool_size
        )
        self.catalogue = catalogue_from(settings)
        self.key_stamps = LastUsedTracker()
        self._background: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the requests, after the one that asked for it.

        For bookkeeping no client waits for (stamping a key's last use): a
        failure is logged and never turns a committed request into an error.
        """
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.warning("background work failed: %s", error)

    async def check_database(self) -> None:
        """Fail early, in one sentence, when the database cannot be reached."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                async with self.database.read_engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means the same to the operator
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"Cannot reach the database at {self.describe_database()}: {reason}"
            ) from None

    async def migrate(self) -> None:
        await self.check_database()
        await upgrade(self.database)

    async def prepare(self) -> None:
        """Make the database ready to serve.

        The embedded SQLite database is migrated in place; a shared
        PostgreSQL database is migrated only by ``guildhall migrate``, so
        several processes never race to change one schema.
        """
        if self.database.is_sqlite:
            await self.migrate()
            return
        await self.check_database()
        if not await is_current(self.database):
            raise ConfigError(
                f"The database at {self.describe_database()} is not at the current schema; "
                "run `guildhall migrate` first."
            )

    def describe_database(self) -> str:
        return self.describe_url(self.settings)

    @staticmethod
    def describe_url(settings: Settings) -> str:
        """The database URL without its password, for messages."""
        return make_url(settings.resolved_database_url).render_as_string(hide_password=True)

    async def drain(self) -> None:
        """Wait (for a bounded time) for the background work started so far."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=BACKGROUND_DRAIN_SECONDS)

    async def close(self) -> None:
        await self.drain()
        await self.database.dispose()
