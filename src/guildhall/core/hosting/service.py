"""Servers and their power, over a hosting driver.

A power action is three steps, so no transaction is held while a real
process starts or stops (a graceful shutdown may take many seconds):

1. in a short transaction, lock the server, look at the real process, refuse
   an action that makes no sense (400), and record the transitional state
   (``starting`` or ``stopping``), which concurrent actions then see;
2. do the work through the driver, outside any transaction;
3. in a second short transaction, record what the real process now is.

If Guildhall dies between 1 and 3, the transitional state is older than the
longest action could take; readers then show, and the next action records,
what the real process is. A server is never stuck in a transitional state.

Status shown to clients always comes from the real process: a server that
died by itself reads ``stopped``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.errors import Invalid, NotFound
from guildhall.core.hosting.driver import DriverError, HostingDriver, ServerSpec
from guildhall.core.hosting.models import PowerState, Server
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.db.prepared import Prepared
from guildhall.events.announce import announce

_servers = Server.__table__
_SERVERS_OF = Prepared(
    select(
        _servers.c.public_id,
        _servers.c.name,
        _servers.c.status,
        _servers.c.runtime_ref,
        _servers.c.status_changed_at,
        _servers.c.ip_address,
        _servers.c.plan,
        _servers.c.created_at,
        _servers.c.driver,
    )
    .where(_servers.c.account_id == bindparam("account_id"))
    .order_by(_servers.c.id)
)
ACTIONS = ("start", "stop", "restart", "shutdown")
MAX_NAME_LENGTH = 100
STALE_MARGIN = timedelta(seconds=30)

# Which settled state each action needs, and the transitional state it passes through.
_NEEDS = {
    "start": PowerState.STOPPED,
    "stop": PowerState.RUNNING,
    "shutdown": PowerState.RUNNING,
    "restart": PowerState.RUNNING,
}
_THROUGH = {
    "start": PowerState.STARTING,
    "stop": PowerState.STOPPING,
    "shutdown": PowerState.STOPPING,
    "restart": PowerState.STOPPING,
}
_REFUSAL = {
    ("start", PowerState.RUNNING): "the server is already running",
    ("stop", PowerState.STOPPED): "the server is already stopped",
    ("shutdown", PowerState.STOPPED): "the server is already stopped",
    ("restart", PowerState.STOPPED): "the server is stopped; start it instead",
}


@dataclass(frozen=True, slots=True)
class ServerView:
    public_id: str
    account_id: int
    name: str
    status: PowerState
    ip_address: str
    plan: str
    created_at: datetime

    def event_data(self) -> dict[str, str]:
        return {"id": self.public_id, "name": self.name, "status": self.status.value}


class Hosting:
    """Server rules over one driver; plans map to the command their servers run."""

    def __init__(
        self,
        database: Database,
        driver: HostingDriver,
        *,
        plans: dict[str, str],
        servers_dir: Path,
        grace: float,
    ) -> None:
        self.database = database
        self.driver = driver
        self._plans = plans
        self._servers_dir = servers_dir
        self._grace = grace
        self._stale_after = timedelta(seconds=grace) + STALE_MARGIN

    def _spec(self, row: Server) -> ServerSpec:
        command = self._plans.get(row.plan)
        if command is None:
            raise Invalid(f"plan {row.plan!r} is not configured under [hosting.plans]")
        return ServerSpec(row.public_id, command, self._servers_dir / row.public_id)

    def observed(self, row: Server) -> PowerState:
        return self._observe(row.status, row.runtime_ref, row.status_changed_at, row.driver)

    def _observe(
        self, status: str, runtime_ref: str | None, changed_at: datetime, driver: str
    ) -> PowerState:
        """The status to show: the real process's, unless an action is under way (a
        server on another driver, a panel's game server, shows what is stored)."""
        stored = PowerState(status)
        if driver != self.driver.name:
            return stored
        under_way = stored in (PowerState.STARTING, PowerState.STOPPING)
        if under_way and utcnow() - changed_at < self._stale_after:
            return stored
        alive = self.driver.is_running(runtime_ref)
        return PowerState.RUNNING if alive else PowerState.STOPPED

    async def summaries(self, session: AsyncSession, account_id: int) -> list[ServerView]:
        """The account's servers, read without loading ORM objects (Heliactyl's userinfo)."""
        rows = await _SERVERS_OF.all(session, {"account_id": account_id})
        views = []
        for public_id, name, status, ref, changed_at, ip_address, plan, created_at, driver in rows:
            views.append(
                ServerView(
                    public_id=public_id,
                    account_id=account_id,
                    name=name,
                    status=self._observe(status, ref, changed_at, driver),
                    ip_address=ip_address,
                    plan=plan,
                    created_at=created_at,
                )
            )
        return views

    def _view(self, row: Server) -> ServerView:
        return ServerView(
            public_id=row.public_id,
            account_id=row.account_id,
            name=row.name,
            status=self.observed(row),
            ip_address=row.ip_address,
            plan=row.plan,
            created_at=row.created_at,
        )

    async def _set(
        self, session: AsyncSession, row: Server, status: PowerState, actor: Actor, why: str
    ) -> ServerView:
        if row.status != status.value:
            row.status = status.value
            row.status_changed_at = utcnow()
            await session.flush()
        view = self._view(row)
        await announce(
            session,
            actor,
            "server.updated",
            f"{actor.name} {why}: server {row.public_id} ({row.name}) is {status.value}",
            view.event_data(),
            target_account_id=row.account_id,
            target=f"server:{row.public_id}",
        )
        return view

    async def create(
        self, session: AsyncSession, owner: AccountRef, name: str, plan: str, actor: Actor
    ) -> ServerView:
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH or "\x00" in name:
            raise Invalid(f"a server name is 1 to {MAX_NAME_LENGTH} characters", field="name")
        if plan not in self._plans:
            known = ", ".join(self._plans)
            raise Invalid(f"plan {plan!r} does not exist (plans: {known})", field="plan")
        public_id = f"server-{secrets.token_hex(6)}"
        row = Server(
            public_id=public_id,
            account_id=owner.id,
            name=name,
            plan=plan,
            driver=self.driver.name,
            status=PowerState.STOPPED.value,
            ip_address="",
        )
        row.ip_address = self.driver.ip_address(self._spec(row))
        session.add(row)
        await session.flush()
        view = self._view(row)
        await announce(
            session,
            actor,
            "server.created",
            f"{actor.name} created server {public_id} ({name}, plan {plan}) for {owner.describe()}",
            view.event_data(),
            target_account_id=owner.id,
            target=f"server:{public_id}",
        )
        return view

    async def _row(
        self, session: AsyncSession, public_id: str, owner_id: int | None, *, lock: bool = False
    ) -> Server:
        query = select(Server).where(Server.public_id == public_id)
        if owner_id is not None:
            # Someone else's server does not exist, as far as the caller can tell.
            query = query.where(Server.account_id == owner_id)
        if lock:
            query = query.with_for_update()
        row = await session.scalar(query)
        if row is None:
            raise NotFound(f"server {public_id} not found", code="server_not_found", field="server")
        return row

    async def list_for(self, session: AsyncSession, account_id: int) -> list[ServerView]:
        rows = await session.scalars(
            select(Server).where(Server.account_id == account_id).order_by(Server.id)
        )
        return [self._view(row) for row in rows]

    async def get(
        self, session: AsyncSession, public_id: str, owner_id: int | None = None
    ) -> ServerView:
        return self._view(await self._row(session, public_id, owner_id))

    async def power(
        self, public_id: str, action: str, actor: Actor, owner_id: int | None = None
    ) -> ServerView:
        """Carry out ``action`` on the real server (see the module notes for the three steps)."""
        if action not in ACTIONS:
            raise Invalid(f"action must be one of {', '.join(ACTIONS)}", field="action")
        async with self.database.unit_of_work() as session:
            row = await self._row(session, public_id, owner_id, lock=True)
            if row.driver != self.driver.name:
                raise Invalid(
                    f"server {public_id} is a game server on the {row.driver} panel; "
                    "its power is controlled there",
                    code="power_refused",
                    field="action",
                )
            current = self.observed(row)
            if current is not _NEEDS[action]:
                reason = _REFUSAL.get((action, current)) or (
                    f"the server is {current.value}; wait until it is "
                    f"{'running' if current is PowerState.STARTING else 'stopped'}"
                )
                raise Invalid(reason, code="power_refused", field="action")
            spec = self._spec(row)
            ref = row.runtime_ref
            await self._set(session, row, _THROUGH[action], actor, f"asked to {action}")

        failure: DriverError | None = None
        try:
            if action in ("stop", "shutdown", "restart") and ref:
                if action == "stop":
                    await self.driver.kill(ref)
                else:
                    await self.driver.shutdown(ref, self._grace)
            if action in ("start", "restart"):
                ref = await self.driver.start(spec)
        except DriverError as exc:
            failure = exc

        async with self.database.unit_of_work() as session:
            row = await self._row(session, public_id, None, lock=True)
            row.runtime_ref = ref
            settled = PowerState.RUNNING if self.driver.is_running(ref) else PowerState.STOPPED
            why = f"{action} failed ({failure})" if failure else f"{action} done"
            view = await self._set(session, row, settled, actor, why)
        if failure is not None:
            raise Invalid(f"{action} failed: {failure}", code="power_failed", field="action")
        return view

    async def delete(self, public_id: str, actor: Actor) -> ServerView:
        """End the server's process (at once) and remove the server."""
        async with self.database.unit_of_work() as session:
            row = await self._row(session, public_id, None, lock=True)
            if row.runtime_ref and self.driver.is_running(row.runtime_ref):
                await self.driver.kill(row.runtime_ref)
            view = self._view(row)
            await session.delete(row)
            await session.flush()
            await announce(
                session,
                actor,
                "server.deleted",
                f"{actor.name} deleted server {public_id} ({row.name})",
                {**view.event_data(), "status": "deleted"},
                target_account_id=row.account_id,
                target=f"server:{public_id}",
            )
        return view
