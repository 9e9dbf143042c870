"""Routes of the LD7 V1 multi-user API face.

Reads run in the request's unit of work (``faces/common/session``); changes
open their own around the platform's call (``action_endpoint``). Each calls
the core's session service and renders LD7's ``{success, ...}``
bodies; errors become LD7's ``{success: false, message}`` in ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from guildhall.core.actor import Actor
from guildhall.core.errors import NotFound
from guildhall.faces.common import ratelimit
from guildhall.faces.common.app import face_app
from guildhall.faces.common.body import read_json
from guildhall.faces.common.origin import LocalOriginGuard
from guildhall.faces.common.responses import JSON
from guildhall.faces.common.session import action_endpoint, endpoint, runtime_of
from guildhall.faces.ld7 import dashboard, errors, wire
from guildhall.faces.ld7.auth import authenticate, pairing_reader, public
from guildhall.runtime import Runtime


def _handle(request: Request) -> str:
    return wire.user_id(request.path_params["user_id"])


async def home(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    sessions = runtime_of(request).sessions
    page = dashboard.render(await sessions.list(session), await sessions.stats(session))
    return HTMLResponse(
        page,
        headers={
            "Cache-Control": "no-store",
            # nosniff is on every response already (server.py).
            "Content-Security-Policy": dashboard.CONTENT_SECURITY_POLICY,
        },
    )


async def stats(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    counts = await runtime_of(request).sessions.stats(session)
    return JSON({"success": True, "activeSessions": counts.online, "totalUsers": counts.total})


async def list_sessions(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    found = await runtime_of(request).sessions.list(session)
    return JSON(
        {"success": True, "count": len(found), "sessions": [wire.summary(s) for s in found]}
    )


async def session_info(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON(wire.info(await runtime_of(request).sessions.get(session, _handle(request))))


async def create(request: Request, caller: Actor) -> Response:
    handle, phone, name = wire.create_request(await read_json(request))
    created, pairing = await runtime_of(request).sessions.create(handle, phone, caller, name=name)
    return JSON(
        {
            "success": True,
            "message": "Session created. Use the pairing code to connect.",
            "pairingCode": pairing.code,
            "userId": created.handle,
            "expiresAt": wire.iso(pairing.expires_at),
        }
    )


@contextmanager
def _unknown_is_done() -> Iterator[None]:
    """Stopping, deleting or logging out a session that does not exist succeeds.

    The original server calls its session manager without an existence check and
    answers ``success: true`` whatever it finds, so a client that retries a delete,
    or cleans up blindly, reads success; nothing exists to change, so nothing is.
    """
    try:
        yield
    except NotFound as error:
        if error.code != "session_not_found":
            raise


async def start(request: Request, caller: Actor) -> Response:
    try:
        outcome = await runtime_of(request).sessions.start(_handle(request), caller)
    except NotFound as error:
        if error.code != "session_not_found":
            raise
        raise errors.LD7Error(404, errors.START_UNKNOWN) from None
    handle = outcome.session.handle
    if outcome.failure is not None:
        # Returned, not raised: the move to "failed" must commit.
        return errors.failure(502, f"Session {handle} could not connect: {outcome.failure}")
    if outcome.pairing is not None:
        return JSON(
            {
                "success": True,
                "message": "Session started. Use the pairing code to connect.",
                "userId": handle,
                **wire.pairing(outcome.pairing),
            }
        )
    return JSON({"success": True, "message": "Session started successfully", "userId": handle})


async def stop(request: Request, caller: Actor) -> Response:
    handle = _handle(request)
    with _unknown_is_done():
        await runtime_of(request).sessions.stop(handle, caller)
    return JSON({"success": True, "message": f"Session {handle} stopped"})


async def delete(request: Request, caller: Actor) -> Response:
    handle = _handle(request)
    with _unknown_is_done():
        await runtime_of(request).sessions.delete(handle, caller)
    return JSON({"success": True, "message": f"Session {handle} deleted"})


async def logout(request: Request, caller: Actor) -> Response:
    handle = _handle(request)
    with _unknown_is_done():
        await runtime_of(request).sessions.logout(handle, caller)
    return JSON({"success": True, "message": f"Session {handle} logged out and deleted"})


async def backup(request: Request, caller: Actor) -> Response:
    made = await runtime_of(request).sessions.backup(_handle(request), caller)
    return JSON(
        {
            "success": True,
            "message": f"Session {made.handle} backed up",
            "userId": made.handle,
            "backedUpAt": wire.iso(made.created_at),
        }
    )


async def restore(request: Request, caller: Actor) -> Response:
    restored = await runtime_of(request).sessions.restore(_handle(request), caller)
    return JSON(
        {
            "success": True,
            "message": f"Session {restored.handle} restored from backup",
            "userId": restored.handle,
            "backedUpAt": wire.iso(restored.created_at),
        }
    )


async def pending_pairing(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    code = await runtime_of(request).sessions.pending_pairing(session, _handle(request))
    return JSON({"success": True, **wire.pairing(code)})


async def pairing_qr(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    """Beyond the document: the platform's current pairing QR code as a PNG (it rotates;
    fetch it again rather than caching it)."""
    qr = await runtime_of(request).sessions.pairing_qr(session, _handle(request))
    return Response(wire.qr_png(qr), media_type="image/png", headers={"Cache-Control": "no-store"})


async def send_message(request: Request, caller: Actor) -> Response:
    """Beyond the document: send a text from an online session."""
    handle = _handle(request)
    to, text = wire.message_request(await read_json(request))
    message_id = await runtime_of(request).sessions.send_text(handle, to, text, caller)
    return JSON({"success": True, "userId": handle, "to": to, "messageId": message_id})


def create_app(runtime: Runtime) -> FastAPI:
    app = face_app(runtime, "ld7", "Guildhall: LD7 V1 multi-user API", express_paths=True)
    errors.install(app)
    get, post, delete_ = ["GET"], ["POST"], ["DELETE"]
    session_path = "/api/sessions/{user_id}"
    reads = [
        ("/", home, get, public),
        ("/api/stats", stats, get, public),
        ("/api/sessions", list_sessions, get, public),
        (session_path, session_info, get, public),
        (f"{session_path}/pairing", pending_pairing, get, pairing_reader),
        (f"{session_path}/qr", pairing_qr, get, pairing_reader),
    ]
    for path, handler, methods, check in reads:
        app.add_route(path, endpoint(handler, check), methods=methods)
    # Changes call the platform, so they open their own units of work around the call.
    changes = [
        ("/api/sessions", create, post),
        (f"{session_path}/start", start, post),
        (f"{session_path}/stop", stop, post),
        (session_path, delete, delete_),
        (f"{session_path}/logout", logout, post),
        (f"{session_path}/backup", backup, post),
        (f"{session_path}/restore", restore, post),
        (f"{session_path}/messages", send_message, post),
    ]
    for path, action, methods in changes:
        app.add_route(path, action_endpoint(action, authenticate), methods=methods)
    settings = runtime.settings.faces.ld7
    if settings.keyless:
        app.add_middleware(
            LocalOriginGuard, refuse=errors.cross_site, also=settings.allowed_origins
        )
    ratelimit.install(app, runtime, "ld7", errors.too_many)
    return app
