from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import NEVER_REUSED, Base, BigIntId, UTCDateTime, utcnow


class InvoiceStatus(StrEnum):
    """Stored states; ``overdue`` is an unpaid invoice past its due date, computed when read."""

    UNPAID = "unpaid"
    PAID = "paid"
    VOID = "void"
    OVERDUE = "overdue"


class Invoice(Base):
    """An amount owed by an account, in minor units of its currency (cents for USD)."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint("status IN ('unpaid', 'paid', 'void')", name="status"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_invoices_account", "account_id", "id"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(8), default=InvoiceStatus.UNPAID.value)
    due_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
