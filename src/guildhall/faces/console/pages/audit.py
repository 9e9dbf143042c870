"""``/audit``: the audit trail, newest first, narrowed by actor, subject, action and time.

The rows are the ones every change writes in its own transaction
(:mod:`guildhall.events.audit`); this page only reads them, through the core's
:func:`~guildhall.events.audit.search`, which filters and pages in the database.

Decisions where the issue is silent:

- Actor, subject and action match exactly, or as a prefix when the value ends in
  ``*``, ``.`` or ``:`` (``coins.``, ``account:console:``, ``webhook*``), compared
  byte for byte (so case counts) on both databases; ``account:1`` is never
  ``account:12``. A subject that is all digits is the id of the account the rows are
  about (the ``target_account_id`` the core writes beside ``account:<id>``).
- ``since`` and ``until`` are ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM`` (what a browser's
  ``datetime-local`` sends) or with seconds, in UTC. ``since`` is inclusive; ``until``
  includes the whole day, minute or second it names, so ``until=2024-05-01`` shows
  the 1st of May. A value that is none of these, an ``until`` not after ``since``, a
  filter longer than its column (200 characters), a NUL or a bad page number is a
  400 page with the message above the form and no rows.
- Newest first means by the time a row was written, then by id. Pages are
  ``?page=N``, 50 rows each, by offset; one row more than shown is read to know
  whether a next page exists (no count of the whole trail). Migration 0014 added an
  index for each filter that also holds that order (``(actor, created_at, id)``,
  ``(action, …)``, ``(target, …)``, ``(created_at, id)``; pattern-ops on PostgreSQL
  for prefixes), as the existing ones (by account id) could serve none of them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area
from guildhall.core.errors import Invalid
from guildhall.core.text import require_storable
from guildhall.events import audit
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, screen
from guildhall.faces.console.forms import Pager
from guildhall.faces.console.render import page

MAX_FILTER = 200
"""The actor, action and target columns hold at most this many characters."""
TEXT_FILTERS = ("actor", "subject", "action")
MOMENT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
)
MOMENT_HELP = "YYYY-MM-DD or YYYY-MM-DDTHH:MM, in UTC"


def moment_of(name: str, raw: str) -> tuple[datetime, timedelta]:
    """The UTC moment ``raw`` names and the length of what it names (a day, a minute or
    a second); Invalid, naming the field, for anything else."""
    found = MOMENT.fullmatch(raw)
    try:
        if found is None:
            raise ValueError(raw)
        day = datetime.strptime(found["date"], "%Y-%m-%d").replace(tzinfo=UTC)
        if found["hour"] is None:
            return day, timedelta(days=1)
        moment = day.replace(
            hour=int(found["hour"]), minute=int(found["minute"]), second=int(found["second"] or 0)
        )
        return moment, timedelta(seconds=1) if found["second"] else timedelta(minutes=1)
    except ValueError:
        raise Invalid(f"“{name}” must be a date or time: {MOMENT_HELP}.") from None


def filters_of(values: dict[str, str]) -> audit.AuditFilter:
    """The filter the query's values ask for; Invalid with a sentence a person can act on."""
    for name in TEXT_FILTERS:
        require_storable(values[name], f"“{name}”")
        if len(values[name]) > MAX_FILTER:
            raise Invalid(f"“{name}” is longer than {MAX_FILTER} characters.")
    since = until = None
    if values["since"]:
        since, _length = moment_of("since", values["since"])
    if values["until"]:
        start, length = moment_of("until", values["until"])
        try:
            until = start + length
        except OverflowError:
            raise Invalid(f"“until” must be a date or time: {MOMENT_HELP}.") from None
    if since is not None and until is not None and until <= since:
        raise Invalid("“until” must be after “since”.")
    return audit.AuditFilter(
        actor=values["actor"],
        subject=values["subject"],
        action=values["action"],
        since=since,
        until=until,
    )


async def audit_page(session: AsyncSession, visit: Visit) -> Response:
    values = {name: visit.query(name) for name in (*TEXT_FILTERS, "since", "until")}
    try:
        where = filters_of(values)
        number = forms.page_number(visit)
    except Invalid as exc:
        return page(
            visit,
            "audit.html",
            status=400,
            title="Audit",
            values=values,
            error=exc.message,
            rows=None,
            filtered=True,
            pager=None,
        )
    rows, has_next = await forms.read_page(
        number, lambda limit, offset: audit.search(session, where, limit=limit, offset=offset)
    )
    return page(
        visit,
        "audit.html",
        title="Audit",
        values=values,
        error="",
        rows=rows,
        filtered=any(values.values()),
        pager=Pager.of(visit, number, has_next, params=values),
    )


ROUTES: list[BaseRoute] = [
    Route("/audit", screen(Area.AUDIT, audit_page), methods=["GET"]),
]
