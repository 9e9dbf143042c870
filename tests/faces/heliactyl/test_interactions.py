"""``GET /api/v3/userinteractions``: the last N interactions, newest first.

limit defaults to 15, max 100; timestamps "2025-12-31 12:44:15". Errors
"missing id", "id must be a string", "invalid id", "limit must be between 1
and 100".
"""

from __future__ import annotations

import re

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.runtime import Runtime
from tests.conftest import make_account


async def test_newest_first_with_the_documented_shape(
    api: httpx.AsyncClient, user: AccountRef
) -> None:
    for coins in (1, 2, 3):
        await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": coins})
    response = await api.get("/api/v3/userinteractions", params={"id": "123456789", "limit": 3})
    body = response.json()
    assert body["status"] == "success"
    assert body["userId"] == "123456789"
    assert (body["limit"], body["count"]) == (3, 3)
    actions = [item["action"] for item in body["interactions"]]
    assert "added 3 coins" in actions[0]
    assert "added 2 coins" in actions[1]
    assert "added 1 coins" in actions[2]
    for item in body["interactions"]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", item["timestamp"])


async def test_default_limit_is_15(api: httpx.AsyncClient, user: AccountRef) -> None:
    for _ in range(20):
        await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": 1})
    body = (await api.get("/api/v3/userinteractions", params={"id": "123456789"})).json()
    assert (body["limit"], body["count"]) == (15, 15)


async def test_an_id_never_matches_a_user_whose_id_merely_contains_it(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_account(runtime, "short", discord="12")
    await make_account(runtime, "long", discord="123")
    await api.post("/api/v3/addcoins", json={"id": "123", "coins": 7})
    body = (await api.get("/api/v3/userinteractions", params={"id": "12"})).json()
    assert body["count"] == 1  # only its own creation
    assert "short" in body["interactions"][0]["action"]
    assert all("long" not in item["action"] for item in body["interactions"])


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", "missing id"),
        ("?id=123456789&id=1", "id must be a string"),
        ("?id=nobody", "invalid id"),
        ("?id=123456789&limit=0", "limit must be between 1 and 100"),
        ("?id=123456789&limit=101", "limit must be between 1 and 100"),
        ("?id=123456789&limit=ten", "limit must be between 1 and 100"),
        ("?id=123456789&limit=-5", "limit must be between 1 and 100"),
    ],
)
async def test_interaction_errors(
    api: httpx.AsyncClient, user: AccountRef, query: str, status: str
) -> None:
    response = await api.get(f"/api/v3/userinteractions{query}")
    assert response.status_code == 200
    assert response.json() == {"status": status}
