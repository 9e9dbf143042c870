"""What the core asks of a game-server panel (Pterodactyl, behind Heliactyl).

Unlike a :class:`~guildhall.core.hosting.driver.HostingDriver`, a panel owns
its servers' lives (install, power, files); the core decides who may have
which server, within which resources, and when one is suspended or deleted.
The connector (``connectors/pterodactyl``) implements this over the panel's
application API; every call is made with no unit of work open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class PanelError(Exception):
    """The panel refused or failed; the message is one sentence for the operator.

    ``transient`` is true when trying again later may succeed (the panel is
    down, slow or failing); false when the request itself was refused.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class PanelPerson:
    """Who a panel user is made for: ``external_id`` is the account's uuid."""

    external_id: str
    email: str
    username: str
    first_name: str
    last_name: str


@dataclass(frozen=True, slots=True)
class GameServerSpec:
    """A game server to create: ``external_id`` is its public id in Guildhall."""

    external_id: str
    name: str
    owner_panel_id: int
    egg: str
    ram: int
    disk: int
    cpu: int


class GamePanel(Protocol):
    async def find_or_create_user(self, person: PanelPerson) -> int:
        """The panel id of ``person``'s user: found by external id or email, else created."""
        ...

    async def users_with_servers(self, ids: set[int]) -> dict[int, dict[str, Any]]:
        """The panel's user objects (with their servers) for the ``ids`` it still has."""
        ...

    async def create_server(self, spec: GameServerSpec) -> int:
        """Create and deploy the server; its panel id."""
        ...

    async def find_server(self, external_id: str) -> int | None:
        """The panel id of the server made for ``external_id``, if the panel has one."""
        ...

    async def delete_server(self, panel_id: int) -> None:
        """Delete it; one already gone is not an error."""
        ...

    async def set_suspended(self, panel_id: int, suspended: bool) -> None: ...

    async def close(self) -> None:
        """Let go of connections (the runtime's close)."""
        ...
