"""``/accounts``: find anyone by any identity; ``/accounts/{id}``: everything about them.

Every change goes through the core services the API faces call: a ban or unban
through ``moderation.ban``/``unban`` (as Heliactyl's ``/api/v3/ban``), coins
through ``economy.adjust`` (as its ``addcoins``), keys through ``access.create`` and
``access.revoke``; so the audit rows and events are the APIs' own, with the staff
member as actor (``account:console:<username>``).

Decisions where the issue is silent:

- Search looks at one thing typed: an account id, a username (a case-insensitive
  *prefix*: ``ali`` finds ``Alice``), an email (exact, whatever its case), an
  account's uuid, or any linked identity's subject (a Discord, GitHub or Google
  id). The exact ones are indexed look-ups made first; the one query that then
  lists the page asks ``id IN (those) OR lower(username) LIKE 'q%'``, newest
  first, 50 a page, reading one row more than it shows to know whether a next
  page exists (no count over 100,000 rows). The username prefix is the only
  part that reads the table, and only for text a username could start with (not
  an email). An email with an ``@`` not found as typed is compared whatever its
  case by the core's ``accounts.holder_of_email`` (one read of the table).
- A ban's expiry is a number of whole hours from now (empty: permanent): a
  browser's ``datetime-local`` carries no time zone, and staff in several zones
  would each mean a different moment.
- API keys belong to the installation, not to an account (``ApiKey`` has no owner
  column), so the keys section of every account page lists the installation's
  keys, newest first, and a key made there is an installation key like one made
  with ``guildhall keys create``. Its secret is shown once, in the answer to the
  form (200, no redirect), and never again: only its hash is kept.
- Bot sessions (LD7's) are named by a handle and a phone number, not tied to an
  account, so the page shows none and says so, with a link to the sessions page.
- The ledger pages by ``?ledger_page=N`` and the keys by ``?keys_page=N`` (50
  each); tickets and bans show the newest 50 and 20, the audit the newest 50 rows
  about or by the account.
- A form's refused value (a non-numeric amount, a NUL in a reason, an expiry that
  is not whole hours) re-renders the page with the message next to the form
  (400, or what the core error says) and changes nothing: the core call runs in a
  savepoint that a refusal rolls back.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access import service as access
from guildhall.core.access.console import Area
from guildhall.core.access.models import ApiKey
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Identity, Provider
from guildhall.core.accounts.service import AccountRef, AccountView
from guildhall.core.economy import service as economy
from guildhall.core.errors import CoreError, Invalid, NotFound, is_digits
from guildhall.core.moderation import service as moderation
from guildhall.core.moderation.models import Ban
from guildhall.core.plans import service as plans
from guildhall.core.support.models import Ticket
from guildhall.core.text import require_storable, storable
from guildhall.db.base import utcnow
from guildhall.events import audit
from guildhall.faces.console.auth import Visit, runtime_of, screen
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.render import back_to, page

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
MAX_QUERY = 320
"""The longest thing worth searching for: an email address's limit."""
MAX_REASON = 500
"""The ledger's and the ban's reason columns hold this many characters."""
MAX_BAN_HOURS = 24 * 365 * 100
BANS_SHOWN = 20
TICKETS_SHOWN = 50
AUDIT_SHOWN = 50
AMOUNT = re.compile(r"[+-]?[0-9]{1,16}")
SCOPE_SEPARATORS = re.compile(r"[\s,]+")


# ---- reading what was typed -------------------------------------------------


def page_number(visit: Visit, name: str = "page") -> int:
    """``?<name>=N`` as a page number (1 when absent); Invalid for anything else."""
    raw = visit.query(name)
    if not raw:
        return 1
    if not is_digits(raw, 7) or not 1 <= int(raw) <= MAX_PAGE:
        raise Invalid(f"The page number must be a whole number from 1 to {MAX_PAGE:,}.")
    return int(raw)


def reason_of(visit: Visit) -> str:
    """The form's reason: storable text of at most :data:`MAX_REASON` characters."""
    reason = require_storable(visit.text("reason"), "The reason", field="reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"The reason must be at most {MAX_REASON} characters.", field="reason")
    return reason


def amount_of(visit: Visit) -> int:
    """The coins to add (or, negative, to take): a whole number."""
    raw = visit.text("amount")
    if not AMOUNT.fullmatch(raw):
        raise Invalid("The amount must be a whole number, such as 100 or -50.", field="amount")
    return int(raw)


def ban_hours_of(visit: Visit) -> int | None:
    """The ban's length in whole hours, or None (empty) for a permanent ban."""
    raw = visit.text("hours")
    if not raw:
        return None
    if not is_digits(raw, 7) or not 1 <= int(raw) <= MAX_BAN_HOURS:
        raise Invalid(
            f"The expiry must be a whole number of hours from 1 to {MAX_BAN_HOURS:,}, "
            "or empty for a permanent ban.",
            field="hours",
        )
    return int(raw)


def scopes_of(visit: Visit) -> list[str]:
    return [scope for scope in SCOPE_SEPARATORS.split(visit.text("scopes")) if scope]


def _link(path: str, params: dict[str, str | int]) -> str:
    kept = {name: value for name, value in params.items() if value not in ("", 1)}
    return path + (f"?{urllib.parse.urlencode(kept)}" if kept else "")


def pager(path: str, name: str, number: int, has_next: bool, **others: str | int) -> dict[str, Any]:
    """Previous/next links for page ``number`` of a list, keeping the other parameters."""
    return {
        "number": number,
        "previous": _link(path, {**others, name: number - 1}) if number > 1 else None,
        "next": _link(path, {**others, name: number + 1}) if has_next else None,
    }


# ---- search -------------------------------------------------------------------


async def exact_matches(session: AsyncSession, q: str) -> set[int]:
    """The ids of accounts ``q`` names exactly: by id, uuid, email or any identity.

    Each is an indexed equality look-up; only an email not found as typed is
    compared whatever its case (the core's rule for emails), which reads the
    table once.
    """
    found: set[int] = set()
    if is_digits(q, 18):
        found.add(int(q))
    found.update(await session.scalars(select(Identity.account_id).where(Identity.subject == q)))
    found.update(await session.scalars(select(Account.id).where(Account.uuid == q)))
    by_email = await session.scalar(select(Account.id).where(Account.email == q))
    if by_email is None and "@" in q:
        by_email = await accounts.holder_of_email(session, q)
    if by_email is not None:
        found.add(by_email)
    return found


@dataclass(frozen=True, slots=True)
class Found:
    """One row of the search results."""

    id: int
    username: str
    email: str | None
    role: str
    created_at: datetime
    identities: list[tuple[str, str]]


async def search(session: AsyncSession, q: str, number: int) -> tuple[list[Found], bool]:
    """Page ``number`` of the accounts ``q`` finds (every account when empty), newest
    first, and whether another page follows."""
    query = select(Account.id, Account.username, Account.email, Account.role, Account.created_at)
    if q:
        exact = await exact_matches(session, q)
        # No username holds a character outside the allowed ones (an email's "@", say),
        # so such a search need not read the usernames at all.
        if accounts.USERNAME.fullmatch(q):
            named = func.lower(Account.username).startswith(q.lower(), autoescape=True)
            query = query.where(Account.id.in_(exact) | named if exact else named)
        else:
            query = query.where(Account.id.in_(exact))
    rows = (
        await session.execute(
            query.order_by(Account.id.desc()).limit(PAGE_SIZE + 1).offset((number - 1) * PAGE_SIZE)
        )
    ).all()
    shown = rows[:PAGE_SIZE]
    linked: dict[int, list[tuple[str, str]]] = {row.id: [] for row in shown}
    if shown:
        identities = await session.execute(
            select(Identity.account_id, Identity.provider, Identity.subject)
            .where(
                Identity.account_id.in_(list(linked)),
                Identity.provider != Provider.LOCAL.value,
            )
            .order_by(Identity.id)
        )
        for account_id, provider, subject in identities:
            linked[account_id].append((provider, subject))
    found = [
        Found(row.id, row.username, row.email, row.role, row.created_at, linked[row.id])
        for row in shown
    ]
    return found, len(rows) > PAGE_SIZE


async def list_accounts(session: AsyncSession, visit: Visit) -> Response:
    q = visit.query("q")
    number = page_number(visit)
    error = ""
    if not storable(q):
        error = "The search must not contain a NUL character."
    elif len(q) > MAX_QUERY:
        error = f"The search must be at most {MAX_QUERY} characters."
    found, has_next = ([], False) if error else await search(session, q, number)
    return page(
        visit,
        "accounts.html",
        status=400 if error else 200,
        title="Accounts",
        q=q if storable(q) else "",
        error=error,
        found=found,
        pager=pager("/accounts", "page", number, has_next, q=q if not error else ""),
    )


# ---- one account --------------------------------------------------------------


async def account_of(session: AsyncSession, visit: Visit) -> tuple[AccountView, AccountRef]:
    """The account the path names, and how the core names it in sentences and events
    (by its Discord id when it has one, else its uuid, as expired bans are announced)."""
    raw = str(visit.request.path_params.get("account_id", ""))
    if not is_digits(raw, 18):
        raise NotFound(f"There is no account {raw[:40]!r}.", code="account_not_found")
    account = await accounts.view(session, int(raw))
    discord = await session.scalar(
        select(Identity.subject).where(
            Identity.account_id == account.id, Identity.provider == Provider.DISCORD.value
        )
    )
    return account, AccountRef(account.id, account.username, discord or account.uuid)


async def _keys(session: AsyncSession, number: int) -> tuple[list[ApiKey], bool]:
    rows = list(
        await session.scalars(
            select(ApiKey)
            .order_by(ApiKey.id.desc())
            .limit(PAGE_SIZE + 1)
            .offset((number - 1) * PAGE_SIZE)
        )
    )
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


async def render_account(
    session: AsyncSession,
    visit: Visit,
    account: AccountView,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    secret: str | None = None,
    secret_name: str = "",
) -> Response:
    """The account's page: who they are, their money, plan, bans, keys, servers,
    tickets and what was done to or by them."""
    runtime = runtime_of(visit.request)
    ledger_number = page_number(visit, "ledger_page")
    keys_number = page_number(visit, "keys_page")
    path = f"/accounts/{account.id}"
    ledger, ledger_total = await economy.entries(
        session,
        account_id=account.id,
        limit=PAGE_SIZE,
        offset=(ledger_number - 1) * PAGE_SIZE,
    )
    keys, more_keys = await _keys(session, keys_number)
    bans = list(
        await session.scalars(
            select(Ban)
            .where(Ban.account_id == account.id)
            .order_by(Ban.id.desc())
            .limit(BANS_SHOWN)
        )
    )
    tickets = list(
        await session.scalars(
            select(Ticket)
            .where(Ticket.account_id == account.id)
            .order_by(Ticket.id.desc())
            .limit(TICKETS_SHOWN)
        )
    )
    return page(
        visit,
        "account.html",
        status=status,
        title=f"Account {account.username}",
        account=account,
        identities=await accounts.list_identities(session, account.id),
        balance=await economy.balance_of(session, account.id),
        ledger=[entry for entry, _subject in ledger],
        ledger_total=ledger_total,
        ledger_pager=pager(
            path, "ledger_page", ledger_number, ledger_number * PAGE_SIZE < ledger_total
        ),
        plan=await plans.get(session, account.id, runtime.catalogue),
        resources=plans.RESOURCES,
        ban=await moderation.active_ban(session, account.id),
        bans=bans,
        now=utcnow(),
        keys=keys,
        keys_pager=pager(path, "keys_page", keys_number, more_keys),
        scopes=access.SCOPES,
        secret=secret,
        secret_name=secret_name,
        servers=await runtime.hosting.summaries(session, account.id),
        tickets=tickets,
        audit=await audit.for_account(session, account.id, AUDIT_SHOWN),
        errors=errors or {},
        values=values or {},
        max_ban_hours=MAX_BAN_HOURS,
    )


async def show_account(session: AsyncSession, visit: Visit) -> Response:
    account, _ref = await account_of(session, visit)
    return await render_account(session, visit, account)


Change = Callable[[AccountRef], Awaitable[str]]


async def _change(session: AsyncSession, visit: Visit, form: str, change: Change) -> Response:
    """Run ``change`` on the path's account in a savepoint: on success back to the page
    with its notice; refused, the page again with the message by form ``form`` and
    nothing of the change kept."""
    account, ref = await account_of(session, visit)
    try:
        async with session.begin_nested():
            notice = await change(ref)
    except CoreError as exc:
        values = {name: value for name, value in visit.form.items() if name != "csrf"}
        return await render_account(
            session,
            visit,
            account,
            status=status_of(exc),
            errors={form: exc.message},
            values={name: value.replace("\x00", "") for name, value in values.items()},
        )
    return back_to(visit, f"/accounts/{account.id}", notice)


async def ban_account(session: AsyncSession, visit: Visit) -> Response:
    async def change(ref: AccountRef) -> str:
        reason = reason_of(visit)
        hours = ban_hours_of(visit)
        expires_at = utcnow() + timedelta(hours=hours) if hours else None
        await moderation.ban(
            session, ref, actor=visit.staff.actor, reason=reason or None, expires_at=expires_at
        )
        until = f"for {hours} hour{'s' if hours != 1 else ''}" if hours else "permanently"
        return f"{ref.username} is banned {until}."

    return await _change(session, visit, "ban", change)


async def unban_account(session: AsyncSession, visit: Visit) -> Response:
    async def change(ref: AccountRef) -> str:
        if await moderation.unban(session, ref, actor=visit.staff.actor):
            return f"{ref.username} is no longer banned."
        return f"{ref.username} had no ban in force; nothing changed."

    return await _change(session, visit, "ban", change)


async def change_coins(session: AsyncSession, visit: Visit) -> Response:
    async def change(ref: AccountRef) -> str:
        amount = amount_of(visit)
        reason = reason_of(visit)
        balance = await economy.adjust(session, ref, amount, actor=visit.staff.actor, reason=reason)
        verb = f"Added {amount:,}" if amount > 0 else f"Took {-amount:,}"
        return f"{verb} coins; {ref.username}'s balance is now {balance:,}."

    return await _change(session, visit, "coins", change)


async def create_key(session: AsyncSession, visit: Visit) -> Response:
    """Make an installation API key and show its secret, this once, in the answer."""
    account, _ref = await account_of(session, visit)
    try:
        async with session.begin_nested():
            key, plaintext = await access.create(
                session, name=visit.text("name"), scopes=scopes_of(visit), actor=visit.staff.actor
            )
    except CoreError as exc:
        return await render_account(
            session,
            visit,
            account,
            status=status_of(exc),
            errors={"keys": exc.message},
            values={
                "name": visit.text("name").replace("\x00", ""),
                "scopes": visit.text("scopes").replace("\x00", ""),
            },
        )
    return await render_account(
        session, visit, account, secret=plaintext, secret_name=f"{key.name} (#{key.id})"
    )


async def revoke_key(session: AsyncSession, visit: Visit) -> Response:
    account, _ref = await account_of(session, visit)
    raw = str(visit.request.path_params.get("key_id", ""))
    if not is_digits(raw, 18):
        raise NotFound(f"There is no API key {raw[:40]!r}.", code="key_not_found")
    key = await access.revoke(session, int(raw), visit.staff.actor)
    return back_to(
        visit, f"/accounts/{account.id}", f"API key {key.name!r} (#{key.id}) is revoked."
    )


ROUTES: list[BaseRoute] = [
    Route("/accounts", screen(Area.ACCOUNTS, list_accounts), methods=["GET"]),
    Route("/accounts/{account_id}", screen(Area.ACCOUNTS, show_account), methods=["GET"]),
    Route("/accounts/{account_id}/ban", screen(Area.ACCOUNTS, ban_account), methods=["POST"]),
    Route("/accounts/{account_id}/unban", screen(Area.ACCOUNTS, unban_account), methods=["POST"]),
    Route("/accounts/{account_id}/coins", screen(Area.ACCOUNTS, change_coins), methods=["POST"]),
    Route("/accounts/{account_id}/keys", screen(Area.ACCOUNTS, create_key), methods=["POST"]),
    Route(
        "/accounts/{account_id}/keys/{key_id}/revoke",
        screen(Area.ACCOUNTS, revoke_key),
        methods=["POST"],
    ),
]
