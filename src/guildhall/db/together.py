"""Changes to one row from many requests of this process, one statement at a time.

When many requests change the same row at once (one hot balance, a bot paying
one account on every message), PostgreSQL runs their statements one after
another anyway: each waits for the row lock of the one before, which is held
until its commit is on disk, and PostgreSQL does more work the more of them
wait (pgbench, one UPDATE on one row: 4,635 transactions/s with two clients,
2,592 with ten). So :class:`Together` runs one statement per row at a time in
this process: a change that comes while one runs waits here, and all that
waited go together as the next statement, which changes the row once and
writes each change's own records. Every change still has its own result (the
balance after it, in order), and PostgreSQL sees at most one statement per row
per process.

A waiting change holds nothing: no connection, no unit of work. The change
that leads a turn opens a unit of work for it, whose one statement runs alone
(``Prepared.alone``: it commits by itself), so every change it carried is
committed when it answers. (A waiting change that held its own unit of work
would hold a pooled connection that it never uses: with ten connections, the
turn in flight and the turn forming each had five, and the pool, not the row,
set the pace.)

A statement that fails fails every change it carried, as one that carried a
single change would; none of them is retried, because none can know whether
PostgreSQL committed it before the failure reached this process.

This is PostgreSQL's counterpart of SQLite's group commit (``engine._Writer``),
which shares one transaction among every writer of the process. The turns
themselves (who leads, who waits, who is handed on) are ``turns.py``'s, shared
with the reads of ``gathered.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.db import turns
from guildhall.db.engine import Database
from guildhall.db.prepared import Row

Change = TypeVar("Change")


class Together(Generic[Change]):
    """Runs changes that share a key (the row they change) one statement at a time.

    It is made with the function that runs a turn, ``run(session, changes)``: the
    changes as one statement through ``Prepared.alone``, in the turn's own unit of
    work, answering each change's rows marked by their first column, the change's
    place in ``changes`` counting from 1 (as ``WITH ORDINALITY`` counts). No rows
    for a change means the statement changed nothing (of any change in it).
    """

    def __init__(
        self, name: str, run: Callable[[AsyncSession, Sequence[Change]], Awaitable[list[Row]]]
    ) -> None:
        self._name = name  # of the queues in the database's local caches
        self._run = run

    async def run(self, database: Database, key: Hashable, change: Change) -> list[Row]:
        """The rows of ``change`` (without their first column), run with the changes of
        other requests on ``key`` that meet it; committed if there are any."""
        queues: turns.Queues = database.local_caches.setdefault(self._name, {})
        if not turns.start(queues, key):
            rows = await turns.wait_for_turn(queues, key, change)
            if rows is not turns.LEAD:
                return list(rows)
        return await self._lead(database, queues, key, change)

    async def _lead(
        self, database: Database, queues: turns.Queues, key: Hashable, change: Change
    ) -> list[Row]:
        """Run ``change`` and every change waiting on ``key`` as one statement, answer
        each, and hand the next turn to whichever change waits after them."""
        with turns.Turn(queues, key) as turn:
            async with database.unit_of_work() as session:
                # Those that came while it waited for a connection go with it.
                carried = turn.take_waiting()
                changes = [change, *(waiting.item for waiting in carried)]
                rows = await self._run(session, changes)
        for place, waiting in enumerate(carried, start=2):
            if not waiting.answer.done():
                waiting.answer.set_result(_rows_of(rows, place))
        return _rows_of(rows, 1)


def _rows_of(rows: list[Row], place: int) -> list[Row]:
    return [row[1:] for row in rows if row[0] == place]
