"""What an attacker or a careless client sends gets a documented status and changes nothing.

Never a 500: huge numbers, odd digits, NUL characters, dates at the ends of
the calendar, values of the wrong type in the wrong order.
"""

from __future__ import annotations

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.runtime import Runtime
from tests.faces.heliactyl.state import snapshot


@pytest.mark.parametrize(
    ("route", "body", "status"),
    [
        ("addcoins", b'{"id": "123456789", "coins": 1e20}', "too small or big coins"),
        (
            "addcoins",
            b'{"id": "123456789", "coins": 10000000000000000000}',
            "too small or big coins",
        ),
        ("addcoins", b'{"id": "123456789", "coins": -1e20}', "too small or big coins"),
        ("setcoins", b'{"id": "123456789", "coins": 1e300}', "too small or big coins"),
        ("addcoins", b'{"id": "", "coins": 5}', "invalid id"),
        ("addcoins", b'{"id": "123\\u0000456", "coins": 5}', "invalid id"),
        ("addcoins", b'{"id": "' + b"9" * 5000 + b'", "coins": 5}', "invalid id"),
        (
            "ban",
            b'{"id": "123456789", "expiration": "9999-12-31T23:59:59-05:00"}',
            "invalid expiration",
        ),
        (
            "ban",
            b'{"id": "123456789", "expiration": "0001-01-01T00:00:00+05:00"}',
            "invalid expiration",
        ),
        ("setresources", b'{"id": "123456789", "ram": -1, "disk": "x"}', "ram size"),
        ("setresources", b'{"id": "123456789", "ram": 1e300}', "ram size"),
        ("setplan", b'{"id": "123456789", "package": 2}', "invalid package"),
        ("setplan", b'{"id": "123456789", "package": "\\u0000"}', "invalid package"),
        (  # nested deeper than any face accepts (body.MAX_JSON_DEPTH)
            "setcoins",
            b'{"id": "123456789", "coins": 5, "nested": ' + b"[" * 500 + b"]" * 500 + b"}",
            "body must be an object",
        ),
    ],
)
async def test_garbage_bodies(
    api: httpx.AsyncClient,
    runtime: Runtime,
    user: AccountRef,
    route: str,
    body: bytes,
    status: str,
) -> None:
    before = await snapshot(runtime, user.id)
    response = await api.post(f"/api/v3/{route}", content=body)
    assert response.status_code == 200
    assert response.json()["status"] == status
    if status != "success":
        assert await snapshot(runtime, user.id) == before


@pytest.mark.parametrize(
    "query",
    [
        "?id=123456789&limit=%C2%B2",
        "?id=123456789&limit=" + "9" * 5000,
        "?id=123456789&limit=%D9%A3",
        "?id=123456789&limit=1e2",
    ],
)
async def test_garbage_limits(api: httpx.AsyncClient, user: AccountRef, query: str) -> None:
    response = await api.get(f"/api/v3/userinteractions{query}")
    assert response.json() == {"status": "limit must be between 1 and 100"}


@pytest.mark.parametrize("user_id", ["%00", "a%00b", "%FF%FE", "9" * 3000])
async def test_garbage_ids_in_queries(
    api: httpx.AsyncClient, user: AccountRef, user_id: str
) -> None:
    response = await api.get(f"/api/v3/userinfo?id={user_id}")
    assert response.status_code == 200
    assert response.json() == {"status": "invalid id"}


async def test_a_nul_in_a_ban_reason_is_dropped(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    response = await api.post(
        "/api/v3/ban", content=b'{"id": "123456789", "reason": "sp\\u0000am"}'
    )
    assert response.json()["status"] == "success"


async def test_null_resources_are_left_alone(api: httpx.AsyncClient, user: AccountRef) -> None:
    await api.post("/api/v3/setresources", json={"id": "123456789", "ram": 100})
    response = await api.post(
        "/api/v3/setresources", json={"id": "123456789", "ram": None, "disk": 5}
    )
    assert response.json() == {"status": "success"}
    extra = (await api.get("/api/v3/userinfo", params={"id": "123456789"})).json()["extra"]
    assert (extra["ram"], extra["disk"]) == (100, 5)


async def test_a_body_over_the_limit_is_refused(api: httpx.AsyncClient, user: AccountRef) -> None:
    body = b'{"id": "123456789", "coins": 5, "pad": "' + b"x" * 1_100_000 + b'"}'
    response = await api.post("/api/v3/addcoins", content=body)
    assert response.json() == {"status": "body must be an object"}
