"""One limiter for every face: each answers 429 in its own format, with Retry-After
and RateLimit headers; client addresses come from trusted proxies only; with Redis
the count is exact across processes. Windows slide: no span of ``per_seconds``
holds more than ``requests``, wherever it starts. A Redis that does not answer
means counting in the process, never no limit."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from redis.asyncio import Redis

from guildhall.config import Settings
from guildhall.faces import FACES
from guildhall.ratelimit import (
    RETRY_SECONDS,
    SWEEP_SECONDS,
    Counter,
    Limit,
    MemoryCounter,
    RateLimiter,
    RedisCounter,
    redis_client,
)
from guildhall.runtime import Runtime
from tests.conftest import make_key
from tests.faces.skypanel.conftest import PASSWORD, make_user
from tests.process import free_port

NOW = 1_000_000.0  # 20 s before the end of what a fixed 60 s window would be
LIMITED = {
    "heliactyl": ("GET", "/api", {"status": "error", "message": "Too many requests"}),
    "ld7": ("GET", "/api/stats", None),
    "aurora": ("GET", "/api/health", None),
    "skypanel": ("GET", "/api/servers", None),
}


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(requests: int = 3, **top: Any) -> Runtime:
        data = settings.model_dump()
        for face in FACES:
            data["faces"][face]["rate_limits"] = {
                "default": {"requests": requests, "per_seconds": 60},
                "auth": {"requests": 2, "per_seconds": 60},
            }
        data.update(top)
        runtime = Runtime(Settings(**data))
        # A clock that stands still: every request of a test is at the same instant.
        runtime.rate_limiter = RateLimiter(MemoryCounter(), clock=lambda: NOW)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.close()


def client(runtime: Runtime, face: str, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=FACES[face](runtime), client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


FORMATS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "heliactyl": lambda body: body == {"status": "error", "message": "Too many requests"},
    "ld7": lambda body: body["success"] is False and "Too many requests" in body["message"],
    "aurora": lambda body: body["error"] == "Too many requests" and "Try again" in body["details"],
    "skypanel": lambda body: body["success"] is False and body["error"]["code"] == "RATE_LIMITED",
}


@pytest.mark.parametrize("face", list(LIMITED))
async def test_each_face_answers_429_in_its_own_format(
    limited: Callable[..., Runtime], face: str
) -> None:
    runtime = limited()
    method, path, _ = LIMITED[face]
    headers = {"Authorization": f"Bearer {await make_key(runtime, '*')}"}
    async with client(runtime, face) as api:
        remaining = []
        for _ in range(3):
            response = await api.request(method, path, headers=headers)
            assert response.status_code != 429
            assert response.headers["ratelimit-limit"] == "3"
            assert response.headers["ratelimit-policy"] == "3;w=60"
            remaining.append(response.headers["ratelimit-remaining"])
        assert remaining == ["2", "1", "0"]
        refused = await api.request(method, path, headers=headers)
        assert refused.status_code == 429
        assert FORMATS[face](refused.json()), refused.json()
        # The window slides: the first request leaves it 60 s after it came (a fixed
        # window would have said 20, then let three more through at once).
        assert refused.headers["retry-after"] == "60"
        assert refused.headers["ratelimit-reset"] == "60"
        assert refused.headers["ratelimit-remaining"] == "0"


async def test_skypanel_login_has_its_own_tighter_group(limited: Callable[..., Runtime]) -> None:
    runtime = limited(requests=100)
    async with client(runtime, "skypanel") as api:
        body = {"email": "nobody@example.com", "password": "wrong password"}
        assert [(await api.post("/api/auth/login", json=body)).status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]
        assert (await api.get("/api/servers")).status_code == 401  # other routes still answer


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    limited: Callable[..., Runtime],
) -> None:
    runtime = limited(requests=1, trusted_proxies=["127.0.0.1/32"])
    async with client(runtime, "aurora") as proxy:
        for address in ("198.51.100.1", "198.51.100.2"):
            forwarded = {"X-Forwarded-For": f"203.0.113.50, {address}"}
            assert (await proxy.get("/api/health", headers=forwarded)).status_code == 200
        again = {"X-Forwarded-For": "198.51.100.1"}
        assert (await proxy.get("/api/health", headers=again)).status_code == 429
    async with client(runtime, "aurora", peer="192.0.2.7") as stranger:
        assert (await stranger.get("/api/health")).status_code == 200
        spoofed = {"X-Forwarded-For": "198.51.100.99"}
        # Untrusted: the header is ignored, so this is the same client again.
        assert (await stranger.get("/api/health", headers=spoofed)).status_code == 429


async def test_redis_counts_exactly_across_limiters(redis_url: str) -> None:
    """Two limiters with their own connections stand in for two server processes."""
    clients = [Redis.from_url(redis_url) for _ in range(2)]
    limiters = [RateLimiter(RedisCounter(c), clock=lambda: NOW) for c in clients]
    key = f"test:{uuid.uuid4().hex}"
    limit = Limit(requests=50, per_seconds=60)
    try:
        verdicts = await asyncio.gather(*(limiters[i % 2].check(key, limit) for i in range(200)))
    finally:
        for limiter in limiters:
            await limiter.close()
    assert sum(v.allowed for v in verdicts) == 50
    assert sorted(v.remaining for v in verdicts if v.allowed) == list(range(50))


# --- Sliding windows -------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def counter(request: pytest.FixtureRequest) -> AsyncIterator[Counter]:
    if request.param == "memory":
        yield MemoryCounter()
        return
    made = RedisCounter(
        redis_client(request.getfixturevalue("redis_url")), prefix=f"test-{uuid.uuid4().hex}"
    )
    yield made
    await made.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _busiest_span(allowed: list[float], span: float) -> int:
    """The most requests in any half-open span of ``span`` seconds."""
    return max(sum(1 for u in allowed if t <= u < t + span) for t in allowed)


async def test_no_span_holds_more_than_the_limit(counter: Counter) -> None:
    """The burst a fixed window let through: ten just before what used to be a window's
    end, ten more just after. Then a steady stream. Every span of 60 s holds at most
    ten, and a request is refused only when the 60 s before it already hold ten."""
    limit = Limit(requests=10, per_seconds=60)
    start = 60 * 16_667 + 50.0  # 10 s before a minute (a fixed window's end) begins
    times = [start + i * 0.25 for i in range(120)]  # 30 s, four a second
    times += [start + 30 + i * 3.0 for i in range(80)]  # four minutes, one each 3 s
    clock = Clock(start)
    limiter = RateLimiter(counter, clock=clock)
    key = f"burst:{uuid.uuid4().hex}"
    allowed: list[float] = []
    for moment in times:
        clock.now = moment
        verdict = await limiter.check(key, limit)
        recent = sum(1 for t in allowed if moment - 60 < t <= moment)
        assert verdict.allowed == (recent < 10), (moment - start, recent)
        if verdict.allowed:
            allowed.append(moment)
        assert verdict.remaining == 10 - recent - verdict.allowed
    assert _busiest_span(allowed, 60) == 10
    assert len(allowed) == 10 + 4 * 10  # and no stricter than the limit: ten each minute


async def test_reset_says_when_a_request_is_allowed_again(counter: Counter) -> None:
    limit = Limit(requests=3, per_seconds=60)
    clock = Clock(NOW)
    limiter = RateLimiter(counter, clock=clock)
    key = f"reset:{uuid.uuid4().hex}"
    for offset in (0.0, 10.0, 20.0):
        clock.now = NOW + offset
        assert (await limiter.check(key, limit)).allowed
    clock.now = NOW + 25
    refused = await limiter.check(key, limit)
    assert not refused.allowed and refused.reset_seconds == 35
    clock.now = NOW + 25 + refused.reset_seconds - 0.5
    assert not (await limiter.check(key, limit)).allowed
    clock.now = NOW + 25 + refused.reset_seconds
    again = await limiter.check(key, limit)
    assert again.allowed and again.remaining == 0 and again.reset_seconds == 10


async def test_the_memory_counter_forgets_idle_clients() -> None:
    counter = MemoryCounter()
    clock = Clock(NOW)
    limiter = RateLimiter(counter, clock=clock)
    limit = Limit(requests=5, per_seconds=60)
    for client in range(1000):
        await limiter.check(f"client-{client}", limit)
    assert len(counter) == 1000
    clock.now = NOW + 61 + SWEEP_SECONDS
    await limiter.check("client-new", limit)
    assert len(counter) == 1


async def test_a_burst_across_a_window_boundary_is_refused_through_a_face(
    settings: Settings,
) -> None:
    """Real clock, real face: three requests just before an even second (where a 2 s
    fixed window ended) and three just after; the second three are refused."""
    data = settings.model_dump()
    data["faces"]["aurora"]["rate_limits"] = {"default": {"requests": 3, "per_seconds": 2}}
    runtime = Runtime(Settings(**data))
    try:
        async with client(runtime, "aurora") as api:
            while not 1.3 <= time.time() % 2 < 1.5:
                await asyncio.sleep(0.02)
            before = [(await api.get("/api/health")).status_code for _ in range(3)]
            await asyncio.sleep(2 - time.time() % 2 + 0.1)  # past the even second
            after = [await api.get("/api/health") for _ in range(3)]
            # The first three leave the window 2 s after they came: 1 or 2 s from now.
            wait = int(after[-1].headers["retry-after"])
            await asyncio.sleep(wait)
            later = (await api.get("/api/health")).status_code
    finally:
        await runtime.close()
    assert before == [200, 200, 200]
    assert [r.status_code for r in after] == [429, 429, 429]
    assert wait in (1, 2)
    assert later == 200


# --- Redis that does not answer --------------------------------------------------------


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL whose port refuses connections."""
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_without_redis_the_auth_limit_is_counted_in_the_process(
    settings: Settings, dead_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """25 wrong SkyPANEL passwords, then the right one: the limit of 10 a minute holds."""
    runtime = Runtime(settings.model_copy(update={"redis_url": dead_redis_url}))
    try:
        assert "rate limits are counted in this process" in (await runtime.check_redis() or "")
        await make_user(runtime)
        statuses = []
        with caplog.at_level(logging.WARNING, logger="guildhall.ratelimit"):
            async with client(runtime, "skypanel") as api:
                for password in ["wrong password"] * 25 + [PASSWORD]:
                    body = {"email": "user@example.com", "password": password}
                    statuses.append((await api.post("/api/auth/login", json=body)).status_code)
    finally:
        await runtime.close()
    assert statuses == [401] * 10 + [429] * 16
    outages = [r for r in caplog.records if "Redis does not answer" in r.getMessage()]
    assert len(outages) == 1, caplog.text


class Switch:
    """A local port that refuses connections until switched on, then forwards to Redis."""

    def __init__(self, redis_url: str) -> None:
        self.port = free_port()
        target = urlsplit(redis_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 6379)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def on(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def off(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._pipes.add(pipe)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


async def test_an_outage_is_logged_once_and_its_end_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    switch = Switch(redis_url)
    monotonic = Clock(0.0)
    counter = RedisCounter(
        redis_client(switch.url), prefix=f"test-{uuid.uuid4().hex}", monotonic=monotonic
    )
    limiter = RateLimiter(counter, clock=lambda: NOW)
    limit = Limit(requests=3, per_seconds=60)
    try:
        with caplog.at_level(logging.WARNING, logger="guildhall.ratelimit"):
            down = [await limiter.check("k", limit) for _ in range(4)]
            await switch.on()
            # Redis is back, but is asked again only after the backoff: still in the process.
            waiting = await limiter.check("k", limit)
            monotonic.now = RETRY_SECONDS
            back = [await limiter.check("k", limit) for _ in range(4)]
    finally:
        await counter.close()
        await switch.off()
    assert [v.allowed for v in down] == [True, True, True, False]
    assert not waiting.allowed
    # Redis never saw the outage's requests: its own count starts afresh.
    assert [v.allowed for v in back] == [True, True, True, False]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis does not answer" in m for m in messages) == 1, messages
    assert sum("Redis answers again" in m for m in messages) == 1, messages
