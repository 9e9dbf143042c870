"""A small OAuth2 authorization-code provider, served for real on a local port.

It speaks the parts of Discord's OAuth2 a panel login uses: ``/authorize``
redirects back with a one-time code, ``/token`` trades the code (with the
client's id and secret) for an access token, ``/users/@me`` says who the
token belongs to. ``token_delay`` makes ``/token`` as slow as a provider
having a bad day; ``token_requests`` counts the requests that reached it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "guildhall-panel"
CLIENT_SECRET = "provider-secret-for-tests"


@dataclass
class Provider:
    port: int
    person: dict[str, object] = field(
        default_factory=lambda: {
            "id": "555000111222333444",
            "username": "staffer",
            "avatar": "a1b2c3",
        }
    )
    codes: dict[str, dict[str, object]] = field(default_factory=dict)
    tokens: dict[str, dict[str, object]] = field(default_factory=dict)
    token_delay: float = 0
    token_requests: int = 0
    _stopping: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self) -> None:
        """Go down: the port stops answering (a provider having an outage)."""
        for stop in self._stopping:
            await stop()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, redirect_url: str) -> dict[str, str]:
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_url": redirect_url,
            "authorize_url": f"{self.base}/authorize",
            "token_url": f"{self.base}/token",
            "userinfo_url": f"{self.base}/users/@me",
        }

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        if params.get("client_id") != CLIENT_ID or params.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = dict(self.person)
        target = params["redirect_uri"] + "?" + urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        await asyncio.sleep(self.token_delay)
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        person = self.codes.pop(str(form.get("code")), None)  # a code works once
        if form.get("grant_type") != "authorization_code" or person is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = secrets.token_urlsafe(16)
        self.tokens[access] = person
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 600})

    async def me(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return JSONResponse({"message": "401: Unauthorized"}, status_code=401)
        return JSONResponse(self.tokens[token])


@contextlib.asynccontextmanager
async def running_provider() -> AsyncIterator[Provider]:
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else ~40 ms a request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    provider = Provider(port=sock.getsockname()[1])
    app = Starlette(
        routes=[
            Route("/authorize", provider.authorize),
            Route("/token", provider.token, methods=["POST"]),
            Route("/users/@me", provider.me),
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)

    async def stop() -> None:
        if not task.done():
            server.should_exit = True
            await task
        sock.close()

    provider._stopping.append(stop)
    try:
        yield provider
    finally:
        await stop()
