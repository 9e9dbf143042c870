"""Accounts found by what people type: an email whatever its case, a username's start

Logins (SkyPANEL's, the console's) compare ``lower(email)``, and the console's search
a username's start whatever its case (``lower(username) LIKE 'ali%'``); without an
index on those expressions each read the whole table. On PostgreSQL the username
index uses the pattern-ops class, so a prefix is an index range.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_accounts_email_lower", "accounts", [sa.text("lower(email)")])
    pattern = " text_pattern_ops" if op.get_bind().dialect.name == "postgresql" else ""
    op.create_index(
        "ix_accounts_username_lower", "accounts", [sa.text(f"lower(username){pattern}")]
    )


def downgrade() -> None:
    op.drop_index("ix_accounts_username_lower", table_name="accounts")
    op.drop_index("ix_accounts_email_lower", table_name="accounts")
