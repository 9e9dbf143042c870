"""Platform jobs: changes an outside platform must see, carried out after commit.

A service records a job in the transaction of its core change (``enqueue``);
a connector's worker (``Worker``) claims due jobs under a lease, runs each one
with no unit of work open, and records the outcome in a new one. A failed
attempt is retried with exponential backoff; a job that keeps failing is marked
``failed`` with its last error, never dropped silently. A job that raises
``Permanent`` fails at once (retrying cannot help: a member who left).

Claims lock rows with SKIP LOCKED on PostgreSQL (SQLite runs one writer at a
time), and the lease on the row keeps a second process from taking a job
another is still running.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.events.models import PlatformJob

LEASE_SECONDS = 600  # longer than any job's calls, rate limits included
RETRY_BASE_SECONDS = 2
RETRY_MAX_SECONDS = 600
MAX_ATTEMPTS = 8

logger = logging.getLogger(__name__)


class Permanent(Exception):
    """Raised by a job's handler when retrying cannot help."""


async def enqueue(session: AsyncSession, kind: str, payload: dict[str, Any]) -> None:
    """Record a job; it exists only if the surrounding transaction commits."""
    now = utcnow()
    session.add(
        PlatformJob(
            kind=kind,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    await session.flush()


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


Handler = Callable[[dict[str, Any]], Awaitable[None]]
GiveUp = Callable[[dict[str, Any], str], Awaitable[None]]
"""Told when a job is marked failed (its payload and last error), to record it where
people look (a moderation case, say)."""


class Worker:
    """Runs the due jobs of the kinds it has handlers for."""

    def __init__(
        self,
        database: Database,
        handlers: Mapping[str, Handler],
        give_up: Mapping[str, GiveUp] | None = None,
    ) -> None:
        self.database = database
        self.handlers = dict(handlers)
        self.give_up = dict(give_up or {})

    async def run_once(self, limit: int = 20) -> int:
        """Claim and run the due jobs; how many ran."""
        claimed = await self._claim(limit)
        for job in claimed:
            try:
                await self.handlers[job.kind](job.payload)
            except Permanent as exc:
                await self._finish(job, error=str(exc) or type(exc).__name__, retry=False)
            except Exception as exc:  # any platform failure is retried, then recorded
                logger.warning("platform job %s #%d failed: %s", job.kind, job.id, exc)
                await self._finish(job, error=str(exc) or type(exc).__name__, retry=True)
            else:
                await self._finish(job, error=None, retry=False)
        return len(claimed)

    async def _claim(self, limit: int) -> list[Claimed]:
        now = utcnow()
        async with self.database.unit_of_work() as session:
            rows = list(
                await session.scalars(
                    select(PlatformJob)
                    .where(
                        PlatformJob.status == "pending",
                        PlatformJob.kind.in_(self.handlers),
                        PlatformJob.next_attempt_at <= now,
                        or_(PlatformJob.leased_until.is_(None), PlatformJob.leased_until < now),
                    )
                    .order_by(PlatformJob.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.leased_until = now + timedelta(seconds=LEASE_SECONDS)
                row.attempts += 1
            await session.flush()
            return [Claimed(row.id, row.kind, dict(row.payload), row.attempts) for row in rows]

    async def _finish(self, job: Claimed, *, error: str | None, retry: bool) -> None:
        if await self._record(job, error=error, retry=retry) and job.kind in self.give_up:
            try:
                await self.give_up[job.kind](job.payload, error or "")
            except Exception:
                logger.exception(
                    "platform job %s #%d: recording the failure failed", job.kind, job.id
                )

    async def _record(self, job: Claimed, *, error: str | None, retry: bool) -> bool:
        """Record the attempt; True when the job is now failed for good."""
        async with self.database.unit_of_work() as session:
            row = await session.get(PlatformJob, job.id, with_for_update=True)
            if row is None:
                return False
            row.leased_until = None
            row.last_error = error[:500] if error else None
            if error is None:
                row.status, row.finished_at = "done", utcnow()
            elif retry and job.attempts < MAX_ATTEMPTS:
                delay = min(RETRY_BASE_SECONDS * 2 ** (job.attempts - 1), RETRY_MAX_SECONDS)
                row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            else:
                row.status, row.finished_at = "failed", utcnow()
                logger.error("platform job %s #%d gave up: %s", job.kind, job.id, error)
            await session.flush()
            return row.status == "failed"
