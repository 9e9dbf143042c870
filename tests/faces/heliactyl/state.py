"""What a user would look at after a call: balance, ledger, audit trail, plan."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import func, select

from guildhall.core.economy import service as economy
from guildhall.core.plans import service as plans
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime


@dataclass(frozen=True)
class Snapshot:
    coins: int
    ledger: int
    audit_rows: int
    plan: plans.PlanView


async def snapshot(runtime: Runtime, account_id: int) -> Snapshot:
    async with runtime.database.unit_of_work(write=False) as session:
        return Snapshot(
            coins=await economy.balance_of(session, account_id),
            ledger=await economy.ledger_sum(session, account_id),
            audit_rows=await session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
            plan=await plans.get(session, account_id, runtime.catalogue),
        )


async def assert_refused(
    api: httpx.AsyncClient,
    runtime: Runtime,
    account_id: int,
    path: str,
    body: bytes,
    status: str,
) -> None:
    """POST ``body``: the answer is HTTP 200 ``{"status": status}`` and nothing changed."""
    before = await snapshot(runtime, account_id)
    response = await api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"status": status}
    assert await snapshot(runtime, account_id) == before
