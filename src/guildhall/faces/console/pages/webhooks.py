"""``/webhooks``: the signed webhook endpoints, their recent deliveries, a test, removal.

Every action is the one ``guildhall webhooks ...`` runs, through the same core
(:class:`guildhall.events.webhooks.Webhooks`), as actor ``account:console:<username>``:
``add`` (its audit row ``webhook.added``), ``remove`` (``webhook.removed``) and
``send_test``.

Decisions where the issue is silent:

- Adding an endpoint looks its host up first (public addresses only, unless
  ``[webhooks] allow_private_targets``), so the core opens its own unit of work after
  that look-up and the route holds none across it. Its signing secret is shown once,
  in the answer to the form (200, no redirect), and never again: it is stored sealed.
- The events are typed as the CLI's ``--event`` names are: separated by spaces or
  commas, ``*`` for all. A refused URL or event re-renders the form with the message
  next to the field (400), and nothing is added.
- "Send test" does what ``guildhall webhooks test`` does: the core commits a
  ``webhook.test`` delivery (pending) in a unit of work of its own, then POSTs it
  outside any transaction and records the attempt. It never goes through the outbox,
  which would send it to every endpoint that takes ``*``. The answer (the HTTP status
  and time, or the error) comes back as the notice; a failed test stays pending and
  the worker retries it like any delivery. Sending one writes no audit row (the CLI's
  does not either): it changes nothing but the delivery log shown here.
- Endpoints cannot be paused, so each is either active or "failing since" the moment
  a delivery was given up on (the core's ``failing_since``); "last delivery" is its
  newest delivery that has been tried, with that try's status code (or error) and
  response time. Response times are the attempts' ``duration_ms``, measured by the
  delivery code around the POST, so no schema change was needed.
- Deliveries are listed newest first, of all endpoints or of one
  (``?endpoint=<id>``), 50 a page (``?page=N``); endpoints 50 a page
  (``?endpoints_page=N``). Each list reads one row more than it shows to know
  whether a next page exists; each pager keeps the other's place.
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area
from guildhall.core.errors import CoreError, Invalid
from guildhall.events.outbox import EVENTS
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, runtime_of, screen, screen_action
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.forms import Pager
from guildhall.faces.console.render import back_to, page

MAX_URL = 2000
"""The endpoint column holds this many characters (the core refuses a longer URL)."""
MAX_EVENTS_TEXT = 4000
SEPARATORS = re.compile(r"[\s,]+")
FORM_FIELDS = ("url", "events")
ALIASES = {"event": "events"}
"""The core names the events field ``event`` (as the CLI's ``--event``)."""


def events_of(text: str) -> list[str]:
    """The event names typed, in order, each once."""
    names = [name for name in SEPARATORS.split(text) if name]
    return list(dict.fromkeys(names))


async def _render(
    session: AsyncSession,
    visit: Visit,
    *,
    status: int = 200,
    endpoint_filter: int | None = None,
    deliveries_page: int = 1,
    endpoints_page: int = 1,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    added: tuple[int, str] | None = None,
) -> Response:
    """The page: the add form, the endpoints and the deliveries, as the query asks."""
    hooks = runtime_of(visit.request).webhooks
    endpoints, more_endpoints = await forms.read_page(
        endpoints_page,
        lambda limit, offset: hooks.endpoints(session, limit=limit, offset=offset),
    )
    deliveries, more_deliveries = await forms.read_page(
        deliveries_page,
        lambda limit, offset: hooks.deliveries(
            session, endpoint_id=endpoint_filter, limit=limit, offset=offset
        ),
    )
    return page(
        visit,
        "webhooks.html",
        status=status,
        title="Webhooks",
        endpoints=endpoints,
        deliveries=deliveries,
        endpoint_filter=endpoint_filter,
        form=form or {"url": "", "events": "*"},
        errors=errors or {},
        added=added,
        known_events=EVENTS,
        endpoints_pager=Pager.of(
            visit, endpoints_page, more_endpoints, name="endpoints_page", path="/webhooks"
        ),
        deliveries_pager=Pager.of(visit, deliveries_page, more_deliveries, path="/webhooks"),
    )


async def webhooks_page(session: AsyncSession, visit: Visit) -> Response:
    raw_filter = visit.query("endpoint")
    return await _render(
        session,
        visit,
        endpoint_filter=(
            forms.id_of(raw_filter, "webhook", code="webhook_not_found") if raw_filter else None
        ),
        deliveries_page=forms.page_number(visit),
        endpoints_page=forms.page_number(visit, "endpoints_page"),
    )


async def add_endpoint(visit: Visit) -> Response:
    """Add an endpoint through the core (which checks its host outside any transaction);
    its secret is shown once, on the page this answers with."""
    runtime = runtime_of(visit.request)
    sent = forms.form_values(visit)
    form = {name: sent.get(name, "") for name in FORM_FIELDS}
    added: tuple[int, str] | None = None
    errors: dict[str, str] = {}
    status = 200
    try:
        url = forms.text(
            visit.form,
            "url",
            "The URL",
            MAX_URL,
            required=True,
            too_long=f"The URL is longer than {MAX_URL:,} characters.",
        )
        text = forms.text(
            visit.form,
            "events",
            "The events",
            MAX_EVENTS_TEXT,
            too_long="That is more text than every event name together.",
        )
        events = events_of(text)
        if not events:
            raise Invalid("Name at least one event, or * for all of them.", field="events")
        added = await runtime.webhooks.add(url, events, visit.staff.actor)
    except CoreError as exc:
        errors = forms.placed(exc, FORM_FIELDS, ALIASES)
        status = status_of(exc)
    async with runtime.database.unit_of_work(write=False) as session:
        if added is None:
            return await _render(session, visit, status=status, form=form, errors=errors)
        return await _render(session, visit, added=added)


async def send_test(visit: Visit) -> Response:
    """A ``webhook.test`` delivery, committed and then attempted (as the CLI's test)."""
    endpoint_id = forms.path_id(visit, "endpoint_id", "webhook", code="webhook_not_found")
    outcome = await runtime_of(visit.request).webhooks.send_test(endpoint_id)
    answer = (
        f"HTTP {outcome.status_code}" if outcome.status_code else (outcome.error or "no answer")
    )
    if outcome.ok:
        notice = f"Test sent to webhook #{endpoint_id}: {answer} in {outcome.duration_ms} ms."
    else:
        notice = (
            f"Test to webhook #{endpoint_id} was not accepted: {answer} after "
            f"{outcome.duration_ms} ms. It stays pending and will be retried."
        )
    return back_to(visit, f"/webhooks?endpoint={endpoint_id}", notice)


async def remove_endpoint(session: AsyncSession, visit: Visit) -> Response:
    """Remove an endpoint and its deliveries (as ``guildhall webhooks remove``)."""
    endpoint_id = forms.path_id(visit, "endpoint_id", "webhook", code="webhook_not_found")
    url = await runtime_of(visit.request).webhooks.remove(session, endpoint_id, visit.staff.actor)
    return back_to(visit, "/webhooks", f"Webhook #{endpoint_id} ({url}) removed.")


ROUTES: list[BaseRoute] = [
    Route("/webhooks", screen(Area.WEBHOOKS, webhooks_page), methods=["GET"]),
    Route("/webhooks", screen_action(Area.WEBHOOKS, add_endpoint), methods=["POST"]),
    Route(
        "/webhooks/{endpoint_id}/test",
        screen_action(Area.WEBHOOKS, send_test),
        methods=["POST"],
    ),
    Route(
        "/webhooks/{endpoint_id}/delete",
        screen(Area.WEBHOOKS, remove_endpoint),
        methods=["POST"],
    ),
]
