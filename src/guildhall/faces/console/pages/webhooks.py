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
  whether a next page exists.
"""

from __future__ import annotations

import re
import urllib.parse

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area
from guildhall.core.errors import CoreError, Invalid, NotFound, is_digits
from guildhall.core.text import require_storable
from guildhall.events.outbox import EVENTS
from guildhall.faces.console.auth import Visit, runtime_of, screen, screen_action
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.render import back_to, page

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
MAX_URL = 2000
"""The endpoint column holds this many characters (the core refuses a longer URL)."""
MAX_EVENTS_TEXT = 4000
SEPARATORS = re.compile(r"[\s,]+")
PAGE_PARAMS = frozenset({"page", "endpoints_page"})


def page_number(visit: Visit, name: str) -> int:
    """``?<name>=N`` (1 when absent); Invalid (a 400 page) when it is not 1..MAX_PAGE."""
    raw = visit.query(name)
    if not raw:
        return 1
    if not is_digits(raw, 7) or not 1 <= int(raw) <= MAX_PAGE:
        raise Invalid(f"The page number must be a whole number from 1 to {MAX_PAGE:,}.")
    return int(raw)


def endpoint_id_of(raw: str) -> int:
    """An endpoint id from a path or query; NotFound (404) for anything else."""
    if not is_digits(raw):
        raise NotFound(f"There is no webhook {raw[:40]!r}.")
    return int(raw)


def link(**params: str | int) -> str:
    """``/webhooks`` with the given query parameters (empty ones and page 1 left out)."""
    kept = {
        name: value
        for name, value in params.items()
        if value != "" and not (name in PAGE_PARAMS and value == 1)
    }
    return "/webhooks" + (f"?{urllib.parse.urlencode(kept)}" if kept else "")


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
    endpoints = await hooks.endpoints(
        session, limit=PAGE_SIZE + 1, offset=(endpoints_page - 1) * PAGE_SIZE
    )
    deliveries = await hooks.deliveries(
        session,
        endpoint_id=endpoint_filter,
        limit=PAGE_SIZE + 1,
        offset=(deliveries_page - 1) * PAGE_SIZE,
    )
    shown = {"endpoint": endpoint_filter or "", "endpoints_page": endpoints_page}
    return page(
        visit,
        "webhooks.html",
        status=status,
        title="Webhooks",
        endpoints=endpoints[:PAGE_SIZE],
        deliveries=deliveries[:PAGE_SIZE],
        endpoint_filter=endpoint_filter,
        form=form or {"url": "", "events": "*"},
        errors=errors or {},
        added=added,
        known_events=EVENTS,
        endpoints_pager={
            "number": endpoints_page,
            "previous": link(endpoints_page=endpoints_page - 1, endpoint=endpoint_filter or "")
            if endpoints_page > 1
            else "",
            "next": link(endpoints_page=endpoints_page + 1, endpoint=endpoint_filter or "")
            if len(endpoints) > PAGE_SIZE
            else "",
        },
        deliveries_pager={
            "number": deliveries_page,
            "previous": link(page=deliveries_page - 1, **shown) if deliveries_page > 1 else "",
            "next": link(page=deliveries_page + 1, **shown) if len(deliveries) > PAGE_SIZE else "",
        },
    )


async def webhooks_page(session: AsyncSession, visit: Visit) -> Response:
    raw_filter = visit.query("endpoint")
    return await _render(
        session,
        visit,
        endpoint_filter=endpoint_id_of(raw_filter) if raw_filter else None,
        deliveries_page=page_number(visit, "page"),
        endpoints_page=page_number(visit, "endpoints_page"),
    )


async def add_endpoint(visit: Visit) -> Response:
    """Add an endpoint through the core (which checks its host outside any transaction);
    its secret is shown once, on the page this answers with."""
    runtime = runtime_of(visit.request)
    form = {"url": visit.text("url"), "events": visit.text("events")}
    added: tuple[int, str] | None = None
    errors: dict[str, str] = {}
    status = 200
    try:
        url = require_storable(form["url"], "The URL", field="url")
        if not url:
            raise Invalid("Give the URL that receives the events.", field="url")
        if len(url) > MAX_URL:
            raise Invalid(f"The URL is longer than {MAX_URL:,} characters.", field="url")
        text = require_storable(form["events"], "The events", field="event")
        if len(text) > MAX_EVENTS_TEXT:
            raise Invalid("That is more text than every event name together.", field="event")
        events = events_of(text)
        if not events:
            raise Invalid("Name at least one event, or * for all of them.", field="event")
        added = await runtime.webhooks.add(url, events, visit.staff.actor)
    except CoreError as exc:
        errors["events" if exc.field == "event" else "url"] = exc.message
        status = status_of(exc)
    async with runtime.database.unit_of_work(write=False) as session:
        if added is None:
            return await _render(session, visit, status=status, form=form, errors=errors)
        return await _render(session, visit, added=added)


async def send_test(visit: Visit) -> Response:
    """A ``webhook.test`` delivery, committed and then attempted (as the CLI's test)."""
    endpoint_id = endpoint_id_of(visit.request.path_params["endpoint_id"])
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
    return back_to(visit, link(endpoint=endpoint_id), notice)


async def remove_endpoint(session: AsyncSession, visit: Visit) -> Response:
    """Remove an endpoint and its deliveries (as ``guildhall webhooks remove``)."""
    endpoint_id = endpoint_id_of(visit.request.path_params["endpoint_id"])
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
