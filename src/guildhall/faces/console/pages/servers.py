"""``/servers``: every hosted server with its live state and power; creating one in a plan.

Admins only (``Area.SERVERS``). What a page shows and does comes from the same
core as SkyPANEL and the CLI:

- The state shown is the one SkyPANEL reports (``Hosting.observed``: the real
  process, or what the hypervisor last said), read when the page is drawn.
- Power (``POST /servers/{id}/power``) is ``Hosting.power``, SkyPANEL's own call,
  for any owner's server; it opens its own short units of work around the
  driver (``screen_action``), so no transaction waits on a process stopping.
  The buttons offered follow the state: ``start`` when stopped; ``restart``,
  ``stop``, ``shutdown`` and ``kill`` when running; none while an action is
  under way, nor for a game server (its power is the panel's).
- Creating (``POST /servers``) is ``Runtime.create_server``, what ``guildhall
  servers create --plan`` runs: a plan on a hosting driver is recorded in one unit
  of work and made on its driver after commit; a plan on the ``pterodactyl``
  driver is a game server on the panel, within the owner's package (and not for a
  banned owner). A refusal (unknown owner or plan, a package that does not cover
  it) re-renders the form with the reason next to its field, with the status the
  core error says, and nothing is made. An empty owner is refused by the form; any
  other the core looks up (one no account can have is not found, 404).

Decisions where the issue is silent: the list is newest first, 50 a page; after
a power action the browser goes back to the page the form was on (the list or
the server's own page); after a creation, to the new server's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.config import HostingPlanSettings
from guildhall.core.access.console import Area
from guildhall.core.accounts.models import Account
from guildhall.core.errors import CoreError, Invalid, NotFound
from guildhall.core.hosting.models import PowerState, Server
from guildhall.core.hosting.suspension import PANEL_DRIVER
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, local_path, runtime_of, screen, screen_action
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.forms import Pager
from guildhall.faces.console.render import back_to, page
from guildhall.runtime import Runtime

FORM_FIELDS = ("owner", "name", "plan")
MAX_PUBLIC_ID = 32
"""A server's public id is stored in 32 characters."""
ALIASES = {"account_not_found": "owner"}
"""An owner the core finds no account for is the owner field's error."""
RUNNING_ACTIONS = ("restart", "stop", "shutdown", "kill")


@dataclass(frozen=True, slots=True)
class ServerLine:
    """One server as the console shows it: its owner's name and its live state."""

    public_id: str
    name: str
    owner_id: int
    owner: str
    plan: str
    driver: str
    state: str
    ip_address: str
    created_at: datetime
    actions: tuple[str, ...]
    row: Server


def _line(runtime: Runtime, row: Server, owner: str) -> ServerLine:
    hosting = runtime.hosting
    powered_here = row.driver in hosting.drivers
    state = hosting.observed(row) if powered_here else PowerState(row.status)
    actions: tuple[str, ...] = ()
    if powered_here and state is PowerState.STOPPED:
        actions = ("start",)
    elif powered_here and state is PowerState.RUNNING:
        actions = RUNNING_ACTIONS
    return ServerLine(
        public_id=row.public_id,
        name=row.name,
        owner_id=row.account_id,
        owner=owner,
        plan=row.plan,
        driver=row.driver,
        state=state.value,
        ip_address=row.ip_address,
        created_at=row.created_at,
        actions=actions,
        row=row,
    )


def _describe(plan: HostingPlanSettings) -> str:
    if plan.driver == PANEL_DRIVER:
        return (
            f"game server: egg {plan.egg}, {plan.ram} MB RAM, {plan.disk} MB disk, {plan.cpu}% CPU"
        )
    if plan.driver == "process":
        return "a local process"
    return f"{plan.driver}: {plan.vcpus} vCPU, {plan.memory_mb} MB RAM, {plan.disk_gb} GB disk"


def plan_choices(runtime: Runtime) -> list[tuple[str, str]]:
    """The configured plans a server can be made in now: (name, what it is)."""
    drivers = runtime.hosting.drivers
    return [
        (name, _describe(plan))
        for name, plan in runtime.settings.hosting.plans.items()
        if plan.driver in drivers or (plan.driver == PANEL_DRIVER and runtime.games is not None)
    ]


async def _server_list(
    session: AsyncSession,
    visit: Visit,
    number: int,
    *,
    form: dict[str, str] | None = None,
    error: CoreError | None = None,
) -> Response:
    """The list page; with ``error``, the create form again with the reason in place."""
    runtime = runtime_of(visit.request)

    async def fetch(limit: int, offset: int) -> list[tuple[Server, str]]:
        query = (
            select(Server, Account.username)
            .join(Account, Account.id == Server.account_id)
            .order_by(Server.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [(row, owner) for row, owner in await session.execute(query)]

    found, has_next = await forms.read_page(number, fetch)
    lines = [_line(runtime, row, owner) for row, owner in found]
    return page(
        visit,
        "servers.html",
        status=status_of(error) if error is not None else 200,
        title="Servers",
        servers=lines,
        plans=plan_choices(runtime),
        form=form or {},
        errors=forms.placed(error, FORM_FIELDS, ALIASES) if error is not None else {},
        pager=Pager.of(visit, number, has_next, path="/servers", params={}),
        back=f"/servers?page={number}" if number > 1 else "/servers",
    )


async def list_servers(session: AsyncSession, visit: Visit) -> Response:
    return await _server_list(session, visit, forms.page_number(visit))


async def show_server(session: AsyncSession, visit: Visit) -> Response:
    public_id = forms.path_key(visit, "public_id", "server", MAX_PUBLIC_ID, code="server_not_found")
    found = (
        await session.execute(
            select(Server, Account.username)
            .join(Account, Account.id == Server.account_id)
            .where(Server.public_id == public_id)
        )
    ).first()
    if found is None:
        raise NotFound(f"server {public_id} not found", code="server_not_found")
    row, owner = found
    line = _line(runtime_of(visit.request), row, owner)
    return page(
        visit,
        "servers_detail.html",
        title=f"Server {line.public_id}",
        server=line,
        game=row.driver == PANEL_DRIVER,
        back=f"/servers/{line.public_id}",
    )


def _back(visit: Visit, default: str) -> str:
    """Where the form came from, if it is a servers page of this console."""
    target = local_path(visit.text("back"))
    return (
        target if target == "/servers" or target.startswith(("/servers?", "/servers/")) else default
    )


async def power(visit: Visit) -> Response:
    """SkyPANEL's power call, for any owner's server (no transaction across the driver)."""
    public_id = visit.request.path_params["public_id"]
    action = visit.text("action")
    view = await runtime_of(visit.request).hosting.power(public_id, action, visit.staff.actor)
    return back_to(
        visit,
        _back(visit, "/servers"),
        f"Server {view.public_id} ({view.name}): {action} done; it is {view.status.value}.",
    )


async def create_server(visit: Visit) -> Response:
    """A server in a plan, as ``guildhall servers create --plan`` makes one (no
    transaction across the driver or the panel)."""
    runtime = runtime_of(visit.request)
    form = {name: visit.text(name) for name in FORM_FIELDS}
    try:
        if not form["owner"]:
            raise Invalid("name the owner: an account id, username or any linked id", field="owner")
        public_id = await runtime.create_server(
            form["owner"], form["name"], form["plan"], visit.staff.actor
        )
    except CoreError as error:
        async with runtime.database.unit_of_work(write=False) as session:
            return await _server_list(session, visit, 1, form=forms.form_values(visit), error=error)
    return back_to(
        visit,
        f"/servers/{public_id}",
        f"Server {public_id} ({form['name']}) created for {form['owner']} on plan {form['plan']}.",
    )


ROUTES: list[BaseRoute] = [
    Route("/servers", screen(Area.SERVERS, list_servers), methods=["GET"]),
    Route("/servers", screen_action(Area.SERVERS, create_server), methods=["POST"]),
    Route("/servers/{public_id}", screen(Area.SERVERS, show_server), methods=["GET"]),
    Route("/servers/{public_id}/power", screen_action(Area.SERVERS, power), methods=["POST"]),
]
