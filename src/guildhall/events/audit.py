"""The audit log: every change writes one row, in the transaction that makes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.actor import Actor
from guildhall.db.base import utcnow
from guildhall.db.prepared import Prepared
from guildhall.events.models import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditRecord:
    created_at: datetime
    actor: str
    action: str
    target: str
    message: str


_INSERT = Prepared(insert(AuditEntry.__table__))  # every change runs it


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    message: str,
    *,
    target_account_id: int | None = None,
    target: str = "",
) -> None:
    """Write one audit row; it commits or rolls back with the change it describes."""
    await _INSERT.all(
        session,
        {
            "created_at": utcnow(),
            "actor": str(actor),
            "actor_account_id": actor.account_id,
            "action": action,
            "target_account_id": target_account_id,
            "target": target,
            "message": message,
        },
    )


async def for_account(session: AsyncSession, account_id: int, limit: int) -> list[AuditRecord]:
    """What was done to or by an account, newest first.

    Matched by account id, never by text, so user 12 never sees user 123's rows.
    """
    rows = await session.execute(
        select(
            AuditEntry.created_at,
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.target,
            AuditEntry.message,
        )
        .where(
            or_(
                AuditEntry.target_account_id == account_id,
                AuditEntry.actor_account_id == account_id,
            )
        )
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return [AuditRecord(*row) for row in rows]
