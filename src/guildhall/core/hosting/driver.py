"""What the core asks of whatever runs a server (a local process, Pterodactyl, a VPS API).

The core owns the power state machine and the database; a driver only
starts and stops the real thing and says whether it is alive. Every method
takes the server's ``runtime_ref``: the driver's own handle, stored by the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class DriverError(Exception):
    """The real server did not do what was asked; the message says what happened."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    public_id: str
    command: str
    workdir: Path


class HostingDriver(Protocol):
    name: str

    def ip_address(self, spec: ServerSpec) -> str:
        """Where the server will be reachable."""
        ...

    async def start(self, spec: ServerSpec) -> str:
        """Start the server; its new runtime_ref. Raises DriverError if it does not come up."""
        ...

    async def shutdown(self, runtime_ref: str, grace: float) -> None:
        """Ask it to stop, wait up to ``grace`` seconds, then end it."""
        ...

    async def kill(self, runtime_ref: str) -> None:
        """End it at once."""
        ...

    def is_running(self, runtime_ref: str | None) -> bool:
        """Whether the real server is alive right now."""
        ...
