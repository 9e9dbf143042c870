"""Every model, imported once so the metadata is complete (for Alembic and tests)."""

from guildhall.core.access.models import ApiKey, ConsoleSession
from guildhall.core.access.panel import LoginState, PanelPermission, PanelSession
from guildhall.core.accounts.models import Account, Identity
from guildhall.core.billing.models import Invoice
from guildhall.core.community.models import (
    BotSettings,
    DirectoryEntry,
    GuildClass,
    GuildMember,
    Lootdrop,
    MemberRole,
    Profile,
    Quest,
    QuestProgress,
)
from guildhall.core.economy.models import Balance, LedgerEntry
from guildhall.core.hosting.models import PanelUser, Server
from guildhall.core.items.models import InventoryEntry, Item, ItemImage
from guildhall.core.moderation.models import Ban, ModerationCase
from guildhall.core.plans.models import Plan
from guildhall.core.sessions.models import BotSession, SessionBackup
from guildhall.core.support.models import BotState, Ticket, TicketMessage
from guildhall.db.base import Base
from guildhall.events.models import (
    AuditEntry,
    Lease,
    OutboxEvent,
    PlatformJob,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

metadata = Base.metadata

__all__ = [
    "Account",
    "ApiKey",
    "AuditEntry",
    "Balance",
    "Ban",
    "BotSession",
    "BotSettings",
    "BotState",
    "ConsoleSession",
    "DirectoryEntry",
    "GuildClass",
    "GuildMember",
    "Identity",
    "InventoryEntry",
    "Invoice",
    "Item",
    "ItemImage",
    "Lease",
    "LedgerEntry",
    "LoginState",
    "Lootdrop",
    "MemberRole",
    "ModerationCase",
    "OutboxEvent",
    "PanelPermission",
    "PanelSession",
    "PanelUser",
    "Plan",
    "PlatformJob",
    "Profile",
    "Quest",
    "QuestProgress",
    "Server",
    "SessionBackup",
    "Ticket",
    "TicketMessage",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
