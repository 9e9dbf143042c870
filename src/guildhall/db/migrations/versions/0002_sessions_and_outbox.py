"""bot sessions, session backups, event outbox

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bot_sessions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column("phone_number", sa.String(length=15), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("login_state", sa.LargeBinary(), nullable=True),
        sa.Column("pairing_code", sa.LargeBinary(), nullable=True),
        sa.Column("pairing_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('created', 'pairing', 'online', 'offline', 'failed', 'logged_out')",
            name=op.f("ck_bot_sessions_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_sessions")),
        sa.UniqueConstraint("handle", name=op.f("uq_bot_sessions_handle")),
    )
    op.create_table(
        "session_backups",
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column("phone_number", sa.String(length=15), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("login_state", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("handle", name=op.f("pk_session_backups")),
    )
    op.create_table(
        "event_outbox",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
    )


def downgrade() -> None:
    op.drop_table("event_outbox")
    op.drop_table("session_backups")
    op.drop_table("bot_sessions")
