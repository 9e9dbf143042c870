"""``/sessions``: messaging-bot sessions (LD7's), their pairing, and their life.

Open to admins and moderators (``Area.SESSIONS``). Every change is a call to
``runtime.sessions`` (``core/sessions/service.py``), the service LD7's face
calls: it opens its own short units of work around the connector, so the
routes are ``screen_action``s and no transaction waits on the platform. The
audit rows and ``session.status`` events are LD7's own.

- The list is ``SessionService.page`` (oldest first, 50 a page, in the
  database); a session's page shows its state, why it failed, its backup, and
  while it is pairing the code to enter on the phone and, where the connector
  gives one, the platform's QR code (``GET /sessions/{handle}/qr``, a PNG drawn
  like LD7's: 8 pixels a module, so a phone reads it off the screen).
- The pairing code is shown only on the session's own page (never in a list
  or a notice), to whoever may open this area; it is LD7's pairing read.
- ``restore`` puts back the session's backup: the core keeps one, the latest,
  so there is nothing to choose.
- A start that could not connect is not an error page: the session's move to
  ``failed`` is committed and shown, with the reason in the notice. Other core
  refusals (an illegal move, a handle taken) are error pages with their status.
- ``logout`` ends the login at the platform and deletes the session and its
  backup (as LD7's does), so the browser goes back to the list.
"""

from __future__ import annotations

import io

import segno
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area
from guildhall.core.errors import NotFound
from guildhall.core.sessions.models import State
from guildhall.core.sessions.service import Pairing, check_handle
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, runtime_of, screen, screen_action
from guildhall.faces.console.forms import Pager
from guildhall.faces.console.render import SECURITY_HEADERS, back_to, page


def _handle(visit: Visit) -> str:
    handle: str = check_handle(visit.request.path_params["handle"])
    return handle


def qr_png(content: str) -> bytes:
    """A QR code a phone's camera reads off a screen: 8 pixels a module, quiet zone of 4."""
    out = io.BytesIO()
    segno.make(content, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


async def list_sessions(session: AsyncSession, visit: Visit) -> Response:
    number = forms.page_number(visit)
    service = runtime_of(visit.request).sessions
    found, has_next = await forms.read_page(
        number, lambda limit, offset: service.page(session, limit, offset)
    )
    return page(
        visit,
        "sessions.html",
        title="Bot sessions",
        sessions=found,
        stats=await service.stats(session),
        pager=Pager.of(visit, number, has_next),
    )


async def show_session(session: AsyncSession, visit: Visit) -> Response:
    service = runtime_of(visit.request).sessions
    handle = _handle(visit)
    view = await service.get(session, handle)
    pairing: Pairing | None = None
    has_qr = False
    if view.state is State.PAIRING:
        try:
            pairing = await service.pending_pairing(session, handle)
            await service.pairing_qr(session, handle)
            has_qr = True
        except NotFound:
            pass  # no code pending (it just ran out), or the connector gave no QR
    return page(
        visit,
        "sessions_detail.html",
        title=f"Bot session {handle}",
        bot=view,
        pairing=pairing,
        has_qr=has_qr,
        backup=await service.backup_of(session, handle),
        running=view.state in (State.ONLINE, State.PAIRING),
    )


async def pairing_qr(session: AsyncSession, visit: Visit) -> Response:
    """The platform's current pairing QR as a PNG; 404 while none is pending."""
    code = await runtime_of(visit.request).sessions.pairing_qr(session, _handle(visit))
    return Response(qr_png(code), media_type="image/png", headers=SECURITY_HEADERS)


async def create_session(visit: Visit) -> Response:
    handle, phone, name = visit.text("handle"), visit.text("phone"), visit.text("name")
    created, _pairing = await runtime_of(visit.request).sessions.create(
        handle, phone, visit.staff.actor, name=name or None
    )
    return back_to(
        visit,
        f"/sessions/{created.handle}",
        f"Session {created.handle} created: enter its pairing code on the phone.",
    )


async def start_session(visit: Visit) -> Response:
    outcome = await runtime_of(visit.request).sessions.start(_handle(visit), visit.staff.actor)
    handle = outcome.session.handle
    if outcome.failure is not None:
        notice = f"Session {handle} could not connect: {outcome.failure}"
    elif outcome.pairing is not None:
        notice = f"Session {handle} started: enter its new pairing code on the phone."
    else:
        notice = f"Session {handle} started; it is {outcome.session.state.value}."
    return back_to(visit, f"/sessions/{handle}", notice)


async def stop_session(visit: Visit) -> Response:
    view = await runtime_of(visit.request).sessions.stop(_handle(visit), visit.staff.actor)
    return back_to(visit, f"/sessions/{view.handle}", f"Session {view.handle} stopped.")


async def logout_session(visit: Visit) -> Response:
    handle = _handle(visit)
    await runtime_of(visit.request).sessions.logout(handle, visit.staff.actor)
    return back_to(visit, "/sessions", f"Session {handle} logged out and deleted.")


async def backup_session(visit: Visit) -> Response:
    made = await runtime_of(visit.request).sessions.backup(_handle(visit), visit.staff.actor)
    return back_to(visit, f"/sessions/{made.handle}", f"Session {made.handle} backed up.")


async def restore_session(visit: Visit) -> Response:
    restored = await runtime_of(visit.request).sessions.restore(_handle(visit), visit.staff.actor)
    when = restored.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return back_to(
        visit,
        f"/sessions/{restored.handle}",
        f"Session {restored.handle} restored from its backup of {when}; it can start now.",
    )


ROUTES: list[BaseRoute] = [
    Route("/sessions", screen(Area.SESSIONS, list_sessions), methods=["GET"]),
    Route("/sessions", screen_action(Area.SESSIONS, create_session), methods=["POST"]),
    Route("/sessions/{handle}", screen(Area.SESSIONS, show_session), methods=["GET"]),
    Route("/sessions/{handle}/qr", screen(Area.SESSIONS, pairing_qr), methods=["GET"]),
    *(
        Route(
            f"/sessions/{{handle}}/{name}", screen_action(Area.SESSIONS, action), methods=["POST"]
        )
        for name, action in (
            ("start", start_session),
            ("stop", stop_session),
            ("logout", logout_session),
            ("backup", backup_session),
            ("restore", restore_session),
        )
    ),
]
