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

Status shown to clients always comes from the real server: a process that
died by itself reads ``stopped``; a virtual machine reads what its hypervisor
last reported (libvirt's lifecycle events keep that current).

Each plan names its driver (``process``, ``libvirt``, ``virtfusion``; a
``pterodactyl`` plan is a game server, ``games.py``), and each server keeps the
driver it was made on. Creating and deleting are three steps like a power
action: a virtual machine's disk is cloned, or removed, with no transaction
open. A driver that judges its own transitions (a hypervisor) is asked
directly, and its refusal is a ``Conflict`` in its words; for a process the
core checks the state first.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import SYSTEM, Actor
from guildhall.core.errors import Conflict, CoreError, Invalid, NotFound, Unavailable
from guildhall.core.hosting import removal
from guildhall.core.hosting.driver import DriverError, HostingDriver, ServerSpec
from guildhall.core.hosting.models import PowerState, Server
from guildhall.core.text import storable
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.db.prepared import Prepared
from guildhall.events.announce import announce

_servers = Server.__table__
SUMMARY_COLUMNS = (
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
"""What :meth:`Hosting.summary_of` reads, for a statement that reads servers beside other things."""
_SERVERS_OF = Prepared(
    select(*SUMMARY_COLUMNS)
    .where(_servers.c.account_id == bindparam("account_id"))
    .order_by(_servers.c.id)
)
logger = logging.getLogger(__name__)

ACTIONS = ("start", "stop", "restart", "shutdown", "kill")
MAX_NAME_LENGTH = 100
STALE_MARGIN = timedelta(seconds=30)

# Which settled state each action needs, and the transitional state it passes through.
_NEEDS = {
    "start": PowerState.STOPPED,
    "stop": PowerState.RUNNING,
    "shutdown": PowerState.RUNNING,
    "restart": PowerState.RUNNING,
    "kill": PowerState.RUNNING,
}
_THROUGH = {
    "start": PowerState.STARTING,
    "stop": PowerState.STOPPING,
    "shutdown": PowerState.STOPPING,
    "restart": PowerState.STOPPING,
    "kill": PowerState.STOPPING,
}
_REFUSAL = {
    ("start", PowerState.RUNNING): "the server is already running",
    ("stop", PowerState.STOPPED): "the server is already stopped",
    ("shutdown", PowerState.STOPPED): "the server is already stopped",
    ("kill", PowerState.STOPPED): "the server is already stopped",
    ("restart", PowerState.STOPPED): "the server is stopped; start it instead",
}


@dataclass(frozen=True, slots=True)
class HostingPlan:
    """A plan: its driver and what a server of it is (each driver reads its part)."""

    driver: str = "process"
    command: str = "sleep infinity"
    vcpus: int = 1
    memory_mb: int = 1024
    disk_gb: int = 20
    image: str = ""


def _failure(action: str, error: DriverError) -> CoreError:
    """A driver's failure as the core error a face renders."""
    if error.conflict:
        return Conflict(f"{action} refused: {error}", code="power_conflict", field="action")
    if error.unavailable:
        return Unavailable(f"{action} failed: {error}", code="hypervisor_unavailable")
    return Invalid(f"{action} failed: {error}", code="power_failed", field="action")


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
    """Server rules over the configured drivers; plans say which driver and what to run."""

    def __init__(
        self,
        database: Database,
        drivers: dict[str, HostingDriver],
        *,
        plans: dict[str, HostingPlan],
        servers_dir: Path,
        grace: float,
    ) -> None:
        self.database = database
        self.drivers = drivers
        self.driver = drivers["process"]  # the default, and the demo's
        self._plans = plans
        self._servers_dir = servers_dir
        self._grace = grace
        self._stale_after = timedelta(seconds=grace) + STALE_MARGIN

    async def open(self) -> None:
        """Connect the drivers that need it (a hypervisor), then learn every server's real
        state: a machine that changed while Guildhall was down shows what it is now."""
        for driver in self.drivers.values():
            await driver.open()
        await self.refresh(polled_only=False)

    async def refresh(self, *, polled_only: bool = True) -> None:
        """Have the drivers read their servers' states (by default, those without events)."""
        async with self.database.unit_of_work(write=False) as session:
            rows = (await session.execute(select(Server.driver, Server.runtime_ref))).all()
        for name, driver in self.drivers.items():
            if polled_only and not driver.polled:
                continue
            refs = [ref for on, ref in rows if on == name and ref is not None]
            try:
                await driver.refresh(refs)
            except DriverError as exc:
                logger.warning("the %s servers' states were not read: %s", name, exc)

    async def close(self) -> None:
        for driver in self.drivers.values():
            await driver.close()

    def _driver(self, name: str) -> HostingDriver:
        driver = self.drivers.get(name)
        if driver is None:
            raise Invalid(f"the {name} driver is not configured under [hosting]", code="no_driver")
        return driver

    def _spec(self, row: Server) -> ServerSpec:
        plan = self._plans.get(row.plan)
        if plan is None:
            raise Invalid(f"plan {row.plan!r} is not configured under [hosting.plans]")
        return ServerSpec(
            row.public_id,
            plan.command,
            self._servers_dir / row.public_id,
            vcpus=plan.vcpus,
            memory_mb=plan.memory_mb,
            disk_gb=plan.disk_gb,
            image=plan.image,
            owner_id=row.account_id,
        )

    def observed(self, row: Server) -> PowerState:
        return self._observe(row.status, row.runtime_ref, row.status_changed_at, row.driver)

    def _observe(
        self, status: str, runtime_ref: str | None, changed_at: datetime, driver: str
    ) -> PowerState:
        """The status to show: the real process's, unless an action is under way (a
        server on another driver, a panel's game server, shows what is stored)."""
        stored = PowerState(status)
        running_on = self.drivers.get(driver)
        if running_on is None:  # a panel's game server, or a driver no longer configured
            return stored
        under_way = stored in (PowerState.STARTING, PowerState.STOPPING)
        if under_way and utcnow() - changed_at < self._stale_after:
            return stored
        alive = running_on.is_running(runtime_ref)
        return PowerState.RUNNING if alive else PowerState.STOPPED

    async def summaries(self, session: AsyncSession, account_id: int) -> list[ServerView]:
        """The account's servers, read without loading ORM objects."""
        rows = await _SERVERS_OF.all(session, {"account_id": account_id})
        return [self.summary_of(account_id, row) for row in rows]

    def summary_of(self, account_id: int, row: Sequence[Any]) -> ServerView:
        """The server that :data:`SUMMARY_COLUMNS` read."""
        public_id, name, status, ref, changed_at, ip_address, plan, created_at, driver = row
        return ServerView(
            public_id=public_id,
            account_id=account_id,
            name=name,
            status=self._observe(status, ref, changed_at, driver),
            ip_address=ip_address,
            plan=plan,
            created_at=created_at,
        )

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
        """Record a stopped server of ``plan`` in the caller's transaction; after commit,
        ``provision`` makes it exist on its driver (a virtual machine is defined then)."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH or not storable(name):
            raise Invalid(f"a server name is 1 to {MAX_NAME_LENGTH} characters", field="name")
        chosen = self._plans.get(plan)
        if chosen is None or chosen.driver not in self.drivers:
            known = ", ".join(p for p, c in self._plans.items() if c.driver in self.drivers)
            raise Invalid(f"plan {plan!r} does not exist (plans: {known})", field="plan")
        driver = self.drivers[chosen.driver]
        public_id = f"server-{secrets.token_hex(6)}"
        row = Server(
            public_id=public_id,
            account_id=owner.id,
            name=name,
            plan=plan,
            driver=driver.name,
            status=PowerState.STOPPED.value,
            ip_address="",
        )
        row.ip_address = driver.ip_address(self._spec(row))
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

    async def provision(self, public_id: str) -> None:
        """Make a recorded server exist on its driver (no transaction open meanwhile).

        A server whose machine cannot be made is removed again, so nothing is
        left half-made; a process needs nothing until it starts.
        """
        async with self.database.unit_of_work(write=False) as session:
            row = await self._row(session, public_id, None)
            driver = self._driver(row.driver)
            if row.runtime_ref is not None:
                return
            owner = await accounts.view(session, row.account_id)
            spec = replace(
                self._spec(row), owner_email=owner.email or "", owner_name=owner.username
            )
        try:
            ref = await driver.provision(spec)
        except DriverError as exc:
            async with self.database.unit_of_work() as session:
                await self._forget(session, public_id, SYSTEM, f"could not be made: {exc}")
            raise _failure("create", exc) from None
        if ref is not None:
            async with self.database.unit_of_work() as session:
                row = await self._row(session, public_id, None, lock=True)
                row.runtime_ref = ref

    async def _row(
        self, session: AsyncSession, public_id: str, owner_id: int | None, *, lock: bool = False
    ) -> Server:
        if not storable(public_id):  # no server's id holds a NUL
            raise NotFound(f"server {public_id} not found", code="server_not_found", field="server")
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
            if row.driver not in self.drivers:
                raise Invalid(
                    f"server {public_id} is a game server on the {row.driver} panel; "
                    "its power is controlled there",
                    code="power_refused",
                    field="action",
                )
            driver = self.drivers[row.driver]
            current = self.observed(row)
            under_way = current in (PowerState.STARTING, PowerState.STOPPING)
            if under_way or (not driver.judges_transitions and current is not _NEEDS[action]):
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
            ref = await self._act(driver, action, spec, ref)
        except DriverError as exc:
            failure = exc

        async with self.database.unit_of_work() as session:
            row = await self._row(session, public_id, None, lock=True)
            row.runtime_ref = ref
            settled = PowerState.RUNNING if driver.is_running(ref) else PowerState.STOPPED
            why = f"{action} failed ({failure})" if failure else f"{action} done"
            view = await self._set(session, row, settled, actor, why)
        if failure is not None:
            raise _failure(action, failure)
        return view

    async def _act(
        self, driver: HostingDriver, action: str, spec: ServerSpec, ref: str | None
    ) -> str | None:
        """Do ``action`` through the driver; the runtime_ref afterwards."""
        if action == "start":
            return await driver.start(spec, ref)
        if ref is None:  # a process that never ran: nothing to stop
            return ref
        if action == "restart":
            return await driver.restart(spec, ref, self._grace)
        if action == "stop":
            await driver.stop(ref, self._grace)
        elif action == "shutdown":
            await driver.shutdown(ref, self._grace)
        else:
            await driver.kill(ref)
        return ref

    async def delete(self, public_id: str, actor: Actor) -> ServerView:
        """End the server at once and remove it, with everything its driver made for it."""
        async with self.database.unit_of_work(write=False) as session:
            row = await self._row(session, public_id, None)
            view = self._view(row)
            driver, ref = self.drivers.get(row.driver), row.runtime_ref
        if driver is None:
            raise Invalid(
                f"server {public_id} is on the {row.driver} driver, which is not configured",
                code="no_driver",
            )
        try:
            await driver.remove(ref, public_id)
        except DriverError as exc:
            raise _failure("delete", exc) from None
        async with self.database.unit_of_work() as session:
            await self._forget(session, public_id, actor, f"deleted by {actor.name}")
        return view

    async def _forget(self, session: AsyncSession, public_id: str, actor: Actor, why: str) -> None:
        """Remove the server's row, with its audit sentence and ``server.deleted`` event."""
        row = await self._row(session, public_id, None, lock=True)
        sentence = f"server {public_id} ({row.name}) {why}"
        await removal.remove(session, row, actor, sentence, self._view(row).event_data())
