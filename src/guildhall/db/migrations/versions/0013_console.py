"""The web console: a moderator role beside user and admin, and the console's sign-ins

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _roles(allowed: str) -> None:
    # SQLite changes a constraint by rebuilding the table (batch mode keeps every row and id).
    with op.batch_alter_table("accounts", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(op.f("ck_accounts_role"), type_="check")
        batch.create_check_constraint("role", f"role IN ({allowed})")


def upgrade() -> None:
    _roles("'user', 'admin', 'moderator'")
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_console_sessions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index(
        op.f("ix_console_sessions_account_id"), "console_sessions", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_account_id"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.execute("UPDATE accounts SET role = 'user' WHERE role = 'moderator'")
    _roles("'user', 'admin'")
