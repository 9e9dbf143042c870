"""Cross-origin requests from pages the operator lists (``[faces.<name>] cors_origins``).

LD7's document says its API allows every origin, and its frontend examples
call it from another site with ``X-API-Key``; any face may allow the pages an
operator names. The policy is the plain one: credentials travel in headers
(``Authorization``, ``X-API-Key``), never in cookies, so
``Access-Control-Allow-Credentials`` is never sent and ``"*"`` is safe where
a key is required.

- A preflight (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``) from an allowed origin is answered here,
  204, with the methods and headers the faces' endpoints take; from any other
  origin it reaches the face, which answers as it answers an unknown route.
- Every other request from an allowed origin gets
  ``Access-Control-Allow-Origin`` (``*``, or the origin itself with
  ``Vary: Origin`` when origins are listed by name).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = "Content-Type, X-API-Key, Authorization, Accept"
PREFLIGHT_MAX_AGE = "600"


class CorsPolicy:
    def __init__(self, app: ASGIApp, origins: Collection[str]) -> None:
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(origin.rstrip("/").lower() for origin in origins if origin != "*")

    def _allowed(self, origin: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None."""
        if self.any_origin:
            return "*"
        return origin if origin.lower() in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origins = headers.getlist("origin")
        allowed = self._allowed(origins[0]) if len(origins) == 1 else None
        if allowed is None:
            await self.app(scope, receive, send)
            return
        vary = [] if allowed == "*" else [(b"vary", b"Origin")]
        granted = [(b"access-control-allow-origin", allowed.encode()), *vary]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *granted,
                        (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                        (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                        (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_granted(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *granted]}
            await send(message)

        await self.app(scope, receive, send_granted)
