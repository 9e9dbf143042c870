"""``/tickets``: modmail tickets, their transcripts, and closing one.

Open to admins and moderators (``Area.TICKETS``). The list is Rustmail's own
query (``support.tickets``: newest first, filtered and paged in the database);
the transcript is ``support.transcript`` (every message in order, staff notes
included, as ``guildhall tickets transcript`` prints it); closing is
``support.close_ticket``, the call the CLI and the modmail bot make, so the
audit row, the ``ticket.closed`` event and, with Discord's modmail connected,
the platform job that tells the member and deletes the channel are the same.

Decisions where the issue is silent: the list shows open tickets unless asked
for ``status=closed`` or ``status=all`` (as Rustmail's does); a ticket is named
by its public id, as on every face; closing takes an optional reason, kept with
the transcript.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area
from guildhall.core.errors import Invalid, NotFound, is_digits
from guildhall.core.support import service as support
from guildhall.core.support.models import CLOSED, INBOUND, NOTE, OPEN, OUTBOUND
from guildhall.core.text import require_storable, storable
from guildhall.faces.console.auth import Visit, runtime_of, screen
from guildhall.faces.console.render import back_to, page

PER_PAGE = 50
MAX_PAGE = 1_000_000
MAX_TICKET_ID = 32
MAX_REASON = 500
STATUSES: dict[str, int | None] = {"open": OPEN, "closed": CLOSED, "all": None}
DIRECTIONS = {INBOUND: "member", OUTBOUND: "staff", NOTE: "note"}


def page_number(visit: Visit) -> int:
    """``?page=N`` (from 1); anything else is a 400, never a 500."""
    raw = visit.query("page") or "1"
    if not is_digits(raw, 7) or not 1 <= int(raw) <= MAX_PAGE:
        raise Invalid(f"page must be a whole number from 1 to {MAX_PAGE:,}")
    return int(raw)


def _ticket_id(visit: Visit) -> str:
    """The ticket's public id from the path; one no ticket can have is a 404 at once."""
    public_id: str = visit.request.path_params["ticket_id"]
    if len(public_id) > MAX_TICKET_ID or not storable(public_id):
        raise NotFound(f"ticket {public_id[:MAX_TICKET_ID]} does not exist")
    return public_id


async def list_tickets(session: AsyncSession, visit: Visit) -> Response:
    status = visit.query("status") or "open"
    if status not in STATUSES:
        raise Invalid("status must be open, closed or all")
    number = page_number(visit)
    rows, total = await support.tickets(
        session, STATUSES[status], PER_PAGE, (number - 1) * PER_PAGE
    )
    return page(
        visit,
        "tickets.html",
        title="Tickets",
        tickets=rows,
        total=total,
        showing=status,
        statuses=list(STATUSES),
        page_number=number,
        has_next=number * PER_PAGE < total,
        OPEN=OPEN,
    )


async def show_ticket(session: AsyncSession, visit: Visit) -> Response:
    ticket, messages = await support.transcript(session, _ticket_id(visit))
    return page(
        visit,
        "tickets_transcript.html",
        title=f"Ticket {ticket.public_id}",
        ticket=ticket,
        messages=messages,
        directions=DIRECTIONS,
        is_open=ticket.status == OPEN,
    )


async def close_ticket(session: AsyncSession, visit: Visit) -> Response:
    """Rustmail's close (through the outbox to Discord when its modmail is connected)."""
    public_id = _ticket_id(visit)
    reason = visit.text("reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"a reason is at most {MAX_REASON} characters", field="reason")
    require_storable(reason, "the reason", field="reason")
    discord = runtime_of(visit.request).settings.discord
    closed = await support.close_ticket(
        session,
        public_id,
        visit.staff.actor,
        reason=reason or None,
        on_platform=discord.connects and discord.modmail.enabled,
    )
    return back_to(
        visit,
        f"/tickets/{closed.public_id}",
        f"Ticket {closed.public_id} with {closed.user_name} closed.",
    )


ROUTES: list[BaseRoute] = [
    Route("/tickets", screen(Area.TICKETS, list_tickets), methods=["GET"]),
    Route("/tickets/{ticket_id}", screen(Area.TICKETS, show_ticket), methods=["GET"]),
    Route("/tickets/{ticket_id}/close", screen(Area.TICKETS, close_ticket), methods=["POST"]),
]
