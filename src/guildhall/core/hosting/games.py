"""Game servers on a panel: Heliactyl's servers, within the package that pays for them.

The panel (``core/hosting/panel.py``) is called with no unit of work open, so
every change is three steps, like a power action in ``service.py``:

1. a short transaction checks and records what is about to happen: a new
   server is reserved under the owner's account lock, so two creations at
   once cannot both fit in what is left of the package;
2. the panel call;
3. a short transaction records what the panel did (a failed creation
   releases its reservation: nothing is left half-made).

A reservation whose creation never finished (Guildhall stopped during the
call) is settled by the refresh pass: the panel is asked for a server with
that external id, and the row either gets its panel id or goes.

- **Panel users.** An account gets its panel user on first need (found by
  external id = the account's uuid, or by email, else created); the panel id
  is stored only once the panel has the user.
- **What userinfo shows** is the panel's own user object with its servers,
  cached in ``panel_users.document`` by a refresh that one process per
  installation runs (a lease) every ``cache_seconds / 2``; a request reads the
  cache and never waits on the panel.
- **Suspension** follows one rule (``suspension.py``): suspended while the
  owner is banned or a renewal is unpaid.
- **Renewal**, as Heliactyl does it: on its date a server costs the renewal
  cost through the ledger (type ``renewal``); an owner with a renewal bypass
  renews free; one who cannot pay has it suspended, and deleted after the
  grace period unless a later pass can take the coins. The renewal date moves
  forward in the transaction that takes the coins, under the server's row
  lock, so a renewal is charged once however often the pass runs.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import SYSTEM, Actor
from guildhall.core.economy import service as economy
from guildhall.core.economy.service import EntryType
from guildhall.core.errors import Conflict, Invalid, LimitExceeded, NotFound, Unavailable
from guildhall.core.hosting import removal, suspension
from guildhall.core.hosting.models import PanelUser, PowerState, Server
from guildhall.core.hosting.panel import GamePanel, GameServerSpec, PanelError, PanelPerson
from guildhall.core.hosting.suspension import JOB, PANEL_DRIVER
from guildhall.core.moderation import service as moderation
from guildhall.core.plans import service as plans
from guildhall.core.plans.service import Catalogue
from guildhall.core.text import storable
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.db.sql import insert_ignore
from guildhall.events import jobs
from guildhall.events.announce import announce

MAX_NAME_LENGTH = 100
MAX_RESOURCE = 2**31 - 1  # the panel's integer columns
UNFINISHED_AFTER = timedelta(minutes=10)  # longer than any creation call takes
DUE_PER_PASS = 200

logger = logging.getLogger(__name__)

_panel_users = PanelUser.__table__


@dataclass(frozen=True, slots=True)
class RenewalRule:
    cost: int
    every: timedelta
    grace: timedelta


@dataclass(frozen=True, slots=True)
class GameServerView:
    public_id: str
    account_id: int
    name: str
    egg: str
    ram: int
    disk: int
    cpu: int
    panel_id: int | None
    renews_at: datetime | None
    suspended: bool

    @classmethod
    def of(cls, row: Server) -> GameServerView:
        return cls(
            row.public_id,
            row.account_id,
            row.name,
            row.egg or "",
            row.ram,
            row.disk,
            row.cpu,
            row.panel_id,
            row.renews_at,
            row.suspended,
        )

    def event_data(self) -> dict[str, Any]:
        return {
            "id": self.public_id,
            "name": self.name,
            "egg": self.egg,
            "panel_id": self.panel_id,
            "suspended": self.suspended,
        }


@dataclass(frozen=True, slots=True)
class RenewalPass:
    """What one renewal pass did, by server public id."""

    renewed: list[str]
    bypassed: list[str]
    unpaid: list[str]
    deleted: list[str]


def _unavailable(error: PanelError) -> Unavailable | Invalid:
    """The panel's answer as the core error a face or the CLI shows in one sentence."""
    if error.transient:
        return Unavailable(str(error), code="panel_unavailable")
    return Invalid(str(error), code="panel_refused")


class GameServers:
    """Game servers of one panel, for the accounts of this installation."""

    def __init__(
        self,
        database: Database,
        panel: GamePanel,
        catalogue: Catalogue,
        *,
        eggs: Collection[str],
        renewal: RenewalRule | None,
    ) -> None:
        self.database = database
        self.panel = panel
        self.catalogue = catalogue
        self.eggs = tuple(eggs)
        self.renewal = renewal

    # ---- creating and deleting ------------------------------------------------

    async def create(
        self,
        owner: str,
        name: str,
        egg: str,
        *,
        ram: int,
        disk: int,
        cpu: int,
        actor: Actor,
        plan: str | None = None,
    ) -> GameServerView:
        """Create a server for ``owner`` on the panel if the owner's package still covers it."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH or not storable(name):
            raise Invalid(f"a server name is 1 to {MAX_NAME_LENGTH} characters", field="name")
        if egg not in self.eggs:
            known = ", ".join(self.eggs) or "none configured"
            raise Invalid(f"egg {egg!r} is not under [pterodactyl.eggs] ({known})", field="egg")
        for field, value in (("ram", ram), ("disk", disk), ("cpu", cpu)):
            if not 1 <= value <= MAX_RESOURCE:
                raise Invalid(f"{field} must be a whole number from 1 to {MAX_RESOURCE}")
        public_id = f"server-{secrets.token_hex(6)}"
        async with self.database.unit_of_work() as session:
            account = await accounts.resolve(session, owner)
            await self._check_fits(session, account, ram, disk, cpu)
            now = utcnow()
            session.add(
                Server(
                    public_id=public_id,
                    account_id=account.id,
                    name=name,
                    plan=plan or egg,
                    driver=PANEL_DRIVER,
                    status=PowerState.STOPPED.value,
                    ip_address="",
                    egg=egg,
                    ram=ram,
                    disk=disk,
                    cpu=cpu,
                    renews_at=now + self.renewal.every if self.renewal else None,
                )
            )
            await session.flush()
        try:
            owner_panel_id = await self.panel_user(account)
            panel_id = await self.panel.create_server(
                GameServerSpec(public_id, name, owner_panel_id, egg, ram, disk, cpu)
            )
        except (PanelError, Invalid) as exc:
            if isinstance(exc, PanelError) and exc.transient:
                # The panel may have made it before failing to answer: the reservation
                # stays, and the refresh pass settles it (settle_unfinished) either way.
                raise _unavailable(exc) from None
            async with self.database.unit_of_work() as session:
                row = await session.scalar(select(Server).where(Server.public_id == public_id))
                if row is not None:
                    await session.delete(row)
            raise _unavailable(exc) if isinstance(exc, PanelError) else exc from None
        async with self.database.unit_of_work() as session:
            row = await self._row(session, public_id)
            row.panel_id = panel_id
            await session.flush()
            await suspension.recheck(session, account.id)  # a ban that came meanwhile
            view = GameServerView.of(row)
            await announce(
                session,
                actor,
                "server.created",
                f"{actor.name} created game server {public_id} ({name}, egg {egg}, "
                f"{ram} MB RAM, {disk} MB disk, {cpu}% CPU) for {account.describe()} "
                f"on the panel (server #{panel_id})",
                view.event_data(),
                target_account_id=account.id,
                target=f"server:{public_id}",
            )
        await self._refresh_quietly(account.id)
        return view

    async def _check_fits(
        self, session: AsyncSession, account: AccountRef, ram: int, disk: int, cpu: int
    ) -> None:
        """Refuse, naming what is short, a server the package plus extra cannot cover.

        The account row is locked first, so creations for one account take turns.
        """
        await session.execute(select(Account.id).where(Account.id == account.id).with_for_update())
        if await moderation.active_ban(session, account.id) is not None:
            raise Invalid(f"{account.describe()} is banned", code="banned")
        plan = await plans.get(session, account.id, self.catalogue)
        count, used_ram, used_disk, used_cpu = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(Server.ram), 0),
                    func.coalesce(func.sum(Server.disk), 0),
                    func.coalesce(func.sum(Server.cpu), 0),
                ).where(Server.account_id == account.id, Server.driver == PANEL_DRIVER)
            )
        ).one()
        asked = {"servers": 1, "ram": ram, "disk": disk, "cpu": cpu}
        used = {"servers": count, "ram": used_ram, "disk": used_disk, "cpu": used_cpu}
        units = {"servers": "", "ram": " MB", "disk": " MB", "cpu": "%"}
        words = {"servers": "servers", "ram": "RAM", "disk": "disk", "cpu": "CPU"}
        short = []
        for resource in plans.RESOURCES:
            allowed = getattr(plan.package, resource) + getattr(plan.extra, resource)
            if used[resource] + asked[resource] > allowed:
                unit = units[resource]
                left = max(allowed - used[resource], 0)
                short.append(
                    f"{words[resource]} (asked {asked[resource]}{unit}, "
                    f"{left}{unit} left of {allowed}{unit})"
                )
        if short:
            raise LimitExceeded(
                f"the package of {account.describe()} does not cover this server: "
                f"not enough {', '.join(short)}",
                code="plan_exceeded",
            )

    async def delete(self, public_id: str, actor: Actor, *, why: str = "") -> GameServerView:
        """Delete the server on the panel, then here."""
        async with self.database.unit_of_work(write=False) as session:
            row = await self._row(session, public_id)
            view = GameServerView.of(row)
        if view.panel_id is not None:
            try:
                await self.panel.delete_server(view.panel_id)
            except PanelError as exc:
                raise _unavailable(exc) from None
        async with self.database.unit_of_work() as session:
            locked = await session.scalar(
                select(Server).where(Server.public_id == public_id).with_for_update()
            )
            if locked is not None:
                sentence = f"{actor.name} deleted game server {public_id} ({view.name})"
                await removal.remove(
                    session,
                    locked,
                    actor,
                    sentence + (f": {why}" if why else ""),
                    {**view.event_data(), "reason": why or None},
                )
        await self._refresh_quietly(view.account_id)
        return view

    async def is_game_server(self, public_id: str) -> bool:
        async with self.database.unit_of_work(write=False) as session:
            driver = await session.scalar(
                select(Server.driver).where(Server.public_id == public_id)
            )
        return driver == PANEL_DRIVER

    async def list_for(self, account_id: int) -> list[GameServerView]:
        async with self.database.unit_of_work(write=False) as session:
            rows = await session.scalars(
                select(Server)
                .where(Server.account_id == account_id, Server.driver == PANEL_DRIVER)
                .order_by(Server.id)
            )
            return [GameServerView.of(row) for row in rows]

    async def _row(self, session: AsyncSession, public_id: str) -> Server:
        row = await session.scalar(
            select(Server).where(Server.public_id == public_id, Server.driver == PANEL_DRIVER)
        )
        if row is None:
            raise NotFound(
                f"game server {public_id} not found", code="server_not_found", field="server"
            )
        return row

    # ---- panel users ------------------------------------------------------------

    async def panel_user(self, account: AccountRef) -> int:
        """The account's panel user id, made on the panel first if it has none yet."""
        async with self.database.unit_of_work(write=False) as session:
            linked = await session.scalar(
                select(PanelUser.panel_user_id).where(PanelUser.account_id == account.id)
            )
            if linked is not None:
                return linked
            person = await accounts.view(session, account.id)
        if not person.email:
            raise Invalid(
                f"{account.describe()} has no email address, and the panel needs one "
                "for its user (set it with guildhall users create or a panel login)",
                code="email_needed",
            )
        found = await self.panel.find_or_create_user(
            PanelPerson(
                external_id=person.uuid,
                email=person.email,
                username=person.username,
                first_name=person.first_name or person.username,
                last_name=person.last_name or person.username,
            )
        )
        async with self.database.unit_of_work() as session:
            await insert_ignore(
                session, _panel_users, {"account_id": account.id, "panel_user_id": found}
            )
            stored = await session.scalar(
                select(PanelUser.panel_user_id).where(PanelUser.account_id == account.id)
            )
            if stored == found:
                await announce(
                    session,
                    SYSTEM,
                    "panel.user_linked",
                    f"{account.describe()} is panel user #{found}",
                    {"userId": account.subject, "panel_user_id": found},
                    target_account_id=account.id,
                    target=f"account:{account.id}",
                )
        if stored != found:
            raise Conflict(
                f"panel user #{found} already belongs to another account here; "
                f"{account.describe()} needs its own email on the panel",
                code="panel_user_taken",
            )
        return found

    # ---- what userinfo shows ----------------------------------------------------

    async def refresh(self, account_id: int | None = None) -> int:
        """Fetch the panel's view of the linked accounts (or one); how many were stored."""
        async with self.database.unit_of_work(write=False) as session:
            query = select(PanelUser.panel_user_id, PanelUser.account_id)
            if account_id is not None:
                query = query.where(PanelUser.account_id == account_id)
            linked = {panel_id: owner for panel_id, owner in await session.execute(query)}
        if not linked:
            return 0
        try:
            documents = await self.panel.users_with_servers(set(linked))
        except PanelError as exc:
            raise _unavailable(exc) from None
        now = utcnow()
        async with self.database.unit_of_work() as session:
            for panel_user_id, document in documents.items():
                await session.execute(
                    update(PanelUser)
                    .where(PanelUser.account_id == linked[panel_user_id])
                    .values(document=document, refreshed_at=now)
                )
        return len(documents)

    async def _refresh_quietly(self, account_id: int) -> None:
        """After a change: the cache catches up now, or at the next pass if the panel is away."""
        try:
            await self.refresh(account_id)
        except (Unavailable, Invalid) as exc:
            logger.warning("panel view of account #%d not refreshed: %s", account_id, exc)

    async def settle_unfinished(self, older_than: timedelta = UNFINISHED_AFTER) -> int:
        """Settle reservations whose creation never finished (Guildhall stopped, or the
        panel failed to answer): each gets its panel id, or goes; how many."""
        before = utcnow() - older_than
        async with self.database.unit_of_work(write=False) as session:
            unfinished = list(
                await session.scalars(
                    select(Server.public_id).where(
                        Server.driver == PANEL_DRIVER,
                        Server.panel_id.is_(None),
                        Server.created_at < before,
                    )
                )
            )
        for public_id in unfinished:
            try:
                panel_id = await self.panel.find_server(public_id)
            except PanelError as exc:
                logger.warning("cannot settle game server %s yet: %s", public_id, exc)
                continue
            async with self.database.unit_of_work() as session:
                row = await session.scalar(
                    select(Server).where(Server.public_id == public_id).with_for_update()
                )
                if row is None or row.panel_id is not None:
                    continue
                if panel_id is None:
                    await session.delete(row)
                else:
                    row.panel_id = panel_id
                    await session.flush()
                    await suspension.recheck(session, row.account_id)
        return len(unfinished)

    # ---- suspension -------------------------------------------------------------

    async def sync_suspension(self, account_id: int) -> list[str]:
        """Suspend or unsuspend the account's servers on the panel to follow the rule
        (banned, or a renewal unpaid); the public ids that changed."""
        async with self.database.unit_of_work(write=False) as session:
            banned = await moderation.active_ban(session, account_id) is not None
            rows = list(
                await session.scalars(
                    select(Server).where(
                        Server.account_id == account_id,
                        Server.driver == PANEL_DRIVER,
                        Server.panel_id.is_not(None),
                    )
                )
            )
            wanted = {
                row.public_id: (row.panel_id, banned or row.unpaid_since is not None)
                for row in rows
                if (banned or row.unpaid_since is not None) != row.suspended
            }
        for panel_id, suspended in wanted.values():
            assert panel_id is not None
            await self.panel.set_suspended(panel_id, suspended)
        async with self.database.unit_of_work() as session:
            await session.execute(
                select(Account.id).where(Account.id == account_id).with_for_update()
            )
            banned_now = await moderation.active_ban(session, account_id) is not None
            for public_id, (_, suspended) in wanted.items():
                row = await session.scalar(
                    select(Server).where(Server.public_id == public_id).with_for_update()
                )
                if row is None or row.suspended == suspended:
                    continue
                if (banned_now or row.unpaid_since is not None) != suspended:
                    # The rule changed while the panel was being called (an unban during
                    # a ban's job): have the panel follow it again.
                    await jobs.enqueue(session, JOB, {"account_id": account_id})
                row.suspended = suspended
                reason = "owner banned" if banned else "renewal unpaid"
                await announce(
                    session,
                    SYSTEM,
                    "server.suspended" if suspended else "server.unsuspended",
                    f"game server {public_id} ({row.name}) "
                    + (f"suspended on the panel: {reason}" if suspended else "unsuspended"),
                    {
                        **GameServerView.of(row).event_data(),
                        "reason": reason if suspended else None,
                    },
                    target_account_id=account_id,
                    target=f"server:{public_id}",
                )
        if wanted:
            await self._refresh_quietly(account_id)
        return list(wanted)

    async def run_suspension_job(self, payload: dict[str, Any]) -> None:
        """The platform job (``suspension.JOB``): a failure is retried by the worker."""
        try:
            await self.sync_suspension(int(payload["account_id"]))
        except PanelError as exc:
            if not exc.transient:
                raise jobs.Permanent(str(exc)) from None
            raise

    # ---- renewal ----------------------------------------------------------------

    async def renew_due(self, now: datetime | None = None) -> RenewalPass:
        """Renew each server whose date has come (see the module notes)."""
        result = RenewalPass([], [], [], [])
        if self.renewal is None:
            return result
        now = now or utcnow()
        async with self.database.unit_of_work(write=False) as session:
            due = list(
                await session.scalars(
                    select(Server.public_id)
                    .where(
                        Server.driver == PANEL_DRIVER,
                        Server.panel_id.is_not(None),
                        Server.renews_at <= now,
                    )
                    # Newly due before those already unpaid (retried each pass), so many
                    # unpaid servers never keep a renewal from being charged.
                    .order_by(Server.unpaid_since.is_not(None), Server.renews_at)
                    .limit(DUE_PER_PASS)
                )
            )
        for public_id in due:
            outcome = await self._renew(public_id, now, self.renewal)
            if outcome == "delete":
                try:
                    await self.delete(public_id, SYSTEM, why="renewal unpaid past the grace period")
                except (Unavailable, Invalid, NotFound) as exc:
                    logger.warning("game server %s not deleted yet: %s", public_id, exc)
                    continue
                result.deleted.append(public_id)
            elif outcome is not None:
                getattr(result, outcome).append(public_id)
        return result

    async def _renew(self, public_id: str, now: datetime, rule: RenewalRule) -> str | None:
        """One server's renewal in one transaction: renewed, bypassed, unpaid, delete, or
        None when another pass got there first or nothing changes."""
        async with self.database.unit_of_work() as session:
            row = await session.scalar(
                select(Server).where(Server.public_id == public_id).with_for_update()
            )
            if row is None or row.renews_at is None or row.renews_at > now:
                return None
            owner = await accounts.resolve(session, str(row.account_id))
            plan = await plans.get(session, row.account_id, self.catalogue)
            was_unpaid = row.unpaid_since is not None
            paid = plan.renewal_bypass
            if not paid:
                try:
                    if rule.cost:
                        await economy.adjust(
                            session,
                            owner,
                            -rule.cost,
                            actor=SYSTEM,
                            entry_type=EntryType.RENEWAL,
                            reason=f"renewal of server {public_id} due {row.renews_at.isoformat()}",
                        )
                    paid = True
                except LimitExceeded:
                    paid = False
            view = GameServerView.of(row)
            if paid:
                how = "free (renewal bypass)" if plan.renewal_bypass else f"for {rule.cost} coins"
                row.renews_at = row.renews_at + rule.every
                row.unpaid_since = None
                await announce(
                    session,
                    SYSTEM,
                    "server.renewed",
                    f"game server {public_id} ({row.name}) of {owner.describe()} renewed {how} "
                    f"until {row.renews_at.isoformat()}",
                    {
                        **view.event_data(),
                        "cost": 0 if plan.renewal_bypass else rule.cost,
                        "bypass": plan.renewal_bypass,
                        "renews_at": row.renews_at.isoformat(),
                    },
                    target_account_id=row.account_id,
                    target=f"server:{public_id}",
                )
                if was_unpaid:
                    await jobs.enqueue(session, JOB, {"account_id": row.account_id})
                return "bypassed" if plan.renewal_bypass else "renewed"
            if row.unpaid_since is None:
                row.unpaid_since = now
                await announce(
                    session,
                    SYSTEM,
                    "server.renewal_failed",
                    f"game server {public_id} ({row.name}) of {owner.describe()} is unpaid "
                    f"({rule.cost} coins due): suspended, and deleted after "
                    f"{(now + rule.grace).isoformat()} unless renewed",
                    {**view.event_data(), "cost": rule.cost},
                    target_account_id=row.account_id,
                    target=f"server:{public_id}",
                )
                await jobs.enqueue(session, JOB, {"account_id": row.account_id})
                return "unpaid"
            if row.unpaid_since + rule.grace <= now:
                return "delete"
            return None
