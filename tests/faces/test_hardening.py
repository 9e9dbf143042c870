"""What an attacker or an unlucky client sends: foreign pages, odd digits, a limiter
whose Redis is down. Each gets a clear answer in the face's format, never a 500."""

from __future__ import annotations

import httpx
import pytest

from guildhall.faces import FACES
from guildhall.ratelimit import RateLimiter, counter_for
from guildhall.runtime import Runtime
from tests.faces.rustmail.conftest import logged_in


def client(runtime: Runtime, face: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=FACES[face](runtime)), base_url=f"http://{face}.test"
    )


@pytest.mark.parametrize(
    ("face", "method", "path"),
    [("aurora", "POST", "/api/settings"), ("ld7", "POST", "/api/sessions")],
)
async def test_keyless_faces_refuse_other_sites_pages(
    runtime: Runtime, face: str, method: str, path: str
) -> None:
    async with client(runtime, face) as api:
        evil = await api.request(
            method, path, json={"prefix": "?"}, headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403
        assert "other sites" in evil.text
        local = await api.request(
            method,
            path,
            json={"userId": "bot_1", "phoneNumber": "1234567890"},
            headers={"Origin": "http://127.0.0.1:3000"},
        )
        assert local.status_code in (200, 201)


@pytest.mark.parametrize(
    ("face", "path"),
    [
        ("aurora", "/api/items/²"),
        ("aurora", "/api/quests/" + "9" * 5000),
        ("aurora", "/api/users?limit=²"),
        ("rustmail", "/api/bot/tickets?limit=²"),
    ],
)
async def test_odd_digits_are_a_clear_client_error(runtime: Runtime, face: str, path: str) -> None:
    async with client(runtime, face) as api:
        if face == "rustmail":
            runtime.settings.faces.rustmail.super_admin_users.append("111111111111111111")
            api.cookies.set("rustmail_session", await logged_in(runtime, "111111111111111111"))
        response = await api.get(path)
        assert response.status_code in (400, 404), response.text
        assert response.status_code != 500


async def test_a_limiter_whose_redis_is_down_lets_requests_through(runtime: Runtime) -> None:
    runtime.rate_limiter = RateLimiter(counter_for("redis://127.0.0.1:1/0"))
    async with client(runtime, "aurora") as api:
        response = await api.get("/api/health")
    assert response.status_code == 200
