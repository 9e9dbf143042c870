from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
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
