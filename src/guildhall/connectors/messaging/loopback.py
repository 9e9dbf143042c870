"""The built-in loopback platform: real pairing and login state, no phone network.

For trying Guildhall out and for tests. It behaves like a messaging platform
that links devices with a pairing code: the code is issued here, the
operator stands in for the phone (``guildhall sessions pair USERID CODE``),
and pairing yields a real login state: a device id and an identity key,
signed with a key derived from the installation's secret, so a login state
that was altered, or made by another installation, is refused at connect.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from typing import Any

from guildhall.core.sessions.connector import ConnectorError

# No 0/O, 1/I/L: a code read aloud or off a screen cannot be mistyped.
PAIRING_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
PLATFORM = "loopback"


def pairing_code() -> str:
    letters = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


class LoopbackConnector:
    name = PLATFORM

    def __init__(self, signing_key: bytes) -> None:
        self._signing_key = signing_key
        self._connected: set[str] = set()

    def _sign(self, fields: dict[str, Any]) -> str:
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._signing_key, canonical, hashlib.sha256).hexdigest()

    def _verify(self, login_state: bytes) -> dict[str, Any]:
        try:
            document = json.loads(login_state)
            fields = {
                key: document[key]
                for key in ("platform", "handle", "phone", "device_id", "identity_key", "paired_at")
            }
            signature = document["signature"]
        except (ValueError, KeyError, TypeError):
            raise ConnectorError("the login state is not a loopback login") from None
        if fields["platform"] != PLATFORM or not isinstance(signature, str):
            raise ConnectorError("the login state is not a loopback login")
        if not hmac.compare_digest(self._sign(fields), signature):
            raise ConnectorError("the platform refused the login state (not issued here)")
        return fields

    async def request_pairing_code(self, handle: str, phone_number: str) -> str:
        return pairing_code()

    async def complete_pairing(self, handle: str, phone_number: str, paired_at: datetime) -> bytes:
        fields = {
            "platform": PLATFORM,
            "handle": handle,
            "phone": phone_number,
            "device_id": secrets.token_hex(8),
            "identity_key": secrets.token_urlsafe(32),
            "paired_at": paired_at.isoformat(),
        }
        return json.dumps({**fields, "signature": self._sign(fields)}).encode()

    async def connect(self, handle: str, login_state: bytes) -> None:
        fields = self._verify(login_state)
        if fields["handle"] != handle:
            raise ConnectorError(f"the login state belongs to session {fields['handle']}")
        self._connected.add(handle)

    async def disconnect(self, handle: str) -> None:
        self._connected.discard(handle)

    async def logout(self, handle: str, login_state: bytes | None) -> None:
        self._connected.discard(handle)

    def export_state(self, login_state: bytes) -> bytes:
        self._verify(login_state)
        return login_state

    def import_state(self, exported: bytes) -> bytes:
        self._verify(exported)
        return exported

    def is_connected(self, handle: str) -> bool:
        return handle in self._connected

    async def close(self) -> None:
        self._connected.clear()
