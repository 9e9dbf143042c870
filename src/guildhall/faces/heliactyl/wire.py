"""Heliactyl's request fields and response bodies.

Checks run in the order Heliactyl runs them and stop at the first failure
with its documented ``status`` string. Where the document is silent:

- An empty body, malformed JSON and a JSON value that is not an object all
  answer the one body status each endpoint documents: ``body must be an
  object`` (setcoins, addcoins, ban, unban) or ``missing body`` (setplan,
  setresources, the renewal-bypass routes).
- Coins must be whole numbers: a fraction or a numeric string is ``coins must
  be number`` (Heliactyl would have stored 1.5 coins).
- addcoins takes a negative amount as a debit, as Heliactyl does (it adds and
  then checks the range): the result must stay within 0-999999999999999.
- An empty or unknown ``id`` string is ``invalid id``; only a non-string is
  ``id must be a string`` (or ``missing id``), as in Heliactyl.
- setplan: a missing or null ``package`` removes the package; any other
  value that is not a configured package name is ``invalid package``.
- setresources: a resource that is absent or null is left alone (Heliactyl
  only looks at numbers); one given as anything but a whole number in range
  answers its status (``ram size``...) instead of being silently ignored.
- A ban ``expiration`` that is not an ISO 8601 date answers ``invalid
  expiration``; one in the past answers ``expiration must be in the future``.
- ``userinfo.userinfo`` is the Pterodactyl panel's own user object (with its
  servers) when a panel is configured and the account has a panel user
  (``core/hosting/games.py`` keeps it cached); otherwise it is built here, in
  the panel's shape, from the account (``pterodactyl_user``).

The unversioned API (``/api/userinfo``, ``/api/setcoins``, ``/api/addcoins``,
``/api/setplan``, ``/api/setresources``) is the one every public Heliactyl
client calls: the route file (``routes/api.js``) of Heliactyl before v3,
itself Dashactyl's. Same bodies, same authentication as v3 (its 404 page for
a bad key is not repeated: a client cannot tell it from a wrong URL). Where it
differs from v3, the older answers are kept:

- ``userinfo`` has no ``id`` and no ``renewalBypass``: ``status``,
  ``package`` (its resources and ``name``), ``extra``, ``userinfo``,
  ``coins``. (The older API left ``package.name`` out when the default
  package applied; Guildhall always names it.)
- A JSON array as the body answers ``body cannot be an array`` on every route.
- ``addcoins`` takes 0 as a change that changes nothing (``success``); v3
  answers ``cant do that mate``.
- ``setplan``: a ``package`` that is not a string removes the package, as a
  missing one does (v3 answers ``invalid package``).
- ``setresources``: only numbers are looked at; a resource sent as anything
  else is ignored, and a body with no number at all is ``missing variables``.
  A number is still checked (a whole number in range, or its ``ram size``...).
- Its other admin routes are answered by the face's 404, never a fake
  success: ``removeaccount`` (core keeps every account's ledger and audit) and
  the coupons (``createcoupon``, ``revokecoupon``; core has no coupons yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from guildhall.core.accounts.service import AccountView
from guildhall.core.hosting.service import ServerView
from guildhall.core.plans import service as plans
from guildhall.core.plans.service import RESOURCES, PlanView
from guildhall.events.audit import AuditRecord
from guildhall.faces.common.body import ABSENT, MALFORMED
from guildhall.faces.heliactyl.errors import RESOURCE_STATUS, StatusError

API_STATUS = {"status": True, "version": "3.2.1-beta.1", "platform_codename": "Avalanche 2"}
DEFAULT_INTERACTIONS = 15
MAX_INTERACTIONS = 100


def require_object(body: Any, status: str) -> dict[str, Any]:
    if body is ABSENT or body is MALFORMED or not isinstance(body, dict):
        raise StatusError(status)
    return body


def require_legacy_object(body: Any, status: str) -> dict[str, Any]:
    """The older API told an array apart from other non-objects."""
    if isinstance(body, list):
        raise StatusError("body cannot be an array")
    return require_object(body, status)


def require_id(body: Mapping[str, Any], *, status: str = "id must be a string") -> str:
    """The id if it is a string; an empty or unknown one fails later as ``invalid id``."""
    user_id = body.get("id")
    if not isinstance(user_id, str):
        raise StatusError(status)
    return user_id


def whole_number(value: Any) -> int | None:
    """``value`` as an int if it is a JSON number without a fraction, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def require_coins(body: Mapping[str, Any]) -> int:
    coins = whole_number(body.get("coins"))
    if coins is None:
        raise StatusError("coins must be number")
    return coins


def resource_changes(body: Mapping[str, Any]) -> dict[str, int]:
    """The resources the body names, checked one by one in Heliactyl's order.

    A field that is absent or null is not a change; anything but a whole
    number in range answers that field's status (the range is the core's rule).
    """
    changes: dict[str, int] = {}
    for name in RESOURCES:
        if body.get(name) is None:
            continue
        value = whole_number(body[name])
        if value is None:
            raise StatusError(RESOURCE_STATUS[name])
        plans.check_resource(name, value)
        changes[name] = value
    return changes


def legacy_resource_changes(body: Mapping[str, Any]) -> dict[str, int]:
    """The older API's reading: numbers only, anything else ignored."""
    numbers = {
        name: body[name]
        for name in RESOURCES
        if isinstance(body.get(name), int | float) and not isinstance(body[name], bool)
    }
    if not numbers:
        raise StatusError("missing variables")
    return resource_changes(numbers)


def legacy_package(body: Mapping[str, Any]) -> str | None:
    """The older API removed the package whenever ``package`` was not a string."""
    package = body.get("package")
    return package if isinstance(package, str) else None


def optional_package(body: Mapping[str, Any]) -> str | None:
    package = body.get("package")
    if package is not None and not isinstance(package, str):
        raise StatusError("invalid package")
    return package


def optional_reason(body: Mapping[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise StatusError("reason must be a string")
    return reason


def parse_expiration(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StatusError("invalid expiration")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise StatusError("invalid expiration") from None


def parse_limit(values: list[str]) -> int:
    if not values:
        return DEFAULT_INTERACTIONS
    text = values[-1].strip()
    plain_number = text.isascii() and text.isdecimal() and len(text) <= 3
    if len(values) > 1 or not plain_number or not 1 <= int(text) <= MAX_INTERACTIONS:
        raise StatusError("limit must be between 1 and 100")
    return int(text)


def query_id(values: list[str]) -> str:
    if not values or not values[0]:
        raise StatusError("missing id")
    if len(values) > 1:
        raise StatusError("id must be a string")
    return values[0]


def _pterodactyl_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def pterodactyl_server(server: ServerView) -> dict[str, Any]:
    return {
        "object": "server",
        "attributes": {
            "id": server.public_id,
            "identifier": server.public_id,
            "name": server.name,
            "status": server.status.value,
            "plan": server.plan,
            "created_at": _pterodactyl_time(server.created_at),
        },
    }


def pterodactyl_user(account: AccountView, servers: list[ServerView]) -> dict[str, Any]:
    """The account as Pterodactyl's application API shows a user, with its servers."""
    return {
        "object": "user",
        "attributes": {
            "id": account.id,
            "external_id": None,
            "uuid": account.uuid,
            "username": account.username,
            "email": account.email or "",
            "first_name": account.first_name,
            "last_name": account.last_name,
            "language": "en",
            "root_admin": account.role == "admin",
            "2fa": False,
            "created_at": _pterodactyl_time(account.created_at),
            "updated_at": _pterodactyl_time(account.updated_at),
            "relationships": {
                "servers": {"object": "list", "data": [pterodactyl_server(s) for s in servers]}
            },
        },
    }


@dataclass(frozen=True, slots=True)
class Summary:
    """What userinfo shows of one account; ``panel_user`` is a Pterodactyl user object."""

    plan: PlanView
    coins: int
    panel_user: dict[str, Any]


def userinfo(user_id: str, summary: Summary) -> dict[str, Any]:
    plan = summary.plan
    return {
        "status": "success",
        "id": user_id,
        "renewalBypass": plan.renewal_bypass,
        "package": {"name": plan.package_name, **plan.package.as_dict()},
        "extra": plan.extra.as_dict(),
        "userinfo": summary.panel_user,
        "coins": summary.coins,
    }


def legacy_userinfo(summary: Summary) -> dict[str, Any]:
    plan = summary.plan
    return {
        "status": "success",
        "package": {**plan.package.as_dict(), "name": plan.package_name},
        "extra": plan.extra.as_dict(),
        "userinfo": summary.panel_user,
        "coins": summary.coins,
    }


def interactions(user_id: str, limit: int, records: list[AuditRecord]) -> dict[str, Any]:
    return {
        "status": "success",
        "userId": user_id,
        "limit": limit,
        "count": len(records),
        "interactions": [
            {
                "timestamp": record.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "action": record.message,
            }
            for record in records
        ],
    }
