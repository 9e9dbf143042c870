from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import NEVER_REUSED, Base, BigIntId, UTCDateTime, utcnow


class GuildClass(Base):
    """A class members join (Warrior, Mage), with its own treasury and Discord role."""

    __tablename__ = "guild_classes"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        # Unique whatever the case, as the service checks names (see Item).
        Index("uq_guild_classes_name_lower", func.lower("name"), unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    role_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Profile(Base):
    """What the community bot knows of an account beyond its coins."""

    __tablename__ = "community_profiles"
    __table_args__ = (
        CheckConstraint("xp >= 0", name="xp_not_negative"),
        CheckConstraint("level >= 0", name="level_not_negative"),
        CheckConstraint("daily_streak >= 0", name="streak_not_negative"),
    )

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    xp: Mapped[int] = mapped_column(BigInteger, default=0)
    level: Mapped[int] = mapped_column(Integer, default=0)
    daily_streak: Mapped[int] = mapped_column(Integer, default=0)
    last_daily_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    class_id: Mapped[str | None] = mapped_column(
        ForeignKey("guild_classes.id", ondelete="SET NULL"), index=True
    )
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Quest(Base):
    __tablename__ = "quests"
    __table_args__ = (
        CheckConstraint("target >= 1", name="target_positive"),
        CheckConstraint("xp_reward >= 0 AND balance_reward >= 0", name="rewards_not_negative"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    trigger_event: Mapped[str] = mapped_column(String(64))
    target: Mapped[int] = mapped_column(BigInteger, default=1)
    xp_reward: Mapped[int] = mapped_column(BigInteger, default=0)
    balance_reward: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BotSettings(Base):
    """The bot's configuration document: one row, merged into by partial updates."""

    __tablename__ = "bot_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryEntry(Base):
    """A guild role, channel or bot command, as a connector (or the operator) reports it."""

    __tablename__ = "guild_directory"
    __table_args__ = (CheckConstraint("kind IN ('role', 'channel', 'command')", name="kind"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(String(100), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)


class GuildMember(Base):
    """A member of the guild, as a connector (or the operator) reports them."""

    __tablename__ = "guild_members"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    avatar: Mapped[str | None] = mapped_column(String(64))


class MemberRole(Base):
    __tablename__ = "guild_member_roles"

    member_id: Mapped[str] = mapped_column(
        ForeignKey("guild_members.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[str] = mapped_column(String(32), primary_key=True)


class QuestProgress(Base):
    """How far one member is with one quest; ``completed_at`` once it has paid."""

    __tablename__ = "quest_progress"
    __table_args__ = (CheckConstraint("progress >= 0", name="progress_not_negative"),)

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    quest_id: Mapped[int] = mapped_column(
        ForeignKey("quests.id", ondelete="CASCADE"), primary_key=True
    )
    progress: Mapped[int] = mapped_column(BigInteger, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Lootdrop(Base):
    """Coins dropped in a channel: the first claim wins (a conditional UPDATE on
    ``claimed_by``), an unclaimed one expires."""

    __tablename__ = "lootdrops"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_lootdrops_open", "claimed_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
