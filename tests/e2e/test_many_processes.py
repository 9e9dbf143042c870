"""Several ``guildhall serve`` processes on one PostgreSQL and one Redis behave as one;
and a committed event survives a SIGKILL of the process that was to deliver it."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from websockets.asyncio.client import connect

from tests.events.receiver import receiving
from tests.process import Served, free_port, guildhall, last_line, serve, write_config

pytestmark = pytest.mark.e2e
USER = "123456789"


def _stop(*processes: Served, sig: int = signal.SIGTERM) -> None:
    for served in processes:
        if served.process.poll() is None:
            served.stop(sig)
        served.output()


def _configs(tmp_path: Path, database_url: str, redis_url: str) -> list[Path]:
    """Two processes' configs: the same database, Redis and data directory; own ports."""
    prefix = f"test-{uuid.uuid4().hex}"  # this run's own counters in the shared Redis
    return [
        write_config(
            tmp_path,
            database_url,
            filename=f"process{n}.toml",
            top={"redis_url": redis_url, "redis_prefix": prefix},
            tables={
                "webhooks": {"poll_seconds": 0.1, "allow_private_targets": True},
                "faces.aurora.rate_limits.default": {"requests": 30, "per_seconds": 86400},
                "faces.heliactyl.rate_limits.default": {"requests": 100000, "per_seconds": 60},
            },
            heliactyl={"port": free_port()},
            aurora={"port": free_port(), "live_poll_seconds": 0.1},
        )
        for n in (1, 2)
    ]


async def test_two_processes_share_balances_events_limits_and_deliveries(
    postgres_database: str, redis_url: str, tmp_path: Path
) -> None:
    first_config, second_config = _configs(tmp_path, postgres_database, redis_url)
    guildhall(first_config, "migrate")
    guildhall(first_config, "demo")
    key = last_line(guildhall(first_config, "keys", "create", "--name", "t", "--scope", "*").stdout)
    first = serve(first_config, "--face", "heliactyl", "--face", "aurora")
    second = serve(second_config, "--face", "heliactyl", "--face", "aurora")
    try:
        async with (
            receiving() as receiver,
            httpx.AsyncClient(
                limits=httpx.Limits(max_connections=100), timeout=httpx.Timeout(30, pool=None)
            ) as client,
        ):
            added = guildhall(
                first_config, "webhooks", "add", receiver.url, "--event", "user.banned"
            )
            secret = last_line(added.stdout)
            bases = [first.url("heliactyl"), second.url("heliactyl")]
            auth = {"Authorization": f"Bearer {key}"}
            before = (
                await client.get(f"{bases[0]}/api/v3/userinfo", params={"id": USER}, headers=auth)
            ).json()["coins"]

            # 2,000 concurrent addcoins over 100 connections, half to each process.
            statuses: list[int] = []

            async def connection(base: str, count: int) -> None:
                async with httpx.AsyncClient(
                    base_url=base,
                    headers=auth,
                    limits=httpx.Limits(max_connections=1),
                    timeout=60,
                ) as one:
                    for _ in range(count):
                        response = await one.post("/api/v3/addcoins", json={"id": USER, "coins": 1})
                        statuses.append(response.status_code)

            await asyncio.gather(*(connection(bases[n % 2], 20) for n in range(100)))
            assert len(statuses) == 2000 and set(statuses) == {200}
            for base in bases:
                info = await client.get(
                    f"{base}/api/v3/userinfo", params={"id": USER}, headers=auth
                )
                assert info.json()["coins"] == before + 2000

            # A live client on the first process sees a change made through the second.
            ws_url = first.url("aurora").replace("http://", "ws://") + "/ws"
            async with connect(ws_url) as ws:
                await asyncio.sleep(0.3)  # the feed starts with the first client
                banned = await client.post(
                    f"{bases[1]}/api/v3/ban", json={"id": USER, "reason": "test"}, headers=auth
                )
                assert banned.json()["status"] == "success"
                async with asyncio.timeout(10):
                    while True:
                        message = json.loads(await ws.recv())
                        if message["type"] == "NEW_EVENT" and (
                            message["data"]["event"] == "user.banned"
                        ):
                            break

            # Both workers poll; the event is delivered once.
            await receiver.wait_for(1)
            await asyncio.sleep(1.0)
            assert len(receiver.received) == 1
            assert (
                Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)[
                    "event"
                ]
                == "user.banned"
            )

            # One rate limit for both processes: 30 per address in all, not 30 each.
            aurora = [first.url("aurora"), second.url("aurora")]
            answers = await asyncio.gather(
                *(client.get(f"{aurora[n % 2]}/api/health") for n in range(80))
            )
            assert sum(r.status_code == 200 for r in answers) == 30
            assert {r.status_code for r in answers} == {200, 429}
    finally:
        _stop(first, second)


async def test_an_event_committed_before_a_sigkill_is_delivered_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    def config(poll: float) -> Path:
        return write_config(
            tmp_path,
            database_url,
            tables={"webhooks": {"poll_seconds": poll, "allow_private_targets": True}},
            heliactyl={"port": port},
        )

    port = free_port()
    slow = config(60)  # this process commits the event but is killed before it delivers
    if not database_url.startswith("sqlite"):
        guildhall(slow, "migrate")
    guildhall(slow, "demo")
    key = last_line(guildhall(slow, "keys", "create", "--name", "t", "--scope", "*").stdout)
    async with receiving() as receiver:
        guildhall(slow, "webhooks", "add", receiver.url, "--event", "coins.changed")
        doomed = serve(slow, "--face", "heliactyl")
        try:
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"{doomed.url('heliactyl')}/api/v3/addcoins",
                    json={"id": USER, "coins": 7},
                    headers={"Authorization": f"Bearer {key}"},
                )
            assert response.json() == {"status": "success"}
        finally:
            _stop(doomed, sig=signal.SIGKILL)
        assert receiver.received == []

        restarted = serve(config(0.1), "--face", "heliactyl")
        try:
            [request] = await receiver.wait_for(1)
            assert json.loads(request.body)["data"]["amount"] == "7"
        finally:
            _stop(restarted)
