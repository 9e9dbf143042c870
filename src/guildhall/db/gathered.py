"""The same read, asked by many requests of this process at once, sent once at a time.

A bot or a panel that polls one account (userinfo every second from every
game server of a customer) or one page (the member list a dashboard shows)
sends many requests for the same rows at once. On PostgreSQL each of them
is a round trip whose cost to the serving process (asyncpg's protocol, a
wake-up of the event loop, and of a PostgreSQL backend that then preempts a
worker on a small machine) is larger than the lookup itself: with two
workers on two cores, userinfo on one account answered at 1.07 times one
worker's rate, and at 1.36 to 1.50 times with its reads gathered (bench/README.md,
"The same read, sent once at a time").

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
those it carried (``turns.Interrupted``), and the next waiting request
leads the next read. The value a read returns is shared by every request it
answered: it must not be changed by any of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.db import held, sqlite_inline, turns
from guildhall.db.engine import DRIVER_KEY, LOCAL_CACHES

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class Gathered(Generic[Key, Value]):
    """Runs ``read(session, key)`` at most once at a time per key in this process, for
    every PostgreSQL read unit of work that asks meanwhile (see the module)."""

    def __init__(self, name: str, read: Callable[[AsyncSession, Key], Awaitable[Value]]) -> None:
        self._name = name  # of the queues in the database's local caches
        self._read = read

    async def get(self, session: AsyncSession, key: Key) -> Value:
        """What ``read`` answers for ``key``, read after this call began."""
        info = session.info
        caches: dict[str, turns.Queues] | None = info.get(LOCAL_CACHES)
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
        queues = caches.setdefault(self._name, {})
        if not turns.start(queues, key):
            value = await turns.wait_for_turn(queues, key, None)
            if value is not turns.LEAD:
                return value  # type: ignore[no-any-return]
        return await self._lead(session, queues, key)

    async def _lead(self, session: AsyncSession, queues: turns.Queues, key: Key) -> Value:
        """Send the read for this request and every one waiting on ``key`` now, answer
        each, and hand the next read to whichever request asked after it was sent."""
        with turns.Turn(queues, key) as turn:
            carried = turn.take_waiting()
            value = await self._read(session, key)
        for waiting in carried:
            if not waiting.answer.done():
                waiting.answer.set_result(value)
        return value
