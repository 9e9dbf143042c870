from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import Base, BigIntId, UTCDateTime, utcnow


class Ban(Base):
    """A ban counts while it is not lifted and its expiry (if any) is ahead."""

    __tablename__ = "bans"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    # When the worker announced that the ban ran out (user.unbanned); None before.
    expiry_announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ModerationCase(Base):
    """A warn, timeout, kick, ban, note or prune; its number is its database id.

    ``sqlite_autoincrement`` keeps SQLite from reusing the number of a deleted
    last row, as a PostgreSQL identity never does: a case number is never
    given twice.
    """

    __tablename__ = "moderation_cases"
    __table_args__ = (
        CheckConstraint("type IN ('warn', 'timeout', 'kick', 'ban', 'note', 'prune')", name="type"),
        Index("ix_moderation_cases_user", "user_id", "id"),
        Index("uq_moderation_cases_platform_ref", "platform_ref", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(100), default="")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    moderator_id: Mapped[str] = mapped_column(String(32), index=True)
    moderator_name: Mapped[str] = mapped_column(String(100), default="")
    reason: Mapped[str] = mapped_column(String(1000), default="")
    details: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(32))
    resolved_by_name: Mapped[str | None] = mapped_column(String(100))
    resolved_reason: Mapped[str | None] = mapped_column(String(1000))
    # The platform event a case was made from (a Discord audit-log entry), so a
    # replayed event makes no second case.
    platform_ref: Mapped[str | None] = mapped_column(String(64))
