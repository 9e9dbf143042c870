"""``/moderation``: moderation cases, filtered and paged in the database; open one, clear one.

Cases are opened and cleared through ``core/moderation/cases``, the service Aurora's
``/api/moderation`` routes call, so the case numbers, audit rows, events and (with
the Discord bot running) the timeout, kick or ban carried out on Discord are the
same. Admins and moderators both use this page. Decisions where the issue is silent:

- The moderator of a case the console opens or clears is the console user: their
  name is the staff member's username, their id the Discord id linked to their
  account, or ``console:<account id>`` when none is (Aurora's clients name
  moderators by Discord id; the column holds 32 characters).
- A timeout's length (``30m``, ``24h``, ``7d``) is kept in the case's metadata as
  ``duration``, as Aurora takes it, and checked whether or not the bot runs, so a
  case opened now is carried out alike once it does.
- A bad filter (an id over 32 characters, an unknown type or state, a page that is
  not a number) is named above the list (400) instead of an empty result.
- After a clear, the browser returns to the list as it was filtered.
"""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area, StaffMember
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.errors import CoreError, Invalid, is_digits
from guildhall.core.moderation import cases
from guildhall.core.text import require_storable
from guildhall.faces.console.auth import Visit, local_path, runtime_of, screen
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.render import back_to, page

PER_PAGE = 50
MAX_PAGE = 1_000_000
STATES: dict[str, bool | None] = {"": None, "active": True, "cleared": False}
CASE_FIELDS = ("user", "username", "type", "reason", "duration")
MAX_ID = 32
"""A case's user and moderator ids are stored in 32 characters (Discord ids are 20 at most)."""


def _text(
    source: dict[str, str], name: str, label: str, maximum: int, *, required: bool = False
) -> str:
    """A trimmed text field; Invalid, naming the field, when missing, too long or with NUL."""
    value = source.get(name, "").strip()
    if required and not value:
        raise Invalid(f"{label} is required.", field=name)
    if len(value) > maximum:
        raise Invalid(f"{label} must be at most {maximum} characters.", field=name)
    return require_storable(value, label, field=name)


def _filters(visit: Visit) -> dict[str, str]:
    return {name: visit.query(name) for name in ("user", "type", "active", "page")}


def _pager(filters: dict[str, str], number: int, total: int) -> dict[str, Any]:
    pages = max(1, math.ceil(total / PER_PAGE))

    def link(to: int) -> str:
        kept = {name: value for name, value in filters.items() if value and name != "page"}
        return f"/moderation?{urllib.parse.urlencode({**kept, 'page': to})}"

    return {
        "number": number,
        "pages": pages,
        "total": total,
        "previous": link(number - 1) if number > 1 else None,
        "next": link(number + 1) if number < pages else None,
    }


async def _cases_page(
    session: AsyncSession,
    visit: Visit,
    *,
    filters: dict[str, str],
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    filter_error = ""
    rows: list[Any] = []
    total, number = 0, 1
    try:
        user = _text(filters, "user", "The user id", MAX_ID)
        case_type = filters.get("type", "")
        if case_type and case_type not in cases.TYPES:
            raise Invalid(f"The type must be one of {', '.join(cases.TYPES)}.", field="type")
        state = filters.get("active", "")
        if state not in STATES:
            raise Invalid("The state must be active or cleared.", field="active")
        raw_page = filters.get("page", "") or "1"
        if not is_digits(raw_page, 7) or not 1 <= int(raw_page) <= MAX_PAGE:
            raise Invalid(f"The page must be a whole number from 1 to {MAX_PAGE:,}.", field="page")
        number = int(raw_page)
        rows, total = await cases.search(
            session,
            user_id=user or None,
            moderator_id=None,
            case_type=case_type or None,
            active=STATES[state],
            limit=PER_PAGE,
            offset=(number - 1) * PER_PAGE,
        )
    except Invalid as exc:
        filter_error, status = exc.message, 400
    here = "/moderation"
    shown = {name: value for name, value in filters.items() if value}
    if shown:
        here += "?" + urllib.parse.urlencode(shown)
    return page(
        visit,
        "moderation.html",
        status=status,
        title="Moderation",
        cases=[(cases.case_label(row.id), row) for row in rows],
        filters=filters,
        filter_error=filter_error,
        pager=_pager(filters, number, total),
        here=here,
        types=cases.TYPES,
        errors=errors or {},
        values=values or {"type": "warn"},
    )


async def list_cases(session: AsyncSession, visit: Visit) -> Response:
    return await _cases_page(session, visit, filters=_filters(visit))


async def moderator_id(session: AsyncSession, staff: StaffMember) -> str:
    """The id a case names the console user by: their Discord id, else their account's."""
    for identity in await accounts.list_identities(session, staff.account_id):
        if identity.provider == Provider.DISCORD.value and len(identity.subject) <= MAX_ID:
            return identity.subject
    return f"console:{staff.account_id}"


async def create_case(session: AsyncSession, visit: Visit) -> Response:
    form = visit.form
    try:
        user = _text(form, "user", "The user id", MAX_ID, required=True)
        duration = _text(form, "duration", "The duration", 16)
        case_type = _text(form, "type", "The type", 16, required=True)
        metadata: dict[str, Any] = {}
        if case_type == "timeout" and duration:
            metadata["duration"] = duration
            cases.timeout_length(metadata)  # refused now, not when the bot carries it out
        new = cases.NewCase(
            type=case_type,
            user_id=user,
            username=_text(form, "username", "The username", 100),
            moderator_id=await moderator_id(session, visit.staff),
            moderator_name=visit.staff.username,
            reason=_text(form, "reason", "The reason", 1000),
            metadata=metadata,
        )
        async with session.begin_nested():
            row = await cases.create(
                session,
                new,
                visit.staff.actor,
                on_platform=runtime_of(visit.request).moderates_on_discord,
            )
    except CoreError as exc:
        field = exc.field if exc.field in CASE_FIELDS else ""
        if exc.field == "metadata":
            field = "duration"
        return await _cases_page(
            session,
            visit,
            filters={},
            status=status_of(exc),
            errors={field: exc.message},
            values={name: value for name, value in form.items() if name != "csrf"},
        )
    label = cases.case_label(row.id)
    return back_to(visit, "/moderation", f"{label} opened: {row.type} for user {row.user_id}.")


def _return_path(visit: Visit) -> str:
    """Where the clear form was sent from: a page of this list, else the list itself."""
    target = local_path(visit.text("return", "/moderation"))
    if target == "/moderation" or target.startswith("/moderation?"):
        return target
    return "/moderation"


async def clear_case(session: AsyncSession, visit: Visit) -> Response:
    reason = _text(visit.form, "reason", "The reason", 1000)
    row = await cases.clear(
        session,
        visit.request.path_params["case_id"],
        visit.staff.actor,
        cleared_by=await moderator_id(session, visit.staff),
        cleared_by_name=visit.staff.username,
        reason=reason,
        on_platform=runtime_of(visit.request).moderates_on_discord,
    )
    return back_to(visit, _return_path(visit), f"{cases.case_label(row.id)} cleared.")


ROUTES: list[BaseRoute] = [
    Route("/moderation", screen(Area.MODERATION, list_cases), methods=["GET"]),
    Route("/moderation/cases", screen(Area.MODERATION, create_case), methods=["POST"]),
    Route(
        "/moderation/cases/{case_id}/clear",
        screen(Area.MODERATION, clear_case),
        methods=["POST"],
    ),
]
