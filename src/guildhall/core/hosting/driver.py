"""What the core asks of whatever runs a server (a local process, a virtual machine).

The core owns the database and the order of a power action's steps; a driver
does the work on the real thing and says whether it is alive. Every method
takes the server's ``runtime_ref``: the driver's own handle, stored by the core.

A driver that ``judges_transitions`` (a hypervisor) decides itself whether an
action fits the machine's current state and refuses with a ``DriverError``
whose ``conflict`` is set, in its own words; for one that does not (a local
process), the core checks the state first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class DriverError(Exception):
    """The real server did not do what was asked; the message says what happened.

    ``conflict``: the action does not fit the server's current state (a 409);
    ``unavailable``: the platform could not be reached (try again later).
    """

    def __init__(self, message: str, *, conflict: bool = False, unavailable: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict
        self.unavailable = unavailable


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A server as its plan describes it; each driver reads what it needs."""

    public_id: str
    command: str
    workdir: Path
    vcpus: int = 1
    memory_mb: int = 1024
    disk_gb: int = 20
    image: str = ""
    owner_id: int = 0
    owner_email: str = ""
    owner_name: str = ""


class HostingDriver(Protocol):
    name: str
    judges_transitions: bool
    polled: bool  # no events: the runtime has ``refresh`` read the states now and then

    async def open(self) -> None:
        """Connect (if the platform needs it)."""
        ...

    async def refresh(self, runtime_refs: list[str]) -> None:
        """Learn the real state of these servers (at open, and when ``polled``)."""
        ...

    async def close(self) -> None: ...

    def ip_address(self, spec: ServerSpec) -> str:
        """Where the server will be reachable (before it exists, as far as known)."""
        ...

    async def provision(self, spec: ServerSpec) -> str | None:
        """Make the server exist, stopped; its runtime_ref (None: made at start)."""
        ...

    async def start(self, spec: ServerSpec, runtime_ref: str | None) -> str:
        """Start the server; its runtime_ref. Raises DriverError if it does not come up."""
        ...

    async def stop(self, runtime_ref: str, grace: float) -> None:
        """SkyPANEL's ``stop`` on this platform."""
        ...

    async def shutdown(self, runtime_ref: str, grace: float) -> None:
        """Ask it to stop, wait up to ``grace`` seconds, then end it."""
        ...

    async def kill(self, runtime_ref: str) -> None:
        """End it at once."""
        ...

    async def restart(self, spec: ServerSpec, runtime_ref: str, grace: float) -> str:
        """Restart it; its runtime_ref afterwards."""
        ...

    async def remove(self, runtime_ref: str | None, public_id: str = "") -> None:
        """End it and remove everything it had (a VM's definition and disk); ``public_id``
        finds one whose creation was interrupted before its ref was stored."""
        ...

    def is_running(self, runtime_ref: str | None) -> bool:
        """Whether the real server is alive right now (never a blocking call)."""
        ...
