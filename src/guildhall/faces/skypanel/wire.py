"""SkyPANEL's request fields, response bodies and API versions.

Decisions where the document is silent:
- ``PUT /api/users/me`` changes only the fields given. ``newPassword``
  needs ``currentPassword`` (400 naming it when missing, 401 when wrong) and
  at least 8 characters. The answer is the updated profile; after a password
  change it also carries a fresh ``token``, since the old one stops working.
- ``GET /api/servers/:id`` answers one of the caller's servers (the document
  lists servers and powers them by id; reading one by id is the same rule).
- Power answers the server after the action, with its real status.
- Invoices show ``amount`` as a JSON number in major units (9.99), plus
  ``currency``; ``dueDate`` is the due day's midnight UTC.
- ``Accept`` selects the version: ``application/vnd.skypanel.v1+json``,
  ``application/json``, ``*/*`` or none mean v1; anything else is a 406.
"""

from __future__ import annotations

import re
from typing import Any

from guildhall.core.accounts.service import AccountView
from guildhall.core.billing.service import InvoiceView
from guildhall.core.hosting.service import ACTIONS, ServerView
from guildhall.core.text import storable
from guildhall.faces.common.body import json_object as body_json_object
from guildhall.faces.skypanel.errors import SkyError
from guildhall.times import iso_millis

MAX_NAME = 100
VENDOR_TYPE = re.compile(r"application/vnd\.skypanel\.v(\d+)\+json")
SUPPORTED_VERSIONS = frozenset({"1"})
GENERIC_TYPES = frozenset({"application/json", "*/*", "application/*"})


def accepted_version(accept: str | None) -> str | None:
    """The API version an Accept header asks for, or None if it asks for none we have."""
    if not accept or not accept.strip():
        return "1"
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        match = VENDOR_TYPE.fullmatch(media)
        if match and match.group(1) in SUPPORTED_VERSIONS:
            return match.group(1)
        if media in GENERIC_TYPES:
            return "1"
    return None


def _fields_error(problems: dict[str, str]) -> SkyError:
    return SkyError(
        400,
        "VALIDATION_ERROR",
        "Request validation failed",
        [{"field": field, "message": message} for field, message in problems.items()],
    )


def json_object(body: Any) -> dict[str, Any]:
    return body_json_object(body, _invalid_body, subject="Request body")


def _invalid_body(message: str) -> SkyError:
    return SkyError(400, "VALIDATION_ERROR", message)


def login_request(body: Any) -> tuple[str, str]:
    fields = json_object(body)
    problems = {}
    for name in ("email", "password"):
        value = fields.get(name)
        if not isinstance(value, str) or not value:
            problems[name] = f"{name} is required and must be a string"
    if problems:
        raise _fields_error(problems)
    return fields["email"], fields["password"]


class ProfileChange:
    """The fields of ``PUT /api/users/me`` that were given, checked."""

    def __init__(self, body: Any) -> None:
        fields = json_object(body)
        problems: dict[str, str] = {}
        self.first_name = self._name(fields, "firstName", problems)
        self.last_name = self._name(fields, "lastName", problems)
        # Strings or None once the checks below pass.
        self.current_password: str | None = fields.get("currentPassword")
        self.new_password: str | None = fields.get("newPassword")
        for name in ("currentPassword", "newPassword"):
            if fields.get(name) is not None and not isinstance(fields[name], str):
                problems[name] = f"{name} must be a string"
        if self.new_password is not None and not self.current_password:
            problems["currentPassword"] = "currentPassword is required to change the password"
        if self.current_password is not None and self.new_password is None:
            problems["newPassword"] = "newPassword is required to change the password"
        if isinstance(self.new_password, str) and len(self.new_password) < 8:
            problems["newPassword"] = "newPassword must be at least 8 characters"
        if problems:
            raise _fields_error(problems)

    @staticmethod
    def _name(fields: dict[str, Any], name: str, problems: dict[str, str]) -> str | None:
        value = fields.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or len(value.strip()) > MAX_NAME or not storable(value):
            problems[name] = f"{name} must be a string of at most {MAX_NAME} characters"
            return None
        return value.strip()


def power_action(body: Any) -> str:
    """One of the document's actions, or ``kill`` (beyond it: end the server at once, a
    VM's power cut); the refusal names the document's four."""
    action = json_object(body).get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise _fields_error({"action": "action must be one of start, stop, restart, shutdown"})
    return action


def login_user(account: AccountView) -> dict[str, Any]:
    return {"id": account.id, "email": account.email, "role": account.role}


def profile(account: AccountView) -> dict[str, Any]:
    return {
        "id": account.id,
        "email": account.email,
        "firstName": account.first_name,
        "lastName": account.last_name,
        "role": account.role,
        "createdAt": iso_millis(account.created_at),
    }


def server(view: ServerView) -> dict[str, Any]:
    return {
        "id": view.public_id,
        "name": view.name,
        "status": view.status.value,
        "ipAddress": view.ip_address,
        "plan": view.plan,
        "createdAt": iso_millis(view.created_at),
    }


def invoice(view: InvoiceView) -> dict[str, Any]:
    return {
        "id": view.public_id,
        "amount": float(view.amount),
        "currency": view.currency,
        "status": view.status.value,
        "dueDate": iso_millis(view.due_date),
        "createdAt": iso_millis(view.created_at),
    }


def ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}
