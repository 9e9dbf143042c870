from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import uuid4

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from guildhall.db.base import NEVER_REUSED, Base, BigIntId, TimestampMixin, UTCDateTime, utcnow


class Provider(StrEnum):
    """Where an identity comes from; ``local`` holds the account's own uuid."""

    DISCORD = "discord"
    GOOGLE = "google"
    GITHUB = "github"
    LOCAL = "local"


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"
    MODERATOR = "moderator"
    """Signs in to the console for moderation, tickets and bot sessions only."""


class Account(TimestampMixin, Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'admin', 'moderator')", name="role"),
        # Logins find an email whatever its case; the console finds a username's start
        # (on PostgreSQL in the "C" collation, for prefix ranges: migration 0015).
        Index("ix_accounts_email_lower", func.lower("email")),
        Index("ix_accounts_username_lower", func.lower("username")),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid4()))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER.value)
    # Raised on every password change: tokens issued before it stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    identities: Mapped[list[Identity]] = relationship(
        back_populates="account", lazy="raise", cascade="all, delete-orphan"
    )


class Identity(Base):
    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
        CheckConstraint("provider IN ('discord', 'google', 'github', 'local')", name="provider"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(191), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account: Mapped[Account] = relationship(back_populates="identities", lazy="raise")
