"""``/tickets``: modmail tickets, their transcripts, and closing one.

Open to admins and moderators (``Area.TICKETS``). The list is Rustmail's own
query without its count (``support.ticket_page``: newest first, filtered and paged
in the database, one row more than shown read to know whether a next page exists);
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
from guildhall.core.errors import Invalid
from guildhall.core.support import service as support
from guildhall.core.support.models import CLOSED, INBOUND, NOTE, OPEN, OUTBOUND
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, runtime_of, screen
from guildhall.faces.console.forms import Pager
from guildhall.faces.console.render import back_to, page

MAX_TICKET_ID = 32
MAX_REASON = 500
STATUSES: dict[str, int | None] = {"open": OPEN, "closed": CLOSED, "all": None}
DIRECTIONS = {INBOUND: "member", OUTBOUND: "staff", NOTE: "note"}


def _ticket_id(visit: Visit) -> str:
    """The ticket's public id from the path; one no ticket can have is a 404 at once."""
    return forms.path_key(visit, "ticket_id", "ticket", MAX_TICKET_ID, code="ticket_not_found")


async def list_tickets(session: AsyncSession, visit: Visit) -> Response:
    status = visit.query("status") or "open"
    if status not in STATUSES:
        raise Invalid("status must be open, closed or all")
    number = forms.page_number(visit)
    rows, has_next = await forms.read_page(
        number,
        lambda limit, offset: support.ticket_page(session, STATUSES[status], limit, offset),
    )
    return page(
        visit,
        "tickets.html",
        title="Tickets",
        tickets=rows,
        showing=status,
        statuses=list(STATUSES),
        pager=Pager.of(visit, number, has_next, params={"status": status}),
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
    reason = forms.text(visit.form, "reason", "The reason", MAX_REASON)
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
