"""Keyless faces answer only their own machine's pages.

A face without a key (LD7 or Aurora on loopback) would otherwise obey any web
page the operator happens to open: a browser sends a cross-site POST or
opens a WebSocket without asking. Browsers always name the page in
``Origin``; API clients send none. So a request whose ``Origin`` is not a
loopback page is refused, and everything else passes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send


def is_local_origin(origin: str) -> bool:
    host = urlsplit(origin).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalOriginGuard:
    def __init__(self, app: ASGIApp, *, refuse: Callable[[], Response]) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            origin = Headers(scope=scope).get("origin")
            if origin is not None and not is_local_origin(origin):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await self.refuse()(scope, receive, send)
                return
        await self.app(scope, receive, send)
