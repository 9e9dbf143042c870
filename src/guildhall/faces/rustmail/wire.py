"""Rustmail's request fields and response bodies.

Decisions where the document is silent:
- Times in ``/api/apikeys`` and ``/api/admin/permissions`` are Unix seconds
  (as shown); ticket ``created_at`` is ISO 8601 UTC (as shown).
- ``POST /api/apikeys`` takes ``permissions`` from ``read:tickets`` and
  ``write:tickets`` and ``expires_at`` as Unix seconds or null.
- ``GET /api/panel/check`` without a session answers 401 (the original
  server's answer; its panel sends a visitor to login on anything but 200);
  a session without ``view_panel`` gets 403.
- A role's ``color`` is Discord's integer colour.
- ``/api/auth/login`` takes the page to come back to as ``redirect`` (what
  the panel sends: ``?redirect=/panel/tickets``) or ``next``. After login
  the browser goes there if it is a path on the panel itself (``/...``,
  never ``//host`` or a full URL), else to ``/``; logout goes to ``/``.
  Those paths are on ``[faces.rustmail] panel_url`` when it names where the
  panel lives; otherwise on the face itself, which serves a small panel home
  at ``/`` and ``/panel/...`` (who is logged in, a login or logout link), so
  login and logout always land on a page that exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from guildhall.core.access.models import ApiKey
from guildhall.core.access.panel import PanelPermission
from guildhall.core.support.models import OPEN, Ticket
from guildhall.db.base import utcnow
from guildhall.faces.common.body import json_object as body_json_object
from guildhall.faces.common.paths import local_path
from guildhall.faces.rustmail.errors import bad_request

KEY_PERMISSIONS = ("read:tickets", "write:tickets")
STATUSES = {"open": OPEN, "closed": 0, "all": None}


def json_object(body: Any) -> dict[str, Any]:
    return body_json_object(body, bad_request)


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def landing(panel_url: str, path: str) -> str:
    """Where the browser goes: ``path`` on the panel (``panel_url``), or on this face."""
    return panel_url.rstrip("/") + path if panel_url else path


HOME_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def panel_home(user: tuple[str, str] | None, path: str) -> str:
    """The face's own panel page: who is logged in, and a login or logout link."""
    if user is None:
        login = "/api/auth/login?redirect=" + quote(local_path(path), safe="/")
        body = f'<p>Not logged in.</p>\n<p><a href="{escape(login)}">Log in with Discord</a></p>'
    else:
        name, discord_id = user
        body = (
            f"<p>Logged in as <strong>{escape(name)}</strong> ({escape(discord_id)}).</p>\n"
            '<p><a href="/api/auth/logout">Log out</a></p>'
        )
    return (
        '<!doctype html>\n<html lang="en">\n<meta charset="utf-8">\n'
        "<title>Rustmail panel</title>\n<h1>Rustmail panel</h1>\n"
        f"{body}\n</html>\n"
    )


def ticket(row: Ticket) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "user_id": row.user_id,
        "user_name": row.user_name,
        "channel_id": row.channel_id,
        "created_at": row.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": row.status,
        "message_count": row.message_count,
    }


def api_key(row: ApiKey) -> dict[str, Any]:
    now = utcnow()
    active = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    return {
        "id": row.id,
        "name": row.name,
        "permissions": list(row.scopes),
        "created_at": unix(row.created_at),
        "expires_at": unix(row.expires_at),
        "last_used_at": unix(row.last_used_at),
        "is_active": active,
    }


def new_key_request(body: dict[str, Any]) -> tuple[str, list[str], datetime | None]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name is required")
    permissions = body.get("permissions")
    if (
        not isinstance(permissions, list)
        or not permissions
        or any(p not in KEY_PERMISSIONS for p in permissions)
    ):
        raise bad_request(f"permissions must be a list of {', '.join(KEY_PERMISSIONS)}")
    expires = body.get("expires_at")
    if expires is None:
        return name, permissions, None
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
        raise bad_request("expires_at must be Unix seconds or null")
    try:
        return name, permissions, datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        raise bad_request("expires_at is out of range") from None


def grant(row: PanelPermission) -> dict[str, Any]:
    return {
        "id": row.id,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "permission": row.permission,
        "granted_by": row.granted_by,
        "granted_at": unix(row.granted_at),
    }


def role_color(detail: str) -> int:
    text = detail.removeprefix("#")
    try:
        return int(text, 16) if text else 0
    except ValueError:
        return 0


def avatar_url(discord_id: str, avatar: str | None) -> str:
    if avatar:
        return f"https://cdn.discordapp.com/avatars/{discord_id}/{avatar}.png"
    return f"https://cdn.discordapp.com/embed/avatars/{int(discord_id) % 6}.png"
