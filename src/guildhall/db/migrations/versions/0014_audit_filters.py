"""The audit trail's filters in the console: indexes on actor, action, target and time

The trail is read newest first (``created_at``, then ``id``). Each text index is
``(column, created_at, id)``, so the rows of one actor, action or target, in a time
range or not, come in that order straight from the index; on PostgreSQL they use the
pattern-ops class, so a prefix (``coins.``) is an index range too. ``(created_at, id)``
serves a time range alone (PostgreSQL cannot know that ids grow with time, and would
otherwise read the table backwards from the newest row).

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT_INDEXES = (
    ("ix_audit_log_actor_name", "actor"),
    ("ix_audit_log_action", "action"),
    ("ix_audit_log_target_name", "target"),
)


def upgrade() -> None:
    for name, column in TEXT_INDEXES:
        op.create_index(
            name,
            "audit_log",
            [column, "created_at", "id"],
            unique=False,
            postgresql_ops={column: "varchar_pattern_ops"},
        )
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    for name, _column in reversed(TEXT_INDEXES):
        op.drop_index(name, table_name="audit_log")
