"""Users: the shared accounts, by Discord id, with the shared ledger as their balance."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account, make_key
from tests.faces.aurora.conftest import counts, error


async def test_a_user_in_the_documented_shape(
    aurora: httpx.AsyncClient, player: AccountRef
) -> None:
    response = await aurora.get("/api/users/123456789012345678")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in body if k not in ("createdAt", "updatedAt")} == {
        "id": "123456789012345678",
        "username": "Player1",
        "balance": "0",
        "xp": "0",
        "level": 0,
        "dailyStreak": 0,
        "isActive": True,
        "classId": None,
        "class": None,
        "settings": {},
    }
    assert body["createdAt"].endswith("Z")


async def test_an_unknown_user_is_404(aurora: httpx.AsyncClient) -> None:
    assert "Discord id 42" in error(await aurora.get("/api/users/42"), 404)


async def test_put_changes_only_the_given_fields_and_balance_goes_through_the_ledger(
    aurora: httpx.AsyncClient, runtime: Runtime, player: AccountRef
) -> None:
    await aurora.post("/api/classes", json={"id": "1", "name": "Warrior", "balance": "5000"})
    response = await aurora.put(
        "/api/users/123456789012345678",
        json={"balance": "2000", "xp": "750", "level": 10, "classId": "1"},
    )
    assert response.status_code == 200
    user = response.json()["user"]
    assert response.json()["success"] is True
    assert (user["balance"], user["xp"], user["level"], user["dailyStreak"]) == (
        "2000",
        "750",
        10,
        0,
    )
    assert user["class"] == {"id": "1", "name": "Warrior", "balance": "5000"}
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, player.id) == 2000
        assert await economy.ledger_sum(session, player.id) == 2000
    transactions = (await aurora.get("/api/transactions")).json()["transactions"]
    assert [(t["type"], t["amount"]) for t in transactions] == [("ADMIN_ADJUSTMENT", "2000")]

    again = await aurora.put("/api/users/123456789012345678", json={"dailyStreak": 5})
    assert (again.json()["user"]["level"], again.json()["user"]["dailyStreak"]) == (10, 5)


@pytest.mark.parametrize(
    "body",
    [
        {"balance": 12.5},
        {"balance": "-5"},
        {"balance": "12a"},
        {"xp": True},
        {"balance": "1000000000000000"},
        {"level": -1},
        {"isActive": "yes"},
        {"settings": []},
        {"classId": "no-such-class"},
        {"username": "bad name!"},
    ],
)
async def test_bad_fields_are_400_and_change_nothing(
    aurora: httpx.AsyncClient, runtime: Runtime, player: AccountRef, body: dict
) -> None:
    before = await counts(runtime)
    response = await aurora.put("/api/users/123456789012345678", json=body)
    assert response.status_code in (400, 404)
    assert await counts(runtime) == before
    assert (await aurora.get("/api/users/123456789012345678")).json()["balance"] == "0"


async def test_coins_moved_by_heliactyl_show_in_aurora_and_the_reverse(
    aurora: httpx.AsyncClient, heliactyl: httpx.AsyncClient, runtime: Runtime, player: AccountRef
) -> None:
    heliactyl.headers["Authorization"] = f"Bearer {await make_key(runtime, 'heliactyl')}"
    added = await heliactyl.post(
        "/api/v3/addcoins", json={"id": "123456789012345678", "coins": 300}
    )
    assert added.json() == {"status": "success"}
    assert (await aurora.get("/api/users/123456789012345678")).json()["balance"] == "300"
    await aurora.put("/api/users/123456789012345678", json={"balance": "1000"})
    info = await heliactyl.get("/api/v3/userinfo", params={"id": "123456789012345678"})
    assert info.json()["coins"] == 1000
    transactions = (
        await aurora.get("/api/transactions", params={"userId": "123456789012345678"})
    ).json()["transactions"]
    assert [t["amount"] for t in transactions] == ["700", "300"]


async def test_listing_searches_sorts_pages_and_counts(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    for index, (name, coins) in enumerate([("alice", 30), ("bob", 10), ("carol", 20)]):
        ref = await make_account(runtime, name, discord=f"100{index}")
        async with runtime.database.unit_of_work() as session:
            await economy.adjust(session, ref, coins, actor=TEST_ACTOR)
    await make_account(runtime, "no-discord")  # not an Aurora user

    body = (await aurora.get("/api/users")).json()
    assert body["total"] == 3
    assert [u["username"] for u in body["users"]] == ["alice", "carol", "bob"]  # balance desc
    ascending = await aurora.get("/api/users", params={"sortBy": "username", "sortOrder": "asc"})
    assert [u["username"] for u in ascending.json()["users"]] == ["alice", "bob", "carol"]
    paged = (await aurora.get("/api/users", params={"limit": 1, "offset": 1})).json()
    assert ([u["username"] for u in paged["users"]], paged["total"]) == (["carol"], 3)
    found = (await aurora.get("/api/users", params={"search": "AR"})).json()
    assert ([u["username"] for u in found["users"]], found["total"]) == (["carol"], 1)
    wildcard = (await aurora.get("/api/users", params={"search": "%"})).json()
    assert wildcard["total"] == 0
    capped = await aurora.get("/api/users", params={"limit": 100000})
    assert capped.status_code == 200
    for params in ({"sortBy": "password"}, {"sortOrder": "up"}, {"limit": "-1"}, {"offset": "x"}):
        error(await aurora.get("/api/users", params=params), 400)


async def test_every_order_pages_through_all_members_once(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Ranked pages hold each member once, members without a profile or balance rank as
    zero, and ties follow the account's age, in every order and within a search."""
    names = ["dora", "erin", "finn", "gale", "hugo"]
    for index, name in enumerate(names):
        await make_account(runtime, name, discord=f"200{index}")
    await aurora.put("/api/users/2001", json={"level": 3, "xp": 10})
    await aurora.put("/api/users/2003", json={"level": 7, "xp": 5, "balance": "40"})

    async def walk(**params: object) -> list[str]:
        seen: list[str] = []
        for offset in range(0, 6, 2):
            query = {"limit": 2, "offset": offset, **params}
            seen += [
                u["username"]
                for u in (await aurora.get("/api/users", params=query)).json()["users"]
            ]
        return seen

    assert await walk(sortBy="level") == ["gale", "erin", "dora", "finn", "hugo"]
    assert await walk(sortBy="xp", sortOrder="asc") == ["dora", "finn", "hugo", "gale", "erin"]
    assert await walk(sortBy="balance") == ["gale", "dora", "erin", "finn", "hugo"]
    assert await walk(sortBy="username", sortOrder="desc") == list(reversed(names))
    assert await walk(sortBy="level", search="E") == ["gale", "erin"]


async def test_clients_asking_for_pages_at_once_each_get_the_page_they_asked_for(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A dashboard's pages are read once for everyone asking at once (``db/gathered.py``):
    each client still gets the page and count it asked for, as if it had asked alone."""
    for index, (name, coins) in enumerate([("ivy", 5), ("jay", 9), ("kit", 7)]):
        ref = await make_account(runtime, name, discord=f"300{index}")
        async with runtime.database.unit_of_work() as session:
            await economy.adjust(session, ref, coins, actor=TEST_ACTOR)
    queries = [
        {},
        {"limit": 1},
        {"limit": 1, "offset": 1},
        {"sortBy": "username", "sortOrder": "asc"},
        {"search": "i"},
        {"search": "i", "sortOrder": "asc"},
    ]

    async def page(query: dict[str, object]) -> tuple[list[str], int]:
        body = (await aurora.get("/api/users", params=query)).json()
        return [user["username"] for user in body["users"]], body["total"]

    alone = [await page(query) for query in queries]
    assert (alone[4], alone[5]) == ((["kit", "ivy"], 2), (["ivy", "kit"], 2))
    at_once = await asyncio.gather(*(page(query) for query in queries * 5))
    assert at_once == alone * 5


async def test_clients_asking_for_users_at_once_each_get_the_user_they_asked_for(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    """One member is read once for everyone asking for it at once; each client still gets
    the member it asked for, in the currency it asked in, and an unknown id is still 404."""
    for index, (name, coins) in enumerate([("lou", 11), ("max", 12)]):
        ref = await make_account(runtime, name, discord=f"400{index}")
        async with runtime.database.unit_of_work() as session:
            await economy.adjust(session, ref, coins, actor=TEST_ACTOR)

    async def user(discord_id: str) -> tuple[int, str | None, str | None]:
        response = await aurora.get(f"/api/users/{discord_id}")
        body = response.json()
        return response.status_code, body.get("username"), body.get("balance")

    at_once = await asyncio.gather(*(user(id_) for id_ in ["4000", "4001", "4009"] * 6))
    assert at_once == [(200, "lou", "11"), (200, "max", "12"), (404, None, None)] * 6
