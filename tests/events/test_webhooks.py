"""Webhooks: signed (verified here with the standardwebhooks library), retried,
in order per endpoint, never sent for a rolled-back change."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from guildhall.config import Settings
from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy import service as economy
from guildhall.core.errors import Invalid
from guildhall.events.models import WebhookDelivery
from guildhall.faces.heliactyl.app import create_app as heliactyl_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account, make_key
from tests.events.receiver import receiving
from tests.process import cli_env

FAST = {
    "timeout_seconds": 0.5,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "give_up_after_seconds": 60,
    "poll_seconds": 0.05,
    "allow_private_targets": True,  # the receivers listen on loopback
}


@pytest.fixture
def make_runtime(other_runtime: Callable[..., Runtime]) -> Callable[..., Runtime]:
    """Runtimes on the one test database with fast webhook settings (``FAST``, then ``changes``)."""

    def make(**webhooks: object) -> Runtime:
        return other_runtime(**{f"webhooks__{k}": v for k, v in {**FAST, **webhooks}.items()})

    return make


async def _endpoint(runtime: Runtime, url: str, *events: str) -> str:
    _id, secret = await runtime.webhooks.add(url, list(events), TEST_ACTOR)
    return secret


async def _coins(runtime: Runtime, account: AccountRef, amount: int) -> None:
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, amount, actor=TEST_ACTOR)


async def _drain(runtime: Runtime, until: Callable[[], bool], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not until():
            await runtime.webhooks.run_once()
            await asyncio.sleep(0.02)


async def test_a_delivery_is_signed_by_the_standard_webhooks_scheme(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    account = await make_account(runtime, "alice", discord="111")
    async with receiving() as receiver:
        secret = await _endpoint(runtime, receiver.url, "coins.changed")
        await _coins(runtime, account, 25)
        await _drain(runtime, lambda: len(receiver.received) == 1)
    [request] = receiver.received
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["event"] == "coins.changed"
    assert payload["data"] == {
        "userId": "111",
        "currency": "coins",
        "type": "ADMIN_ADJUSTMENT",
        "amount": "25",
        "balance": "25",
    }
    assert payload["timestamp"].endswith("Z")
    assert request.headers["webhook-id"].startswith("msg_")
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        Webhook(secret).verify(request.body.replace(b"25", b"99"), request.headers)


async def test_a_rolled_back_change_sends_nothing(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime()
    account = await make_account(runtime, "alice", discord="111")
    async with receiving() as receiver:
        await _endpoint(runtime, receiver.url, "*")
        with pytest.raises(RuntimeError):
            async with runtime.database.unit_of_work() as session:
                await economy.adjust(session, account, 5, actor=TEST_ACTOR)
                raise RuntimeError("the request failed after the change")
        await runtime.webhooks.run_once()
        await asyncio.sleep(0.2)
        await runtime.webhooks.run_once()
    assert receiver.received == []


async def test_failures_and_timeouts_are_retried_with_the_same_id(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    account = await make_account(runtime, "alice", discord="111")
    async with receiving(500, "hang", 200) as receiver:
        await _endpoint(runtime, receiver.url, "coins.changed")
        await _coins(runtime, account, 1)
        await _drain(runtime, lambda: len(receiver.received) == 3)
        async with runtime.database.unit_of_work(write=False) as session:
            endpoint_id = (await runtime.webhooks.endpoints(session))[0].id
            attempts = await runtime.webhooks.attempts(session, endpoint_id)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert [(a.status_code, a.error) for a in reversed(attempts)] == [
        (500, None),
        (None, "timed out"),
        (200, None),
    ]
    assert attempts[0].delivery_status == "delivered"


async def test_one_endpoint_receives_its_events_in_order(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    account = await make_account(runtime, "alice", discord="111")
    async with receiving(503, 503) as receiver:
        await _endpoint(runtime, receiver.url, "coins.changed")
        for amount in range(1, 6):
            await _coins(runtime, account, amount)
        await _drain(runtime, lambda: len(receiver.received) == 7)
    amounts = [json.loads(r.body)["data"]["amount"] for r in receiver.received]
    assert amounts == ["1", "1", "1", "2", "3", "4", "5"]  # the first failed twice, then order


async def test_an_endpoint_that_never_answers_is_marked_failing(
    make_runtime: Callable[..., Runtime],
) -> None:
    # Long enough for a retry even when the first attempt is slow (a loaded CI machine
    # took over 0.3 s to make it once), short enough to give up within the timeout.
    runtime = make_runtime(give_up_after_seconds=1.5)
    account = await make_account(runtime, "alice", discord="111")
    async with receiving(*([500] * 100)) as receiver:
        await _endpoint(runtime, receiver.url, "coins.changed")
        await _coins(runtime, account, 1)

        async def failed() -> bool:
            async with runtime.database.unit_of_work(write=False) as session:
                status = await session.scalar(select(WebhookDelivery.status))
            return status == "failed"

        async with asyncio.timeout(10):
            while not await failed():
                await runtime.webhooks.run_once()
                await asyncio.sleep(0.05)
        async with runtime.database.unit_of_work(write=False) as session:
            [endpoint] = await runtime.webhooks.endpoints(session)
    assert endpoint.failing_since is not None
    assert len(receiver.received) >= 2


async def test_only_subscribed_events_and_only_new_ones(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    account = await make_account(runtime, "alice", discord="111")
    await _coins(runtime, account, 1)  # before any endpoint: not delivered to it later
    async with receiving() as receiver:
        await _endpoint(runtime, receiver.url, "server.created")
        await _coins(runtime, account, 2)
        async with runtime.database.unit_of_work() as session:
            await runtime.hosting.create(session, account, "My VPS", "Basic", TEST_ACTOR)
        await _drain(runtime, lambda: len(receiver.received) >= 1)
        await asyncio.sleep(0.1)
        await runtime.webhooks.run_once()
    assert [json.loads(r.body)["event"] for r in receiver.received] == ["server.created"]


async def test_bad_endpoints_are_refused(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime()
    for url, events in (("ftp://x", ["*"]), ("http://x/h", ["coins.stolen"]), ("http://x/h", [])):
        with pytest.raises(Invalid):
            await runtime.webhooks.add(url, events, TEST_ACTOR)


async def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "guildhall",
        *args,
        env={**cli_env(config), "COLUMNS": "250"},  # tables unwrapped, as in a wide terminal
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_operator_commands(database_url: str, tmp_path: Path) -> None:
    from tests.process import write_config

    config = write_config(
        tmp_path, database_url, tables={"webhooks": {"allow_private_targets": True}}
    )
    if not database_url.startswith("sqlite"):
        assert (await _cli(config, "migrate"))[0] == 0
    async with receiving(200) as receiver:
        code, out, err = await _cli(
            config,
            "webhooks",
            "add",
            receiver.url,
            "--event",
            "server.created",
            "--event",
            "invoice.paid",
        )
        assert code == 0, err
        lines = out.strip().splitlines()
        assert lines == ["1", lines[-1]]
        secret = lines[-1]
        assert secret.startswith("whsec_")
        code, out, _ = await _cli(config, "webhooks", "test", "1")
        assert code == 0 and "webhook 1: HTTP 200" in out
        [request] = receiver.received
        assert Webhook(secret).verify(request.body, request.headers)["event"] == "webhook.test"
        code, out, _ = await _cli(config, "webhooks", "list")
        assert receiver.url in out and "invoice.paid server.created" in out and "ok" in out
        code, out, _ = await _cli(config, "webhooks", "deliveries", "1")
        assert "webhook.test" in out and "200" in out and "delivered" in out
        code, out, _ = await _cli(config, "webhooks", "remove", "1")
        assert f"removed webhook 1 ({receiver.url})" in out
        code, _, err = await _cli(config, "webhooks", "test", "1")
        assert code == 1 and "Webhook #1 does not exist." in err


async def test_a_new_endpoint_takes_no_events_from_an_existing_one(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    account = await make_account(runtime, "alice", discord="111")
    async with receiving() as first, receiving() as second:
        await _endpoint(runtime, first.url, "coins.changed")
        await _coins(runtime, account, 3)  # committed, not yet sent
        await _endpoint(runtime, second.url, "coins.changed")
        await _drain(runtime, lambda: len(first.received) == 1)
        await asyncio.sleep(0.1)
        await runtime.webhooks.run_once()
    assert [json.loads(r.body)["data"]["amount"] for r in first.received] == ["3"]
    assert second.received == []


async def test_a_slow_receiver_holds_no_database_meanwhile(settings: Settings) -> None:
    """While a delivery waits for a receiver that does not answer, Heliactyl's addcoins
    (same database; one pooled connection on PostgreSQL) still answers at once."""
    data = settings.model_dump()
    data["database_pool_size"] = 1
    data["webhooks"] = {**FAST, "timeout_seconds": 3}
    runtime = Runtime(Settings(**data))
    try:
        account = await make_account(runtime, "user123", discord="123456789")
        key = await make_key(runtime, "heliactyl")
        transport = httpx.ASGITransport(app=heliactyl_app(runtime))
        async with (
            receiving("hang") as receiver,
            httpx.AsyncClient(
                transport=transport,
                base_url="http://h.test",
                headers={"Authorization": f"Bearer {key}"},
            ) as heliactyl,
        ):
            await _endpoint(runtime, receiver.url, "coins.changed")
            await _coins(runtime, account, 1)
            worker = asyncio.create_task(runtime.webhooks.run_once())
            await receiver.wait_for(1)
            for _ in range(3):
                started = time.perf_counter()
                answer = await heliactyl.post(
                    "/api/v3/addcoins", json={"id": "123456789", "coins": 1}
                )
                elapsed = time.perf_counter() - started
                assert answer.json() == {"status": "success"}
                assert elapsed < 0.1, f"addcoins took {elapsed:.3f} s during a delivery"
            assert not worker.done()  # still waiting for the receiver
            await worker
    finally:
        await runtime.close()
