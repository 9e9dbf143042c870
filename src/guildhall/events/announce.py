"""One call for a change worth telling: the audit row people read, and the event
webhooks and live clients receive, both in the change's own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.actor import Actor
from guildhall.events import audit, outbox


async def announce(
    session: AsyncSession,
    actor: Actor,
    event: str,
    message: str,
    data: dict[str, Any],
    *,
    target: str = "",
    target_account_id: int | None = None,
) -> None:
    """Record ``event`` in the audit log (with ``message``) and the outbox (with ``data``)."""
    await audit.record(
        session, actor, event, message, target_account_id=target_account_id, target=target
    )
    await outbox.emit(session, event, data)
