from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import Base, BigIntId, UTCDateTime, utcnow

OPEN, CLOSED = 1, 0


class Ticket(Base):
    """A modmail conversation with one member; at most one open per account (a partial
    unique index, so the database itself refuses a second)."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index(
            "uq_tickets_one_open_per_account",
            "account_id",
            unique=True,
            sqlite_where=text("status = 1"),
            postgresql_where=text("status = 1"),
        ),
        Index("ix_tickets_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    user_name: Mapped[str] = mapped_column(String(100))
    channel_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer, default=OPEN)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BotState(Base):
    """The bot runtime's one row: whether it runs, since when, and the counter channels
    are numbered from (the local runtime allocates them). Its presence is the
    configuration's ``bot.status``: one value, whichever route sets it."""

    __tablename__ = "bot_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    channel_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    guild_count: Mapped[int] = mapped_column(Integer, default=1)
