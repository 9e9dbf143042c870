"""``Authorization: Bearer <key>``: a Guildhall key with scope ``heliactyl``, or the
static ``api_code`` of the face's settings for operators moving from Heliactyl."""

from __future__ import annotations

import hmac

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from guildhall.core.actor import Actor
from guildhall.faces.common.keys import verify_key
from guildhall.faces.common.session import runtime_of
from guildhall.faces.heliactyl.errors import AuthError

SCOPE = "heliactyl"
API_CODE_ACTOR = Actor("api_code", "Heliactyl API code")


async def authenticate(request: Request, session: AsyncSession) -> Actor:
    """The caller, or AuthError with the documented status and message."""
    runtime = runtime_of(request)
    settings = runtime.settings.faces.heliactyl
    if not settings.api_enabled:
        raise AuthError(403, "API is disabled")
    header = request.headers.get("authorization")
    if not header:
        raise AuthError(401, "Missing authorization header")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError(403, "Invalid API key")
    if settings.api_code and hmac.compare_digest(token.encode(), settings.api_code.encode()):
        return API_CODE_ACTOR
    principal = await verify_key(runtime, session, token, SCOPE, request)
    if principal is None:
        raise AuthError(403, "Invalid API key")
    return principal.actor
