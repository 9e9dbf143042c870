"""What a community dashboard counts (Aurora's, the console's), and its activity over the
last day.

The activity aggregation reads a day of ledger and moderation rows, so it is
computed at most once per ``ttl`` and kept in :class:`StatsCache` (one per
process); ``clear_for`` drops it, which the clear-cache admin action does
(in the process that serves the request: other processes' caches expire by
``ttl``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.models import Account, Identity, Provider
from guildhall.core.actor import Actor
from guildhall.core.community.models import Profile, Quest
from guildhall.core.economy.models import Balance, LedgerEntry
from guildhall.core.hosting.models import PowerState, Server
from guildhall.core.items.models import Item
from guildhall.core.moderation.models import ModerationCase
from guildhall.core.sessions.models import BotSession
from guildhall.core.sessions.models import State as SessionState
from guildhall.core.support.models import OPEN, Ticket
from guildhall.db.base import utcnow
from guildhall.db.sql import dialect_of
from guildhall.events.announce import announce
from guildhall.events.models import WebhookEndpoint


async def dashboard(session: AsyncSession, currency: str) -> dict[str, int]:
    now = utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    members = select(Identity.account_id).where(Identity.provider == Provider.DISCORD.value)
    inactive = (
        select(func.count())
        .select_from(Profile)
        .where(Profile.is_active.is_(False), Profile.account_id.in_(members))
    )

    async def count(query: Any) -> int:
        return int(await session.scalar(query) or 0)

    users = await count(select(func.count()).select_from(members.subquery()))
    return {
        "totalUsers": users,
        "activeUsers": users - await count(inactive),
        "coinsInCirculation": await count(
            select(func.coalesce(func.sum(Balance.amount), 0)).where(Balance.currency == currency)
        ),
        "totalItems": await count(select(func.count()).select_from(Item)),
        "openCases": await count(
            select(func.count()).select_from(ModerationCase).where(ModerationCase.active.is_(True))
        ),
        "transactionsToday": await count(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.currency == currency, LedgerEntry.created_at >= midnight)
        ),
        "totalQuests": await count(select(func.count()).select_from(Quest)),
    }


def _hour(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.to_char(
            func.date_trunc("hour", column.op("AT TIME ZONE")(literal_column("'UTC'"))),
            "YYYY-MM-DD HH24",
        )
    return func.substr(column, 1, 13)  # SQLite keeps "YYYY-MM-DD HH:MM:SS..." in UTC


async def activity(session: AsyncSession, currency: str) -> list[dict[str, Any]]:
    """Transactions and moderation cases per hour, for the 24 hours up to now (oldest first)."""
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    since = now - timedelta(hours=23)
    dialect = dialect_of(session).name
    buckets = {
        (since + timedelta(hours=i)).strftime("%Y-%m-%d %H"): {"transactions": 0, "cases": 0}
        for i in range(24)
    }
    for model, key, extra in (
        (LedgerEntry, "transactions", LedgerEntry.currency == currency),
        (ModerationCase, "cases", None),
    ):
        hour = _hour(model.created_at, dialect)
        query = select(hour, func.count()).where(model.created_at >= since).group_by(hour)
        if extra is not None:
            query = query.where(extra)
        for bucket, total in await session.execute(query):
            if bucket in buckets:
                buckets[bucket][key] = int(total)
    return [
        {"hour": datetime.strptime(bucket, "%Y-%m-%d %H").isoformat() + "Z", **counts}
        for bucket, counts in buckets.items()
    ]


@dataclass
class StatsCache:
    """Activity, computed at most once per ``ttl`` seconds in this process."""

    ttl: float = 300
    _value: list[dict[str, Any]] | None = None
    _at: float = 0
    computed: int = field(default=0)

    async def activity(self, session: AsyncSession, currency: str) -> list[dict[str, Any]]:
        if self._value is None or time.monotonic() - self._at >= self.ttl:
            self._value = await activity(session, currency)
            self._at = time.monotonic()
            self.computed += 1
        return self._value

    def clear(self) -> int:
        """Drop what is cached; how many entries were dropped."""
        dropped = 0 if self._value is None else 1
        self._value = None
        return dropped

    async def clear_for(self, session: AsyncSession, actor: Actor) -> int:
        """The admin action: drop the cache, and say so in the audit log and the events."""
        dropped = self.clear()
        await announce(
            session,
            actor,
            "cache.cleared",
            f"{actor.name} cleared the caches ({dropped} entries)",
            {"entries": dropped},
        )
        return dropped


async def installation_totals(session: AsyncSession, currency: str) -> dict[str, int]:
    """What the console's overview counts, from every face's data: each one query, none
    that reads more than the table it counts."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    queries: dict[str, Any] = {
        "accounts": select(func.count()).select_from(Account),
        "coins_in_circulation": select(func.coalesce(func.sum(Balance.amount), 0)).where(
            Balance.currency == currency
        ),
        "transactions_today": select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.currency == currency, LedgerEntry.created_at >= midnight),
        "items": select(func.count()).select_from(Item),
        "open_cases": select(func.count())
        .select_from(ModerationCase)
        .where(ModerationCase.active.is_(True)),
        "servers": select(func.count()).select_from(Server),
        "running_servers": select(func.count())
        .select_from(Server)
        .where(Server.status == PowerState.RUNNING.value),
        "open_tickets": select(func.count()).select_from(Ticket).where(Ticket.status == OPEN),
        "sessions_online": select(func.count())
        .select_from(BotSession)
        .where(BotSession.state == SessionState.ONLINE),
        "webhook_endpoints": select(func.count()).select_from(WebhookEndpoint),
    }
    return {key: int(await session.scalar(query) or 0) for key, query in queries.items()}
