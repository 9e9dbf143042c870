"""``/accounts``: find anyone by any identity; ``/accounts/{id}``: everything about them.

Every change goes through the core services the API faces call: a ban or unban
through ``moderation.ban``/``unban`` (as Heliactyl's ``/api/v3/ban``), coins
through ``economy.adjust`` (as its ``addcoins``), keys through ``access.create`` and
``access.revoke``; so the audit rows and events are the APIs' own, with the staff
member as actor (``account:console:<username>``).

Decisions where the issue is silent:

- Search looks at one thing typed: what identifies an account is the core's rule
  (``accounts.search``: an id, uuid, email or any linked identity whole, or a
  username by its beginning whatever the case): whole matches first, then the
  usernames in their order (every account newest first when nothing is typed), 50
  a page, reading one row more than it shows to know whether a next page exists (no
  count over 100,000 rows).
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
  is not whole hours) re-renders the page with the message next to its field in
  the form that was sent (400, or what the core error says) and changes nothing:
  the core call runs in a savepoint that a refusal rolls back (``forms.attempt``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access import service as access
from guildhall.core.access.console import Area
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.service import AccountRef, AccountView
from guildhall.core.economy import service as economy
from guildhall.core.errors import CoreError, Invalid, is_digits
from guildhall.core.moderation import service as moderation
from guildhall.core.plans import service as plans
from guildhall.core.support import service as support
from guildhall.core.text import NUL
from guildhall.db.base import utcnow
from guildhall.events import audit
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, runtime_of, screen
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.forms import PAGE_SIZE, Pager
from guildhall.faces.console.render import back_to, page

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
FORMS: dict[str, tuple[str, ...]] = {
    "ban": ("reason", "hours"),
    "coins": ("amount", "reason"),
    "keys": ("name", "scopes"),
}
"""Each form of the account page and its fields, where a refusal is shown."""
ALIASES = {"scope": "scopes", "balance_out_of_range": "amount", "expiry_in_past": "hours"}
"""The form field a core error is about, where the core calls it otherwise."""


# ---- reading what was typed -------------------------------------------------


def reason_of(visit: Visit) -> str:
    """The form's reason: storable text of at most :data:`MAX_REASON` characters."""
    return forms.text(visit.form, "reason", "The reason", MAX_REASON)


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


# ---- search -------------------------------------------------------------------


async def list_accounts(session: AsyncSession, visit: Visit) -> Response:
    number = forms.page_number(visit)
    errors: dict[str, str] = {}
    try:
        q = forms.text(visit.request.query_params, "q", "The search", MAX_QUERY)
    except Invalid as exc:
        q, errors = visit.query("q").replace(NUL, ""), forms.placed(exc, ("q",))
    found, has_next = (
        ([], False)
        if errors
        else await forms.read_page(
            number,
            lambda limit, offset: accounts.search(session, q, limit=limit, offset=offset),
        )
    )
    return page(
        visit,
        "accounts.html",
        status=400 if errors else 200,
        title="Accounts",
        q=q,
        errors=errors,
        found=found,
        pager=Pager.of(visit, number, has_next),
    )


# ---- one account --------------------------------------------------------------


async def account_of(session: AsyncSession, visit: Visit) -> AccountView:
    """The account the path names."""
    account_id = forms.path_id(visit, "account_id", "account", code="account_not_found")
    return await accounts.view(session, account_id)


async def render_account(
    session: AsyncSession,
    visit: Visit,
    account: AccountView,
    *,
    status: int = 200,
    failed: str = "",
    errors: Mapping[str, str] | None = None,
    secret: str | None = None,
    secret_name: str = "",
) -> Response:
    """The account's page: who they are, their money, plan, bans, keys, servers,
    tickets and what was done to or by them; ``failed`` names the form whose
    refusal ``errors`` shows, filled in again with what was sent."""
    runtime = runtime_of(visit.request)
    ledger_number = forms.page_number(visit, "ledger_page")
    keys_number = forms.page_number(visit, "keys_page")
    path = f"/accounts/{account.id}"
    ledger, ledger_total = await economy.entries(
        session,
        account_id=account.id,
        limit=PAGE_SIZE,
        offset=(ledger_number - 1) * PAGE_SIZE,
    )
    keys, more_keys = await forms.read_page(
        keys_number, lambda limit, offset: access.key_page(session, limit=limit, offset=offset)
    )
    bans = await moderation.bans_of(session, account.id, BANS_SHOWN)
    now = utcnow()
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
        ledger_pager=Pager.of(
            visit,
            ledger_number,
            ledger_number * PAGE_SIZE < ledger_total,
            name="ledger_page",
            path=path,
        ),
        plan=await plans.get(session, account.id, runtime.catalogue),
        resources=plans.RESOURCES,
        ban=bans[0] if bans and moderation.in_force(bans[0], now) else None,
        bans=bans,
        now=now,
        keys=keys,
        keys_pager=Pager.of(visit, keys_number, more_keys, name="keys_page", path=path),
        scopes=access.SCOPES,
        secret=secret,
        secret_name=secret_name,
        servers=await runtime.hosting.summaries(session, account.id),
        tickets=await support.tickets_of(session, account.id, TICKETS_SHOWN),
        audit=await audit.for_account(session, account.id, AUDIT_SHOWN),
        failed=failed,
        errors=errors or {},
        values=forms.form_values(visit) if failed else {},
        max_ban_hours=MAX_BAN_HOURS,
    )


async def show_account(session: AsyncSession, visit: Visit) -> Response:
    account = await account_of(session, visit)
    return await render_account(session, visit, account)


async def _refused(
    session: AsyncSession, visit: Visit, account: AccountView, form: str, error: CoreError
) -> Response:
    """The page again, with ``error`` next to its field of form ``form``."""
    return await render_account(
        session,
        visit,
        account,
        status=status_of(error),
        failed=form,
        errors=forms.placed(error, FORMS[form], ALIASES),
    )


Change = Callable[[AccountRef], Awaitable[str]]


async def _change(session: AsyncSession, visit: Visit, form: str, change: Change) -> Response:
    """Run ``change`` on the path's account in a savepoint: on success back to the page
    with its notice; refused, the page again with the message in form ``form`` and
    nothing of the change kept."""
    account = await account_of(session, visit)
    ref = await accounts.ref_of(session, account)  # how the core names it in events
    notice = await forms.attempt(session, lambda: change(ref))
    if isinstance(notice, CoreError):
        return await _refused(session, visit, account, form, notice)
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
    account = await account_of(session, visit)
    made = await forms.attempt(
        session,
        lambda: access.create(
            session, name=visit.text("name"), scopes=scopes_of(visit), actor=visit.staff.actor
        ),
    )
    if isinstance(made, CoreError):
        return await _refused(session, visit, account, "keys", made)
    key, plaintext = made
    return await render_account(
        session, visit, account, secret=plaintext, secret_name=f"{key.name} (#{key.id})"
    )


async def revoke_key(session: AsyncSession, visit: Visit) -> Response:
    account = await account_of(session, visit)
    key_id = forms.path_id(visit, "key_id", "API key", code="key_not_found")
    key = await access.revoke(session, key_id, visit.staff.actor)
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
