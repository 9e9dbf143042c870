from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import Base, BigIntId, UTCDateTime, utcnow


class AuditEntry(Base):
    """Who did what to whom, when, with a sentence a person can read."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target_account_id", "id"),
        Index("ix_audit_log_actor", "actor_account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    actor_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(64))
    target_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )
    target: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text)


class OutboxEvent(Base):
    """A committed event, waiting to reach webhooks and live clients.

    Written in the transaction of the change it announces, so a rolled-back
    change announces nothing and a crash after commit loses nothing.
    """

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
