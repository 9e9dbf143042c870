"""Requests that race for the same row the first time it is needed, on PostgreSQL
above all (SQLite runs writers one at a time): every one succeeds or gets the
documented answer, never a 500, and none is lost."""

from __future__ import annotations

import asyncio

import httpx

from guildhall.core.accounts.service import AccountRef
from tests.faces.aurora.conftest import POTION


async def test_first_updates_of_a_member_all_succeed_and_all_land(
    aurora: httpx.AsyncClient, player: AccountRef
) -> None:
    """The member has no profile yet: each request may be the one that creates it."""
    fields = ["xp", "level", "dailyStreak"]
    responses = await asyncio.gather(
        *(
            aurora.put(f"/api/users/{player.subject}", json={fields[n % 3]: str(n + 1)})
            for n in range(12)
        )
    )
    assert [response.status_code for response in responses] == [200] * 12, [
        response.text for response in responses if response.status_code != 200
    ]
    shown = (await aurora.get(f"/api/users/{player.subject}")).json()
    sent = {field: {n + 1 for n in range(12) if fields[n % 3] == field} for field in fields}
    # Each field holds one of the values sent for it: none was lost to a later default.
    assert int(shown["xp"]) in sent["xp"]
    assert shown["level"] in sent["level"]
    assert shown["dailyStreak"] in sent["dailyStreak"]


async def test_first_settings_changes_all_succeed_and_all_keys_survive(
    aurora: httpx.AsyncClient,
) -> None:
    """No settings row exists yet on a new database."""
    responses = await asyncio.gather(
        *(aurora.post("/api/settings", json={f"key{n}": n}) for n in range(12))
    )
    assert [response.status_code for response in responses] == [200] * 12, [
        response.text for response in responses if response.status_code != 200
    ]
    stored = (await aurora.get("/api/settings")).json()
    assert all(stored[f"key{n}"] == n for n in range(12))


async def test_an_item_deleted_while_being_given_is_given_or_not_found(
    aurora: httpx.AsyncClient, player: AccountRef
) -> None:
    for round_number in range(5):
        created = await aurora.post("/api/items", json={**POTION, "name": f"Potion {round_number}"})
        item_id = created.json()["item"]["id"]
        gives = [
            aurora.post(
                f"/api/users/{player.subject}/inventory", json={"itemId": item_id, "quantity": "1"}
            )
            for _ in range(8)
        ]
        deleted, *given = await asyncio.gather(aurora.delete(f"/api/items/{item_id}"), *gives)
        assert deleted.status_code in (200, 204), deleted.text
        assert {response.status_code for response in given} <= {200, 201, 404}, [
            response.text for response in given
        ]
        held = (await aurora.get(f"/api/users/{player.subject}/inventory")).text
        assert f"Potion {round_number}" not in held


async def test_a_class_deleted_while_being_assigned_is_assigned_or_not_found(
    aurora: httpx.AsyncClient, player: AccountRef
) -> None:
    for round_number in range(5):
        created = await aurora.post("/api/classes", json={"name": f"Mage {round_number}"})
        class_id = created.json()["class"]["id"]
        assigns = [
            aurora.put(f"/api/users/{player.subject}", json={"classId": class_id}) for _ in range(8)
        ]
        deleted, *assigned = await asyncio.gather(
            aurora.delete(f"/api/classes/{class_id}"), *assigns
        )
        assert deleted.status_code in (200, 204), deleted.text
        assert {response.status_code for response in assigned} <= {200, 404}, [
            response.text for response in assigned
        ]
        shown = (await aurora.get(f"/api/users/{player.subject}")).json()
        assert shown["classId"] is None
