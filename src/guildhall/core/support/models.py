from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
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
    close_reason: Mapped[str | None] = mapped_column(String(500))


INBOUND, OUTBOUND, NOTE = "in", "out", "note"
"""A ticket message's direction: from the member, from staff to the member, or a
staff note kept in the ticket channel (never sent)."""


class TicketMessage(Base):
    """One message of a ticket's transcript.

    ``platform_id`` is the Discord message it came from: unique, so an event the
    gateway replays after a resume is stored once.
    """

    __tablename__ = "ticket_messages"
    __table_args__ = (
        Index("ix_ticket_messages_ticket", "ticket_id", "id"),
        CheckConstraint("direction IN ('in', 'out', 'note')", name="direction"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))
    author_id: Mapped[str] = mapped_column(String(32))
    author_name: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    platform_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    # What the process holding the Discord gateway last saw (connectors/discord):
    # since when its session is READY (None while it is not connected), and why
    # it is offline when it is not for lack of being started.
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    offline_reason: Mapped[str | None] = mapped_column(String(500))
