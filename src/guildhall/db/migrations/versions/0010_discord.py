"""Discord: ticket transcripts, the gateway's state, leases, platform jobs, cases from
Discord, daily claims, quest progress and lootdrops

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("close_reason", sa.String(length=500), nullable=True))
    with op.batch_alter_table("bot_state") as batch:
        batch.add_column(sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("offline_reason", sa.String(length=500), nullable=True))
    op.create_table(
        "ticket_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("ticket_id", BIG_ID, nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=False),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("platform_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "direction IN ('in', 'out', 'note')", name=op.f("ck_ticket_messages_direction")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_messages_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_messages")),
        sa.UniqueConstraint("platform_id", name=op.f("uq_ticket_messages_platform_id")),
    )
    op.create_index("ix_ticket_messages_ticket", "ticket_messages", ["ticket_id", "id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "platform_jobs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')", name=op.f("ck_platform_jobs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_jobs")),
    )
    op.create_index("ix_platform_jobs_queue", "platform_jobs", ["status", "next_attempt_at"])
    with op.batch_alter_table("community_profiles") as batch:
        batch.add_column(sa.Column("last_daily_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "quest_progress",
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("quest_id", BIG_ID, nullable=False),
        sa.Column("progress", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("progress >= 0", name=op.f("ck_quest_progress_progress_not_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_quest_progress_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["quest_id"],
            ["quests.id"],
            name=op.f("fk_quest_progress_quest_id_quests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "quest_id", name=op.f("pk_quest_progress")),
    )
    op.create_table(
        "lootdrops",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", BIG_ID, nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_lootdrops_amount_positive")),
        sa.ForeignKeyConstraint(
            ["claimed_by"],
            ["accounts.id"],
            name=op.f("fk_lootdrops_claimed_by_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lootdrops")),
    )
    op.create_index("ix_lootdrops_open", "lootdrops", ["claimed_at", "expires_at"])
    op.add_column("moderation_cases", sa.Column("platform_ref", sa.String(length=64)))
    op.create_index(
        "uq_moderation_cases_platform_ref", "moderation_cases", ["platform_ref"], unique=True
    )


def downgrade() -> None:
    op.drop_table("lootdrops")
    op.drop_table("quest_progress")
    with op.batch_alter_table("community_profiles") as batch:
        batch.drop_column("last_active_at")
        batch.drop_column("last_daily_at")
    op.drop_index("uq_moderation_cases_platform_ref", table_name="moderation_cases")
    with op.batch_alter_table(
        "moderation_cases", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.drop_column("platform_ref")
    op.drop_table("platform_jobs")
    op.drop_table("leases")
    op.drop_table("ticket_messages")
    with op.batch_alter_table("bot_state") as batch:
        batch.drop_column("offline_reason")
        batch.drop_column("ready_at")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("close_reason")
