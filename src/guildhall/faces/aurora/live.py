"""``/ws``: Aurora's live dashboard feed.

- ``STATS_UPDATE`` every ``stats_interval_seconds`` while at least one client
  is connected; nothing runs when none is.
- ``NEW_EVENT`` for every committed core event, from any face and any server
  process: the hub tails the event outbox in the database, so an event
  reaches clients only once its transaction has committed, and one made by
  another process sharing the database arrives too.
- ``PING`` (as text, or ``{"type": "PING"}``) is answered with ``PONG``.
- At most ``ws_max_connections`` clients, and at most
  ``ws_max_connections_per_client`` from one client address (as
  ``faces/common/clients.py`` finds it: the socket peer, or what a trusted
  proxy says), so one client cannot take every place. One more is refused at
  the handshake (HTTP 403) either way; a closed connection frees its place.
  A message over ``ws_max_message_bytes`` closes the
  connection with 1009 (message too big); ``ws_idle_seconds`` without a
  message from the client closes it with 1000 ("idle timeout").

Outbox ids are handed out before commit, so on PostgreSQL a later id can
commit first; the hub therefore rereads a window of recent ids and skips
those it has sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from fastapi import FastAPI
from sqlalchemy import func, select
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from guildhall.core.community.stats import dashboard
from guildhall.events.models import OutboxEvent
from guildhall.faces.aurora.auth import check, presented_key
from guildhall.faces.common.clients import client_address, parse_networks
from guildhall.faces.common.keys import stamp_used
from guildhall.runtime import Runtime
from guildhall.times import iso_millis

logger = logging.getLogger(__name__)
REREAD_WINDOW = 500
MESSAGE_TOO_BIG = 1009
NORMAL_CLOSURE = 1000


class LiveHub:
    """The connected clients of one process, and the two jobs that feed them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.faces.aurora
        self.clients: dict[WebSocket, str] = {}  # each connection's client address
        self._per_client: dict[str, int] = {}
        self._trusted = parse_networks(runtime.settings.trusted_proxies)
        self._jobs: list[asyncio.Task[None]] = []
        self._lifecycle = asyncio.Lock()  # the feed starts once, and stops once
        self._start_id = 0  # events up to this one were committed before the feed started
        self._last_id = 0
        self._sent: set[int] = set()

    def reserve(self, websocket: WebSocket) -> bool:
        """Take a place for ``websocket`` at once (before any await), or say there is none."""
        address = client_address(websocket.scope, self._trusted)
        held = self._per_client.get(address, 0)
        if (
            len(self.clients) >= self.settings.ws_max_connections
            or held >= self.settings.ws_max_connections_per_client
        ):
            return False
        self.clients[websocket] = address
        self._per_client[address] = held + 1
        return True

    async def join(self, websocket: WebSocket) -> None:
        async with self._lifecycle:
            if not self._jobs:
                await self._start()
        await self.send(websocket, await self._stats_message())

    async def leave(self, websocket: WebSocket) -> None:
        address = self.clients.pop(websocket, None)
        if address is not None:
            held = self._per_client[address] - 1
            if held:
                self._per_client[address] = held
            else:
                del self._per_client[address]
        async with self._lifecycle:
            if not self.clients and self._jobs:
                await self._stop()

    async def _start(self) -> None:
        async with self.runtime.database.unit_of_work(write=False) as session:
            self._start_id = await session.scalar(select(func.max(OutboxEvent.id))) or 0
        self._last_id = self._start_id
        self._sent.clear()
        loop = asyncio.get_running_loop()
        self._jobs = [
            loop.create_task(self._every(self.settings.stats_interval_seconds, self._stats)),
            loop.create_task(self._every(self.settings.live_poll_seconds, self._events)),
        ]

    async def _stop(self) -> None:
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    async def _every(self, seconds: float, job: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                logger.exception("live feed job failed")

    async def _stats_message(self) -> dict[str, Any]:
        currency = self.settings.currency
        async with self.runtime.database.unit_of_work(write=False) as session:
            counts = await dashboard(session, currency)
        return {"type": "STATS_UPDATE", "data": counts, "timestamp": int(time.time() * 1000)}

    async def _stats(self) -> None:
        await self._broadcast(await self._stats_message())

    async def _events(self) -> None:
        floor = max(self._start_id, self._last_id - REREAD_WINDOW)
        async with self.runtime.database.unit_of_work(write=False) as session:
            rows = list(
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.id > floor)
                    .order_by(OutboxEvent.id)
                    .limit(1000)
                )
            )
        for row in rows:
            if row.id in self._sent:
                continue
            self._sent.add(row.id)
            await self._broadcast(
                {
                    "type": "NEW_EVENT",
                    "data": {
                        "event": row.event,
                        "data": row.payload,
                        "timestamp": iso_millis(row.created_at),
                    },
                }
            )
        if rows:
            self._last_id = max(self._last_id, rows[-1].id)
            keep_above = self._last_id - REREAD_WINDOW
            self._sent = {event_id for event_id in self._sent if event_id > keep_above}

    async def _broadcast(self, message: dict[str, Any]) -> None:
        for websocket in list(self.clients):
            await self.send(websocket, message)

    async def send(self, websocket: WebSocket, message: dict[str, Any]) -> None:
        if websocket.application_state is not WebSocketState.CONNECTED:
            return
        with contextlib.suppress(Exception):  # a client gone mid-send is dropped at its read
            await websocket.send_text(orjson.dumps(message).decode())


def _is_ping(text: str) -> bool:
    if text.strip().upper() == "PING":
        return True
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return isinstance(message, dict) and str(message.get("type", "")).upper() == "PING"


async def _serve(hub: LiveHub, websocket: WebSocket) -> None:
    settings = hub.settings
    if not hub.reserve(websocket):
        await websocket.close(code=1013)  # refused at the handshake: HTTP 403
        return
    try:
        async with hub.runtime.database.unit_of_work(write=False) as session:
            allowed = await check(hub.runtime, session, presented_key(websocket), websocket)
        if allowed is None:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        stamp_used(hub.runtime, websocket)
        await hub.join(websocket)
        while True:
            try:
                async with asyncio.timeout(settings.ws_idle_seconds):
                    message = await websocket.receive()
            except TimeoutError:
                await websocket.close(code=NORMAL_CLOSURE, reason="idle timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            payload = message.get("text")
            if payload is None:
                payload = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(payload.encode()) > settings.ws_max_message_bytes:
                await websocket.close(code=MESSAGE_TOO_BIG, reason="message too big")
                return
            if _is_ping(payload):
                await hub.send(websocket, {"type": "PONG", "timestamp": int(time.time() * 1000)})
    except WebSocketDisconnect:
        return
    finally:
        await hub.leave(websocket)


def install(app: FastAPI, runtime: Runtime) -> None:
    hub = LiveHub(runtime)
    app.state.live = hub

    async def websocket_route(websocket: WebSocket) -> None:
        await _serve(hub, websocket)

    app.add_api_websocket_route("/ws", websocket_route)
