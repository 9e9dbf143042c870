"""One limiter for every face: each answers 429 in its own format, with Retry-After
and RateLimit headers; client addresses come from trusted proxies only; with Redis
the count is exact across processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from guildhall.config import Settings
from guildhall.faces import FACES
from guildhall.ratelimit import Limit, MemoryCounter, RateLimiter, RedisCounter
from guildhall.runtime import Runtime
from tests.conftest import make_key

NOW = 1_000_000.0  # 20 s before the end of a 60 s window
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
        # A fixed clock: a test never straddles the end of a window.
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
        assert refused.headers["retry-after"] == "20"
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
