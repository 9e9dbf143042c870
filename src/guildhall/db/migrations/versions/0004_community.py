"""community profiles, classes, quests, settings, directory, items, inventory, cases

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bot_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_settings")),
    )
    op.create_table(
        "guild_classes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("role_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_guild_classes_balance_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guild_classes")),
        sa.UniqueConstraint("name", name=op.f("uq_guild_classes_name")),
    )
    op.create_table(
        "guild_directory",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('role', 'channel', 'command')", name=op.f("ck_guild_directory_kind")
        ),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_guild_directory")),
    )
    op.create_table(
        "items",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("rarity", sa.String(length=3), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("icon_url", sa.String(length=300), nullable=True),
        sa.Column("image_url", sa.String(length=300), nullable=True),
        sa.Column("usage_data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rarity IN ('C', 'R', 'SR', 'SSR')", name=op.f("ck_items_rarity")),
        sa.CheckConstraint("price >= 0", name=op.f("ck_items_price_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("name", name=op.f("uq_items_name")),
    )
    op.create_table(
        "quests",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("trigger_event", sa.String(length=64), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("xp_reward", sa.BigInteger(), nullable=False),
        sa.Column("balance_reward", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("target >= 1", name=op.f("ck_quests_target_positive")),
        sa.CheckConstraint(
            "xp_reward >= 0 AND balance_reward >= 0", name=op.f("ck_quests_rewards_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quests")),
    )
    op.create_table(
        "community_profiles",
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("xp", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("daily_streak", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("class_id", sa.String(length=32), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "daily_streak >= 0", name=op.f("ck_community_profiles_streak_not_negative")
        ),
        sa.CheckConstraint("level >= 0", name=op.f("ck_community_profiles_level_not_negative")),
        sa.CheckConstraint("xp >= 0", name=op.f("ck_community_profiles_xp_not_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_community_profiles_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["guild_classes.id"],
            name=op.f("fk_community_profiles_class_id_guild_classes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_community_profiles")),
    )
    op.create_index(
        op.f("ix_community_profiles_class_id"), "community_profiles", ["class_id"], unique=False
    )
    op.create_table(
        "inventory",
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_inventory_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_inventory_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_inventory_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", "item_id", name=op.f("pk_inventory")),
    )
    op.create_table(
        "item_images",
        sa.Column("filename", sa.String(length=64), nullable=False),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_images_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("filename", name=op.f("pk_item_images")),
        sa.UniqueConstraint("item_id", name=op.f("uq_item_images_item_id")),
    )
    op.create_table(
        "moderation_cases",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("account_id", BIG_ID, nullable=True),
        sa.Column("moderator_id", sa.String(length=32), nullable=False),
        sa.Column("moderator_name", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=32), nullable=True),
        sa.Column("resolved_by_name", sa.String(length=100), nullable=True),
        sa.Column("resolved_reason", sa.String(length=1000), nullable=True),
        sa.CheckConstraint(
            "type IN ('warn', 'timeout', 'kick', 'ban', 'note', 'prune')",
            name=op.f("ck_moderation_cases_type"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_moderation_cases_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_cases")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_moderation_cases_moderator_id"), "moderation_cases", ["moderator_id"], unique=False
    )
    op.create_index("ix_moderation_cases_user", "moderation_cases", ["user_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("moderation_cases")
    op.drop_table("item_images")
    op.drop_table("inventory")
    op.drop_table("community_profiles")
    op.drop_table("quests")
    op.drop_table("items")
    op.drop_table("guild_directory")
    op.drop_table("guild_classes")
    op.drop_table("bot_settings")
