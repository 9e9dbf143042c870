"""Aurora's request fields and response bodies.

Decisions where the document is silent:
- Big numbers (balance, xp, quantity, price, class balance, rewards) are
  written as strings of digits; requests may send them as such strings or
  as non-negative JSON integers, anything else is a 400.
- Lists the document shows with ``total`` (users, items) carry it; the
  others (classes, cases, transactions) carry it too, as an extra field.
- Mutations answer ``{success: true, <resource>: {...}}``: ``user``,
  ``item``, ``class``, ``case``, ``inventory`` (the changed row, whose
  ``quantity`` is what is left, "0" once it is gone); quests keep their
  ``{success, data}``. Creates are 201, deletes 204.
- ``limit`` is capped at 100 (items 200); a bad ``limit``/``offset``,
  ``sortBy`` or ``sortOrder`` is a 400.
- A transaction's ``relatedUserId`` is null (the shared ledger records who
  acted, not a counterpart), its ``description`` the ledger row's reason.
- Times are ISO 8601 UTC with milliseconds.
- A class id a client chooses is 1 to 32 letters, digits, ``_`` or ``-``: it
  is a path segment, and a class its own path cannot name could never be
  changed or deleted (the core's rule, ``core/community``).
- A NUL in a text filter (``search``, ``type``...) is a 400, and in a user or
  class id in the path a 404: no stored text holds one (``core/text.py``).
"""

from __future__ import annotations

from typing import Any

from guildhall.core.community.service import ClassView, MemberView
from guildhall.core.errors import is_digits
from guildhall.core.items.models import InventoryEntry, Item
from guildhall.core.moderation.cases import case_label
from guildhall.core.moderation.models import ModerationCase
from guildhall.core.text import storable
from guildhall.faces.aurora.errors import bad_request
from guildhall.faces.common.body import json_object as body_json_object
from guildhall.times import iso_millis

MAX_BIG = 999_999_999_999_999


def json_object(body: Any) -> dict[str, Any]:
    return body_json_object(body, bad_request)


def big(value: Any, field: str) -> int:
    """A big number from a string of digits (or a non-negative integer)."""
    if isinstance(value, bool):
        raise bad_request(f"{field} must be a string of digits")
    if isinstance(value, int) and 0 <= value <= MAX_BIG:
        return value
    if is_digits(value, 15):
        return int(value)
    raise bad_request(f"{field} must be a string of digits from 0 to {MAX_BIG}")


def optional_big(body: dict[str, Any], field: str) -> int | None:
    return None if body.get(field) is None else big(body[field], field)


def small(value: Any, field: str, maximum: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        if is_digits(value) and int(value) <= maximum:
            return int(value)
        raise bad_request(f"{field} must be a whole number from 0 to {maximum}")
    return value


def text(body: dict[str, Any], field: str, maximum: int = 100) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > maximum or not storable(value):
        raise bad_request(f"{field} must be text of at most {maximum} characters")
    return value


def flag(body: dict[str, Any], field: str) -> bool | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_request(f"{field} must be true or false")
    return value


def obj(body: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{field} must be an object")
    return value


def page(params: Any, default_limit: int, cap: int = 100) -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        if not is_digits(raw, 9):
            raise bad_request(f"{name} must be a whole number")
        return int(raw)

    return min(number("limit", default_limit), cap), number("offset", 0)


def param(params: Any, name: str) -> str | None:
    """A text query parameter; absent or empty is None. A NUL is refused: no stored
    text holds one, and PostgreSQL takes none in a query."""
    raw: str | None = params.get(name)
    if not raw:
        return None
    if not storable(raw):
        raise bad_request(f"{name} must be text without NUL")
    return raw


def class_id(body: dict[str, Any]) -> str | None:
    """The id a client chose, as text; the core checks its form."""
    return text(body, "id", 32)


def boolean_param(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise bad_request(f"{name} must be true or false")


def guild_class(view: ClassView) -> dict[str, Any]:
    return {"id": view.id, "name": view.name, "balance": str(view.balance), "roleId": view.role_id}


def user(view: MemberView) -> dict[str, Any]:
    return {
        "id": view.discord_id,
        "username": view.username,
        "balance": str(view.balance),
        "xp": str(view.xp),
        "level": view.level,
        "dailyStreak": view.daily_streak,
        "isActive": view.is_active,
        "classId": view.guild_class.id if view.guild_class else None,
        "class": (
            {k: v for k, v in guild_class(view.guild_class).items() if k != "roleId"}
            if view.guild_class
            else None
        ),
        "settings": view.settings,
        "createdAt": iso_millis(view.created_at),
        "updatedAt": iso_millis(view.updated_at),
    }


def item(row: Item) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "type": row.type,
        "rarity": row.rarity,
        "price": str(row.price),
        "iconUrl": row.icon_url,
        "imageUrl": row.image_url,
        "usageData": row.usage_data,
    }


def inventory_entry(user_id: str, item_row: Item, quantity: int) -> dict[str, Any]:
    return {
        "userId": user_id,
        "itemId": item_row.id,
        "quantity": str(quantity),
        "item": item(item_row),
    }


def inventory(user_id: str, rows: list[tuple[InventoryEntry, Item]]) -> dict[str, Any]:
    return {"inventory": [inventory_entry(user_id, row, e.quantity) for e, row in rows]}


def case(row: ModerationCase) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "caseId": case_label(row.id),
        "type": row.type,
        "userId": row.user_id,
        "username": row.username,
        "moderatorId": row.moderator_id,
        "moderatorName": row.moderator_name,
        "reason": row.reason,
        "metadata": row.details,
        "active": row.active,
        "createdAt": iso_millis(row.created_at),
        "resolvedAt": iso_millis(row.resolved_at),
        "resolvedBy": row.resolved_by,
        "resolvedReason": row.resolved_reason,
    }


def quest(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "triggerEvent": row.trigger_event,
        "requirements": {"target": row.target},
        "rewards": {"xp": row.xp_reward, "balance": row.balance_reward},
    }


def transaction(entry: Any, subject: str | None) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "userId": subject,
        "relatedUserId": None,
        "amount": str(entry.amount),
        "type": entry.type,
        "description": entry.reason,
        "createdAt": iso_millis(entry.created_at),
    }
