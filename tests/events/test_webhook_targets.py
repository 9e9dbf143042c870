"""Webhook targets: public addresses only unless ``[webhooks] allow_private_targets``,
checked when an endpoint is added and again at delivery; redirects never followed."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from guildhall.core.economy import service as economy
from guildhall.core.errors import Invalid
from guildhall.events.models import WebhookDelivery
from guildhall.events.targets import kind_of
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.events.receiver import receiving
from tests.events.test_webhooks import FAST, _cli

NOT_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "0.0.0.0",
    "::",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "fe80::1",
    "fc00::1",
    "fec0::1",
    "100.64.0.1",
    "224.0.0.1",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert kind_of(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert kind_of(ipaddress.ip_address(address)) is None


@pytest.fixture
def make_runtime(other_runtime: Callable[..., Runtime]) -> Callable[..., Runtime]:
    """Runtimes on the one test database; private targets refused unless asked."""

    def make(*, allow: bool) -> Runtime:
        settings = {**FAST, "allow_private_targets": allow}
        return other_runtime(**{f"webhooks__{k}": v for k, v in settings.items()})

    return make


async def _endpoints(runtime: Runtime) -> list[str]:
    async with runtime.database.unit_of_work(write=False) as session:
        return [e.url for e in await runtime.webhooks.endpoints(session)]


async def test_non_public_targets_are_refused_when_added(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(allow=False)
    for url in (
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "http://0.0.0.0:9/",
        "http://[::]/",
        "http://10.0.0.5/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://224.0.0.1/",
    ):
        with pytest.raises(Invalid, match=r"allow_private_targets = true") as refused:
            await runtime.webhooks.add(url, ["*"], TEST_ACTOR)
        assert "public addresses" in refused.value.message, url
    assert await _endpoints(runtime) == []
    await runtime.webhooks.add("http://93.184.215.14/hooks", ["*"], TEST_ACTOR)
    await make_runtime(allow=True).webhooks.add("http://127.0.0.1:8080/hooks", ["*"], TEST_ACTOR)
    assert await _endpoints(runtime) == [
        "http://93.184.215.14/hooks",
        "http://127.0.0.1:8080/hooks",
    ]


async def test_the_cli_refuses_a_loopback_target_in_one_sentence(
    database_url: str, tmp_path: Path
) -> None:
    from tests.process import write_config

    config = write_config(tmp_path, database_url)
    if not database_url.startswith("sqlite"):
        assert (await _cli(config, "migrate"))[0] == 0
    code, out, err = await _cli(config, "webhooks", "add", "http://127.0.0.1:9/h", "--event", "*")
    assert code == 1 and out == ""
    assert err.strip() == (
        "Error: The webhook host 127.0.0.1 is a loopback address, and webhooks go only to "
        "public addresses unless [webhooks] allow_private_targets = true."
    )
    code, out, _ = await _cli(config, "webhooks", "list")
    assert code == 0 and "127.0.0.1" not in out


async def _attempts(runtime: Runtime) -> list[tuple[int | None, str | None, str]]:
    async with runtime.database.unit_of_work(write=False) as session:
        [endpoint] = await runtime.webhooks.endpoints(session)
        found = await runtime.webhooks.attempts(session, endpoint.id)
    return [(a.status_code, a.error, a.delivery_status) for a in reversed(found)]


async def test_delivery_checks_the_resolved_address_again(
    make_runtime: Callable[..., Runtime],
) -> None:
    """An endpoint added while private targets were allowed (or whose name resolved to a
    public address then) is refused at delivery once they are not: nothing is sent, the
    attempt says why, and the delivery is retried as any failed one is."""
    allowed = make_runtime(allow=True)
    account = await make_account(allowed, "alice", discord="111")
    async with receiving() as receiver:
        await allowed.webhooks.add(
            f"http://localhost:{receiver.port}/hooks", ["coins.changed"], TEST_ACTOR
        )
        async with allowed.database.unit_of_work() as session:
            await economy.adjust(session, account, 5, actor=TEST_ACTOR)

        refusing = make_runtime(allow=False)
        assert await refusing.webhooks.dispatch() == 1
        assert await refusing.webhooks.deliver_due() == 1
        [(status, error, state)] = await _attempts(refusing)
        assert status is None and state == "pending"
        assert error is not None and error.startswith("refused: the webhook host localhost (")
        assert "is a loopback address" in error and "allow_private_targets = true" in error
        await asyncio.sleep(0.3)
        assert receiver.received == []
        async with refusing.database.unit_of_work(write=False) as session:
            delivery = await session.scalar(select(WebhookDelivery))
        assert delivery is not None and delivery.attempts == 1

        # Allowed again: the retry goes out as usual.
        async with asyncio.timeout(10):
            while not receiver.received:
                await allowed.webhooks.run_once()
                await asyncio.sleep(0.05)
    assert [a[2] for a in await _attempts(allowed)][-1] == "delivered"


async def test_a_redirect_is_a_failed_attempt_and_not_followed(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(allow=True)
    account = await make_account(runtime, "alice", discord="111")
    async with receiving() as elsewhere, receiving(302, 200) as receiver:
        receiver.redirect_to = elsewhere.url
        await runtime.webhooks.add(receiver.url, ["coins.changed"], TEST_ACTOR)
        async with runtime.database.unit_of_work() as session:
            await economy.adjust(session, account, 5, actor=TEST_ACTOR)
        async with asyncio.timeout(10):
            while len(receiver.received) < 2:
                await runtime.webhooks.run_once()
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert elsewhere.received == []
    assert await _attempts(runtime) == [(302, None, "delivered"), (200, None, "delivered")]
