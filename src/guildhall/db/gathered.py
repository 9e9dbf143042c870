"""The same read, asked by many requests of this process at once, sent once at a time.

A bot or a panel that polls one account (userinfo every second from every
game server of a customer) or one page (the member list a dashboard shows)
sends many requests for the same rows at once. On PostgreSQL each of them
is a round trip whose cost to the serving process (asyncpg's protocol, a
wake-up of the event loop, and of a PostgreSQL backend that then preempts a
worker on a small machine) is larger than the lookup itself: with two
workers on two cores, userinfo on one account answered at 1.07 times one
worker's rate (bench/README.md, "The same read, sent once at a time").

So :class:`Gathered` keeps at most one read per key on its way in this
process. A request that asks while one is on its way waits, holding only
its own unit of work, and every request that waited goes with the next read,
sent by the first of them once the read on its way has answered. That next
read is sent after each of them asked, so each sees every change committed
before it asked, as its own read would: a request is never answered by a
read that was already on its way when it came (that read may predate a
change its client had just seen committed).

Only PostgreSQL read units of work gather. SQLite reads cost no round trip,
and a unit of work that writes must read its own changes, which no other
unit of work sees: both read for themselves.

A read that fails fails every request that waited for it, as one that
carried a single request would; a read whose leader is cancelled fails
those it carried (:class:`_Interrupted`), and the next waiting request
leads the next read. The value a read returns is shared by every request it
answered: it must not be changed by any of them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.db import held, sqlite_inline
from guildhall.db.engine import DRIVER_KEY, LOCAL_CACHES

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
Queues = dict[Hashable, deque["asyncio.Future[Any]"]]
_LEAD = object()
"""A waiting request's answer that says: send the next read, for those waiting then."""


class _Interrupted(Exception):
    """The read that was to answer this request was cancelled before it answered."""


class Gathered(Generic[Key, Value]):
    """Runs ``read(session, key)`` at most once at a time per key in this process, for
    every PostgreSQL read unit of work that asks meanwhile (see the module)."""

    def __init__(self, name: str, read: Callable[[AsyncSession, Key], Awaitable[Value]]) -> None:
        self._name = name  # of the queues in the database's local caches
        self._read = read

    async def get(self, session: AsyncSession, key: Key) -> Value:
        """What ``read`` answers for ``key``, read after this call began."""
        info = session.info
        caches: dict[str, Any] | None = info.get(LOCAL_CACHES)
        driver = info.get(DRIVER_KEY)
        if (
            caches is None
            or driver is None
            or type(driver) is sqlite_inline.Connection
            or held.BEGIN_DUE in info  # a write unit of work, before its first statement
            or held.DONE in info  # one whose change ran alone (it reads for itself)
            or driver.is_in_transaction()  # one that has begun writing
        ):
            return await self._read(session, key)
        queues: Queues = caches.setdefault(self._name, {})
        queue = queues.get(key)
        if queue is None:
            queues[key] = deque()  # no read on its way: this one goes now
            return await self._lead(session, queues, key)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue.append(answer)
        try:
            value = await answer
        except asyncio.CancelledError:
            if answer.done() and not answer.cancelled() and answer.result() is _LEAD:
                _hand_on(queues, key)  # the turn it was given must not be lost
            raise
        if value is _LEAD:
            return await self._lead(session, queues, key)
        return value  # type: ignore[no-any-return]

    async def _lead(self, session: AsyncSession, queues: Queues, key: Key) -> Value:
        """Send the read for this request and every one waiting on ``key`` now, answer
        each, and hand the next read to whichever request asked after it was sent."""
        queue = queues[key]
        carried = [answer for answer in queue if not answer.done()]
        queue.clear()  # those that ask from now on wait for the next read
        try:
            value = await self._read(session, key)
        except BaseException as error:
            failure = error if isinstance(error, Exception) else _Interrupted()
            for answer in carried:
                if not answer.done():
                    answer.set_exception(failure)
            raise
        finally:
            _hand_on(queues, key)
        for answer in carried:
            if not answer.done():
                answer.set_result(value)
        return value


def _hand_on(queues: Queues, key: Hashable) -> None:
    """Give the next read on ``key`` to the first request still waiting, or end the queue."""
    queue = queues.get(key)
    while queue:
        answer = queue.popleft()
        if not answer.done():
            answer.set_result(_LEAD)
            return
    queues.pop(key, None)
