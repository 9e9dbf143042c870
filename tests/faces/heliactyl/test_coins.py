"""``POST /api/v3/setcoins`` and ``POST /api/v3/addcoins``.

The document: coins (number, required) 0-999999999999999 for setcoins,
1-999999999999999 to add; errors "body must be an object", "id must be a
string", "invalid id", "coins must be number", "too small or big coins", and
for addcoins "cant do that mate" when adding 0. Every error is HTTP 200 and
changes nothing.
"""

from __future__ import annotations

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.runtime import Runtime
from tests.faces.heliactyl.state import assert_refused, snapshot

MAX = 999_999_999_999_999


async def test_setcoins_sets_the_exact_balance(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    response = await api.post("/api/v3/setcoins", json={"id": "123456789", "coins": 1000})
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    after = await snapshot(runtime, user.id)
    assert after.coins == after.ledger == 1000
    response = await api.post("/api/v3/setcoins", json={"id": "123456789", "coins": 250})
    after = await snapshot(runtime, user.id)
    assert after.coins == after.ledger == 250
    info = await api.get("/api/v3/userinfo", params={"id": "123456789"})
    assert info.json()["coins"] == 250


async def test_addcoins_adds_to_the_balance(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    await api.post("/api/v3/setcoins", json={"id": "123456789", "coins": 1000})
    response = await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": 500})
    assert response.json() == {"status": "success"}
    after = await snapshot(runtime, user.id)
    assert after.coins == after.ledger == 1500


async def test_addcoins_takes_with_a_negative_amount_while_the_result_stays_in_range(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    await api.post("/api/v3/setcoins", json={"id": "123456789", "coins": 100})
    ok = await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": -40})
    assert ok.json() == {"status": "success"}
    below = await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": -61})
    assert below.json() == {"status": "too small or big coins"}
    after = await snapshot(runtime, user.id)
    assert after.coins == after.ledger == 60


BAD_BODIES = [
    (b"", "body must be an object"),
    (b"[1, 2]", "body must be an object"),
    (b'"text"', "body must be an object"),
    (b"{not json", "body must be an object"),
    (b"null", "body must be an object"),
    (b'{"coins": 5}', "id must be a string"),
    (b'{"id": 123456789, "coins": 5}', "id must be a string"),
    (b'{"id": "nobody", "coins": 5}', "invalid id"),
    (b'{"id": "nobody", "coins": "x"}', "invalid id"),
    (b'{"id": "123456789"}', "coins must be number"),
    (b'{"id": "123456789", "coins": "5"}', "coins must be number"),
    (b'{"id": "123456789", "coins": true}', "coins must be number"),
    (b'{"id": "123456789", "coins": 1.5}', "coins must be number"),
    (b'{"id": "123456789", "coins": null}', "coins must be number"),
]


@pytest.mark.parametrize("endpoint", ["setcoins", "addcoins"])
@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
async def test_bad_requests_get_their_documented_status_and_change_nothing(
    api: httpx.AsyncClient,
    runtime: Runtime,
    user: AccountRef,
    endpoint: str,
    body: bytes,
    status: str,
) -> None:
    await assert_refused(api, runtime, user.id, f"/api/v3/{endpoint}", body, status)


@pytest.mark.parametrize(
    ("endpoint", "coins"),
    [("setcoins", -1), ("setcoins", MAX + 1), ("addcoins", MAX + 1), ("addcoins", -1)],
)
async def test_out_of_range_is_too_small_or_big(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, endpoint: str, coins: int
) -> None:
    body = f'{{"id": "123456789", "coins": {coins}}}'.encode()
    await assert_refused(
        api, runtime, user.id, f"/api/v3/{endpoint}", body, "too small or big coins"
    )


async def test_the_range_ends_are_allowed(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    assert (await api.post("/api/v3/setcoins", json={"id": "123456789", "coins": MAX})).json() == {
        "status": "success"
    }
    over = await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": 1})
    assert over.json() == {"status": "too small or big coins"}
    assert (await api.post("/api/v3/setcoins", json={"id": "123456789", "coins": 0})).json() == {
        "status": "success"
    }
    after = await snapshot(runtime, user.id)
    assert after.coins == after.ledger == 0


async def test_adding_zero_is_cant_do_that_mate(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    before = await snapshot(runtime, user.id)
    response = await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": 0})
    assert response.json() == {"status": "cant do that mate"}
    assert await snapshot(runtime, user.id) == before


async def test_each_change_is_in_the_audit_log_naming_the_user(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    await api.post("/api/v3/addcoins", json={"id": "123456789", "coins": 500})
    response = await api.get("/api/v3/userinteractions", params={"id": "123456789"})
    newest = response.json()["interactions"][0]["action"]
    assert "user123" in newest
    assert "123456789" in newest
    assert "500" in newest
