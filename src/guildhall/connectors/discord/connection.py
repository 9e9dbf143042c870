"""The Discord connection: a gateway session in one process, REST in every process.

Every serving process with ``[discord] token`` set runs ``supervise``: it
follows the bot's stored state (``/api/bot/start``, ``stop``, ``restart`` and
the CLI change it, in any process) and, while the bot should run, takes or
renews the installation's gateway lease (``events/leases.py``). The process
holding the lease connects; the others serve the API and send REST calls.
A holder that dies stops renewing; another takes the lease once it expires
(``LEASE_SECONDS``), so the bot is back within 30 s.

Status is what the holder sees, stored in ``bot_state``: READY (since when,
for ``uptime``) or not and why (``support.status``). hikari resumes a dropped
session (RESUME, else a new IDENTIFY) with its own backoff; meanwhile the
status is offline. A token Discord refuses leaves the bot offline with the
reason, logged once, and is not tried again until the next start or restart.
``/api/bot/restart`` is seen as a newer ``started_at`` and reconnects.

The presence (``POST /api/bot/presence``, the configuration's ``bot.status``)
is sent on IDENTIFY and, when it changes, to the running session.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from guildhall.config import DiscordSettings
from guildhall.connectors.discord import load_hikari
from guildhall.core.community import service as community
from guildhall.core.errors import Unavailable
from guildhall.core.support import service as support
from guildhall.core.support.models import BotState
from guildhall.db.engine import Database
from guildhall.events import leases

T = TypeVar("T")

LEASE = "discord.gateway"
LEASE_SECONDS = 20
RECONCILE_SECONDS = 4
CONNECT_TIMEOUT_SECONDS = 10  # well inside the lease, renewed before and after
TOKEN_CLOSE_CODE = 4004
REFUSED_TOKEN = "Discord refused the bot token (401 Unauthorized)"

logger = logging.getLogger("guildhall.discord")

Listener = tuple[type, Callable[[Any], Awaitable[None]]]


def intents() -> Any:
    hikari = load_hikari()
    flags = hikari.Intents
    return (
        flags.GUILDS
        | flags.GUILD_MEMBERS
        | flags.GUILD_MODERATION
        | flags.GUILD_MESSAGES
        | flags.DM_MESSAGES
        | flags.MESSAGE_CONTENT
    )


class DiscordConnection:
    def __init__(self, settings: DiscordSettings, database: Database) -> None:
        self.hikari = load_hikari()
        self.settings = settings
        self.database = database
        self.holder = f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.listeners: list[Listener] = []
        self.bot: Any = None
        self._rest_app: Any = None
        self._rest: Any = None
        self._wake = asyncio.Event()
        self._rest_lock = asyncio.Lock()
        self._renewed_at = 0.0  # loop time of the last lease renewal that succeeded
        self._generation: datetime | None = None  # the started_at the session was made for
        self._refused: datetime | None = None  # the generation whose token Discord refused
        self._presence: str | None = None
        self._holding = False
        self._me: str | None = None

    def bot_user_id(self) -> str:
        """The bot's own user id: from READY, or from the token (its first part)."""
        if self._me is None:
            first = self.settings.token.split(".", 1)[0]
            padded = first + "=" * (-len(first) % 4)
            try:
                self._me = base64.urlsafe_b64decode(padded).decode("ascii")
            except (ValueError, UnicodeDecodeError):
                return ""
        return self._me

    # ---- REST, from any process ----------------------------------------------

    async def rest(self) -> Any:
        """The REST client (made once, on first use: hikari keeps the rate-limit buckets)."""
        async with self._rest_lock:
            return await self._make_rest()

    async def _make_rest(self) -> Any:
        if self._rest is None:
            hikari = self.hikari
            timeouts = hikari.impl.HTTPTimeoutSettings(total=self.settings.timeout_seconds)
            app = hikari.RESTApp(
                url=self.settings.api_url, http_settings=hikari.impl.HTTPSettings(timeouts=timeouts)
            )
            await app.start()
            client = app.acquire(self.settings.token, hikari.TokenType.BOT)
            client.start()
            self._rest_app, self._rest = app, client
        return self._rest

    # ---- the gateway, in the lease holder -------------------------------------

    def subscribe(self, event_type: type, callback: Callable[[Any], Awaitable[None]]) -> None:
        """Have ``callback`` called for ``event_type`` on every session this process holds."""
        self.listeners.append((event_type, callback))

    def wake(self) -> None:
        """Follow the stored state now (after a start, stop, restart or presence change)."""
        self._wake.set()

    async def supervise(self) -> None:
        """Follow the stored state until cancelled; never raises."""
        try:
            while True:
                try:
                    await self.reconcile()
                except Exception:
                    logger.exception("Discord: following the bot's state failed")
                    await self._unless_renewed()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RECONCILE_SECONDS)
                self._wake.clear()
        finally:
            await self.close()

    async def reconcile(self) -> None:
        async with self.database.unit_of_work(write=False) as session:
            state = await session.get(BotState, 1)
            presence = (await community.settings(session, support.CONFIG))["bot"]["status"]
        wanted = bool(state and state.online)
        generation = state.started_at if state else None
        if not wanted:
            await self._disconnect("stopped")
            if self._holding:
                async with self.database.unit_of_work() as session:
                    await leases.release(session, LEASE, self.holder)
                self._holding = False
            return
        if not await self._renew():
            await self._disconnect(None)  # another process holds the gateway now
            return
        if self.bot is not None and not self.bot.is_alive:
            await self._disconnect(None)  # hikari gave the session up (closed by Discord)
        if self.bot is not None and generation != self._generation:
            await self._disconnect("restarting")
        if self.bot is None and self._refused != generation:
            await self._connect(generation, presence)
            await self._renew()  # connecting may have taken a while
        elif self.bot is not None and presence != self._presence:
            await self.bot.update_presence(activity=self._activity(presence))
            self._presence = presence

    async def _renew(self) -> bool:
        async with self.database.unit_of_work() as session:
            self._holding = await leases.acquire(session, LEASE, self.holder, LEASE_SECONDS)
        if self._holding:
            self._renewed_at = asyncio.get_running_loop().time()
        return self._holding

    async def _unless_renewed(self) -> None:
        """A holder that cannot renew (the database is away) lets go before its lease
        expires, so another process never connects beside it."""
        held_for = asyncio.get_running_loop().time() - self._renewed_at
        if self.bot is not None and held_for > LEASE_SECONDS - 2 * RECONCILE_SECONDS:
            await self._disconnect(None)

    def _activity(self, text: str) -> Any:
        hikari = self.hikari
        return hikari.Activity(name=text, state=text, type=hikari.ActivityType.CUSTOM)

    async def _connect(self, generation: datetime | None, presence: str) -> None:
        hikari = self.hikari
        timeouts = hikari.impl.HTTPTimeoutSettings(total=self.settings.timeout_seconds)
        try:
            bot = hikari.GatewayBot(
                self.settings.token,
                rest_url=self.settings.api_url,
                intents=intents(),
                banner=None,
                logs=None,
                suppress_optimization_warning=True,
                http_settings=hikari.impl.HTTPSettings(timeouts=timeouts),
            )
        except ValueError:  # hikari reads the bot's id out of the token
            self._refused = generation
            logger.error("Discord: [discord] token is not a bot token")
            await self._record(ready=False, reason="[discord] token is not a Discord bot token")
            return
        bot.subscribe(hikari.ShardReadyEvent, self._on_ready)
        bot.subscribe(hikari.ShardResumedEvent, self._on_resumed)
        bot.subscribe(hikari.ShardDisconnectedEvent, self._on_disconnected)
        for event_type, callback in self.listeners:
            bot.subscribe(event_type, callback)
        self._generation, self._presence = generation, presence
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await bot.start(check_for_updates=False, activity=self._activity(presence))
        except hikari.UnauthorizedError:
            self._refused = generation
            await self._offline(bot, REFUSED_TOKEN)
            return
        except hikari.GatewayServerClosedConnectionError as exc:
            if not exc.can_reconnect:  # 4004 a refused token, 4014 intents not enabled...
                self._refused = generation
            reason = REFUSED_TOKEN if exc.code == TOKEN_CLOSE_CODE else f"Discord closed: {exc}"
            await self._offline(bot, reason)
            return
        except Exception as exc:  # unreachable, timeouts: tried again on the next round
            await self._offline(bot, f"cannot reach Discord: {exc or type(exc).__name__}")
            return
        except BaseException:  # cancelled mid-connect (Guildhall stopping): leave nothing open
            with contextlib.suppress(Exception):
                await asyncio.shield(bot.close())
            raise
        self.bot = bot
        logger.info("Discord: connected as the gateway holder (%s)", self.holder)

    async def _offline(self, bot: Any, reason: str) -> None:
        logger.error("Discord: the bot is offline: %s", reason)
        with contextlib.suppress(Exception):
            await bot.close()
        await self._record(ready=False, reason=reason)

    async def _disconnect(self, reason: str | None) -> None:
        bot, self.bot = self.bot, None
        if bot is None:
            return
        with contextlib.suppress(Exception):
            await bot.close()
        logger.info("Discord: disconnected (%s)", reason or "another process holds the gateway")
        if reason is not None:
            await self._record(ready=False, reason=reason)

    async def _record(self, **what: Any) -> None:
        try:
            async with self.database.unit_of_work() as session:
                await support.record_gateway(session, **what)
        except Exception:
            logger.exception("Discord: could not record the gateway's state")

    async def _on_ready(self, event: Any) -> None:
        logger.info("Discord: session READY as %s", event.my_user)
        self._me = str(event.my_user.id)
        await self._record(ready=True, new_session=True, guild_count=len(event.unavailable_guilds))

    async def _on_resumed(self, _event: Any) -> None:
        logger.info("Discord: session resumed")
        await self._record(ready=True)

    async def _on_disconnected(self, _event: Any) -> None:
        if self.bot is not None:
            logger.warning("Discord: connection lost, reconnecting")
            await self._record(ready=False, reason="connection lost; reconnecting")

    async def call(self, work: Awaitable[T]) -> T:
        """Await a Discord call for a face: Discord's refusals and silence as
        ``Unavailable`` (the faces' 502), never a 500."""
        try:
            return await work
        except self.hikari.HikariError as exc:
            raise Unavailable(f"Discord refused or did not answer: {exc}") from None
        except OSError as exc:
            raise Unavailable(f"Discord could not be reached: {exc}") from None

    async def close(self) -> None:
        """Disconnect, hand the lease back and close the REST client; safe to call twice."""
        await self._disconnect(None)
        if self._holding:
            with contextlib.suppress(Exception):
                async with self.database.unit_of_work() as session:
                    await leases.release(session, LEASE, self.holder)
                    await support.record_gateway(session, ready=False, reason="Guildhall stopped")
            self._holding = False
        if self._rest is not None:
            with contextlib.suppress(Exception):
                await self._rest.close()
            with contextlib.suppress(Exception):
                await self._rest_app.close()
            self._rest = self._rest_app = None
