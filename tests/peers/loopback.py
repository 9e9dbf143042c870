"""Serving a protocol peer for real on a loopback port, shared by the HTTP peers.

A peer is served over TCP rather than called in-process so that Guildhall's
connectors are tested with their real HTTP client, connection pool and timeouts.
Tests also stop a peer to see the connector cope with an unreachable service, then
start it again on the same port (the connector's configured URL) with its state
unchanged, so the listener is kept apart from the peer's state.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]

HOST = "127.0.0.1"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def bind_loopback(port: int = 0) -> socket.socket:
    """A TCP socket bound to ``port`` on loopback (0: any free port), not yet listening.

    Binding before serving lets a peer know its port (and so its URL) before it
    is built, and SO_REUSEADDR lets start() take the same port again after stop().
    """
    # IPPROTO_TCP spelled out: asyncio only sets TCP_NODELAY on sockets whose proto
    # says TCP, and without it every reused keep-alive request waits ~40 ms on
    # Nagle and delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    return sock


class LoopbackServer:
    """Serves one handler for every path on a fixed loopback port, on and off again.

    The handler does its own routing (peers match routes the way the real service
    does, including its 404 and 405 answers), so the app has a single catch-all
    route. Lifespan is off because peers have nothing to set up, and uvicorn logs
    only warnings so test output stays readable.
    """

    def __init__(self, handler: Handler, port: int) -> None:
        self.handler = handler
        self.port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on ``sock`` if given (already bound), else bind ``self.port`` again.

        Returns once uvicorn accepts connections, so a test can call the peer at
        once; if uvicorn fails to start, its error is raised here.
        """
        if self._server is not None:
            return
        sock = sock if sock is not None else bind_loopback(self.port)
        app = Starlette(routes=[Route("/{path:path}", self.handler, methods=METHODS)])
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._server, self._task, self._sock = server, task, sock
        while not server.started:
            if task.done():
                self._server, self._task, self._sock = None, None, None
                sock.close()
                await task
                raise RuntimeError("the loopback server stopped before it started")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Close the port, so clients get connection refused; the handler's state stays."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        if self._sock is not None:
            self._sock.close()
        self._server, self._task, self._sock = None, None, None
