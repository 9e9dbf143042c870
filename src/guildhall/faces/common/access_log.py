"""One line per request, naming the face (``log_access = true``).

uvicorn's own access log cannot say which of the five faces answered, so
Guildhall writes its own on the ``guildhall.access`` logger::

    heliactyl 127.0.0.1 "POST /api/v3/addcoins" 200 1.8 ms

The query string is left out: it can carry what must never be logged (an
OAuth ``code`` and ``state``). The client address is the one the rate
limiter counts (``faces/common/clients.py``: a trusted proxy's word, or the
peer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guildhall.faces.common.clients import Network, client_address

logger = logging.getLogger("guildhall.access")


class AccessLog:
    def __init__(self, app: ASGIApp, face: str, trusted: Sequence[Network]) -> None:
        self.app = app
        self.face = face
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 101 if scope["type"] == "websocket" else 0

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.close" and status == 101:
                status = 403  # closed before it was accepted
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            method = scope.get("method", "WEBSOCKET")
            logger.info(
                '%s %s "%s %s" %d %.1f ms',
                self.face,
                client_address(scope, self.trusted),
                method,
                scope["path"],
                status or 500,
                (time.perf_counter() - started) * 1000,
            )
