"""``/moderation``: moderation cases, filtered and paged in the database; open one, clear one.

Cases are opened and cleared through ``core/moderation/cases``, the service Aurora's
``/api/moderation`` routes call, so the case numbers, audit rows, events and (with
the Discord bot running) the timeout, kick or ban carried out on Discord are the
same. Admins and moderators both use this page. Decisions where the issue is silent:

- The moderator of a case the console opens or clears is the console user: their
  name is the staff member's username, their id the core's ``cases.moderator_id``
  (the Discord id linked to their account, else ``console:<account id>``).
- A timeout's length (``30m``, ``24h``, ``7d``) is kept in the case's metadata as
  ``duration``, as Aurora takes it, and checked whether or not the bot runs, so a
  case opened now is carried out alike once it does.
- A bad filter (an id over 32 characters, an unknown type or state, a page that is
  not a number) is named above the list (400) instead of an empty result.
- The list reads one case more than it shows to know whether a next page exists;
  it never counts the cases.
- After a clear, the browser returns to the list as it was filtered.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area
from guildhall.core.errors import CoreError, Invalid
from guildhall.core.moderation import cases
from guildhall.core.moderation.models import ModerationCase
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, local_path, runtime_of, screen
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.forms import Pager
from guildhall.faces.console.render import back_to, page

STATES: dict[str, bool | None] = {"": None, "active": True, "cleared": False}
FILTERS = ("user", "type", "active", "page")
CASE_FIELDS = ("user", "username", "type", "reason", "duration")
ALIASES = {"metadata": "duration"}
"""A timeout's length is the case's ``metadata.duration`` to the core."""
MAX_ID = cases.MAX_MEMBER_ID
MAX_REASON = 1000


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
    rows: list[ModerationCase] = []
    has_next, number = False, 1
    try:
        user = forms.text(filters, "user", "The user id", MAX_ID)
        case_type = filters.get("type", "")
        if case_type and case_type not in cases.TYPES:
            raise Invalid(f"The type must be one of {', '.join(cases.TYPES)}.", field="type")
        state = filters.get("active", "")
        if state not in STATES:
            raise Invalid("The state must be active or cleared.", field="active")
        number = forms.parse_page(filters.get("page", ""), label="The page")
        rows, has_next = await forms.read_page(
            number,
            lambda limit, offset: cases.search_page(
                session,
                user_id=user or None,
                case_type=case_type or None,
                active=STATES[state],
                limit=limit,
                offset=offset,
            ),
        )
    except Invalid as exc:
        filter_error, status = exc.message, 400
    shown = {name: value for name, value in filters.items() if value}
    here = "/moderation" + (f"?{urllib.parse.urlencode(shown)}" if shown else "")
    return page(
        visit,
        "moderation.html",
        status=status,
        title="Moderation",
        cases=[(cases.case_label(row.id), row) for row in rows],
        filters=filters,
        filter_error=filter_error,
        pager=Pager.of(visit, number, has_next, path="/moderation", params=filters),
        here=here,
        types=cases.TYPES,
        errors=errors or {},
        values=values or {"type": "warn"},
    )


async def list_cases(session: AsyncSession, visit: Visit) -> Response:
    return await _cases_page(session, visit, filters={name: visit.query(name) for name in FILTERS})


async def create_case(session: AsyncSession, visit: Visit) -> Response:
    form = visit.form

    async def create() -> ModerationCase:
        user = forms.text(form, "user", "The user id", MAX_ID, required=True)
        duration = forms.text(form, "duration", "The duration", 16)
        case_type = forms.text(form, "type", "The type", 16, required=True)
        metadata: dict[str, Any] = {}
        if case_type == "timeout" and duration:
            metadata["duration"] = duration
            cases.timeout_length(metadata)  # refused now, not when the bot carries it out
        new = cases.NewCase(
            type=case_type,
            user_id=user,
            username=forms.text(form, "username", "The username", 100),
            moderator_id=await cases.moderator_id(session, visit.staff.account_id),
            moderator_name=visit.staff.username,
            reason=forms.text(form, "reason", "The reason", MAX_REASON),
            metadata=metadata,
        )
        return await cases.create(
            session,
            new,
            visit.staff.actor,
            on_platform=runtime_of(visit.request).moderates_on_discord,
        )

    row = await forms.attempt(session, create)
    if isinstance(row, CoreError):
        return await _cases_page(
            session,
            visit,
            filters={},
            status=status_of(row),
            errors=forms.placed(row, CASE_FIELDS, ALIASES),
            values=forms.form_values(visit),
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
    reason = forms.text(visit.form, "reason", "The reason", MAX_REASON)
    row = await cases.clear(
        session,
        visit.request.path_params["case_id"],
        visit.staff.actor,
        cleared_by=await cases.moderator_id(session, visit.staff.account_id),
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
