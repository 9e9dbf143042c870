"""Requests of this process that take turns on a key, one turn at a time.

Changes to one row (``together.py``) and reads of one key (``gathered.py``) both
go one turn at a time per key in a process. The request that finds no turn
under way leads one; those that come meanwhile wait in the key's queue. When a
turn ends, the first request still waiting leads the next, and takes every
request waiting then (:meth:`Turn.take_waiting`) into its turn: each gets its own
answer from that turn, or the turn's failure.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Queues = dict[Hashable, deque["Waiting[Any]"]]
LEAD = object()
"""A waiting request's answer that says: lead the next turn, with those waiting then."""


@dataclass(slots=True)
class Waiting(Generic[Item]):
    """A request waiting on a key, with what it brings to the turn that takes it."""

    item: Item
    answer: asyncio.Future[Any]


class Interrupted(Exception):
    """The turn that carried this request was cancelled before it answered."""


def start(queues: Queues, key: Hashable) -> bool:
    """True when no turn on ``key`` is under way: the caller leads one now."""
    if key in queues:
        return False
    queues[key] = deque()
    return True


async def wait_for_turn(queues: Queues, key: Hashable, item: object) -> Any:
    """Wait behind the turn under way on ``key``: the answer a later turn gave ``item``,
    or :data:`LEAD` when it is this request's turn to lead."""
    waiting = Waiting(item, asyncio.get_running_loop().create_future())
    queues[key].append(waiting)
    try:
        return await waiting.answer
    except asyncio.CancelledError:
        answer = waiting.answer
        if answer.done() and not answer.cancelled() and answer.result() is LEAD:
            hand_on(queues, key)  # the turn it was given must not be lost
        raise


class Turn:
    """The turn a request leads on a key. However it ends, the next goes to the first
    request still waiting; if it fails, so does every request it carried."""

    __slots__ = ("_key", "_queues", "carried")

    def __init__(self, queues: Queues, key: Hashable) -> None:
        self._queues = queues
        self._key = key
        self.carried: list[Waiting[Any]] = []

    def take_waiting(self) -> list[Waiting[Any]]:
        """The requests waiting on the key now, taken into this turn; those that come
        from now on wait for the next."""
        queue = self._queues[self._key]
        self.carried = [waiting for waiting in queue if not waiting.answer.done()]
        queue.clear()
        return self.carried

    def __enter__(self) -> Turn:
        return self

    def __exit__(self, _kind: object, error: BaseException | None, _trace: object) -> None:
        try:
            if error is not None:
                # A cancellation was not theirs: they fail as interrupted.
                failure = error if isinstance(error, Exception) else Interrupted()
                for waiting in self.carried:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(failure)
        finally:
            hand_on(self._queues, self._key)


def hand_on(queues: Queues, key: Hashable) -> None:
    """Give the next turn on ``key`` to the first request still waiting, or end the queue."""
    queue = queues.get(key)
    while queue:
        waiting = queue.popleft()
        if not waiting.answer.done():
            waiting.answer.set_result(LEAD)
            return
    queues.pop(key, None)
