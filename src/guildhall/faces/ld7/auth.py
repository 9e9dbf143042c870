"""``X-API-Key``: LD7's optional static key, or a Guildhall key with scope ``ld7``.

When neither ``[faces.ld7] api_key`` (or ``API_KEY``) nor ``require_key`` is
set, the protected routes are open, which Guildhall allows only on a loopback
listener (``server.plan_listeners``). The pairing-code route is stricter:
without a key it answers only clients on this machine, never a request that
came through a proxy (one carrying any of ``PROXY_HEADERS``): a reverse proxy
on this machine would make every client look local.
"""

from __future__ import annotations

import hmac
import ipaddress

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from guildhall.core.actor import Actor
from guildhall.faces.common.keys import verify_key
from guildhall.faces.common.session import runtime_of
from guildhall.faces.ld7.errors import UNAUTHORIZED, LD7Error

SCOPE = "ld7"
STATIC_KEY_ACTOR = Actor("api_code", "LD7 API key")
OPEN_ACTOR = Actor("anonymous", "LD7 client without a key (loopback)")
PUBLIC_ACTOR = Actor("anonymous", "LD7 public route")
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


async def public(_request: Request, _session: AsyncSession) -> Actor:
    """The four routes the document lists as needing no key."""
    return PUBLIC_ACTOR


async def authenticate(request: Request, session: AsyncSession) -> Actor:
    """The caller when the key is right, or when no key is configured; else 401."""
    runtime = runtime_of(request)
    settings = runtime.settings.faces.ld7
    if settings.keyless:
        return OPEN_ACTOR
    token = request.headers.get("x-api-key", "").strip()
    if not token:
        raise LD7Error(401, UNAUTHORIZED)
    if settings.api_key and hmac.compare_digest(token.encode(), settings.api_key.encode()):
        return STATIC_KEY_ACTOR
    principal = await verify_key(runtime, session, token, SCOPE, request)
    if principal is None:
        raise LD7Error(401, UNAUTHORIZED)
    return principal.actor


def _from_this_machine(request: Request) -> bool:
    if request.client is None or any(name in request.headers for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def pairing_reader(request: Request, session: AsyncSession) -> Actor:
    """The pairing code is a login secret: key when set, else this machine only."""
    if runtime_of(request).settings.faces.ld7.keyless and not _from_this_machine(request):
        raise LD7Error(401, UNAUTHORIZED)
    return await authenticate(request, session)
