"""``/``: the installation at a glance; ``/feed``: the live event feed it polls.

The counts come from every face's data; the chart is ledger entries and moderation
cases per hour over 24 hours (the same figures as Aurora's activity stats), drawn
as an SVG on the server, so it needs no script. The feed reads the event outbox
(committed events only, from every process, as Aurora's ``/ws`` does); the page's
script asks for what is newer than the last event it has every two seconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from guildhall.core.access.console import Area
from guildhall.core.community.stats import activity, installation_totals
from guildhall.events import outbox
from guildhall.faces.console.auth import Visit, screen
from guildhall.faces.console.render import SECURITY_HEADERS, page

FEED_PAGE = 50
FIGURES = {
    "accounts": "Accounts",
    "coins_in_circulation": "Coins in circulation",
    "transactions_today": "Transactions today",
    "items": "Items",
    "open_cases": "Open cases",
    "servers": "Servers",
    "running_servers": "Running servers",
    "open_tickets": "Open tickets",
    "sessions_online": "Bot sessions online",
    "webhook_endpoints": "Webhook endpoints",
}
CHART_WIDTH = 720
CHART_HEIGHT = 160


def chart(hours: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars for each hour: ledger entries and moderation cases side by side."""
    top = max([1, *(h["transactions"] for h in hours), *(h["cases"] for h in hours)])
    slot = CHART_WIDTH / max(len(hours), 1)
    bars = []
    for index, hour in enumerate(hours):
        for offset, key in ((0.1, "transactions"), (0.5, "cases")):
            height = round(hour[key] / top * (CHART_HEIGHT - 20), 1)
            bars.append(
                {
                    "x": round(index * slot + offset * slot, 1),
                    "y": round(CHART_HEIGHT - height, 1),
                    "width": round(slot * 0.38, 1),
                    "height": height,
                    "kind": key,
                    "label": f"{hour['hour'][11:16]} UTC: {hour[key]} {key}",
                }
            )
    labels = [
        {"x": round(index * slot + slot / 2, 1), "text": hour["hour"][11:13]}
        for index, hour in enumerate(hours)
        if index % 3 == 0
    ]
    return {
        "bars": bars,
        "labels": labels,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "top": top,
        "transactions": sum(h["transactions"] for h in hours),
        "cases": sum(h["cases"] for h in hours),
    }


async def overview(session: AsyncSession, visit: Visit) -> Response:
    currency = visit.request.app.state.runtime.settings.faces.aurora.currency
    totals = await installation_totals(session, currency)
    figures = {label: totals[key] for key, label in FIGURES.items()}
    newest = await outbox.newest_id(session)
    events = await outbox.committed_after(session, max(0, newest - FEED_PAGE), FEED_PAGE)
    return page(
        visit,
        "overview.html",
        title="Overview",
        figures=figures,
        chart=chart(await activity(session, currency)),
        events=list(reversed(events)),
        last_event=events[-1]["id"] if events else 0,
    )


async def feed(session: AsyncSession, visit: Visit) -> Response:
    """Events committed after ``after`` (an event id), oldest first, at most 50; without
    ``after`` (or with one that is not an id), none, and the newest id to ask from."""
    raw = visit.query("after")
    if not (raw.isdigit() and len(raw) < 19):
        last = await outbox.newest_id(session)
        return JSONResponse({"events": [], "last": last}, headers=SECURITY_HEADERS)
    after = int(raw)
    events = await outbox.committed_after(session, after, FEED_PAGE)
    last = events[-1]["id"] if events else after
    return JSONResponse({"events": events, "last": last}, headers=SECURITY_HEADERS)


ROUTES = [
    Route("/", screen(Area.OVERVIEW, overview), methods=["GET"]),
    Route("/feed", screen(Area.OVERVIEW, feed), methods=["GET"]),
]
