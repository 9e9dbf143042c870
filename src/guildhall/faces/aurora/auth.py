"""Aurora documents no key. Given ``[faces.aurora] api_key`` (or ``require_key``),
every route but health and assets needs ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``: the static key, or a Guildhall key with scope ``aurora``.
Without one the face is open, and Guildhall lets it listen on loopback only."""

from __future__ import annotations

import hmac

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection, Request

from guildhall.core.actor import Actor
from guildhall.faces.aurora.errors import AuroraError
from guildhall.faces.common.keys import verify_key
from guildhall.runtime import Runtime

SCOPE = "aurora"
STATIC_KEY_ACTOR = Actor("api_code", "Aurora API key")
OPEN_ACTOR = Actor("anonymous", "Aurora dashboard (loopback, no key)")
PUBLIC_ACTOR = Actor("anonymous", "Aurora public route")


def presented_key(connection: HTTPConnection) -> str:
    """The key from ``Authorization: Bearer`` or ``X-API-Key``; a WebSocket may also use
    ``?key=`` (browsers cannot set headers on one)."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = connection.headers.get("x-api-key", "").strip()
    if not key and connection.scope["type"] == "websocket":
        key = connection.query_params.get("key", "").strip()
    return key


async def check(
    runtime: Runtime, session: AsyncSession, token: str, connection: HTTPConnection
) -> Actor | None:
    settings = runtime.settings.faces.aurora
    if settings.keyless:
        return OPEN_ACTOR
    if not token:
        return None
    if settings.api_key and hmac.compare_digest(token.encode(), settings.api_key.encode()):
        return STATIC_KEY_ACTOR
    principal = await verify_key(runtime, session, token, SCOPE, connection)
    return principal.actor if principal else None


async def authenticate(request: Request, session: AsyncSession) -> Actor:
    actor = await check(request.app.state.runtime, session, presented_key(request), request)
    if actor is None:
        raise AuroraError(401, "Unauthorized", "Send the API key as Bearer or X-API-Key")
    return actor


async def public(_request: Request, _session: AsyncSession) -> Actor:
    return PUBLIC_ACTOR
