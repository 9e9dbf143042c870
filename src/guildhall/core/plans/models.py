from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import Base, UTCDateTime, utcnow


class Plan(Base):
    """An account's hosting plan; no row means the default package and no extras."""

    __tablename__ = "plans"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    package: Mapped[str | None] = mapped_column(String(64))
    extra_ram: Mapped[int] = mapped_column(BigInteger, default=0)
    extra_disk: Mapped[int] = mapped_column(BigInteger, default=0)
    extra_cpu: Mapped[int] = mapped_column(BigInteger, default=0)
    extra_servers: Mapped[int] = mapped_column(BigInteger, default=0)
    renewal_bypass: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
