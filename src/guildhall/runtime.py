"""What a running Guildhall process holds: settings, the database, the catalogue.

One :class:`Runtime` per process is shared by every face, so all faces see
one database and one ledger.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Collection, Coroutine
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from guildhall import filemodes
from guildhall.config import ConfigError, Settings
from guildhall.connectors.discord.aurora import AuroraBot
from guildhall.connectors.discord.connection import DiscordConnection
from guildhall.connectors.discord.directory import DirectorySync
from guildhall.connectors.discord.moderation import Moderation
from guildhall.connectors.discord.moderation import give_up_handlers as moderation_give_up
from guildhall.connectors.discord.moderation import job_handlers as moderation_jobs
from guildhall.connectors.discord.modmail import Modmail, job_handlers
from guildhall.connectors.hosting.process import ProcessDriver
from guildhall.connectors.messaging.loopback import LoopbackConnector
from guildhall.connectors.pterodactyl.panel import Pterodactyl
from guildhall.connectors.virtfusion.driver import VirtFusionDriver
from guildhall.core.access import panel
from guildhall.core.access.service import LastUsedTracker
from guildhall.core.accounts import service as accounts
from guildhall.core.actor import SYSTEM, Actor
from guildhall.core.errors import Invalid
from guildhall.core.hosting import suspension
from guildhall.core.hosting.driver import DriverError, HostingDriver
from guildhall.core.hosting.games import GameServers, RenewalRule
from guildhall.core.hosting.service import Hosting, HostingPlan
from guildhall.core.moderation import service as moderation
from guildhall.core.plans.service import Catalogue, Resources
from guildhall.core.sessions.connector import MessagingConnector
from guildhall.core.sessions.service import WATCH_SECONDS as SESSION_WATCH_SECONDS
from guildhall.core.sessions.service import SessionService
from guildhall.core.support import service as support
from guildhall.db import backup as backups
from guildhall.db.engine import CHECKPOINT_SECONDS, Database
from guildhall.db.migrate import is_current, upgrade
from guildhall.events import jobs, leases, outbox
from guildhall.events.webhooks import Webhooks
from guildhall.ratelimit import RateLimiter, RedisCounter, counter_for
from guildhall.secrets import Secrets, master_secret

CONNECT_TIMEOUT_SECONDS = 10
BACKGROUND_DRAIN_SECONDS = 10
HOUSEKEEPING_SECONDS = 3600
BAN_EXPIRY_SECONDS = 30
OUTBOX_RETENTION_DAYS = 7
PLATFORM_JOBS_SECONDS = 1
LOOTDROP_SWEEP_SECONDS = 2
RENEWAL_SECONDS = 60
HYPERVISOR_POLL_SECONDS = 10  # VirtFusion sends no events
BACKUP_CHECK_SECONDS = 60
BACKUP_HOLD_SECONDS = 3 * 3600  # longer than a backup takes: a second never starts beside it

logger = logging.getLogger(__name__)


def catalogue_from(settings: Settings) -> Catalogue:
    return Catalogue(
        default=settings.packages.default,
        packages={
            name: Resources(**package.model_dump())
            for name, package in settings.packages.list.items()
        },
    )


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Private to its owner (``guildhall.filemodes``); made by whatever first needs it.
        filemodes.tighten(settings.data_dir, filemodes.PRIVATE_DIRECTORY)
        self.database = Database(
            settings.resolved_database_url,
            pool_size=settings.database_pool_size,
        )
        self.catalogue = catalogue_from(settings)
        self.key_stamps = LastUsedTracker()
        self._background: set[asyncio.Task[object]] = set()
        self._periodic: list[asyncio.Task[None]] = []
        # Who holds a once-per-installation job's lease (``_every_holding``).
        self.holder = f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"

    @cached_property
    def secrets(self) -> Secrets:
        """Keys derived from the installation's secret (read or created on first use)."""
        return Secrets(master_secret(self.settings))

    @cached_property
    def sessions(self) -> SessionService:
        """Messaging-bot sessions over the configured connector."""
        config = self.settings.sessions
        connector: MessagingConnector
        if config.connector == "whatsapp":
            # Raises ConfigError, in one sentence, when neonize is not installed.
            from guildhall.connectors.whatsapp.connector import WhatsAppConnector

            store = config.whatsapp.store_dir
            connector = WhatsAppConnector(
                Path(store) if store else self.settings.data_dir.resolve() / "whatsapp",
                timeout=config.connector_timeout_seconds,
            )
        else:
            connector = LoopbackConnector(self.secrets.derive("connector:loopback"))
        return SessionService(
            self.database,
            connector,
            self.secrets.sealer("sessions:login-state"),
            holder=self.holder,
            pairing_ttl=timedelta(seconds=config.pairing_ttl_seconds),
            connector_timeout=config.connector_timeout_seconds,
            reconnect_max=config.whatsapp.reconnect_max_seconds,
        )

    @cached_property
    def discord(self) -> DiscordConnection | None:
        """The Discord connection (``connectors/discord``), or None without ``[discord] token``.

        Raises ConfigError, in one sentence, when hikari is not installed.
        """
        if not self.settings.discord.connects:
            return None
        return DiscordConnection(self.settings.discord, self.database)

    @cached_property
    def modmail(self) -> Modmail | None:
        """The modmail bot on the Discord connection, or None (no connection, or disabled)."""
        if self.discord is None or not self.settings.discord.modmail.enabled:
            return None
        return Modmail(self.discord, self.settings.discord.modmail, self.database)

    @cached_property
    def directory_sync(self) -> DirectorySync | None:
        """Keeps the guild directory true from the gateway, or None without a connection."""
        return None if self.discord is None else DirectorySync(self.discord, self.database)

    @cached_property
    def moderation_bot(self) -> Moderation | None:
        """Carries moderation cases out on Discord (the Aurora bot), or None."""
        if self.discord is None or not self.settings.discord.aurora.enabled:
            return None
        return Moderation(self.discord, self.database)

    @cached_property
    def aurora_bot(self) -> AuroraBot | None:
        """The Aurora bot's commands, quests and lootdrops on Discord, or None."""
        if self.discord is None or not self.settings.discord.aurora.enabled:
            return None
        return AuroraBot(
            self.discord,
            self.settings.discord.aurora,
            self.database,
            self.settings.faces.aurora.currency,
        )

    @property
    def moderates_on_discord(self) -> bool:
        return self.settings.discord.connects and self.settings.discord.aurora.enabled

    def wake_discord(self) -> None:
        """Have the Discord connection follow the bot's stored state now, if there is one."""
        if self.discord is not None:
            self.discord.wake()

    def spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` beside the requests, after the one that asked for it.

        For bookkeeping no client waits for (stamping a key's last use,
        reconnecting sessions after a restart): a failure is logged and never
        turns a committed request into an error. ``close`` waits for it a
        bounded time, then cancels it.
        """
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.warning("background work failed: %s", error)

    @cached_property
    def webhooks(self) -> Webhooks:
        """Webhook endpoints and the worker that delivers events to them."""
        return Webhooks(
            self.database, self.secrets.sealer("webhooks:secrets"), self.settings.webhooks
        )

    @cached_property
    def games(self) -> GameServers | None:
        """Game servers on the Pterodactyl panel, or None without ``[pterodactyl] url``."""
        config = self.settings.pterodactyl
        if not config.connects:
            return None
        rule = config.renewal
        renewal = (
            RenewalRule(
                cost=rule.cost,
                every=timedelta(days=rule.every_days),
                grace=timedelta(days=rule.grace_days),
            )
            if rule.enabled
            else None
        )
        return GameServers(
            self.database, Pterodactyl(config), self.catalogue, eggs=config.eggs, renewal=renewal
        )

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        """Counts requests per face, route group and client: in Redis when it is configured."""
        return RateLimiter(counter_for(self.settings.redis_url, self.settings.redis_prefix))

    @cached_property
    def hosting(self) -> Hosting:
        """Servers over the drivers the plans name: local processes (each in
        ``<data_dir>/servers/<id>``), libvirt, VirtFusion.

        Raises ConfigError, in one sentence, when a plan needs libvirt and its
        binding is not installed.
        """
        config = self.settings.hosting
        drivers: dict[str, HostingDriver] = {
            "process": ProcessDriver(start_check=config.start_check_seconds)
        }
        if config.uses("libvirt"):
            from guildhall.connectors.libvirt.driver import LibvirtDriver

            drivers["libvirt"] = LibvirtDriver(config.libvirt)
        if config.virtfusion.connects:
            drivers["virtfusion"] = VirtFusionDriver(config.virtfusion)
        plans = {
            name: HostingPlan(
                driver=plan.driver,
                command=plan.command,
                vcpus=plan.vcpus,
                memory_mb=plan.memory_mb,
                disk_gb=plan.disk_gb,
                image=plan.image,
            )
            for name, plan in config.plans.items()
        }
        return Hosting(
            self.database,
            drivers,
            plans=plans,
            servers_dir=self.settings.data_dir.resolve() / "servers",
            grace=config.shutdown_grace_seconds,
        )

    async def create_server(self, owner: str, name: str, plan: str, actor: Actor) -> str:
        """Make a server of ``plan`` for ``owner`` (an account id, username or any linked
        id), as ``guildhall servers create --plan`` and the console do; its public id.

        A plan on the ``pterodactyl`` driver is a game server on the panel, within the
        owner's package (``GameServers.create``); any other is recorded in one unit of
        work (``Hosting.create``) and then made on its driver after commit
        (``Hosting.provision``), so no transaction waits on a machine being made.
        """
        chosen = self.settings.hosting.plans.get(plan)
        if chosen is not None and chosen.driver == suspension.PANEL_DRIVER:
            if self.games is None:
                raise Invalid(
                    "game servers need a panel: set [pterodactyl] url and api_key", field="plan"
                )
            made = await self.games.create(
                owner,
                name,
                chosen.egg,
                ram=chosen.ram,
                disk=chosen.disk,
                cpu=chosen.cpu,
                actor=actor,
                plan=plan,
            )
            return made.public_id
        async with self.database.unit_of_work() as session:
            account = await accounts.resolve(session, owner)
            created = await self.hosting.create(session, account, name, plan, actor)
        await self.hosting.provision(created.public_id)
        return created.public_id

    async def start(self, faces: Collection[str]) -> None:
        """Start the background work the served ``faces`` need; returns at once.

        Called once per serving process. Always: the database's checkpoints
        (SQLite; see ``Database.checkpoint``) and the webhook worker (leases
        keep several processes from sending one delivery twice). With the LD7
        face: reconnect the sessions that were online before a restart (in the background, so
        the listeners start meanwhile) and sweep expired pairing codes. (With
        several processes each one does both; both lock rows and skip locked
        ones, so a session is moved once.)
        """
        self._every(CHECKPOINT_SECONDS, self.database.checkpoint)
        self._every(self.settings.webhooks.poll_seconds, self.webhooks.run_once)
        self._every(HOUSEKEEPING_SECONDS, self._housekeeping)
        self._every(BAN_EXPIRY_SECONDS, self._announce_expired_bans)
        if self.settings.backup.every_hours:
            self._every_holding(
                "backup", BACKUP_CHECK_SECONDS, self.backup_if_due, hold=BACKUP_HOLD_SECONDS
            )
        if any(driver.polled for driver in self.hosting.drivers.values()):
            self._every(HYPERVISOR_POLL_SECONDS, self.hosting.refresh)
        handlers: dict[str, jobs.Handler] = {}
        give_up: dict[str, jobs.GiveUp] = {}
        if self.discord is not None:
            self._start_discord(handlers, give_up)
        if self.games is not None:
            self._start_panel(self.games, handlers)
        if handlers:
            worker = jobs.Worker(self.database, handlers, give_up)
            self._every(PLATFORM_JOBS_SECONDS, worker.run_once)
        if "ld7" in faces:
            # The first watch reconnects the sessions that were online before a restart.
            self.spawn(self.resume_sessions())
            self._every(SESSION_WATCH_SECONDS, self._watch_sessions)
            self._every(self.settings.sessions.sweep_interval_seconds, self._expire_pairings)

    def _start_discord(
        self, handlers: dict[str, jobs.Handler], give_up: dict[str, jobs.GiveUp]
    ) -> None:
        """The gateway supervisor (it connects only while holding the lease); adds the
        handlers of Discord's platform jobs (closing a ticket's channel, a ban)."""
        if self.modmail is not None:
            handlers |= job_handlers(self.modmail)
        if self.moderation_bot is not None:
            handlers |= moderation_jobs(self.moderation_bot)
            give_up |= moderation_give_up(self.moderation_bot)
        _ = self.directory_sync  # subscribed before the first connection
        if self.aurora_bot is not None:
            self._every(LOOTDROP_SWEEP_SECONDS, self.aurora_bot.expire_lootdrops)
        assert self.discord is not None
        self._periodic.append(asyncio.get_running_loop().create_task(self.discord.supervise()))

    def _start_panel(self, games: GameServers, handlers: dict[str, jobs.Handler]) -> None:
        """The panel's refresh (userinfo's cache) and renewal, each held by one process per
        installation; adds the handler of the suspension job."""
        handlers[suspension.JOB] = games.run_suspension_job
        refresh_seconds = max(self.settings.pterodactyl.cache_seconds / 2, 0.5)

        async def refresh_panel() -> None:
            await games.refresh()
            await games.settle_unfinished()

        self._every_holding("pterodactyl-refresh", refresh_seconds, refresh_panel)
        self._every_holding("pterodactyl-renewal", RENEWAL_SECONDS, games.renew_due)

    def _every_holding(
        self,
        lease: str,
        seconds: float,
        job: Callable[[], Awaitable[object]],
        *,
        hold: float | None = None,
    ) -> None:
        """Run ``job`` every ``seconds`` in the one process that holds ``lease``, taken for
        ``hold`` seconds (by default three periods): longer than the job may take."""
        held_for = hold if hold is not None else max(seconds * 3, 30)

        async def if_holding() -> None:
            async with self.database.unit_of_work() as session:
                held = await leases.acquire(session, lease, self.holder, held_for)
            if held:
                await job()

        if_holding.__name__ = getattr(job, "__name__", lease)
        self._every(seconds, if_holding)

    async def backup_if_due(self) -> Path | None:
        """The scheduled backup, when the newest is ``every_hours`` old (or there is none);
        the oldest beyond ``keep`` go. Checked every minute by the lease holder, so a
        restart neither skips one nor makes one early."""
        config = self.settings.backup
        made = await backups.scheduled(
            self.database,
            self.settings.data_dir,
            config.dir,
            config.passphrase_file,
            timedelta(hours=config.every_hours),
            config.keep,
        )
        if made is not None:
            logger.info("Scheduled backup written to %s", made)
        return made

    async def resume_sessions(self) -> dict[str, str | None]:
        """Reconnect the online sessions no live process holds (after a restart: all of
        them), one at a time; each handle with why it could not reconnect, or None."""
        return await self.sessions.resume_all(SYSTEM)

    async def _watch_sessions(self) -> None:
        await self.sessions.watch(SYSTEM)

    async def _announce_expired_bans(self) -> None:
        async with self.database.unit_of_work() as session:
            await moderation.announce_expired(session, SYSTEM)

    async def _housekeeping(self) -> None:
        """Hourly: expired logins and browser sessions go, and old dispatched events."""
        async with self.database.unit_of_work() as session:
            await panel.purge_expired(session)
            await outbox.prune(session, timedelta(days=OUTBOX_RETENTION_DAYS))

    async def _expire_pairings(self) -> None:
        await self.sessions.expire_pairings(SYSTEM)

    def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except Exception:
                    logger.exception("periodic job %s failed", job.__name__)

        self._periodic.append(asyncio.get_running_loop().create_task(loop()))

    async def check_database(self) -> None:
        """Fail early, in one sentence, when the database cannot be reached."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                async with self.database.read_engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means the same to the operator
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"Cannot reach the database at {self.describe_database()}: {reason}"
            ) from None

    async def migrate(self) -> None:
        await self.check_database()
        await upgrade(self.database)

    async def prepare(self) -> None:
        """Make the database ready to serve.

        The embedded SQLite database is migrated in place; a shared
        PostgreSQL database is migrated only by ``guildhall migrate``, so
        several processes never race to change one schema. Secrets stored in
        plain text by an older version are then sealed.
        """
        if self.database.is_sqlite:
            await self.migrate()
        else:
            await self.check_database()
            if not await is_current(self.database):
                raise ConfigError(
                    f"The database at {self.describe_database()} is not at the current schema; "
                    "run `guildhall migrate` first."
                )
        await self._seal_stored_secrets()
        _ = self.modmail  # without hikari, the start stops here with what to install
        _ = self.sessions  # so does connector = "whatsapp" without neonize
        if len(self.hosting.drivers) > 1:
            try:
                await self.hosting.open()  # a hypervisor's machines, with their real state
            except DriverError as exc:
                # Not a reason to refuse to start: the other faces serve, and the driver
                # connects again on its next call.
                logger.warning("A hosting driver is not reachable yet: %s", exc)

    async def _seal_stored_secrets(self) -> None:
        """Seal the bot secrets an older version stored in plain text (see
        ``core/support/service.py``); a look in a read unit of work when there are none."""
        async with self.database.unit_of_work(write=False) as session:
            if not await support.has_plain_secrets(session):
                return
        async with self.database.unit_of_work() as session:
            sealed = await support.seal_stored_secrets(
                session, self.secrets.sealer(support.SEAL_PURPOSE), SYSTEM
            )
        if sealed:
            logger.warning("Sealed %d bot secret(s) that were stored in plain text.", sealed)

    async def check_redis(self) -> str | None:
        """One sentence for the operator when ``redis_url`` is set and Redis does not answer.

        Not a reason to refuse to start: the rate limits are then counted in
        each process until Redis answers (``guildhall/ratelimit.py``).
        """
        counter = self.rate_limiter.counter
        if not isinstance(counter, RedisCounter):
            return None
        reason = await counter.ping()
        if reason is None:
            return None
        return (
            f"Redis does not answer ({reason}): rate limits are counted in this process "
            "until it does."
        )

    def describe_database(self) -> str:
        return self.describe_url(self.settings)

    @staticmethod
    def describe_url(settings: Settings) -> str:
        """The database URL without its password, for messages."""
        return make_url(settings.resolved_database_url).render_as_string(hide_password=True)

    async def drain(self) -> None:
        """Wait (for a bounded time) for the background work started so far."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=BACKGROUND_DRAIN_SECONDS)

    async def close(self) -> None:
        for task in self._periodic:
            task.cancel()
        await asyncio.gather(*self._periodic, return_exceptions=True)
        await self.drain()
        # What did not finish in time stops here, before the database closes under it.
        unfinished = set(self._background)
        for job in unfinished:
            job.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        if "rate_limiter" in self.__dict__:
            await self.rate_limiter.close()
        if "webhooks" in self.__dict__:
            await self.webhooks.close()
        if "discord" in self.__dict__ and self.discord is not None:
            await self.discord.close()  # the supervisor does on cancel; this covers one never run
        if "hosting" in self.__dict__:
            await self.hosting.close()
        if "games" in self.__dict__ and self.games is not None:
            await self.games.panel.close()
        if "sessions" in self.__dict__:
            # Connections close; sessions stay "online" so the next start resumes them.
            await self.sessions.close()
        await self.database.dispose()
