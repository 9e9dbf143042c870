"""Invoices: exact money, newest first, paid or voided once.

GET /api/billing/invoices -> {"success": true, "data": [{"id": "inv_123", "amount": 9.99,
    "status": "paid", "dueDate": "2023-02-01T00:00:00.000Z", "createdAt": ...}]}
"""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select

from guildhall.core.accounts.service import AccountRef
from guildhall.core.billing import service as billing
from guildhall.core.billing.models import Invoice
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.events import outbox
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.skypanel.conftest import make_user


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("9.99", "USD", 999),
        ("10", "EUR", 1000),
        ("0.01", "USD", 1),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("19.90", "USD", 1990),
    ],
)
def test_amounts_become_exact_minor_units(amount: str, currency: str, minor: int) -> None:
    assert billing.to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("9.999", "USD"),
        ("1.5", "JPY"),
        ("0", "USD"),
        ("-5", "USD"),
        ("abc", "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("1e20", "USD"),
    ],
)
def test_bad_amounts_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(Invalid):
        billing.to_minor(amount, currency)


async def _invoice(
    runtime: Runtime, owner: AccountRef, amount: str = "9.99", due: date | None = None
) -> str:
    async with runtime.database.unit_of_work() as session:
        made = await billing.create(
            session, owner, amount, "usd", due or date.today() + timedelta(days=30), TEST_ACTOR
        )
        return made.public_id


async def test_invoices_list_newest_first_in_the_documented_shape(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    first = await _invoice(runtime, user, "9.99", date(2099, 2, 1))
    second = await _invoice(runtime, user, "120.50")
    async with runtime.database.unit_of_work() as session:
        await billing.pay(session, first, TEST_ACTOR)
    other = await make_user(runtime, "jane", "jane@example.com")
    await _invoice(runtime, other, "1.00")

    body = (await api.get("/api/billing/invoices")).json()
    assert body["success"] is True
    assert [item["id"] for item in body["data"]] == [second, first]
    newest, oldest = body["data"]
    assert oldest["createdAt"].endswith("Z")
    assert {k: oldest[k] for k in ("amount", "currency", "status", "dueDate")} == {
        "amount": 9.99,
        "currency": "USD",
        "status": "paid",
        "dueDate": "2099-02-01T00:00:00.000Z",
    }
    assert (newest["amount"], newest["status"]) == (120.5, "unpaid")


async def test_an_unpaid_invoice_past_its_due_date_is_overdue(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    await _invoice(runtime, user, due=date.today() - timedelta(days=1))
    assert (await api.get("/api/billing/invoices")).json()["data"][0]["status"] == "overdue"


async def test_paying_or_voiding_happens_once(runtime: Runtime, user: AccountRef) -> None:
    paid = await _invoice(runtime, user)
    voided = await _invoice(runtime, user)
    async with runtime.database.unit_of_work() as session:
        assert (await billing.pay(session, paid, TEST_ACTOR)).status == "paid"
        assert (await billing.void(session, voided, TEST_ACTOR)).status == "void"
    for settle, invoice_id in (
        (billing.pay, paid),
        (billing.void, paid),
        (billing.pay, voided),
    ):
        with pytest.raises(Conflict, match="is already"):
            async with runtime.database.unit_of_work() as session:
                await settle(session, invoice_id, TEST_ACTOR)
    with pytest.raises(NotFound):
        async with runtime.database.unit_of_work() as session:
            await billing.pay(session, "inv_999999", TEST_ACTOR)
    async with runtime.database.unit_of_work(write=False) as session:
        rows = {row.id: row.status for row in await session.scalars(select(Invoice))}
        events = [e["event"] for e in reversed(await outbox.recent(session))]
    assert sorted(rows.values()) == ["paid", "void"]
    assert events == ["invoice.created", "invoice.created", "invoice.paid"]
