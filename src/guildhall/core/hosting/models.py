from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import NEVER_REUSED, Base, BigIntId, UTCDateTime, utcnow


class PowerState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class Server(Base):
    """A hosted server owned by one account.

    ``public_id`` is what clients see (``server-…``); ``runtime_ref`` is the
    driver's handle on the running thing (for the process driver, the pid and
    its start time, so a reused pid is never mistaken for the server).
    """

    __tablename__ = "servers"
    __table_args__ = (
        CheckConstraint("status IN ('stopped', 'starting', 'running', 'stopping')", name="status"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    plan: Mapped[str] = mapped_column(String(64))
    driver: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=PowerState.STOPPED.value)
    ip_address: Mapped[str] = mapped_column(String(45))
    runtime_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
