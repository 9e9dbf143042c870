"""``POST /api/v3/ban`` and ``POST /api/v3/unban``.

ban: reason (default "No reason provided"), expiration (ISO date string, or
null for permanent) -> {"status": "success", "message": "User banned
successfully"}. unban -> "User unbanned successfully". Errors "body must be
an object", "id must be a string", "invalid id".
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from guildhall.core.accounts.service import AccountRef
from guildhall.core.moderation import service as moderation
from guildhall.core.moderation.models import Ban
from guildhall.runtime import Runtime
from tests.faces.heliactyl.state import assert_refused, snapshot


async def _active(runtime: Runtime, account_id: int) -> Ban | None:
    async with runtime.database.unit_of_work(write=False) as session:
        return await moderation.active_ban(session, account_id)


async def test_permanent_ban_with_default_reason(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    response = await api.post("/api/v3/ban", json={"id": "123456789"})
    assert response.json() == {"status": "success", "message": "User banned successfully"}
    ban = await _active(runtime, user.id)
    assert ban is not None
    assert ban.reason == "No reason provided"
    assert ban.expires_at is None


async def test_temporary_ban_keeps_its_expiry(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    body = {
        "id": "123456789",
        "reason": "Spam",
        "expiration": until.isoformat().replace("+00:00", "Z"),
    }
    assert (await api.post("/api/v3/ban", json=body)).json()["status"] == "success"
    ban = await _active(runtime, user.id)
    assert ban is not None
    assert (ban.reason, ban.expires_at) == ("Spam", until)


async def test_unban_lifts_the_ban(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    await api.post("/api/v3/ban", json={"id": "123456789", "reason": "Violation of terms"})
    response = await api.post("/api/v3/unban", json={"id": "123456789"})
    assert response.json() == {"status": "success", "message": "User unbanned successfully"}
    assert await _active(runtime, user.id) is None


async def test_an_expired_ban_stops_counting_by_itself(runtime: Runtime, user: AccountRef) -> None:
    async with runtime.database.unit_of_work() as session:
        session.add(
            Ban(
                account_id=user.id,
                reason="old",
                actor="test",
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    assert await _active(runtime, user.id) is None


@pytest.mark.parametrize("route", ["ban", "unban"])
@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", "body must be an object"),
        (b"[]", "body must be an object"),
        (b"{}", "id must be a string"),
        (b'{"id": 42}', "id must be a string"),
        (b'{"id": "nobody"}', "invalid id"),
    ],
)
async def test_ban_errors_change_nothing(
    api: httpx.AsyncClient,
    runtime: Runtime,
    user: AccountRef,
    route: str,
    body: bytes,
    status: str,
) -> None:
    await assert_refused(api, runtime, user.id, f"/api/v3/{route}", body, status)
    assert await _active(runtime, user.id) is None


@pytest.mark.parametrize(
    ("expiration", "status"),
    [
        ("next tuesday", "invalid expiration"),
        (12345, "invalid expiration"),
        ("2001-01-01T00:00:00Z", "expiration must be in the future"),
    ],
)
async def test_a_malformed_expiry_is_refused_and_bans_nobody(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, expiration: object, status: str
) -> None:
    before = await snapshot(runtime, user.id)
    response = await api.post("/api/v3/ban", json={"id": "123456789", "expiration": expiration})
    assert response.json() == {"status": status}
    assert await _active(runtime, user.id) is None
    assert await snapshot(runtime, user.id) == before


async def test_concurrent_bans_leave_one_ban_in_force(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    """Each ban replaces the one before: twenty at once, with different expiries, end
    with exactly one, so the one in force is not outlived by another."""
    soon = datetime.now(UTC) + timedelta(days=1)
    bodies = [
        {
            "id": "123456789",
            "reason": f"spam {n}",
            "expiration": (soon + timedelta(hours=n)).isoformat(),
        }
        for n in range(20)
    ]
    responses = await asyncio.gather(*(api.post("/api/v3/ban", json=body) for body in bodies))
    assert {response.json()["status"] for response in responses} == {"success"}
    async with runtime.database.unit_of_work(write=False) as session:
        in_force = await session.scalar(
            select(func.count())
            .select_from(Ban)
            .where(Ban.account_id == user.id, Ban.lifted_at.is_(None))
        )
    assert in_force == 1
