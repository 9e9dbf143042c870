"""The one rule for game servers on a panel: suspended while the owner is banned or a
renewal is unpaid. Whatever changes either side records a job (``JOB``) in its own
transaction; ``GameServers.sync_suspension`` then makes the panel match, after commit.

Kept apart from ``games.py`` so moderation can record the job without importing it.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.hosting.models import Server
from guildhall.events import jobs

JOB = "hosting.panel_suspension"
PANEL_DRIVER = "pterodactyl"


async def recheck(session: AsyncSession, account_id: int) -> None:
    """Have the account's panel servers follow its ban state (nothing when it has none)."""
    has_panel_servers = await session.scalar(
        select(
            exists().where(
                Server.account_id == account_id,
                Server.driver == PANEL_DRIVER,
                Server.panel_id.is_not(None),
            )
        )
    )
    if has_panel_servers:
        await jobs.enqueue(session, JOB, {"account_id": account_id})
