"""What a user would look at after a call: balance, ledger, audit trail, plan."""

from __future__ import annotations

from dataclasses import dataclass

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
