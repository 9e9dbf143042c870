"""Inventory, classes, quests, transactions: the rest of Aurora's economy."""

from __future__ import annotations

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.core.economy.service import EntryType
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.aurora.conftest import POTION, counts, error

USER = "/api/users/123456789012345678"


async def _potion(aurora: httpx.AsyncClient) -> int:
    return (await aurora.post("/api/items", json=POTION)).json()["item"]["id"]


async def test_inventory_adds_up_removes_and_empties(
    aurora: httpx.AsyncClient, runtime: Runtime, player: AccountRef
) -> None:
    item_id = await _potion(aurora)
    first = await aurora.post(f"{USER}/inventory", json={"itemId": item_id, "quantity": "5"})
    assert first.json()["inventory"]["quantity"] == "5"
    second = await aurora.post(f"{USER}/inventory", json={"itemId": item_id, "quantity": "3"})
    assert second.json()["inventory"]["quantity"] == "8"
    listed = (await aurora.get(f"{USER}/inventory")).json()["inventory"]
    assert len(listed) == 1
    assert {k: listed[0][k] for k in ("userId", "itemId", "quantity")} == {
        "userId": "123456789012345678",
        "itemId": item_id,
        "quantity": "8",
    }
    assert listed[0]["item"]["name"] == "Health Potion"

    one = await aurora.delete(f"{USER}/inventory/{item_id}")  # amount defaults to 1
    assert one.json()["inventory"]["quantity"] == "7"
    before = await counts(runtime)
    too_many = await aurora.delete(f"{USER}/inventory/{item_id}", params={"amount": 8})
    assert "holds 7" in error(too_many, 400)
    assert await counts(runtime) == before
    rest = await aurora.delete(f"{USER}/inventory/{item_id}", params={"amount": 7})
    assert rest.json()["inventory"]["quantity"] == "0"
    assert (await aurora.get(f"{USER}/inventory")).json() == {"inventory": []}
    assert (await counts(runtime)).inventory == 0
    error(await aurora.delete(f"{USER}/inventory/{item_id}"), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"quantity": "5"},
        {"itemId": 1, "quantity": "0"},
        {"itemId": 1, "quantity": "-2"},
        {"itemId": 1, "quantity": 2.5},
        {"itemId": "x", "quantity": "1"},
    ],
)
async def test_bad_inventory_requests_are_400(
    aurora: httpx.AsyncClient, player: AccountRef, body: dict
) -> None:
    await _potion(aurora)
    error(await aurora.post(f"{USER}/inventory", json=body), 400)


async def test_inventory_of_unknown_users_and_items_is_404(
    aurora: httpx.AsyncClient, player: AccountRef
) -> None:
    error(await aurora.post("/api/users/1/inventory", json={"itemId": 1, "quantity": "1"}), 404)
    error(await aurora.post(f"{USER}/inventory", json={"itemId": 99, "quantity": "1"}), 404)
    error(await aurora.get("/api/users/1/inventory"), 404)


async def test_classes(aurora: httpx.AsyncClient, runtime: Runtime) -> None:
    created = await aurora.post(
        "/api/classes", json={"id": "2", "name": "Mage", "balance": "0", "roleId": "987654321"}
    )
    assert created.status_code == 201
    assert created.json() == {
        "success": True,
        "class": {"id": "2", "name": "Mage", "balance": "0", "roleId": "987654321"},
    }
    assert "already exists" in error(await aurora.post("/api/classes", json={"name": "mage"}), 409)
    error(await aurora.post("/api/classes", json={"id": "2", "name": "Other"}), 409)
    error(await aurora.post("/api/classes", json={"name": "Rich", "balance": "-1"}), 400)
    updated = await aurora.put(
        "/api/classes/2", json={"name": "Updated Name", "balance": "10000", "roleId": "111222333"}
    )
    assert updated.json()["class"] == {
        "id": "2",
        "name": "Updated Name",
        "balance": "10000",
        "roleId": "111222333",
    }
    listed = (await aurora.get("/api/classes")).json()
    assert [c["name"] for c in listed["classes"]] == ["Updated Name"]
    assert (await aurora.delete("/api/classes/2")).status_code == 204
    error(await aurora.delete("/api/classes/2"), 404)
    error(await aurora.put("/api/classes/2", json={"name": "x"}), 404)


async def test_deleting_a_class_leaves_its_members_classless(
    aurora: httpx.AsyncClient, player: AccountRef
) -> None:
    await aurora.post("/api/classes", json={"id": "1", "name": "Warrior", "balance": "5000"})
    await aurora.put(USER, json={"classId": "1"})
    await aurora.delete("/api/classes/1")
    user = (await aurora.get(USER)).json()
    assert (user["classId"], user["class"]) == (None, None)


async def test_quests_take_the_flat_body_and_show_the_nested_form(
    aurora: httpx.AsyncClient,
) -> None:
    created = await aurora.post(
        "/api/quests",
        json={
            "name": "Daily Login",
            "description": "Login once",
            "triggerEvent": "login",
            "target": 1,
            "xpReward": 50,
            "balanceReward": 100,
        },
    )
    assert created.status_code == 201
    quest = created.json()["data"]
    assert quest == {
        "id": quest["id"],
        "name": "Daily Login",
        "description": "Login once",
        "triggerEvent": "login",
        "requirements": {"target": 1},
        "rewards": {"xp": 50, "balance": 100},
    }
    assert (await aurora.get("/api/quests")).json() == {"success": True, "data": [quest]}
    updated = await aurora.put(f"/api/quests/{quest['id']}", json={"target": 3})
    assert updated.json()["data"]["requirements"] == {"target": 3}
    assert updated.json()["data"]["rewards"] == {"xp": 50, "balance": 100}
    assert (await aurora.delete(f"/api/quests/{quest['id']}")).status_code == 204
    error(await aurora.put(f"/api/quests/{quest['id']}", json={"target": 3}), 404)
    error(await aurora.post("/api/quests", json={"description": "no name"}), 400)
    error(
        await aurora.post("/api/quests", json={"name": "x", "triggerEvent": "t", "xpReward": "-1"}),
        400,
    )


async def test_transactions_filter_by_user_and_type(
    aurora: httpx.AsyncClient, runtime: Runtime, player: AccountRef
) -> None:
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(
            session,
            player,
            100,
            actor=TEST_ACTOR,
            entry_type=EntryType.DAILY_REWARD,
            reason="Daily reward (Streak: 3)",
        )
        await economy.adjust(session, player, -30, actor=TEST_ACTOR, entry_type=EntryType.SHOP_BUY)
    body = (await aurora.get("/api/transactions")).json()
    assert body["total"] == 2
    newest, oldest = body["transactions"]
    assert {k: oldest[k] for k in oldest if k not in ("id", "createdAt")} == {
        "userId": "123456789012345678",
        "relatedUserId": None,
        "amount": "100",
        "type": "DAILY_REWARD",
        "description": "Daily reward (Streak: 3)",
    }
    assert (newest["type"], newest["amount"]) == ("SHOP_BUY", "-30")
    daily = (await aurora.get("/api/transactions", params={"type": "DAILY_REWARD"})).json()
    assert [t["type"] for t in daily["transactions"]] == ["DAILY_REWARD"]
    nobody = (await aurora.get("/api/transactions", params={"userId": "42"})).json()
    assert nobody == {"transactions": [], "total": 0}
    error(await aurora.get("/api/transactions", params={"type": "ROBBERY"}), 400)
