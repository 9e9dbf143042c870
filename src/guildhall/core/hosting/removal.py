"""How a hosted server is forgotten, whichever kind it is (a VPS, a game server)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.actor import Actor
from guildhall.core.hosting.models import Server
from guildhall.events.announce import announce


async def remove(
    session: AsyncSession, row: Server, actor: Actor, sentence: str, data: dict[str, Any]
) -> None:
    """Delete the server's row, with its audit ``sentence`` and one ``server.deleted``
    event carrying ``data`` (status ``deleted``)."""
    public_id, account_id = row.public_id, row.account_id
    await session.delete(row)
    await session.flush()
    await announce(
        session,
        actor,
        "server.deleted",
        sentence,
        {**data, "status": "deleted"},
        target_account_id=account_id,
        target=f"server:{public_id}",
    )
