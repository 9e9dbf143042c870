from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import NEVER_REUSED, Base, BigIntId, UTCDateTime, utcnow


class State(StrEnum):
    """Where a session is in its life; see ``service.TRANSITIONS`` for the moves allowed."""

    CREATED = "created"
    PAIRING = "pairing"
    ONLINE = "online"
    OFFLINE = "offline"
    FAILED = "failed"
    LOGGED_OUT = "logged_out"


class BotSession(Base):
    """One messaging-bot login, named by its ``handle`` (LD7's ``userId``).

    ``login_state``, ``pairing_code`` and ``pairing_qr`` are sealed with the installation's
    secret (``guildhall.secrets``): the database alone reveals neither.
    """

    __tablename__ = "bot_sessions"
    __table_args__ = (
        CheckConstraint(
            "state IN ('created', 'pairing', 'online', 'offline', 'failed', 'logged_out')",
            name="state",
        ),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    phone_number: Mapped[str] = mapped_column(String(15))
    name: Mapped[str | None] = mapped_column(String(100))
    connector: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    login_state: Mapped[bytes | None] = mapped_column(LargeBinary)
    pairing_code: Mapped[bytes | None] = mapped_column(LargeBinary)
    pairing_qr: Mapped[bytes | None] = mapped_column(LargeBinary)
    reconnecting: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Offline because the link dropped, not because anyone stopped it: a restart or a
    takeover reconnects it like an online session."""
    pairing_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionBackup(Base):
    """The latest backup of a session's login state, kept apart from the session.

    A backup outlives ``delete`` (that is what it is for: delete, redeploy,
    restore); ``logout`` ends the login at the platform, so it removes the
    backup too.
    """

    __tablename__ = "session_backups"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(15))
    name: Mapped[str | None] = mapped_column(String(100))
    connector: Mapped[str] = mapped_column(String(32))
    login_state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
