"""Pterodactyl: panel users with their cached panel view, game servers' panel ids,
resources and renewal

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("servers", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("panel_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("egg", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("ram", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("disk", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cpu", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("renews_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("unpaid_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_unique_constraint(op.f("uq_servers_panel_id"), ["panel_id"])
    op.create_table(
        "panel_users",
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("panel_user_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_panel_users_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_panel_users")),
        sa.UniqueConstraint("panel_user_id", name=op.f("uq_panel_users_panel_user_id")),
    )


def downgrade() -> None:
    op.drop_table("panel_users")
    with op.batch_alter_table("servers", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(op.f("uq_servers_panel_id"), type_="unique")
        for column in ("suspended", "unpaid_since", "renews_at", "cpu", "disk", "ram", "egg"):
            batch.drop_column(column)
        batch.drop_column("panel_id")
