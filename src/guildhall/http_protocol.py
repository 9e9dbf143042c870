"""The HTTP/1.1 protocol every listener speaks: uvicorn's httptools protocol with
read timeouts, so a client that never finishes its request cannot hold a
connection (and its memory) for ever.

uvicorn times out an idle keep-alive connection only; a client that sends half
a request line, or a request head one byte every few seconds, or stops in the
middle of a body, was kept open as long as it liked (a slowloris). Here:

- ``header_timeout_seconds``: from the moment a connection opens, or the first
  byte of a later request on it, the whole request head must have arrived
  within this time (nginx's ``client_header_timeout``). A connection that sent
  part of a head is answered ``408 Request Timeout`` and closed; one that sent
  nothing is just closed.
- ``body_timeout_seconds``: while a body is expected, the client may go this
  long without sending any of it (nginx's ``client_body_timeout``: a slow but
  moving upload of 15 MB still arrives). Time when Guildhall itself is not
  reading (flow control paused, or a ``100 Continue`` not yet sent) does not
  count. On expiry the request is answered ``408`` if its answer has not
  begun, the application sees the client as gone, and the connection closes.

A response's head and body go out as one write: uvicorn writes the head when
the application starts its response and the body when it sends it, two
``send()`` calls and two TCP segments for every small JSON answer, and the
client wakes for each. :class:`OneWritePerTurn` holds what is written during
one turn of the event loop and sends it together at the end of the turn
(the application sends both parts without waiting in between).

Every response the protocol writes itself (uvicorn's 400 for a malformed
request, the 408 here) carries the server's default headers, so the
``X-Content-Type-Options: nosniff`` set in server.py reaches them too. A
WebSocket refused before its handshake is an HTTP 403 that uvicorn writes
without them; :class:`RefusalHeaders` sends that refusal as an ASGI HTTP
response (the ``websocket.http.response`` extension) carrying them.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from guildhall.config import HttpSettings

TIMEOUT_MESSAGE = b"Request Timeout: the request did not arrive in time."


class OneWritePerTurn:
    """A transport whose writes in one turn of the event loop reach the socket as one.

    Everything but writing and closing is the wrapped transport's own. Closing
    sends what is held first; aborting drops it, as the transport would.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        held, self._held = self._held, []
        if held and not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._held = []
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head and a request-body read timeout."""

    header_timeout: float = 10
    body_timeout: float = 30

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0  # loop time the body last moved
        self._in_head = False  # part of a request head has arrived

    # -- uvicorn's hooks ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Flow control (``self.flow``) keeps the transport itself; responses write through this.
        self.transport = cast(asyncio.Transport, OneWritePerTurn(transport, self.loop))
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._body_seen = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_timeout, self._check_body)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_timers()  # the WebSocket protocol takes the connection from here
        if isinstance(self.transport, OneWritePerTurn):
            self.transport.flush()
            self.transport = self.transport.transport
        super().handle_websocket_upgrade()

    # -- the timeouts ---------------------------------------------------------

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _head_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._in_head and not answering:
            self._write_timeout_response()
        self.transport.close()

    def _check_body(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            self._body_seen = now  # Guildhall is not reading: the client is not late
        left = self._body_seen + self.body_timeout - now
        if left > 0:
            self._body_timer = self.loop.call_later(left, self._check_body)
            return
        if not cycle.response_started:
            self._write_timeout_response()
        # From here the application reads the client as gone and nothing it sends is written.
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.close()

    def _write_timeout_response(self) -> None:
        head = [b"HTTP/1.1 408 Request Timeout\r\n"]
        defaults = self.server_state.default_headers
        head += [name + b": " + value + b"\r\n" for name, value in defaults]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(TIMEOUT_MESSAGE)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            TIMEOUT_MESSAGE,
        ]
        self.transport.write(b"".join(head))


class RefusalHeaders:
    """Give a WebSocket refused at its handshake the headers every HTTP answer has.

    The application refuses by closing before it accepts; uvicorn answers that
    with a bare 403. Sent instead as the same 403 through the
    ``websocket.http.response`` extension, it carries ``headers``.
    """

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            await self.app(scope, receive, send)
            return
        accepted = False

        async def send_with_headers(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close" and not accepted:
                start = {"type": "websocket.http.response.start", "status": 403}
                await send({**start, "headers": self.headers})
                await send({"type": "websocket.http.response.body", "body": b""})
                return
            elif message["type"] == "websocket.http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def protocol_for(settings: HttpSettings) -> type[TimedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, with the configured timeouts."""

    class Protocol(TimedHttpToolsProtocol):
        header_timeout = settings.header_timeout_seconds
        body_timeout = settings.body_timeout_seconds

    return Protocol
