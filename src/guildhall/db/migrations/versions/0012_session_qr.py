"""Bot sessions: the platform's current pairing QR code (sealed like the pairing code),
and whether a dropped session is being reconnected

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bot_sessions", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("pairing_qr", sa.LargeBinary(), nullable=True))
        batch.add_column(
            sa.Column("reconnecting", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("bot_sessions", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("reconnecting")
        batch.drop_column("pairing_qr")
