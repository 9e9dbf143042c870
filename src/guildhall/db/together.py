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
which shares one transaction among every writer of the process.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.db.engine import Database
from guildhall.db.prepared import Row

Change = TypeVar("Change")
Queues = dict[Hashable, deque["_Waiting[Any]"]]
_LEAD = object()
"""A waiting change's answer that says: lead the next turn, with those waiting then."""


@dataclass(slots=True)
class _Waiting(Generic[Change]):
    change: Change
    answer: asyncio.Future[Any]


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
        queues: Queues = database.local_caches.setdefault(self._name, {})
        queue = queues.get(key)
        if queue is not None:
            answer = asyncio.get_running_loop().create_future()
            queue.append(_Waiting(change, answer))
            try:
                rows = await answer
            except asyncio.CancelledError:
                if answer.done() and not answer.cancelled() and answer.result() is _LEAD:
                    _hand_on(queues, key)  # the turn it was given must not be lost
                raise
            if rows is not _LEAD:
                return list(rows)
        else:
            queues[key] = deque()  # this change leads: its statement runs now
        return await self._lead(database, queues, key, change)

    async def _lead(
        self, database: Database, queues: Queues, key: Hashable, change: Change
    ) -> list[Row]:
        """Run ``change`` and every change waiting on ``key`` as one statement, answer
        each, and hand the next turn to whichever change waits after them."""
        carried: list[_Waiting[Change]] = []
        try:
            async with database.unit_of_work() as session:
                # Those that came while it waited for a connection go with it.
                queue = queues[key]
                carried = [waiting for waiting in queue if not waiting.answer.done()]
                queue.clear()
                changes = [change, *(waiting.change for waiting in carried)]
                rows = await self._run(session, changes)
        except BaseException as error:
            failure = error if isinstance(error, Exception) else _Interrupted()
            for waiting in carried:
                if not waiting.answer.done():
                    waiting.answer.set_exception(failure)
            raise
        finally:
            _hand_on(queues, key)
        for place, waiting in enumerate(carried, start=2):
            if not waiting.answer.done():
                waiting.answer.set_result(_rows_of(rows, place))
        return _rows_of(rows, 1)


class _Interrupted(Exception):
    """The statement that carried this change was cancelled before it answered."""


def _hand_on(queues: Queues, key: Hashable) -> None:
    """Give the next turn on ``key`` to the first change still waiting, or end the queue."""
    queue = queues.get(key)
    while queue:
        waiting = queue.popleft()
        if not waiting.answer.done():
            waiting.answer.set_result(_LEAD)
            return
    queues.pop(key, None)


def _rows_of(rows: list[Row], place: int) -> list[Row]:
    return [row[1:] for row in rows if row[0] == place]
