"""One account as a hosting customer sees it, read in one statement.

Heliactyl's userinfo shows an account, its plan, its coins and its
Pterodactyl user (the panel's, as last refreshed, or one built from the
account's servers). Read one by one that was five statements. On PostgreSQL
each statement is a round trip whose cost to the serving process (asyncpg's
protocol, a wake-up of the event loop) is larger than the lookup itself, so
userinfo answered at about 40 % of SQLite's rate (bench/README.md). Here the
identity's account is joined to its plan, its balance, its panel user and its
servers (LEFT JOINs: one row per server, the rest repeated), and each module
turns its own columns back into its own view (``plans.view_of``,
``Hosting.summary_of``).

A bot or panel asks for the same account many times a second; on PostgreSQL
the requests of one process that ask at once share one read
(``db/gathered.py``), each still seeing every change committed before it asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Identity
from guildhall.core.accounts.service import AccountView
from guildhall.core.economy.models import Balance
from guildhall.core.economy.service import COINS
from guildhall.core.errors import NotFound
from guildhall.core.hosting.models import PanelUser, Server
from guildhall.core.hosting.service import SUMMARY_COLUMNS, Hosting, ServerView
from guildhall.core.plans import service as plans
from guildhall.core.plans.models import Plan
from guildhall.core.plans.service import Catalogue, PlanView
from guildhall.db.gathered import Gathered
from guildhall.db.prepared import Prepared, Row

_accounts = Account.__table__
_identities = Identity.__table__
_balances = Balance.__table__
_panel_users = PanelUser.__table__
_servers = Server.__table__
_plans = Plan.__table__

_ACCOUNT = slice(1, 1 + len(accounts.PUBLIC_COLUMNS))
_PLAN = slice(_ACCOUNT.stop, _ACCOUNT.stop + len(plans.PLAN_COLUMNS))
_COINS = _PLAN.stop
_PANEL_USER = _COINS + 1
_SERVER = slice(_PANEL_USER + 1, None)

_SUMMARY_BY_SUBJECT = Prepared(
    select(
        _identities.c.provider,
        *(_accounts.c[name] for name in accounts.PUBLIC_COLUMNS),
        *plans.PLAN_COLUMNS,
        _balances.c.amount,
        _panel_users.c.document,
        *SUMMARY_COLUMNS,
    )
    .select_from(
        _identities.join(_accounts, _accounts.c.id == _identities.c.account_id)
        .outerjoin(_plans, _plans.c.account_id == _accounts.c.id)
        .outerjoin(
            _balances,
            and_(_balances.c.account_id == _accounts.c.id, _balances.c.currency == COINS),
        )
        .outerjoin(_panel_users, _panel_users.c.account_id == _accounts.c.id)
        .outerjoin(_servers, _servers.c.account_id == _accounts.c.id)
    )
    .where(_identities.c.subject == bindparam("subject"))
    .order_by(_servers.c.id)
)


async def _summary_rows(session: AsyncSession, subject: str) -> list[Row]:
    return await _SUMMARY_BY_SUBJECT.all(session, {"subject": subject})


_SUMMARY_ROWS = Gathered("hosting.summary", _summary_rows)


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    account: AccountView
    plan: PlanView
    coins: int
    panel_user: dict[str, Any] | None
    """The panel's own user object as last refreshed; None if it was never fetched, or
    no panel is configured."""
    servers: list[ServerView]


async def summary_by_identity(
    session: AsyncSession,
    subject: str,
    *,
    catalogue: Catalogue,
    hosting: Hosting,
    with_panel_user: bool,
) -> CustomerSummary:
    """The account any identity names, with its plan, coins and servers, and the panel's
    user object if ``with_panel_user`` (a panel is configured: a document left from an
    earlier panel is not shown)."""
    found = accounts.plausible_subject(subject)
    rows = await _SUMMARY_ROWS.get(session, subject) if found else []
    best = accounts.preferred(rows)
    if best is None:
        raise NotFound(f"no account has the id {subject!r}", code="account_not_found")
    # Another account may hold the same subject under another provider, and one
    # account may hold it twice (its rows then repeat each server).
    mine = [row for row in rows if row[1] == best[0]]
    first = mine[0]
    servers: dict[str, ServerView] = {}
    for row in mine:
        if row[_SERVER.start] is not None:
            server = hosting.summary_of(best[0], row[_SERVER])
            servers.setdefault(server.public_id, server)
    return CustomerSummary(
        account=AccountView(*first[_ACCOUNT]),
        plan=plans.view_of(first[_PLAN], catalogue),
        coins=first[_COINS] or 0,
        panel_user=first[_PANEL_USER] if with_panel_user else None,
        servers=list(servers.values()),
    )
