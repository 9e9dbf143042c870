"""Counting requests in fixed windows: in this process, or in Redis for every process.

Windows are ``per_seconds`` long and aligned to the clock; a count is exact
(no sampling, no lost increments). Without Redis each process counts alone;
with ``redis_url`` one atomic INCR per key and window is shared by all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    per_seconds: int


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: Limit
    remaining: int
    reset_seconds: int


class Counter(Protocol):
    async def hit(self, key: str, window: int, ttl: int) -> int:
        """Count one request in ``key``'s ``window``; the count so far, this one included."""
        ...


class MemoryCounter:
    """Exact within one process; windows that have ended are dropped as time moves on."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._expiry: dict[tuple[str, int], float] = {}
        self._next_sweep = 0.0

    async def hit(self, key: str, window: int, ttl: int) -> int:
        now = time.monotonic()
        if now >= self._next_sweep:
            for gone in [slot for slot, until in self._expiry.items() if until <= now]:
                del self._counts[gone], self._expiry[gone]
            self._next_sweep = now + 1
        slot = (key, window)
        count = self._counts.get(slot, 0) + 1
        self._counts[slot] = count
        self._expiry.setdefault(slot, now + ttl)
        return count


_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisCounter:
    """Exact across every process sharing the Redis server."""

    def __init__(self, client: Redis, prefix: str = "guildhall") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_INCREMENT)

    async def hit(self, key: str, window: int, ttl: int) -> int:
        name = f"{self._prefix}:ratelimit:{key}:{window}"
        return int(await self._script(keys=[name], args=[ttl]))

    async def close(self) -> None:
        await self._client.aclose()


class RateLimiter:
    def __init__(self, counter: Counter, clock: Callable[[], float] = time.time) -> None:
        self.counter = counter
        self._clock = clock

    async def close(self) -> None:
        if isinstance(self.counter, RedisCounter):
            await self.counter.close()

    async def check(self, key: str, limit: Limit) -> Verdict:
        now = self._clock()
        window = int(now // limit.per_seconds)
        count = await self.counter.hit(key, window, limit.per_seconds + 1)
        reset = max(1, math.ceil((window + 1) * limit.per_seconds - now))
        return Verdict(count <= limit.requests, limit, max(0, limit.requests - count), reset)


def counter_for(redis_url: str, prefix: str = "guildhall") -> Counter:
    """Redis when a URL is given (keys under ``prefix``, so installations can share one)."""
    if redis_url:
        return RedisCounter(Redis.from_url(redis_url), prefix)
    return MemoryCounter()
