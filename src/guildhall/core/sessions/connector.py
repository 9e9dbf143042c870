"""What the core asks of a messaging platform, whichever it is.

A connector logs a bot in and out of one platform (the built-in loopback
connector, WhatsApp). The core keeps each session's state and its sealed
login state; the connector only speaks to the platform. Login state is
opaque bytes to the core: whatever the connector needs to connect again
without pairing (for WhatsApp, the linked device's store: keys and sessions).

Calls go from the core to the connector (``MessagingConnector``); what the
platform does on its own (the phone accepts a pairing code, the connection
drops, the phone logs the device out, a message arrives, the QR rotates)
comes back through ``PlatformEvents``, which the core attaches before any
call. The core never holds a database transaction while it awaits a
connector, and a connector calls ``PlatformEvents`` from its own tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class ConnectorError(Exception):
    """The platform refused or failed; the message says why, for the session's failure reason."""


class LoggedOut(ConnectorError):
    """The platform refused a kept login because the device was unlinked (from the phone,
    perhaps while Guildhall was away): the login is worthless, and retrying cannot help."""


class PairingRejected(ConnectorError):
    """The code entered on the phone is not the one issued, or it expired."""


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A text message that reached a session's bot."""

    sender: str
    """The sender's phone number (digits only) where the platform gives one, else ``sender_id``."""
    sender_id: str
    """The platform's own address for the sender (for WhatsApp a JID, possibly a LID)."""
    chat: str
    """Where it was said: the sender's address for a direct message, else the group's."""
    text: str
    message_id: str
    sent_at: datetime


class PlatformEvents(Protocol):
    """What a connector reports that the platform did without being asked."""

    async def linked(self, handle: str, login_state: bytes) -> None:
        """The phone accepted the pairing code: the session is online with this new login."""
        ...

    async def saved(self, handle: str, login_state: bytes) -> None:
        """The login state changed (keys ratchet): keep this one instead."""
        ...

    async def dropped(self, handle: str, reason: str) -> None:
        """An online session's connection was lost; the core reconnects it."""
        ...

    async def logged_out(self, handle: str, reason: str) -> None:
        """The device was unlinked at the platform (from the phone); the login is worthless."""
        ...

    async def message(self, handle: str, message: IncomingMessage) -> None:
        """A message reached the session's bot."""
        ...

    async def qr(self, handle: str, code: str) -> None:
        """A pairing session's current QR code (the platform rotates it)."""
        ...


class MessagingConnector(Protocol):
    name: str

    def attach(self, events: PlatformEvents) -> None:
        """Where to report what the platform does on its own; called once, before any call."""
        ...

    async def request_pairing_code(self, handle: str, phone_number: str) -> str:
        """Connect without a login and ask the platform for a code the phone's owner
        enters to link this bot; the link is reported later through ``linked``."""
        ...

    async def complete_pairing(self, handle: str, phone_number: str, paired_at: datetime) -> bytes:
        """The operator, standing in for the phone, entered the code: the new login state.

        Only a stand-in platform (loopback) supports this; a real one raises
        ConnectorError saying the code is entered on the phone.
        """
        ...

    async def connect(self, handle: str, login_state: bytes) -> None:
        """Log in with a kept login state and return once online; raises ConnectorError
        if the platform refuses it or cannot be reached."""
        ...

    def is_connected(self, handle: str) -> bool:
        """Whether this process holds a live connection for the session."""
        ...

    async def disconnect(self, handle: str) -> None:
        """Close the connection; the login stays valid for the next connect."""
        ...

    async def logout(self, handle: str, login_state: bytes | None) -> None:
        """End the login at the platform; the login state is worthless afterwards."""
        ...

    async def send_text(self, handle: str, to: str, text: str) -> str:
        """Send ``text`` to the phone number ``to`` from a connected session; the message id.

        Raises ConnectorError when the session is not connected here or the platform refuses.
        """
        ...

    def export_state(self, login_state: bytes) -> bytes:
        """The login state in a form that survives a restart elsewhere (for backups)."""
        ...

    def import_state(self, exported: bytes) -> bytes:
        """Check and take back an exported login state; raises ConnectorError if unusable."""
        ...

    async def close(self) -> None:
        """Drop every connection this process holds, without logging anything out."""
        ...
