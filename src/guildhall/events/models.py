from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.db.base import NEVER_REUSED, Base, BigIntId, UTCDateTime, utcnow


class AuditEntry(Base):
    """Who did what to whom, when, with a sentence a person can read."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target_account_id", "id"),
        Index("ix_audit_log_actor", "actor_account_id", "id"),
        # The console's filters (``events.audit.search``): exact or prefix, newest first.
        # On PostgreSQL the pattern-ops class lets a prefix LIKE use them too.
        Index(
            "ix_audit_log_actor_name",
            "actor",
            "created_at",
            "id",
            postgresql_ops={"actor": "varchar_pattern_ops"},
        ),
        Index(
            "ix_audit_log_action",
            "action",
            "created_at",
            "id",
            postgresql_ops={"action": "varchar_pattern_ops"},
        ),
        Index(
            "ix_audit_log_target_name",
            "target",
            "created_at",
            "id",
            postgresql_ops={"target": "varchar_pattern_ops"},
        ),
        Index("ix_audit_log_created_at", "created_at", "id"),
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


class OutboxEvent(Base):
    """A committed event, waiting to reach webhooks and live clients.

    Written in the transaction of the change it announces, so a rolled-back
    change announces nothing and a crash after commit loses nothing.
    """

    __tablename__ = "event_outbox"
    # Never reused: an endpoint skips ids up to its since_event_id.
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Set once the event has been fanned out to webhook deliveries.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class WebhookEndpoint(Base):
    """Where events are POSTed; its signing secret is sealed with the installation secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Events up to this outbox id were committed before the endpoint existed.
    since_event_id: Mapped[int] = mapped_column(BigIntId, default=0)


class WebhookDelivery(Base):
    """One event for one endpoint, attempted until delivered or given up.

    ``leased_until`` lets one worker (of any process) own an attempt without
    holding a transaction open during the HTTP call.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_queue", "endpoint_id", "status", "id"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    """What happened on one try: the receiver's status code, or the error, and when."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class Lease(Base):
    """Who holds a once-per-installation job (the Discord gateway, a refresh), until when.

    Taken with one atomic upsert (``events/leases.py``) when free or expired, renewed
    by its holder; a holder that dies stops renewing and another takes over.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PlatformJob(Base):
    """A change that must happen on an outside platform, recorded with the core change.

    A connector's worker carries it out after commit (``events/jobs.py``), under a
    lease, with retries and backoff, and records the outcome: no unit of work is
    open during the platform call, and a crash between the two loses nothing.
    """

    __tablename__ = "platform_jobs"
    __table_args__ = (
        Index("ix_platform_jobs_queue", "status", "next_attempt_at"),
        CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
