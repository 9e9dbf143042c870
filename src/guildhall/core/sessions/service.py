"""Messaging-bot sessions: an explicit state machine over a connector.

``TRANSITIONS`` is the whole life of a session; every change of state goes
through :meth:`SessionService._move`, which refuses a move not in it (and
changes nothing), and writes the audit row and the ``session.status`` event
in the same transaction. A session is born in ``created`` (``create`` and
the restore of a deleted session insert it there) and ends when its row is
deleted (``delete``, ``logout``); both are announced the same way (from
``none``, to ``deleted``) but are not moves.

No transaction is open while the platform is called. A change that needs the
platform reads and checks in one short unit of work, calls the connector,
then records the outcome in another, after checking that nobody changed the
session meanwhile (its ``updated_at`` is what was read; otherwise the
platform's side is undone and the caller told ``session_changed``). Within
one process, a lock per session keeps two requests from driving one
connection at once; across processes, a lease per session
(``session:<handle>``, ``events/leases.py``) makes one process its holder:
the one whose connector holds the connection. :meth:`SessionService.watch`,
run every few seconds by each serving process, renews what it holds, lets go
of sessions stopped or deleted elsewhere, and takes over the online sessions
whose holder died (its lease expired); the first run after a start is how
sessions that were online (or reconnecting after a drop) reconnect after a
restart. A lease lasts at least three connector timeouts, so a slow connect
never outlives it. A login state the platform hands over (``saved``) is kept
only from the session's holder while the session is live: a late save from a
process that lost the session, or after a stop, cannot overwrite a login
restored or taken over meanwhile (the holder stops its connection before it
records a stop, so its last keys are kept). The pairing-code sweeper takes
each session's lock and reads it again, so a start that issued a fresh code
meanwhile is left alone.

What the platform does on its own arrives through ``PlatformEvents``, which
this service implements: a link made on the phone (``pairing`` -> ``online``),
a dropped connection (``online`` -> ``offline``, then reconnects with doubling
delays, from 1 s (or an eighth of the longest) up to ``reconnect_max``; when an
attempt at the longest delay also fails, the session is ``failed`` with the
reason, and kept), a logout from the phone
(``logged_out`` with the reason, kept so it can be paired again; its backup
goes, being worthless), incoming messages (``session.message`` events), and
the pairing QR as the platform rotates it.

Decisions where LD7 is silent:
- A pairing code that expires unused moves the session to ``failed`` with
  the reason "pairing code expired": it reads so from the moment it expires
  (a read never waits for the sweeper), and the server records the move in
  the background; starting it again issues a fresh code.
- ``delete`` keeps the session's backup (a backup exists to survive
  deletion and redeploys: delete, then restore); ``logout`` ends the login at
  the platform, which makes the backup worthless, so it removes that too.
- ``logout`` always works: a login state this installation's secret cannot
  open (sealed elsewhere) is not sent, and the platform is told without it.
  It needs no lease: the platform is told with the kept login, wherever the
  connection is held (the holder then sees its session gone and lets go). A
  platform that fails or does not answer is logged, and the session ends here
  all the same.
- ``restore`` recreates a deleted session from its backup (``created``, then
  ``offline``), or puts the login state back into an existing one that is not
  online and has the backup's phone number; the session is then ``offline``
  and starts without pairing.
- Two requests racing for one handle (two creates, a create and a restore):
  the unique index decides, and the loser gets ``session_exists``.
- Methods that touch a backup lock the session row first, then the backup
  row, so a restore and a logout (which deletes both) wait for each other
  and a restore never brings back the backup of a logged-out session.
- Sending a message needs the connection: a session held by another process
  answers ``session_elsewhere`` (409), naming nothing secret.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.actor import Actor
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.sessions.connector import (
    ConnectorError,
    IncomingMessage,
    LoggedOut,
    MessagingConnector,
)
from guildhall.core.sessions.models import BotSession, SessionBackup, State
from guildhall.core.text import storable
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.events import audit, leases, outbox
from guildhall.events.announce import announce
from guildhall.events.models import Lease
from guildhall.secrets import Sealer, UnsealError

HANDLE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
PHONE_PATTERN = re.compile(r"[0-9]{8,15}")
MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 4096
PAIRING_EXPIRED = "pairing code expired"
LEASE_SECONDS = 30
"""How long a holder's claim on a session lasts unrenewed (at least three connector
timeouts, so a slow connect never outlasts it): a dead holder's online sessions are
taken over within this, plus one ``WATCH_SECONDS``."""
WATCH_SECONDS = 5
FIRST_RECONNECT_SECONDS = 1.0

logger = logging.getLogger("guildhall.sessions")

TRANSITIONS: dict[State, frozenset[State]] = {
    # Only inside the transaction that inserts the row: created, then restored.
    State.CREATED: frozenset({State.PAIRING, State.OFFLINE}),
    State.PAIRING: frozenset(
        {State.PAIRING, State.ONLINE, State.OFFLINE, State.FAILED, State.LOGGED_OUT}
    ),
    State.ONLINE: frozenset({State.OFFLINE, State.FAILED, State.LOGGED_OUT}),
    State.OFFLINE: frozenset({State.PAIRING, State.ONLINE, State.FAILED, State.LOGGED_OUT}),
    State.FAILED: frozenset(
        {State.PAIRING, State.ONLINE, State.OFFLINE, State.FAILED, State.LOGGED_OUT}
    ),
    # Logged out through the API, the row is deleted in the same transaction; logged
    # out from the phone, it stays, and can be paired again.
    State.LOGGED_OUT: frozenset({State.PAIRING}),
}
"""Every move a session can make (to itself: a fresh pairing code, a new failure)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SessionView:
    handle: str
    phone_number: str
    name: str | None
    state: State
    connector: str
    paired: bool
    created_at: datetime
    last_connected_at: datetime | None
    failure_reason: str | None
    failed_at: datetime | None

    @property
    def online(self) -> bool:
        return self.state is State.ONLINE


@dataclass(frozen=True, slots=True)
class Pairing:
    code: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """What ``start`` did: connected, issued a pairing code, or failed (state committed)."""

    session: SessionView
    pairing: Pairing | None = None
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why connecting with a kept login failed; ``logged_out``: the device was unlinked."""

    reason: str
    logged_out: bool = False


@dataclass(frozen=True, slots=True)
class BackupView:
    handle: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Stats:
    online: int
    total: int


def _view(row: BotSession, now: datetime | None = None) -> SessionView:
    """The session as it is at ``now``: a pairing code that ran out reads as ``failed``
    at once, before the sweeper (or the next write) records the move."""
    state, reason, failed_at = State(row.state), row.failure_reason, row.failed_at
    expires = row.pairing_expires_at
    if state is State.PAIRING and expires is not None and expires <= (now or utcnow()):
        state, reason, failed_at = State.FAILED, PAIRING_EXPIRED, expires
    return SessionView(
        handle=row.handle,
        phone_number=row.phone_number,
        name=row.name,
        state=state,
        connector=row.connector,
        paired=row.login_state is not None,
        created_at=row.created_at,
        last_connected_at=row.last_connected_at,
        failure_reason=reason,
        failed_at=failed_at,
    )


def check_handle(handle: object) -> str:
    if not isinstance(handle, str) or not HANDLE_PATTERN.fullmatch(handle):
        raise Invalid(
            "the session id must be 1 to 64 letters, digits, _ or -", code="invalid_handle"
        )
    return handle


def check_phone(phone: object) -> str:
    if not isinstance(phone, str) or not PHONE_PATTERN.fullmatch(phone):
        raise Invalid(
            "the phone number must be 8 to 15 digits, with country code and no spaces or symbols",
            code="invalid_phone",
        )
    return phone


def check_move(row: BotSession, target: State) -> None:
    """Refuse, changing nothing, a move ``TRANSITIONS`` does not list."""
    previous = State(row.state)
    if target not in TRANSITIONS[previous]:
        raise Conflict(
            f"session {row.handle} is {previous.value.replace('_', ' ')} and cannot "
            f"become {target.value.replace('_', ' ')}",
            code="illegal_transition",
        )


def _exists(handle: str) -> Conflict:
    return Conflict(f"session {handle} already exists", code="session_exists")


def check_name(name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not storable(name):
        raise Invalid(
            f"the name must be text of at most {MAX_NAME_LENGTH} characters", code="invalid_name"
        )
    return name.strip() or None


def check_text(text: object) -> str:
    if (
        not isinstance(text, str)
        or not text.strip()
        or len(text) > MAX_TEXT_LENGTH
        or not storable(text)
    ):
        raise Invalid(f"the text must be 1 to {MAX_TEXT_LENGTH} characters", code="invalid_text")
    return text


def _lease(handle: str) -> str:
    return f"session:{handle}"


def _changed(handle: str) -> Conflict:
    return Conflict(
        f"session {handle} was changed by another request meanwhile; try again",
        code="session_changed",
    )


def _elsewhere(handle: str) -> Conflict:
    return Conflict(
        f"session {handle} is connected through another Guildhall process; "
        "send through the process that holds it, or stop and start it here",
        code="session_elsewhere",
    )


class SessionService:
    """Session rules over one connector; each change opens its own short units of work."""

    def __init__(
        self,
        database: Database,
        connector: MessagingConnector,
        sealer: Sealer,
        *,
        holder: str,
        pairing_ttl: timedelta,
        connector_timeout: float,
        reconnect_max: float,
    ) -> None:
        self.database = database
        self.connector = connector
        self._sealer = sealer
        self._holder = holder
        self._pairing_ttl = pairing_ttl
        self._timeout = connector_timeout
        self._reconnect_max = reconnect_max
        self._lease_seconds = max(LEASE_SECONDS, 3 * connector_timeout)
        self._platform = Actor("system", f"{connector.name} platform")
        self._locks: dict[str, asyncio.Lock] = {}
        self._held: set[str] = set()
        self._qr: dict[str, str] = {}
        self._reconnects: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        connector.attach(self)

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(self, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await work
        except TimeoutError:
            raise ConnectorError(
                f"the {self.connector.name} platform did not answer within {self._timeout:g} s"
            ) from None

    @contextlib.asynccontextmanager
    async def _driving(self, handle: str) -> AsyncIterator[None]:
        """One request at a time drives a session's connection in this process."""
        lock = self._locks.setdefault(handle, asyncio.Lock())
        async with lock:
            yield

    async def _take(self, handle: str) -> None:
        """Become the session's holder (or stay it); ``session_elsewhere`` if another is."""
        async with self.database.unit_of_work() as session:
            taken = await leases.acquire(session, _lease(handle), self._holder, self._lease_seconds)
        if not taken:
            raise _elsewhere(handle)
        self._held.add(handle)

    def _end_reconnect(self, handle: str) -> None:
        """Stop the session's reconnect loop here, if one runs (unless it is the caller)."""
        task = self._reconnects.get(handle)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if task is not None:
            del self._reconnects[handle]

    async def _let_go(self, handle: str, *, disconnect: bool = True) -> None:
        """Close this process's connection of the session (if any) and free its lease."""
        self._end_reconnect(handle)
        self._qr.pop(handle, None)
        if disconnect:
            try:
                await self._call(self.connector.disconnect(handle))
            except ConnectorError as exc:
                logger.warning("session %s: disconnecting failed: %s", handle, exc)
        if handle in self._held:
            self._held.discard(handle)
            async with self.database.unit_of_work() as session:
                await leases.release(session, _lease(handle), self._holder)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _row(self, session: AsyncSession, handle: str, *, lock: bool = True) -> BotSession:
        row = await self._find(session, handle, lock=lock)
        if row is None:
            raise NotFound(f"session {handle} not found", code="session_not_found")
        return row

    async def _find(
        self, session: AsyncSession, handle: str, *, lock: bool = True
    ) -> BotSession | None:
        query = select(BotSession).where(BotSession.handle == handle)
        if lock:
            query = query.with_for_update()
        row: BotSession | None = await session.scalar(query)
        return row

    async def _reread(self, session: AsyncSession, handle: str, seen: datetime) -> BotSession:
        """The session again, locked, as it was read before the platform was called."""
        row = await self._find(session, handle)
        if row is None or row.updated_at != seen:
            raise _changed(handle)
        return row

    async def _move(
        self,
        session: AsyncSession,
        row: BotSession,
        target: State,
        actor: Actor,
        because: str,
        *,
        now: datetime | None = None,
        reconnecting: bool = False,
    ) -> None:
        check_move(row, target)
        previous = State(row.state)
        now = now or utcnow()
        row.state = target.value
        row.updated_at = now
        row.reconnecting = reconnecting  # only a drop's move to offline sets it
        if target is not State.PAIRING:
            row.pairing_code = row.pairing_expires_at = row.pairing_qr = None
        if target is State.ONLINE:
            row.last_connected_at = now
        if target in (State.FAILED, State.LOGGED_OUT):
            row.failure_reason, row.failed_at = because, now
        await session.flush()
        await self._announce(session, row.handle, previous, target, actor, because)

    async def _announce(
        self,
        session: AsyncSession,
        handle: str,
        previous: State | None,
        target: State | None,
        actor: Actor,
        because: str,
    ) -> None:
        before = previous.value if previous else "none"
        after = target.value if target else "deleted"
        await announce(
            session,
            actor,
            "session.status",
            f"{actor.name} moved session {handle} from {before} to {after}: {because}",
            {"session": handle, "previous_state": before, "state": after, "reason": because},
            target=f"session:{handle}",
        )

    async def _insert(
        self, session: AsyncSession, row: BotSession, actor: Actor, because: str
    ) -> None:
        """Add a new session in ``created``; a handle taken meanwhile is ``session_exists``.

        Callers check first; this settles a race (the loser's INSERT fails on
        the unique index) in a SAVEPOINT, so the transaction stays usable.
        """
        row.state = State.CREATED.value
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
        except IntegrityError:
            raise _exists(row.handle) from None
        await self._announce(session, row.handle, None, State.CREATED, actor, because)

    async def _remove(
        self, session: AsyncSession, row: BotSession, actor: Actor, because: str
    ) -> None:
        """Delete the session's row: the end of its life, announced as ``deleted``."""
        previous = State(row.state)
        await session.delete(row)
        await session.flush()
        await self._announce(session, row.handle, previous, None, actor, because)

    def _open_login(self, row: BotSession) -> bytes | None:
        """The kept login state, or None when there is none or this secret cannot open it."""
        if row.login_state is None:
            return None
        try:
            return self._sealer.open(row.login_state)
        except UnsealError:
            return None

    def _record_pairing(self, row: BotSession, code: str) -> Pairing:
        expires_at = utcnow() + self._pairing_ttl
        row.pairing_code = self._sealer.seal(code.encode())
        row.pairing_expires_at = expires_at
        qr = self._qr.get(row.handle)
        row.pairing_qr = self._sealer.seal(qr.encode()) if qr else None
        return Pairing(code, expires_at)

    async def _ask_for_code(self, handle: str, phone_number: str) -> str:
        """A pairing code from the platform; on failure this process lets the session go."""
        try:
            return await self._call(self.connector.request_pairing_code(handle, phone_number))
        except BaseException:
            await self._let_go(handle)
            raise

    # -- reads ------------------------------------------------------------------------------

    async def get(self, session: AsyncSession, handle: str) -> SessionView:
        return _view(await self._row(session, check_handle(handle), lock=False))

    async def list(self, session: AsyncSession) -> builtins.list[SessionView]:
        rows = await session.scalars(select(BotSession).order_by(BotSession.created_at))
        return [_view(row) for row in rows]

    async def stats(self, session: AsyncSession) -> Stats:
        online = func.count().filter(BotSession.state == State.ONLINE.value)
        row = (await session.execute(select(online, func.count()).select_from(BotSession))).one()
        return Stats(online=row[0], total=row[1])

    async def page(
        self, session: AsyncSession, limit: int, offset: int = 0
    ) -> builtins.list[SessionView]:
        """One page of the sessions, oldest first: a staff list never loads the whole table."""
        query = select(BotSession).order_by(BotSession.id).limit(limit).offset(offset)
        return [_view(row) for row in await session.scalars(query)]

    async def backup_of(self, session: AsyncSession, handle: str) -> BackupView | None:
        """The session's backup (only the latest is kept), or None: what ``restore`` uses."""
        created_at = await session.scalar(
            select(SessionBackup.created_at).where(SessionBackup.handle == check_handle(handle))
        )
        return BackupView(handle, created_at) if created_at is not None else None

    def _pending(self, row: BotSession, handle: str) -> None:
        if (
            row.state != State.PAIRING.value
            or row.pairing_code is None
            or row.pairing_expires_at is None
            or row.pairing_expires_at <= utcnow()
        ):
            raise NotFound(
                f"session {handle} has no pending pairing code", code="no_pending_pairing"
            )

    async def pending_pairing(self, session: AsyncSession, handle: str) -> Pairing:
        """The code waiting to be entered, if it has not expired."""
        row = await self._row(session, check_handle(handle), lock=False)
        self._pending(row, handle)
        assert row.pairing_code is not None and row.pairing_expires_at is not None
        return Pairing(self._sealer.open(row.pairing_code).decode(), row.pairing_expires_at)

    async def pairing_qr(self, session: AsyncSession, handle: str) -> str:
        """What the platform's current pairing QR code encodes, while a pairing is pending."""
        row = await self._row(session, check_handle(handle), lock=False)
        self._pending(row, handle)
        if row.pairing_qr is None:
            raise NotFound(
                f"the {row.connector} platform gave session {handle} no QR code",
                code="no_pairing_qr",
            )
        return self._sealer.open(row.pairing_qr).decode()

    # -- changes the API asks for -----------------------------------------------------------

    async def create(
        self, handle: str, phone_number: str, actor: Actor, name: str | None = None
    ) -> tuple[SessionView, Pairing]:
        """A new session, waiting for its pairing code to be entered on the phone."""
        handle, phone_number = check_handle(handle), check_phone(phone_number)
        name = check_name(name)
        async with self._driving(handle):
            async with self.database.unit_of_work(write=False) as session:
                if await self._find(session, handle, lock=False) is not None:
                    raise _exists(handle)
            await self._take(handle)
            code = await self._ask_for_code(handle, phone_number)
            try:
                async with self.database.unit_of_work() as session:
                    row = BotSession(
                        handle=handle,
                        phone_number=phone_number,
                        name=name,
                        connector=self.connector.name,
                    )
                    await self._insert(session, row, actor, "created")
                    await self._move(session, row, State.PAIRING, actor, "pairing code issued")
                    pairing = self._record_pairing(row, code)
                    await session.flush()
                    view = _view(row)
            except BaseException:
                await self._let_go(handle)
                raise
        return view, pairing

    async def start(self, handle: str, actor: Actor) -> StartOutcome:
        """Connect a paired session, or issue a fresh pairing code to one that is not."""
        handle = check_handle(handle)
        async with self._driving(handle):
            self._end_reconnect(handle)  # starting now replaces a pending reconnect
            async with self.database.unit_of_work(write=False) as session:
                row = await self._row(session, handle, lock=False)
                if row.state == State.ONLINE.value:
                    raise Conflict(f"session {handle} is already online", code="illegal_transition")
                seen, phone, login = row.updated_at, row.phone_number, row.login_state
            await self._take(handle)
            if login is None:
                code = await self._ask_for_code(handle, phone)
                try:
                    async with self.database.unit_of_work() as session:
                        row = await self._reread(session, handle, seen)
                        await self._move(
                            session, row, State.PAIRING, actor, "started without a login"
                        )
                        pairing = self._record_pairing(row, code)
                        await session.flush()
                        return StartOutcome(_view(row), pairing=pairing)
                except BaseException:
                    await self._let_go(handle)
                    raise
            failure = await self._login(handle, login)
            try:
                async with self.database.unit_of_work() as session:
                    row = await self._reread(session, handle, seen)
                    if failure is not None:
                        await self._record_failure(session, row, failure, actor)
                    else:
                        await self._move(session, row, State.ONLINE, actor, "started")
                    view = _view(row)
            except BaseException:
                await self._let_go(handle)
                raise
            if failure is not None:
                await self._let_go(handle)
        return StartOutcome(view, failure=failure.reason if failure else None)

    async def _login(self, handle: str, sealed: bytes) -> Failure | None:
        """Connect with a kept (sealed) login; why it failed, or None."""
        try:
            await self._call(self.connector.connect(handle, self._sealer.open(sealed)))
        except (ConnectorError, UnsealError) as exc:
            return Failure(str(exc), logged_out=isinstance(exc, LoggedOut))
        return None

    async def _record_failure(
        self,
        session: AsyncSession,
        row: BotSession,
        failure: Failure,
        actor: Actor,
        *,
        prefix: str = "",
    ) -> None:
        """``failed`` with the reason; ``logged_out`` when the device was unlinked."""
        if failure.logged_out:
            await self._unlink(session, row, actor, failure.reason)
        else:
            await self._move(session, row, State.FAILED, actor, prefix + failure.reason)

    async def _unlink(
        self, session: AsyncSession, row: BotSession, actor: Actor, reason: str
    ) -> None:
        """The platform unlinked the device: ``logged_out`` with the reason, kept so it can
        be paired again; its login and backup go, being worthless."""
        backup = await session.get(SessionBackup, row.handle, with_for_update=True)
        row.login_state = None
        await self._move(session, row, State.LOGGED_OUT, actor, reason)
        if backup is not None:
            await session.delete(backup)

    async def stop(self, handle: str, actor: Actor) -> SessionView:
        handle = check_handle(handle)
        async with self._driving(handle):
            async with self.database.unit_of_work(write=False) as session:
                row = await self._row(session, handle, lock=False)
                running = row.state in (State.ONLINE.value, State.PAIRING.value)
                if not (running or row.reconnecting or handle in self._reconnects):
                    raise Conflict(f"session {handle} is not running", code="illegal_transition")
            if handle in self._held:
                # The holder ends the connection first, so its store is saved while live.
                self._end_reconnect(handle)
                try:
                    await self._call(self.connector.disconnect(handle))
                except ConnectorError as exc:
                    logger.warning("session %s: disconnecting failed: %s", handle, exc)
            async with self.database.unit_of_work() as session:
                row = await self._row(session, handle)
                if row.state in (State.ONLINE.value, State.PAIRING.value):
                    await self._move(session, row, State.OFFLINE, actor, "stopped")
                elif row.state == State.OFFLINE.value:  # was reconnecting: not a move
                    row.updated_at = utcnow()  # a reconnect elsewhere sees it was stopped
                    row.reconnecting = False
                    await audit.record(
                        session,
                        actor,
                        "session.stopped",
                        f"{actor.name} stopped session {handle} while it was reconnecting",
                        target=f"session:{handle}",
                    )
                else:
                    raise Conflict(f"session {handle} is not running", code="illegal_transition")
                view = _view(row)
            # The holder, if another process, lets go at its next watch.
            await self._let_go(handle)
        return view

    async def delete(self, handle: str, actor: Actor) -> None:
        """Remove the session and its login state; its backup stays (see the module notes)."""
        handle = check_handle(handle)
        async with self._driving(handle):
            async with self.database.unit_of_work() as session:
                await self._remove(session, await self._row(session, handle), actor, "deleted")
            await self._let_go(handle)

    async def logout(self, handle: str, actor: Actor) -> None:
        """Log out at the platform, then delete the session and its backup.

        A login state this installation cannot open is not sent (see the module notes).
        """
        handle = check_handle(handle)
        async with self._driving(handle):
            async with self.database.unit_of_work(write=False) as session:
                row = await self._row(session, handle, lock=False)
                check_move(row, State.LOGGED_OUT)  # before the platform is told
                login = self._open_login(row)
            try:
                await self._call(self.connector.logout(handle, login))
            except ConnectorError as exc:
                # The session is ended here either way; the platform forgets the device
                # on its own once it is never used again.
                logger.warning("session %s: logging out at the platform failed: %s", handle, exc)
            # The platform cannot take a logout back: whatever happened to the session
            # meanwhile (a restore put a login back), it and its backup go now.
            async with self.database.unit_of_work() as session:
                current = await self._find(session, handle)
                backup = await session.get(SessionBackup, handle, with_for_update=True)
                if backup is not None:
                    await session.delete(backup)
                if current is not None:
                    if State.LOGGED_OUT in TRANSITIONS[State(current.state)]:
                        await self._move(session, current, State.LOGGED_OUT, actor, "logged out")
                    await self._remove(session, current, actor, "deleted")
            await self._let_go(handle, disconnect=False)

    async def complete_pairing(self, handle: str, code: str, actor: Actor) -> SessionView:
        """The operator, standing in for the phone, entered ``code`` (the loopback platform)."""
        handle = check_handle(handle)
        async with self._driving(handle):
            async with self.database.unit_of_work(write=False) as session:
                row = await self._row(session, handle, lock=False)
                expected = (
                    self._sealer.open(row.pairing_code).decode()
                    if row.state == State.PAIRING.value and row.pairing_code is not None
                    else None
                )
                expires = row.pairing_expires_at
                if expected is None or expires is None or expires <= utcnow():
                    raise Conflict(
                        f"session {handle} has no pending pairing code", code="no_pending_pairing"
                    )
                entered = code.strip().upper().replace(" ", "")
                if not hmac.compare_digest(entered.encode(), expected.encode()):
                    raise Invalid(
                        f"the pairing code for session {handle} is wrong", code="pairing_rejected"
                    )
                seen, phone = row.updated_at, row.phone_number
            login_state = await self._call(self.connector.complete_pairing(handle, phone, utcnow()))
            await self._call(self.connector.connect(handle, login_state))
            async with self.database.unit_of_work() as session:
                row = await self._reread(session, handle, seen)
                row.login_state = self._sealer.seal(login_state)
                await self._move(session, row, State.ONLINE, actor, "paired")
                return _view(row)

    async def send_text(self, handle: str, to: str, text: str, actor: Actor) -> str:
        """Send ``text`` from an online session to the phone number ``to``; the message id."""
        handle, to, text = check_handle(handle), check_phone(to), check_text(text)
        async with self.database.unit_of_work(write=False) as session:
            row = await self._row(session, handle, lock=False)
            if row.state != State.ONLINE.value:
                raise Conflict(f"session {handle} is not online", code="not_online")
        if handle not in self._held:
            raise _elsewhere(handle)
        message_id = await self._call(self.connector.send_text(handle, to, text))
        async with self.database.unit_of_work() as session:
            await audit.record(
                session,
                actor,
                "session.message_sent",
                f"{actor.name} sent a message from session {handle} to {to}",
                target=f"session:{handle}",
            )
        return message_id

    async def backup(self, handle: str, actor: Actor) -> BackupView:
        """Keep the session's login state, sealed, replacing any earlier backup."""
        handle = check_handle(handle)
        async with self.database.unit_of_work() as session:
            row = await self._row(session, handle)
            if row.login_state is None:
                raise Conflict(
                    f"session {handle} is not paired, so there is no login to back up",
                    code="not_paired",
                )
            exported = self.connector.export_state(self._sealer.open(row.login_state))
            now = utcnow()
            backup = await session.get(SessionBackup, handle, with_for_update=True)
            if backup is None:
                backup = SessionBackup(handle=handle)
                session.add(backup)
            backup.phone_number = row.phone_number
            backup.name = row.name
            backup.connector = row.connector
            backup.login_state = self._sealer.seal(exported)
            backup.created_at = now
            await session.flush()
            await audit.record(
                session,
                actor,
                "session.backup",
                f"{actor.name} backed up session {handle}",
                target=f"session:{handle}",
            )
        return BackupView(handle, now)

    async def restore(self, handle: str, actor: Actor) -> BackupView:
        """Put the backed-up login back (recreating a deleted session); it can then start.

        Refused, changing nothing, into a session that is online or has another phone number.
        """
        handle = check_handle(handle)
        async with self.database.unit_of_work() as session:
            return await self._restore(session, handle, actor)

    async def _restore(self, session: AsyncSession, handle: str, actor: Actor) -> BackupView:
        # Session row first, then backup: the order logout takes them in.
        row = await self._find(session, handle)
        backup = await session.get(SessionBackup, handle, with_for_update=True)
        if backup is None:
            raise NotFound(f"session {handle} has no backup", code="no_backup")
        try:
            login_state = self.connector.import_state(self._sealer.open(backup.login_state))
        except UnsealError:
            raise Invalid(
                f"the backup of session {handle} cannot be opened with this installation's secret",
                code="backup_unreadable",
            ) from None
        except ConnectorError as exc:
            raise Invalid(
                f"the backup of session {handle} is not usable: {exc}", code="backup_unreadable"
            ) from None
        if row is None:
            row = BotSession(
                handle=handle,
                phone_number=backup.phone_number,
                name=backup.name,
                connector=backup.connector,
                login_state=self._sealer.seal(login_state),
            )
            await self._insert(session, row, actor, "recreated from its backup")
            await self._move(session, row, State.OFFLINE, actor, "restored from backup")
            return BackupView(handle, backup.created_at)
        if row.state == State.ONLINE.value or row.reconnecting:
            raise Conflict(
                f"session {handle} is online; stop it before restoring", code="illegal_transition"
            )
        if row.phone_number != backup.phone_number:
            raise Conflict(
                f"the backup of session {handle} is for another phone number; "
                "delete the session to restore it",
                code="backup_mismatch",
            )
        row.login_state = self._sealer.seal(login_state)
        if row.state == State.OFFLINE.value:  # not a move: the same state, a new login
            row.updated_at = utcnow()
            await audit.record(
                session,
                actor,
                "session.restore",
                f"{actor.name} restored the login of session {handle} from its backup",
                target=f"session:{handle}",
            )
        else:
            await self._move(session, row, State.OFFLINE, actor, "restored from backup")
        return BackupView(handle, backup.created_at)

    # -- background: expiry, holding, taking over ---------------------------------------------

    async def expire_pairings(self, actor: Actor) -> builtins.list[str]:
        """Move every session whose pairing code ran out to ``failed``; their handles.

        Each under its own lock, read again: a start that issued a fresh code
        meanwhile wins, and its new pairing is left alone.
        """
        now = utcnow()
        due = (
            select(BotSession.handle)
            .where(BotSession.state == State.PAIRING.value, BotSession.pairing_expires_at <= now)
            .order_by(BotSession.id)
        )
        async with self.database.unit_of_work(write=False) as session:
            handles = builtins.list(await session.scalars(due))
        expired = []
        for handle in handles:
            async with self._driving(handle):
                async with self.database.unit_of_work() as session:
                    row = await session.scalar(
                        select(BotSession)
                        .where(
                            BotSession.handle == handle,
                            BotSession.state == State.PAIRING.value,
                            BotSession.pairing_expires_at <= now,
                        )
                        .with_for_update(skip_locked=True)
                    )
                    if row is None:
                        continue
                    await self._move(session, row, State.FAILED, actor, PAIRING_EXPIRED, now=now)
                expired.append(handle)
                if handle in self._held:
                    await self._let_go(handle)
        return expired

    async def watch(self, actor: Actor) -> dict[str, str | None]:
        """Renew what this process holds, let go of what is no longer wanted here, and take
        over online sessions nobody holds; each taken-over handle with why it failed, or None.
        """
        for handle in builtins.list(self._held):
            await self._renew(handle)
        return await self.resume_all(actor)

    async def _renew(self, handle: str) -> None:
        failure: Failure | None = None
        async with self._driving(handle):
            if handle not in self._held:
                return
            async with self.database.unit_of_work() as session:
                row = await self._find(session, handle, lock=False)
                wanted = row is not None and (
                    row.state in (State.ONLINE.value, State.PAIRING.value) or row.reconnecting
                )
                kept = wanted and await leases.acquire(
                    session, _lease(handle), self._holder, self._lease_seconds
                )
            if not kept:
                await self._let_go(handle)
                return
            assert row is not None
            if (
                row.state == State.ONLINE.value
                and handle not in self._reconnects
                and not self.connector.is_connected(handle)
                and row.login_state is not None
            ):
                # Online without a connection here (paired through another process, or
                # lost without a word from the platform): connect again.
                failure = await self._login(handle, row.login_state)
                if failure is None:
                    return
        if failure is not None and failure.logged_out:
            await self.logged_out(handle, failure.reason)
        elif failure is not None:
            await self.dropped(handle, failure.reason)

    async def resumable(self) -> builtins.list[str]:
        """Online (or reconnecting) sessions no live process holds: after a restart, or
        when their holder died."""
        now = utcnow()
        held = select(Lease.name).where(Lease.expires_at >= now)
        query = (
            select(BotSession.handle)
            .where(
                (BotSession.state == State.ONLINE.value) | BotSession.reconnecting,
                ("session:" + BotSession.handle).not_in(held),
            )
            .order_by(BotSession.id)
        )
        async with self.database.unit_of_work(write=False) as session:
            return builtins.list(await session.scalars(query))

    async def resume_all(self, actor: Actor) -> dict[str, str | None]:
        """Reconnect every resumable session, one at a time; each with why it failed, or None."""
        outcome: dict[str, str | None] = {}
        for handle in await self.resumable():
            if handle in self._held:
                continue
            try:
                outcome[handle] = await self.resume(handle, actor)
            except Conflict:
                continue  # another process took it first
            if outcome[handle]:
                logger.warning("session %s could not reconnect: %s", handle, outcome[handle])
        return outcome

    async def resume(self, handle: str, actor: Actor) -> str | None:
        """Reconnect one online (or reconnecting) session nobody holds; why it failed, or
        None. A reconnecting one that fails goes on reconnecting here, with backoff."""
        async with self._driving(handle):
            if handle in self._held:
                return None  # resumed meanwhile (the start's resume and the first watch)
            await self._take(handle)
            async with self.database.unit_of_work(write=False) as session:
                row = await self._find(session, handle, lock=False)
            resumable = row is not None and (row.state == State.ONLINE.value or row.reconnecting)
            if row is None or not resumable or row.login_state is None:
                await self._let_go(handle, disconnect=False)
                return None
            seen, was_online = row.updated_at, row.state == State.ONLINE.value
            failure = await self._login(handle, row.login_state)
            if failure is not None and not was_online and not failure.logged_out:
                self._reconnects[handle] = self._spawn(
                    self._reconnect(handle, seen, failure.reason)
                )
                return failure.reason
            try:
                async with self.database.unit_of_work() as session:
                    row = await self._reread(session, handle, seen)
                    if failure is not None:
                        await self._record_failure(session, row, failure, actor)
                    elif not was_online:
                        await self._move(
                            session, row, State.ONLINE, actor, "reconnected after a restart"
                        )
                    else:
                        # online -> online is not a move; reconnecting is bookkeeping.
                        row.last_connected_at = utcnow()
                        await audit.record(
                            session,
                            actor,
                            "session.resumed",
                            f"{actor.name} reconnected session {handle} after a restart",
                            target=f"session:{handle}",
                        )
            except BaseException:
                await self._let_go(handle)
                raise
            if failure is not None:
                await self._let_go(handle)
            return failure.reason if failure else None

    async def close(self) -> None:
        """Drop this process's connections and leases; online sessions stay online, so the
        next start (or another process) resumes them at once."""
        for task in builtins.list(self._reconnects.values()) + builtins.list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._reconnects.clear()
        await self.connector.close()
        held, self._held = self._held, set()
        if held:
            try:
                async with self.database.unit_of_work() as session:
                    for handle in held:
                        await leases.release(session, _lease(handle), self._holder)
            except Exception:  # closing must finish; the leases expire on their own
                logger.warning("could not release the session leases", exc_info=True)

    # -- what the platform did (PlatformEvents) ----------------------------------------------

    async def linked(self, handle: str, login_state: bytes) -> None:
        async with self._driving(handle):
            async with self.database.unit_of_work() as session:
                row = await self._find(session, handle)
                wanted = row is not None and row.state == State.PAIRING.value
                if row is not None and wanted:
                    row.login_state = self._sealer.seal(login_state)
                    await self._move(session, row, State.ONLINE, self._platform, "paired")
            if not wanted:
                await self._let_go(handle)

    async def saved(self, handle: str, login_state: bytes) -> None:
        # Only the holder's store counts, and only while the session is live: a late save
        # from a process that lost the session, or after a stop, must not overwrite a login
        # restored or taken over meanwhile.
        mine = (
            select(Lease.name)
            .where(
                Lease.name == _lease(handle),
                Lease.holder == self._holder,
                Lease.expires_at >= utcnow(),
            )
            .exists()
        )
        live = BotSession.state.in_([State.ONLINE.value, State.PAIRING.value])
        await self._keep(
            handle,
            mine & (live | BotSession.reconnecting),
            login_state=self._sealer.seal(login_state),
        )

    async def _keep(self, handle: str, condition: Any, **values: bytes) -> None:
        """Store what the platform handed over without touching ``updated_at``: it is not
        a change a request made, and must not make one in flight read ``session_changed``."""
        async with self.database.unit_of_work() as session:
            await session.execute(
                update(BotSession)
                .where(BotSession.handle == handle, condition)
                .values(updated_at=BotSession.updated_at, **values)
            )

    async def dropped(self, handle: str, reason: str) -> None:
        async with self._driving(handle):
            async with self.database.unit_of_work() as session:
                row = await self._find(session, handle)
                if row is None or row.state != State.ONLINE.value:
                    return
                await self._move(
                    session, row, State.OFFLINE, self._platform, reason, reconnecting=True
                )
                seen = row.updated_at
            self._end_reconnect(handle)
            self._reconnects[handle] = self._spawn(self._reconnect(handle, seen, reason))

    async def _reconnect(self, handle: str, seen: datetime, reason: str) -> None:
        """Reconnect a dropped session with doubling delays; give up (``failed``) when an
        attempt at the longest delay fails too, or stop when someone changed the session."""
        delay, last = min(FIRST_RECONNECT_SECONDS, self._reconnect_max / 8), reason
        while True:
            await asyncio.sleep(delay)
            async with self._driving(handle):
                async with self.database.unit_of_work() as session:
                    row = await self._find(session, handle, lock=False)
                    # Still this process's to reconnect? (Another may have taken it over.)
                    ours = await leases.acquire(
                        session, _lease(handle), self._holder, self._lease_seconds
                    )
                if not ours:
                    await self._let_go(handle)
                    return
                if row is None or row.updated_at != seen or row.login_state is None:
                    self._end_reconnect(handle)
                    return
                failure = await self._login(handle, row.login_state)
                gave_up = failure is not None and (
                    failure.logged_out or delay >= self._reconnect_max
                )
                if failure is None or gave_up:
                    self._end_reconnect(handle)
                    try:
                        async with self.database.unit_of_work() as session:
                            row = await self._reread(session, handle, seen)
                            if failure is None:
                                await self._move(
                                    session, row, State.ONLINE, self._platform, "reconnected"
                                )
                            else:
                                await self._record_failure(
                                    session,
                                    row,
                                    failure,
                                    self._platform,
                                    prefix="could not reconnect: ",
                                )
                    except Conflict:
                        await self._let_go(handle)
                        return
                    if failure is not None:
                        await self._let_go(handle)
                    return
                last = failure.reason if failure else last
            logger.info("session %s: reconnect failed (%s); next in %g s", handle, last, delay)
            delay = min(delay * 2, self._reconnect_max)

    async def logged_out(self, handle: str, reason: str) -> None:
        async with self._driving(handle):
            async with self.database.unit_of_work() as session:
                row = await self._find(session, handle)
                if row is not None and row.state != State.LOGGED_OUT.value:
                    await self._unlink(session, row, self._platform, reason)
            await self._let_go(handle)

    async def message(self, handle: str, message: IncomingMessage) -> None:
        async with self.database.unit_of_work() as session:
            await outbox.emit(
                session,
                "session.message",
                {
                    "session": handle,
                    "from": message.sender,
                    "from_id": message.sender_id,
                    "chat": message.chat,
                    "text": message.text,
                    "message_id": message.message_id,
                    "sent_at": message.sent_at.isoformat(),
                },
            )

    async def qr(self, handle: str, code: str) -> None:
        self._qr[handle] = code
        await self._keep(
            handle,
            BotSession.state == State.PAIRING.value,
            pairing_qr=self._sealer.seal(code.encode()),
        )
