"""items and guild classes: names unique whatever their case

The services refuse a name that differs from another only in case, but the
unique constraints compared case, so two requests racing past the check could
both create one. Existing rows that clash are renamed first, the later of each
pair to ``<name> (<id>)``, so the index can be built on any database.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("items", "guild_classes")


def upgrade() -> None:
    for name in TABLES:
        table = sa.table(name, sa.column("id"), sa.column("name", sa.String))
        earlier = table.alias("earlier")
        clashes_with_earlier = sa.exists().where(
            sa.func.lower(earlier.c.name) == sa.func.lower(table.c.name),
            earlier.c.id < table.c.id,
        )
        renamed = sa.func.substr(table.c.name, 1, 64) + " (" + sa.cast(table.c.id, sa.String) + ")"
        op.execute(table.update().where(clashes_with_earlier).values(name=renamed))
        op.create_index(f"uq_{name}_name_lower", name, [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"uq_{table}_name_lower", table_name=table)
