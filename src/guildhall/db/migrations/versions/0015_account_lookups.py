"""Accounts found by what people type: an email whatever its case, a username's start

Logins (SkyPANEL's, the console's) compare ``lower(email)``, and the console's search
lists the usernames that start with what was typed, whatever its case, in their
order; without an index on those expressions each read the whole table. The search
asks for a range (``'ali' <= lower(username) < 'alj'``) of the index, in its order: on
PostgreSQL in the "C" collation (byte order, as on SQLite), whatever the database's.

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
    collation = ' COLLATE "C"' if op.get_bind().dialect.name == "postgresql" else ""
    op.create_index(
        "ix_accounts_username_lower", "accounts", [sa.text(f"(lower(username){collation})")]
    )


def downgrade() -> None:
    op.drop_index("ix_accounts_username_lower", table_name="accounts")
    op.drop_index("ix_accounts_email_lower", table_name="accounts")
