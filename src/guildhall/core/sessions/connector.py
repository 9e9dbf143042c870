"""What the core asks of a messaging platform, whichever it is.

A connector logs a bot in and out of one platform (the built-in loopback
connector, WhatsApp later). The core keeps each session's state and its
sealed login state; the connector only speaks to the platform. Login state
is opaque bytes to the core: whatever the connector needs to connect again
without pairing (for WhatsApp, the linked device's credentials).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class ConnectorError(Exception):
    """The platform refused or failed; the message says why, for the session's failure reason."""


class PairingRejected(ConnectorError):
    """The code entered on the phone is not the one issued, or it expired."""


class MessagingConnector(Protocol):
    name: str

    async def request_pairing_code(self, handle: str, phone_number: str) -> str:
        """Ask the platform for a code the phone's owner enters to link this bot."""
        ...

    async def complete_pairing(self, handle: str, phone_number: str, paired_at: datetime) -> bytes:
        """The phone accepted the code: the new login state to keep."""
        ...

    async def connect(self, handle: str, login_state: bytes) -> None:
        """Log in with a kept login state; raises ConnectorError if the platform refuses it."""
        ...

    async def disconnect(self, handle: str) -> None:
        """Close the connection; the login stays valid for the next connect."""
        ...

    async def logout(self, handle: str, login_state: bytes | None) -> None:
        """End the login at the platform; the login state is worthless afterwards."""
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
