"""Moderation cases: CASE-0001, CASE-0002... from the database, cleared once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from guildhall.runtime import Runtime
from tests.faces.aurora.conftest import counts, error

CASE = {
    "type": "warn",
    "userId": "123456789",
    "username": "User1",
    "moderatorId": "987654321",
    "moderatorName": "Mod1",
    "reason": "Rule violation",
    "metadata": {"duration": "24h"},
}


async def test_create_get_and_clear_once(aurora: httpx.AsyncClient, runtime: Runtime) -> None:
    created = await aurora.post("/api/moderation", json=CASE)
    assert created.status_code == 201
    case = created.json()["case"]
    assert case["caseId"] == "CASE-0001"
    assert {k: case[k] for k in CASE} == CASE
    assert (case["active"], case["resolvedAt"], case["resolvedBy"]) == (True, None, None)
    assert (await aurora.get("/api/moderation/CASE-0001")).json() == case

    cleared = await aurora.put(
        "/api/moderation/CASE-0001/clear",
        json={"clearedBy": "987654321", "clearedByName": "Mod1", "reason": "Appeal accepted"},
    )
    body = cleared.json()["case"]
    assert (body["active"], body["resolvedBy"], body["resolvedReason"]) == (
        False,
        "987654321",
        "Appeal accepted",
    )
    assert body["resolvedAt"] is not None
    before = await counts(runtime)
    again = await aurora.put("/api/moderation/CASE-0001/clear", json={"clearedBy": "1"})
    assert "already cleared" in error(again, 409)
    assert await counts(runtime) == before
    error(await aurora.get("/api/moderation/CASE-0099"), 404)
    error(await aurora.get("/api/moderation/nonsense"), 404)


@pytest.mark.parametrize(
    "change", [{"type": "slap"}, {"userId": None}, {"moderatorId": ""}, {"metadata": "x"}]
)
async def test_bad_cases_are_400(aurora: httpx.AsyncClient, runtime: Runtime, change: dict) -> None:
    body = {k: v for k, v in {**CASE, **change}.items() if v is not None}
    error(await aurora.post("/api/moderation", json=body), 400)
    assert (await counts(runtime)).cases == 0


async def test_filters(aurora: httpx.AsyncClient) -> None:
    await aurora.post("/api/moderation", json=CASE)
    await aurora.post("/api/moderation", json={**CASE, "type": "ban", "userId": "555"})
    await aurora.post("/api/moderation", json={**CASE, "moderatorId": "42"})
    await aurora.put("/api/moderation/CASE-0001/clear", json={"clearedBy": "987654321"})

    async def ids(**params: str) -> list[str]:
        body = (await aurora.get("/api/moderation", params=params)).json()
        return [c["caseId"] for c in body["cases"]]

    assert await ids() == ["CASE-0003", "CASE-0002", "CASE-0001"]
    assert await ids(userId="555") == ["CASE-0002"]
    assert await ids(moderatorId="42") == ["CASE-0003"]
    assert await ids(type="ban") == ["CASE-0002"]
    assert await ids(active="true") == ["CASE-0003", "CASE-0002"]
    assert await ids(active="false") == ["CASE-0001"]
    assert await ids(limit="1", offset="1") == ["CASE-0002"]
    error(await aurora.get("/api/moderation", params={"type": "slap"}), 400)
    error(await aurora.get("/api/moderation", params={"active": "maybe"}), 400)


async def test_200_concurrent_creates_get_200_consecutive_numbers(
    aurora: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(aurora.post("/api/moderation", json={**CASE, "reason": f"#{i}"}) for i in range(200))
    )
    assert {r.status_code for r in responses} == {201}
    labels = sorted(r.json()["case"]["caseId"] for r in responses)
    assert labels == [f"CASE-{n:04d}" for n in range(1, 201)]


async def test_a_deleted_last_case_number_is_never_given_again(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    from sqlalchemy import delete

    from guildhall.core.moderation.models import ModerationCase

    await aurora.post("/api/moderation", json=CASE)
    async with runtime.database.unit_of_work() as session:
        await session.execute(delete(ModerationCase))
    created = await aurora.post("/api/moderation", json=CASE)
    assert created.json()["case"]["caseId"] == "CASE-0002"
