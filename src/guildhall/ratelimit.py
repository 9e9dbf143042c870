"""Counting requests in sliding windows: in this process, or in Redis for every process.

A limit of ``requests`` per ``per_seconds`` holds in *every* span of
``per_seconds`` (a half-open interval), not only in spans aligned to the
clock: fixed windows let twice the limit through around a window's end (19
logins in 3.4 s against 10 a minute). So each key keeps a log of the times
of its allowed requests within the last ``per_seconds``; a request is allowed
while the log holds fewer than ``requests`` entries, and a refused request is
not logged (a client hammering a closed door does not keep it closed).

Why a log and not a token bucket (GCRA): a bucket of ``requests`` refilled at
``requests / per_seconds`` lets a full burst through and then the refill, so
close to twice the limit in one span; a bucket exact over every span must
remember when each of the last ``requests`` requests came, which is the log.
The log holds at most ``requests`` times per key (about 32 bytes each in
the process), only for clients busy in the last ``per_seconds``: memory
follows the traffic actually allowed, and an idle key is dropped. Each
request costs amortised O(1) in the process and O(log n) in Redis.

- In this process (:class:`MemoryCounter`): a deque of times per key; keys
  whose newest entry has aged out are swept every ``SWEEP_SECONDS``.
- In Redis (:class:`RedisCounter`): one sorted set per key (scores in
  milliseconds), trimmed, counted and appended by one Lua script, so the
  count is atomic across every process; the key expires when idle. Times come
  from each process's clock (servers sharing Redis keep time with NTP).
- Redis down: the Redis counter counts in this process instead, never lets
  everything through. The outage is logged once when it begins and once
  when Redis answers again; meanwhile Redis is tried again at most every
  ``RETRY_SECONDS`` (by one request, the others do not wait), and every call
  has short timeouts and no retries, so a dead Redis does not stall
  requests. During an outage each worker process counts alone (so with
  ``--workers N`` a client may get up to N times the limit); when Redis
  answers again its own counts take over and the process's are dropped.

``reset_seconds`` is how long until the oldest logged request leaves the
window: for a refused request, when one will be allowed again.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

SWEEP_SECONDS = 10.0
RETRY_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 0.5
CALL_TIMEOUT_SECONDS = 1.0

logger = logging.getLogger(__name__)


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


class Tally(NamedTuple):
    allowed: bool
    remaining: int
    wait_seconds: float  # until the oldest logged request leaves the window


class Counter(Protocol):
    async def hit(self, key: str, limit: Limit, now: float) -> Tally:
        """Log one request for ``key`` at ``now`` if ``limit`` leaves room for it."""
        ...

    async def close(self) -> None: ...


class MemoryCounter:
    """Exact within one process."""

    def __init__(self) -> None:
        self._logs: dict[str, deque[float]] = {}
        self._idle_at: dict[str, float] = {}  # when a key's newest entry leaves its window
        self._next_sweep = 0.0

    async def hit(self, key: str, limit: Limit, now: float) -> Tally:
        return self.count(key, limit, now)

    def count(self, key: str, limit: Limit, now: float) -> Tally:
        if now >= self._next_sweep:
            self._sweep(now)
        log = self._logs.get(key)
        if log is None:
            log = deque()
        horizon = now - limit.per_seconds
        while log and log[0] <= horizon:
            log.popleft()
        allowed = len(log) < limit.requests
        if allowed:
            log.append(now)
            self._logs[key] = log
            self._idle_at[key] = now + limit.per_seconds
        elif not log:  # a limit of no requests at all
            return Tally(False, 0, limit.per_seconds)
        return Tally(allowed, limit.requests - len(log), log[0] + limit.per_seconds - now)

    def _sweep(self, now: float) -> None:
        for key in [key for key, until in self._idle_at.items() if until <= now]:
            del self._idle_at[key]
            del self._logs[key]
        self._next_sweep = now + SWEEP_SECONDS

    def __len__(self) -> int:
        """How many keys are held (what the sweep bounds)."""
        return len(self._logs)

    async def close(self) -> None:
        return None


# KEYS[1] the log; ARGV: now (ms), horizon (ms, entries at or before it have left),
# requests, a member unique to this request, the key's lifetime when idle (ms).
_SLIDE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local count = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[3])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] == nil then return {allowed, limit - count, -1} end
return {allowed, limit - count, tonumber(oldest[2]) - tonumber(ARGV[2])}
"""


class RedisCounter:
    """Exact across every process sharing the Redis server; in this process while it is down."""

    def __init__(
        self,
        client: Redis,
        prefix: str = "guildhall",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_SLIDE)
        self._member = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._sequence = itertools.count()
        self._monotonic = monotonic
        self.fallback = MemoryCounter()
        self.down = False
        self._retry_at = 0.0
        self._probing = False

    async def hit(self, key: str, limit: Limit, now: float) -> Tally:
        if self.down and (self._probing or self._monotonic() < self._retry_at):
            return self.fallback.count(key, limit, now)
        probe = self.down
        if probe:
            self._probing = True  # the others count in the process meanwhile
        now_ms = math.floor(now * 1000)
        horizon_ms = now_ms - limit.per_seconds * 1000
        try:
            allowed, remaining, wait_ms = await self._script(
                keys=[f"{self._prefix}:ratelog:{key}"],
                args=[
                    now_ms,
                    horizon_ms,
                    limit.requests,
                    f"{self._member}{next(self._sequence)}",
                    limit.per_seconds * 1000 + 1000,
                ],
            )
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return self.fallback.count(key, limit, now)
        finally:
            if probe:
                self._probing = False
        if self.down:
            self.down = False
            self.fallback = MemoryCounter()  # the outage's counts: not needed, not kept
            logger.warning("Redis answers again: rate limits are shared through it again")
        wait = limit.per_seconds if wait_ms < 0 else wait_ms / 1000
        return Tally(bool(allowed), int(remaining), wait)

    def _went_down(self, exc: BaseException) -> None:
        self._retry_at = self._monotonic() + RETRY_SECONDS
        if not self.down:
            self.down = True
            logger.warning(
                "Redis does not answer (%s): rate limits are counted in this process until it does",
                str(exc) or type(exc).__name__,
            )

    async def ping(self) -> str | None:
        """``None`` when Redis answers, else why not (for the start-up check)."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            return str(exc) or type(exc).__name__
        return None

    async def close(self) -> None:
        await self._client.aclose()


class RateLimiter:
    def __init__(self, counter: Counter, clock: Callable[[], float] = time.time) -> None:
        self.counter = counter
        self._clock = clock

    async def close(self) -> None:
        await self.counter.close()

    async def check(self, key: str, limit: Limit) -> Verdict:
        tally = await self.counter.hit(key, limit, self._clock())
        reset = max(1, math.ceil(tally.wait_seconds))
        return Verdict(tally.allowed, limit, max(0, tally.remaining), reset)


def redis_client(redis_url: str) -> Redis:
    """A client that gives up fast: short timeouts and no retries (the caller falls back)."""
    return Redis.from_url(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=CALL_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def counter_for(redis_url: str, prefix: str = "guildhall") -> Counter:
    """Redis when a URL is given (keys under ``prefix``, so installations can share one)."""
    if redis_url:
        return RedisCounter(redis_client(redis_url), prefix)
    return MemoryCounter()
