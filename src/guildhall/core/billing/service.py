"""Invoices: exact money in minor units, each status change made once.

Amounts arrive as decimal text ("9.99") and are stored as integers of the
currency's minor unit; they never pass through a float on the way in. An
unpaid invoice whose due date has passed reads as ``overdue``; paying or
voiding is a single conditional UPDATE, so two concurrent payments cannot
both succeed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.billing.models import Invoice, InvoiceStatus
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.db.base import utcnow
from guildhall.db.sql import rowcount
from guildhall.events import audit, outbox
from guildhall.events.announce import announce

CURRENCY = re.compile(r"[A-Z]{3}")
# ISO 4217 currencies whose minor unit is not the cent.
MINOR_DIGITS = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
    "IQD": 3,
    "LYD": 3,
}
MAX_MINOR = 10**15
PREFIX = "inv_"


@dataclass(frozen=True, slots=True)
class InvoiceView:
    public_id: str
    account_id: int
    amount: Decimal
    currency: str
    status: InvoiceStatus
    due_date: date
    created_at: datetime
    paid_at: datetime | None

    def event_data(self) -> dict[str, str]:
        return {
            "id": self.public_id,
            "amount": str(self.amount),
            "currency": self.currency,
            "status": self.status.value,
        }


def digits(currency: str) -> int:
    return MINOR_DIGITS.get(currency, 2)


def to_minor(amount: str, currency: str) -> int:
    """``"9.99"`` USD -> 999; refuses more decimals than the currency has, or a non-positive sum."""
    try:
        value = Decimal(amount.strip())
    except (InvalidOperation, AttributeError):
        raise Invalid(f"amount {amount!r} is not a decimal number", field="amount") from None
    places = digits(currency)
    scaled = value.scaleb(places)
    if not value.is_finite() or scaled != scaled.to_integral_value():
        raise Invalid(
            f"amount {amount} has more than {places} decimal places for {currency}",
            field="amount",
        )
    minor = int(scaled)
    if not 0 < minor < MAX_MINOR:
        raise Invalid("amount must be greater than zero and below 10^13", field="amount")
    return minor


def _view(row: Invoice, today: date) -> InvoiceView:
    status = InvoiceStatus(row.status)
    if status is InvoiceStatus.UNPAID and row.due_date < today:
        status = InvoiceStatus.OVERDUE
    return InvoiceView(
        public_id=f"{PREFIX}{row.id}",
        account_id=row.account_id,
        amount=Decimal(row.amount_minor).scaleb(-digits(row.currency)),
        currency=row.currency,
        status=status,
        due_date=row.due_date,
        created_at=row.created_at,
        paid_at=row.paid_at,
    )


def _invoice_id(public_id: str) -> int:
    number = public_id.removeprefix(PREFIX)
    if not (number.isascii() and number.isdecimal()) or len(number) > 18:
        raise NotFound(f"invoice {public_id} not found", code="invoice_not_found")
    return int(number)


async def create(
    session: AsyncSession,
    account: AccountRef,
    amount: str,
    currency: str,
    due: date,
    actor: Actor,
) -> InvoiceView:
    currency = currency.strip().upper()
    if not CURRENCY.fullmatch(currency):
        raise Invalid("currency must be a three-letter ISO 4217 code", field="currency")
    row = Invoice(
        account_id=account.id,
        amount_minor=to_minor(amount, currency),
        currency=currency,
        status=InvoiceStatus.UNPAID.value,
        due_date=due,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    view = _view(row, utcnow().date())
    await announce(
        session,
        actor,
        "invoice.created",
        f"{actor.name} invoiced {account.describe()} {view.amount} {currency}, "
        f"due {due.isoformat()} ({view.public_id})",
        view.event_data(),
        target_account_id=account.id,
        target=f"invoice:{view.public_id}",
    )
    return view


async def list_for(session: AsyncSession, account_id: int) -> list[InvoiceView]:
    """The account's invoices, newest first."""
    rows = await session.scalars(
        select(Invoice).where(Invoice.account_id == account_id).order_by(Invoice.id.desc())
    )
    today = utcnow().date()
    return [_view(row, today) for row in rows]


async def _settle(
    session: AsyncSession, public_id: str, target: InvoiceStatus, actor: Actor
) -> InvoiceView:
    invoice_id = _invoice_id(public_id)
    now = utcnow()
    stamp = {"paid_at": now} if target is InvoiceStatus.PAID else {"voided_at": now}
    changed = await session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id, Invoice.status == InvoiceStatus.UNPAID.value)
        .values(status=target.value, **stamp)
        .execution_options(synchronize_session=False)
    )
    row = await session.get(Invoice, invoice_id, populate_existing=True)
    if row is None:
        raise NotFound(f"invoice {public_id} not found", code="invoice_not_found")
    if not rowcount(changed):
        raise Conflict(f"invoice {public_id} is already {row.status}", code="invoice_settled")
    view = _view(row, now.date())
    verb = "paid" if target is InvoiceStatus.PAID else "voided"
    await audit.record(
        session,
        actor,
        f"invoice.{verb}",
        f"{actor.name} marked invoice {public_id} ({view.amount} {view.currency}) {verb}",
        target_account_id=row.account_id,
        target=f"invoice:{public_id}",
    )
    if target is InvoiceStatus.PAID:
        await outbox.emit(session, "invoice.paid", view.event_data())
    return view


async def pay(session: AsyncSession, public_id: str, actor: Actor) -> InvoiceView:
    return await _settle(session, public_id, InvoiceStatus.PAID, actor)


async def void(session: AsyncSession, public_id: str, actor: Actor) -> InvoiceView:
    return await _settle(session, public_id, InvoiceStatus.VOID, actor)
