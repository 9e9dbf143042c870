from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String
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
    # A game server on a panel (driver "pterodactyl"): its id there (None while it is
    # being made), the egg and the resources counted against the owner's package.
    panel_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    egg: Mapped[str | None] = mapped_column(String(64))
    ram: Mapped[int] = mapped_column(Integer, default=0)
    disk: Mapped[int] = mapped_column(Integer, default=0)
    cpu: Mapped[int] = mapped_column(Integer, default=0)
    # Renewal: the next date it costs coins; since when it is unpaid; whether the
    # panel has it suspended (for a ban or for an unpaid renewal).
    renews_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unpaid_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)


class PanelUser(Base):
    """An account's user on the game-server panel, and the panel's own view of it.

    ``document`` is the panel's user object with its servers, as last fetched
    (Heliactyl's userinfo serves it); ``refreshed_at`` says when.
    """

    __tablename__ = "panel_users"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    panel_user_id: Mapped[int] = mapped_column(Integer, unique=True)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
