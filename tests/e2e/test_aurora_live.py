"""Aurora's live WebSocket against a real ``guildhall serve``, with a real client.

    ws://localhost:3000/ws  STATS_UPDATE every 5s, NEW_EVENT, PING/PONG;
    max 10 concurrent connections, 16KB max payload, 60s idle timeout.
(The intervals are configured short here so the test runs fast.) Guildhall also
holds at most 3 connections per client address (``ws_max_connections_per_client``);
the tests stand behind a trusted proxy (loopback) to come from several addresses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.process import Served, free_port, serve, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    config = write_config(
        tmp_path,
        database_url,
        top={"trusted_proxies": ["127.0.0.1/32"]},
        aurora={
            "port": free_port(),
            "stats_interval_seconds": 0.3,
            "ws_idle_seconds": 1.5,
            "live_poll_seconds": 0.1,
        },
        heliactyl={"port": free_port()},
    )
    running = serve(config, "--demo", "--face", "aurora", "--face", "heliactyl")
    yield running
    running.stop()
    running.output()


def _ws_url(served: Served) -> str:
    return served.url("aurora").replace("http://", "ws://") + "/ws"


async def _next(ws: ClientConnection, kind: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        message = json.loads(await asyncio.wait_for(ws.recv(), max(remaining, 0.01)))
        if message["type"] == kind:
            return message


async def test_stats_events_and_pong(served: Served) -> None:
    async with connect(_ws_url(served)) as ws:
        first = await _next(ws, "STATS_UPDATE")
        assert first["data"]["totalUsers"] == 2  # the demo's two Discord users
        await _next(ws, "STATS_UPDATE")  # and again, on its own

        async with httpx.AsyncClient() as client:
            added = await client.post(
                served.url("heliactyl") + "/api/v3/addcoins",
                json={"id": "123456789", "coins": 42},
                headers={"Authorization": f"Bearer {served.demo_key}"},
            )
        assert added.json() == {"status": "success"}
        event = await _next(ws, "NEW_EVENT")
        assert event["data"]["event"] == "coins.changed"
        assert event["data"]["data"]["userId"] == "123456789"
        assert event["data"]["data"]["amount"] == "42"

        await ws.send("PING")
        assert (await _next(ws, "PONG"))["type"] == "PONG"
        await ws.send(json.dumps({"type": "PING"}))
        await _next(ws, "PONG")


async def _handshake_status(served: Served, query: str = "", **extra: str) -> int:
    """The status a WebSocket handshake gets (101 when accepted), asked over plain HTTP
    (a refused handshake through a WebSocket client would leave its socket open)."""
    headers = {
        **extra,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    async with httpx.AsyncClient() as client:
        response = await client.get(served.url("aurora") + "/ws" + query, headers=headers)
        return response.status_code


def _from(address: str) -> dict[str, str]:
    """Headers that make the trusted proxy (loopback) say the client is ``address``."""
    return {"X-Forwarded-For": address}


async def test_the_eleventh_connection_is_refused(served: Served) -> None:
    clients = [
        await connect(_ws_url(served), additional_headers=_from(f"198.51.100.{i // 3 + 1}"))
        for i in range(10)
    ]
    try:
        assert await _handshake_status(served, **_from("198.51.100.99")) == 403
        await clients[0].close()
        await asyncio.sleep(0.2)
        # a place was freed
        eleventh = await connect(_ws_url(served), additional_headers=_from("198.51.100.99"))
        await eleventh.close()
    finally:
        for client in clients:
            await client.close()


async def test_one_address_holds_at_most_three_connections(served: Served) -> None:
    """The fourth from one address is refused as the eleventh is; another address
    still gets in, and a closed connection frees its place."""
    mine = [await connect(_ws_url(served)) for _ in range(3)]
    proxied = [
        await connect(_ws_url(served), additional_headers=_from("203.0.113.7")) for _ in range(3)
    ]
    try:
        assert await _handshake_status(served) == 403
        assert await _handshake_status(served, **_from("203.0.113.7")) == 403
        assert await _handshake_status(served, **_from("127.0.0.1")) == 403  # the same address
        other = await connect(_ws_url(served), additional_headers=_from("203.0.113.8"))
        await _next(other, "STATS_UPDATE")
        await other.close()
        await mine[0].close()
        await asyncio.sleep(0.2)
        again = await connect(_ws_url(served))  # its place was freed
        await _next(again, "STATS_UPDATE")
        await again.close()
    finally:
        for client in mine + proxied:
            await client.close()


async def test_a_message_over_16_kb_closes_with_1009(served: Served) -> None:
    async with connect(_ws_url(served), max_size=None) as ws:
        await ws.send("x" * (16 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_an_idle_connection_is_closed(served: Served) -> None:
    async with connect(_ws_url(served)) as ws:
        began = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert closed.value.rcvd.reason == "idle timeout"
        assert 1.2 < time.monotonic() - began < 4


@pytest.mark.parametrize("origin", ["http://evil.example", "http://[::1", "http://[zz]"])
async def test_another_sites_page_cannot_open_the_keyless_feed(served: Served, origin: str) -> None:
    """Also when the Origin is garbage that a URL parser refuses: 403, not 500."""
    assert await _handshake_status(served, Origin=origin) == 403
    async with connect(_ws_url(served), origin="http://127.0.0.1:3000") as ws:
        await _next(ws, "STATS_UPDATE")


async def test_with_a_key_a_browser_may_pass_it_in_the_query(
    database_url: str, tmp_path: Path
) -> None:
    key = "k" * 40
    config = write_config(tmp_path, database_url, aurora={"port": free_port(), "api_key": key})
    running = serve(config, "--face", "aurora")
    try:
        assert await _handshake_status(running) == 403
        assert await _handshake_status(running, "?key=wrong") == 403
        async with connect(_ws_url(running) + f"?key={key}") as ws:
            await _next(ws, "STATS_UPDATE")
    finally:
        running.stop()
        running.output()
