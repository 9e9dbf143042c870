"""LD7's request fields and response bodies.

Decisions where the document is silent:
- Session bodies carry the documented ``userId``, ``phoneNumber``,
  ``status`` (``online`` or ``offline``) and ``name``, plus ``state`` (the
  full state: created, pairing, online, offline, failed, logged_out); the
  session info adds ``createdAt``, ``lastConnectedAt``, ``paired``,
  ``failureReason`` and ``failedAt``. Clients that read only the documented
  fields see LD7's shape.
- ``POST /api/sessions`` also takes an optional ``name``. Both fields are
  required (400 ``userId and phoneNumber are required``). ``phoneNumber``
  is kept as its digits only, as the original strips everything else before
  validating (the dashboard's box sends ``+1 555 000 6666``); then it must be
  8 to 15 digits. A number sent as a JSON number is accepted as its digits.
- A second session for a ``userId`` answers 400 with the document's message,
  as the original server does.
- ``start`` of a session that was never paired (or was logged out) answers
  success with a fresh ``pairingCode`` and ``expiresAt``; ``stop`` of a
  session that is not running is a 409.
- ``backup`` and ``restore`` answer ``{success, message, userId,
  backedUpAt}``.
- Times are ISO 8601 in UTC with milliseconds, as ``expiresAt`` is shown.
- Beyond the document: ``GET .../qr`` is the platform's current pairing QR
  as a PNG (404 ``no_pending_pairing`` outside a pairing), and
  ``POST .../messages`` ``{to, text}`` sends a text from an online session
  (``to`` kept as its digits like ``phoneNumber``; the answer is
  ``{success, userId, to, messageId}``).
"""

from __future__ import annotations

import io
from typing import Any

import segno

from guildhall.core.errors import Invalid
from guildhall.core.sessions.service import Pairing, SessionView, check_handle
from guildhall.faces.common.body import ABSENT, MALFORMED, MAX_JSON_DEPTH, TOO_DEEP
from guildhall.faces.ld7.errors import INVALID_USER_ID, LD7Error
from guildhall.times import iso_millis

REQUIRED = "userId and phoneNumber are required"


iso = iso_millis


def user_id(raw: str) -> str:
    """A path's userId, checked before any lookup."""
    try:
        return check_handle(raw)
    except Invalid:
        raise LD7Error(400, INVALID_USER_ID) from None


def create_request(body: Any) -> tuple[Any, str, Any]:
    """``userId``, ``phoneNumber`` and ``name`` from the body; the core checks their values."""
    if body is MALFORMED:
        raise LD7Error(400, "Request body must be valid JSON")
    if body is TOO_DEEP:
        raise LD7Error(400, f"Request body may nest at most {MAX_JSON_DEPTH} levels deep")
    if body is ABSENT or not isinstance(body, dict):
        raise LD7Error(400, REQUIRED)
    handle, phone = body.get("userId"), body.get("phoneNumber")
    if handle in (None, "") or phone in (None, ""):
        raise LD7Error(400, REQUIRED)
    if isinstance(phone, int) and not isinstance(phone, bool) and phone >= 0:
        phone = str(phone)
    if not isinstance(phone, str):
        raise LD7Error(400, "phoneNumber must be a string of digits")
    return handle, digits_of(phone), body.get("name")


def digits_of(phone: str) -> str:
    """The ASCII digits of a number as people type it (``+1 555 000 6666``), as LD7 keeps
    them (JavaScript's ``replace(/\\D/g, "")``); the core then wants 8 to 15."""
    return "".join(char for char in phone if "0" <= char <= "9")


def status(session: SessionView) -> str:
    return "online" if session.online else "offline"


def summary(session: SessionView) -> dict[str, Any]:
    return {
        "userId": session.handle,
        "phoneNumber": session.phone_number,
        "status": status(session),
        "name": session.name,
        "state": session.state.value,
    }


def info(session: SessionView) -> dict[str, Any]:
    return {
        "success": True,
        **summary(session),
        "paired": session.paired,
        "createdAt": iso(session.created_at),
        "lastConnectedAt": iso(session.last_connected_at),
        "failureReason": session.failure_reason,
        "failedAt": iso(session.failed_at),
    }


def pairing(code: Pairing) -> dict[str, Any]:
    return {"pairingCode": code.code, "expiresAt": iso(code.expires_at)}


def message_request(body: Any) -> tuple[str, Any]:
    """``to`` (its digits) and ``text`` from a send's body; the core checks their values."""
    if body is MALFORMED:
        raise LD7Error(400, "Request body must be valid JSON")
    if body is TOO_DEEP:
        raise LD7Error(400, f"Request body may nest at most {MAX_JSON_DEPTH} levels deep")
    if body is ABSENT or not isinstance(body, dict) or body.get("to") in (None, ""):
        raise LD7Error(400, "to and text are required")
    to = body["to"]
    if isinstance(to, int) and not isinstance(to, bool) and to >= 0:
        to = str(to)
    if not isinstance(to, str):
        raise LD7Error(400, "to must be a string of digits")
    return digits_of(to), body.get("text")


def qr_png(content: str) -> bytes:
    """A QR code a phone's camera reads off a screen: 8 pixels a module, quiet zone of 4."""
    out = io.BytesIO()
    segno.make(content, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()
