"""ids never reused: AUTOINCREMENT on SQLite for the tables whose ids leave the database

Without AUTOINCREMENT SQLite gives a new row the highest id deleted before it,
so a SkyPANEL token, an API key id or a webhook endpoint's last seen event
could name a row it never meant. The tables marked ``NEVER_REUSED`` in the
models are rebuilt on SQLite (batch mode copies every row with its id; the
next id continues after the highest one present). SQLite cannot read back the
expression index on items, so it is dropped before the rebuild and made again
after. Foreign keys are off during the rebuild (``guildhall.db.migrate``), or
dropping the old accounts table would cascade to every row that refers to it.

PostgreSQL's sequences never go back: nothing to do there.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "accounts",
    "api_keys",
    "servers",
    "invoices",
    "items",
    "quests",
    "panel_permissions",
    "webhook_endpoints",
    "event_outbox",
    "bot_sessions",
)
EXPRESSION_INDEXES = {"items": ("uq_items_name_lower", "lower(name)")}


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        expression = EXPRESSION_INDEXES.get(table)
        if expression is not None:
            op.drop_index(expression[0], table_name=table)
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
        if expression is not None:
            op.create_index(expression[0], table, [sa.text(expression[1])], unique=True)


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
