"""The built-in loopback platform: real pairing and login state, no phone network.

For trying Guildhall out and for tests. It behaves like a messaging platform
that links devices with a pairing code: the code is issued here, the
operator stands in for the phone (``guildhall sessions pair USERID CODE``),
and pairing yields a real login state: a device id and an identity key,
signed with a key derived from the installation's secret, so a login state
that was altered, or made by another installation, is refused at connect.

What a phone or the network would do on its own is done by calling this
platform's own methods (``drop``, ``phone_logs_out``, ``incoming_text``,
``refuse_connections``): they report through ``PlatformEvents`` exactly as a
real platform's connector does, so the core's handling of a dropped link, a
logout from the phone or a message is the same, and tested the same, on both.
Its QR code encodes the pairing code (a stand-in has no other).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from guildhall.core.sessions.connector import (
    ConnectorError,
    IncomingMessage,
    LoggedOut,
    PlatformEvents,
)

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
        self._refusal: str | None = None
        self._events: PlatformEvents | None = None
        self.sent: list[tuple[str, str, str]] = []
        """Every text sent, as (session, to, text): what the stand-in's network carried."""
        self.unlinked: set[str] = set()
        """Sessions whose device the phone unlinked: their old login is refused."""

    def attach(self, events: PlatformEvents) -> None:
        self._events = events

    @property
    def events(self) -> PlatformEvents:
        if self._events is None:
            raise ConnectorError("the loopback platform has nobody to report to")
        return self._events

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
        if self._refusal is not None:
            raise ConnectorError(self._refusal)
        code = pairing_code()
        await self.events.qr(handle, f"loopback-pairing:{handle}:{code}")
        return code

    async def complete_pairing(self, handle: str, phone_number: str, paired_at: datetime) -> bytes:
        self.unlinked.discard(handle)  # a new device
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
        if self._refusal is not None:
            raise ConnectorError(self._refusal)
        fields = self._verify(login_state)
        if handle in self.unlinked:
            raise LoggedOut("the phone unlinked this device")
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

    async def send_text(self, handle: str, to: str, text: str) -> str:
        if handle not in self._connected:
            raise ConnectorError(f"session {handle} is not connected to the loopback platform here")
        self.sent.append((handle, to, text))
        return f"LOOPBACK-{secrets.token_hex(8).upper()}"

    async def close(self) -> None:
        self._connected.clear()

    # What the phone and the network do on their own.

    def refuse_connections(self, reason: str | None) -> None:
        """From now on, connecting fails with ``reason`` (None: the platform is back)."""
        self._refusal = reason

    async def drop(self, handle: str, reason: str = "the connection was lost") -> None:
        """The network drops a connected session."""
        if handle in self._connected:
            self._connected.discard(handle)
            await self.events.dropped(handle, reason)

    async def phone_logs_out(self, handle: str, reason: str = "logged out from the phone") -> None:
        """The phone's owner unlinks the bot (reported at once if it is connected here)."""
        self.unlinked.add(handle)
        if handle in self._connected:
            self._connected.discard(handle)
            await self.events.logged_out(handle, reason)

    async def incoming_text(self, handle: str, sender: str, text: str) -> None:
        """Someone with the phone number ``sender`` writes to the session's bot."""
        address = f"{sender}@loopback"
        await self.events.message(
            handle,
            IncomingMessage(
                sender=sender,
                sender_id=address,
                chat=address,
                text=text,
                message_id=f"LOOPBACK-{secrets.token_hex(8).upper()}",
                sent_at=datetime.now(UTC),
            ),
        )
