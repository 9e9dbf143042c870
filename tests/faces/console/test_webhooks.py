"""The webhooks page: endpoints added, tested and removed through the same core as the
CLI (``guildhall webhooks ...``), and the deliveries with their status, code and time."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from guildhall.core.accounts.models import Role
from guildhall.core.economy import service as economy
from guildhall.events.models import AuditEntry, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from guildhall.faces.console.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.events.receiver import Receiver, receiving
from tests.faces.console.conftest import (
    CONSOLE_URL,
    STAFF_PASSWORD,
    form_token,
    make_staff,
    post_form,
    sign_in,
)

CONSOLE_ACTOR = "account:console:root"
FAST = {
    "timeout_seconds": 2,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "allow_private_targets": True,  # the receivers listen on loopback
}


@pytest.fixture
def hooks(other_runtime: Callable[..., Runtime]) -> Runtime:
    """A runtime on the test database whose webhooks may reach this machine's receivers."""
    return other_runtime(**{f"webhooks__{name}": value for name, value in FAST.items()})


@pytest.fixture
async def root(hooks: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The console over ``hooks``, signed in as the administrator ``root``."""
    await make_staff(hooks, "root", Role.ADMIN)
    transport = httpx.ASGITransport(app=create_app(hooks))
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as client:
        assert (await sign_in(client, "root", STAFF_PASSWORD)).status_code == 303
        yield client


async def _count(runtime: Runtime, model: type) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _add(client: httpx.AsyncClient, url: str, events: str) -> httpx.Response:
    return await post_form(client, "/webhooks", "/webhooks", {"url": url, "events": events})


async def _added(client: httpx.AsyncClient, receiver: Receiver, events: str = "*") -> str:
    """Add ``receiver`` as an endpoint; its secret, as the page shows it once."""
    answer = await _add(client, receiver.url, events)
    assert answer.status_code == 200, answer.text
    found = re.search(r'<p class="secret" id="webhook-secret">(whsec_[^<]+)</p>', answer.text)
    assert found, answer.text
    return found.group(1)


async def _endpoint_ids(runtime: Runtime) -> list[int]:
    async with runtime.database.unit_of_work(write=False) as session:
        return [endpoint.id for endpoint in await runtime.webhooks.endpoints(session)]


async def _audit(runtime: Runtime, action: str) -> list[tuple[str, str]]:
    async with runtime.database.unit_of_work(write=False) as session:
        rows = await session.execute(
            select(AuditEntry.actor, AuditEntry.target).where(AuditEntry.action == action)
        )
        return [(actor, target) for actor, target in rows]


async def _deliveries(runtime: Runtime) -> list[tuple[str, str, int]]:
    async with runtime.database.unit_of_work(write=False) as session:
        rows = await session.execute(
            select(
                WebhookDelivery.event, WebhookDelivery.status, WebhookDelivery.endpoint_id
            ).order_by(WebhookDelivery.id)
        )
        return [(event, status, endpoint) for event, status, endpoint in rows]


async def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(
    root: httpx.AsyncClient, hooks: Runtime
) -> None:
    async with receiving() as receiver:
        secret = await _added(root, receiver, "coins.changed, user.banned")
    assert secret.startswith("whsec_")
    async with hooks.database.unit_of_work(write=False) as session:
        [endpoint] = await hooks.webhooks.endpoints(session)  # as `guildhall webhooks list`
    assert endpoint.url == receiver.url
    assert endpoint.events == ["coins.changed", "user.banned"]
    assert await _audit(hooks, "webhook.added") == [(CONSOLE_ACTOR, f"webhook:{endpoint.id}")]
    again = await root.get("/webhooks")
    assert again.status_code == 200
    assert receiver.url in again.text and "coins.changed" in again.text
    assert secret not in again.text
    assert "active" in again.text and "none tried yet" in again.text


async def test_a_test_is_sent_signed_and_its_delivery_shows_code_and_time(
    root: httpx.AsyncClient, hooks: Runtime
) -> None:
    async with receiving(200) as receiver:
        secret = await _added(root, receiver)
        [endpoint_id] = await _endpoint_ids(hooks)
        answer = await post_form(root, "/webhooks", f"/webhooks/{endpoint_id}/test", {})
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/webhooks?endpoint={endpoint_id}"
        [request] = receiver.received
    assert Webhook(secret).verify(request.body, request.headers)["event"] == "webhook.test"
    assert await _deliveries(hooks) == [("webhook.test", "delivered", endpoint_id)]
    async with hooks.database.unit_of_work(write=False) as session:
        duration = await session.scalar(select(WebhookAttempt.duration_ms))
    assert duration is not None
    shown = await root.get(answer.headers["location"])
    assert f"Test sent to webhook #{endpoint_id}: HTTP 200 in" in shown.text  # the notice
    row = re.search(r'<tr id="delivery-\d+">(.*?)</tr>', shown.text, re.S)
    assert row, shown.text
    assert "webhook.test" in row.group(1)
    assert '<span class="state delivered">delivered</span>' in row.group(1)
    assert "HTTP 200" in row.group(1) and f"{duration:,} ms" in row.group(1)


async def test_a_refused_test_stays_pending_with_its_code(
    root: httpx.AsyncClient, hooks: Runtime
) -> None:
    async with receiving(500) as receiver:
        await _added(root, receiver)
        [endpoint_id] = await _endpoint_ids(hooks)
        answer = await post_form(root, "/webhooks", f"/webhooks/{endpoint_id}/test", {})
        assert answer.status_code == 303
    assert await _deliveries(hooks) == [("webhook.test", "pending", endpoint_id)]
    shown = await root.get(answer.headers["location"])
    assert "was not accepted: HTTP 500" in shown.text and "will be retried" in shown.text
    row = re.search(r'<tr id="delivery-\d+">(.*?)</tr>', shown.text, re.S)
    assert row and '<span class="state pending">pending</span>' in row.group(1)
    assert "HTTP 500" in row.group(1) and "next try" in row.group(1)
    endpoint_row = re.search(rf'<tr id="endpoint-{endpoint_id}">(.*?)</tr>', shown.text, re.S)
    assert endpoint_row and "HTTP 500" in endpoint_row.group(1)


async def test_the_workers_deliveries_are_listed_newest_first_per_endpoint(
    root: httpx.AsyncClient, hooks: Runtime
) -> None:
    account = await make_account(hooks, "alice", discord="111")
    async with receiving(200, 503, 200) as coins, receiving() as bans:
        await _added(root, coins, "coins.changed")
        await _added(root, bans, "user.banned")
        coins_id, bans_id = await _endpoint_ids(hooks)
        for amount in (5, 7):
            async with hooks.database.unit_of_work() as session:
                await economy.adjust(session, account, amount, actor=TEST_ACTOR)
        async with asyncio.timeout(10):
            while len(coins.received) < 3:
                await hooks.webhooks.run_once()
                await asyncio.sleep(0.05)
    assert await _deliveries(hooks) == [
        ("coins.changed", "delivered", coins_id),
        ("coins.changed", "delivered", coins_id),
    ]
    page = await root.get("/webhooks", params={"endpoint": str(coins_id)})
    assert page.status_code == 200
    rows = re.findall(r'<tr id="delivery-(\d+)">(.*?)</tr>', page.text, re.S)
    assert [int(found) for found, _ in rows] == sorted((int(f) for f, _ in rows), reverse=True)
    assert len(rows) == 2
    assert all("HTTP 200" in row and " ms" in row for _, row in rows)
    newest_attempts = re.search(r"<td>(\d+)</td>\s*<td>[^<]*UTC</td>", rows[0][1])
    assert newest_attempts and newest_attempts.group(1) == "2"  # a 503, then delivered
    theirs = await root.get("/webhooks", params={"endpoint": str(bans_id)})
    assert "No deliveries" in theirs.text
    assert (await root.get("/webhooks", params={"endpoint": "9999"})).status_code == 404
    assert (await root.get("/webhooks", params={"endpoint": "x"})).status_code == 404
    assert (await root.get("/webhooks", params={"page": "0"})).status_code == 400


async def test_deliveries_page_in_the_database(root: httpx.AsyncClient, hooks: Runtime) -> None:
    async with receiving() as receiver:
        await _added(root, receiver, "coins.changed")
    [endpoint_id] = await _endpoint_ids(hooks)
    async with hooks.database.unit_of_work() as session:
        for number in range(55):
            session.add(
                WebhookDelivery(
                    endpoint_id=endpoint_id,
                    message_id=f"msg_{number}",
                    event="coins.changed",
                    body="{}",
                    status="failed",
                )
            )
    first = await root.get("/webhooks")
    assert len(re.findall(r'<tr id="delivery-', first.text)) == 50
    assert 'href="/webhooks?page=2"' in first.text
    second = await root.get("/webhooks", params={"page": "2"})
    assert len(re.findall(r'<tr id="delivery-', second.text)) == 5
    assert 'rel="next"' not in second.text.split("Pages of deliveries")[1]


async def test_an_endpoint_is_removed_with_its_deliveries(
    root: httpx.AsyncClient, hooks: Runtime
) -> None:
    async with receiving(200) as receiver:
        await _added(root, receiver)
        [endpoint_id] = await _endpoint_ids(hooks)
        await post_form(root, "/webhooks", f"/webhooks/{endpoint_id}/test", {})
    answer = await post_form(root, "/webhooks", f"/webhooks/{endpoint_id}/delete", {})
    assert answer.status_code == 303 and answer.headers["location"] == "/webhooks"
    assert await _endpoint_ids(hooks) == []
    assert await _count(hooks, WebhookDelivery) == 0
    assert await _audit(hooks, "webhook.removed") == [(CONSOLE_ACTOR, f"webhook:{endpoint_id}")]
    page = await root.get("/webhooks")
    assert f"Webhook #{endpoint_id} ({receiver.url}) removed." in page.text
    assert "No webhook endpoints" in page.text
    again = await post_form(root, "/webhooks", f"/webhooks/{endpoint_id}/delete", {})
    assert again.status_code == 404
    for path in ("/webhooks/abc/delete", "/webhooks/99999999999999999999/test"):
        assert (await post_form(root, "/webhooks", path, {})).status_code == 404


@pytest.mark.parametrize(
    ("url", "events", "field", "message"),
    [
        ("not a url", "*", "url", "is not an http:// or https:// URL"),
        ("ftp://example.com/hooks", "*", "url", "is not an http:// or https:// URL"),
        ("http://example.com/\x00", "*", "url", "must not contain NUL"),
        ("http://example.com/" + "a" * 2000, "*", "url", "longer than 2,000"),
        ("http://127.0.0.1:9/hooks", "coins.stolen", "events", "unknown event"),
        ("http://127.0.0.1:9/hooks", " , ", "events", "Name at least one event"),
    ],
)
async def test_a_bad_endpoint_is_refused_in_place(
    root: httpx.AsyncClient, hooks: Runtime, url: str, events: str, field: str, message: str
) -> None:
    audit_rows = await _count(hooks, AuditEntry)
    answer = await _add(root, url, events)
    assert answer.status_code == 400
    error = re.search(
        rf'<span class="field-error" id="{field}-error" role="alert">([^<]*)', answer.text
    )
    assert error and message in error.group(1), answer.text
    if "\x00" not in url:
        assert f'value="{url}"' in answer.text  # the form keeps what was typed
    assert "whsec_" not in answer.text
    assert await _count(hooks, WebhookEndpoint) == 0
    assert await _count(hooks, AuditEntry) == audit_rows


async def test_a_private_address_is_refused_without_the_setting(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    answer = await _add(admin, "http://127.0.0.1:9/hooks", "*")
    assert answer.status_code == 400
    assert 'id="url-error"' in answer.text
    assert await _count(runtime, WebhookEndpoint) == 0


async def test_forms_without_their_token_change_nothing(
    root: httpx.AsyncClient, hooks: Runtime
) -> None:
    async with receiving() as receiver:
        await _added(root, receiver)
        [endpoint_id] = await _endpoint_ids(hooks)
        for action, fields in (
            ("/webhooks", {"url": receiver.url, "events": "*"}),
            (f"/webhooks/{endpoint_id}/test", {}),
            (f"/webhooks/{endpoint_id}/delete", {}),
        ):
            answer = await root.post(action, data=fields)
            assert answer.status_code == 403, action
            assert "security token" in answer.text
        assert receiver.received == []
    assert await _endpoint_ids(hooks) == [endpoint_id]
    assert await _count(hooks, WebhookDelivery) == 0


async def test_a_moderator_cannot_open_or_change_webhooks(
    moderator: httpx.AsyncClient, admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    page = await admin.get("/webhooks")
    token = form_token(page.text)  # an admin's token: the role is refused first anyway
    assert (await moderator.get("/webhooks")).status_code == 403
    for action in ("/webhooks", "/webhooks/1/test", "/webhooks/1/delete"):
        answer = await moderator.post(
            action, data={"csrf": token, "url": "http://x/", "events": "*"}
        )
        assert answer.status_code == 403, action
        assert "Your role does not open this page" in answer.text
    assert await _count(runtime, WebhookEndpoint) == 0
