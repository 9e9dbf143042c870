"""Messaging-bot sessions: an explicit state machine over a connector.

``TRANSITIONS`` is the whole life of a session; every change of state goes
through :meth:`SessionService._move`, which refuses a move not in it (and
changes nothing), and writes the audit row and the ``session.status`` event
in the same transaction. A session is born in ``created`` (``create`` and
the restore of a deleted session insert it there) and ends when its row is
deleted (``delete``, ``logout``); both are announced the same way (from
``none``, to ``deleted``) but are not moves.

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
- ``restore`` recreates a deleted session from its backup (``created``, then
  ``offline``), or puts the login state back into an existing one that is not
  online and has the backup's phone number; the session is then ``offline``
  and starts without pairing.
- Two requests racing for one handle (two creates, a create and a restore):
  the unique index decides, and the loser gets ``session_exists``.
- Methods that touch a backup lock the session row first, then the backup
  row, so a restore and a logout (which deletes both) wait for each other
  and a restore never brings back the backup of a logged-out session.
- Connector calls run inside the request's transaction, bounded by
  ``connector_timeout_seconds``, so a transition and what the platform did
  are never out of step.
- After a restart, each session that was online is reconnected in its own
  short unit of work (see :meth:`SessionService.resume`), so a slow platform
  holds the database for one session at a time.
"""

from __future__ import annotations

import asyncio
import builtins
import hmac
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.actor import Actor
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.sessions.connector import ConnectorError, MessagingConnector
from guildhall.core.sessions.models import BotSession, SessionBackup, State
from guildhall.db.base import utcnow
from guildhall.events import audit
from guildhall.events.announce import announce
from guildhall.secrets import Sealer, UnsealError

HANDLE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
PHONE_PATTERN = re.compile(r"[0-9]{8,15}")
MAX_NAME_LENGTH = 100
PAIRING_EXPIRED = "pairing code expired"

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
    # Logged out, the row is deleted in the same transaction.
    State.LOGGED_OUT: frozenset(),
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
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or "\x00" in name:
        raise Invalid(
            f"the name must be text of at most {MAX_NAME_LENGTH} characters", code="invalid_name"
        )
    return name.strip() or None


class SessionService:
    """Session rules over one connector; every method runs in the caller's unit of work."""

    def __init__(
        self,
        connector: MessagingConnector,
        sealer: Sealer,
        *,
        pairing_ttl: timedelta,
        connector_timeout: float,
    ) -> None:
        self.connector = connector
        self._sealer = sealer
        self._pairing_ttl = pairing_ttl
        self._timeout = connector_timeout

    async def _call(self, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await work
        except TimeoutError:
            raise ConnectorError(
                f"the {self.connector.name} platform did not answer within {self._timeout:g} s"
            ) from None

    async def _row(self, session: AsyncSession, handle: str, *, lock: bool = True) -> BotSession:
        query = select(BotSession).where(BotSession.handle == handle)
        if lock:
            query = query.with_for_update()
        row = await session.scalar(query)
        if row is None:
            raise NotFound(f"session {handle} not found", code="session_not_found")
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
    ) -> None:
        check_move(row, target)
        previous = State(row.state)
        now = now or utcnow()
        row.state = target.value
        row.updated_at = now
        if target is not State.PAIRING:
            row.pairing_code = row.pairing_expires_at = None
        if target is State.ONLINE:
            row.last_connected_at = now
        if target is State.FAILED:
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

    async def _issue_pairing(
        self, session: AsyncSession, row: BotSession, actor: Actor, because: str
    ) -> Pairing:
        code = await self._call(self.connector.request_pairing_code(row.handle, row.phone_number))
        expires_at = utcnow() + self._pairing_ttl
        await self._move(session, row, State.PAIRING, actor, because)
        row.pairing_code = self._sealer.seal(code.encode())
        row.pairing_expires_at = expires_at
        await session.flush()
        return Pairing(code, expires_at)

    async def create(
        self,
        session: AsyncSession,
        handle: str,
        phone_number: str,
        actor: Actor,
        name: str | None = None,
    ) -> tuple[SessionView, Pairing]:
        """A new session, waiting for its pairing code to be entered on the phone."""
        handle, phone_number, name = check_handle(handle), check_phone(phone_number), name
        if await session.scalar(select(BotSession.id).where(BotSession.handle == handle)):
            raise _exists(handle)
        row = BotSession(
            handle=handle,
            phone_number=phone_number,
            name=check_name(name),
            connector=self.connector.name,
        )
        await self._insert(session, row, actor, "created")
        pairing = await self._issue_pairing(session, row, actor, "pairing code issued")
        return _view(row), pairing

    async def get(self, session: AsyncSession, handle: str) -> SessionView:
        return _view(await self._row(session, check_handle(handle), lock=False))

    async def list(self, session: AsyncSession) -> list[SessionView]:
        rows = await session.scalars(select(BotSession).order_by(BotSession.created_at))
        return [_view(row) for row in rows]

    async def stats(self, session: AsyncSession) -> Stats:
        online = func.count().filter(BotSession.state == State.ONLINE.value)
        row = (await session.execute(select(online, func.count()).select_from(BotSession))).one()
        return Stats(online=row[0], total=row[1])

    async def pending_pairing(self, session: AsyncSession, handle: str) -> Pairing:
        """The code waiting to be entered, if it has not expired."""
        row = await self._row(session, check_handle(handle), lock=False)
        if (
            row.state != State.PAIRING.value
            or row.pairing_code is None
            or row.pairing_expires_at is None
            or row.pairing_expires_at <= utcnow()
        ):
            raise NotFound(
                f"session {handle} has no pending pairing code", code="no_pending_pairing"
            )
        return Pairing(self._sealer.open(row.pairing_code).decode(), row.pairing_expires_at)

    async def complete_pairing(
        self, session: AsyncSession, handle: str, code: str, actor: Actor
    ) -> SessionView:
        """The phone entered ``code``: keep the new login and go online."""
        row = await self._row(session, check_handle(handle))
        now = utcnow()
        expected = (
            self._sealer.open(row.pairing_code).decode()
            if row.state == State.PAIRING.value and row.pairing_code is not None
            else None
        )
        if expected is None or row.pairing_expires_at is None or row.pairing_expires_at <= now:
            raise Conflict(
                f"session {handle} has no pending pairing code", code="no_pending_pairing"
            )
        entered = code.strip().upper().replace(" ", "")
        if not hmac.compare_digest(entered.encode(), expected.encode()):
            raise Invalid(
                f"the pairing code for session {handle} is wrong", code="pairing_rejected"
            )
        login_state = await self._call(
            self.connector.complete_pairing(row.handle, row.phone_number, now)
        )
        row.login_state = self._sealer.seal(login_state)
        await self._call(self.connector.connect(row.handle, login_state))
        await self._move(session, row, State.ONLINE, actor, "paired", now=now)
        return _view(row)

    async def _login(self, row: BotSession) -> str | None:
        """Connect with the kept login; why it failed, or None."""
        assert row.login_state is not None
        try:
            login_state = self._sealer.open(row.login_state)
            await self._call(self.connector.connect(row.handle, login_state))
        except (ConnectorError, UnsealError) as exc:
            return str(exc)
        return None

    async def _connect(
        self, session: AsyncSession, row: BotSession, actor: Actor, because: str
    ) -> str | None:
        """Connect with the kept login; on failure the session is ``failed``, and why returned."""
        failure = await self._login(row)
        if failure is not None:
            await self._move(session, row, State.FAILED, actor, failure)
            return failure
        await self._move(session, row, State.ONLINE, actor, because)
        return None

    async def start(self, session: AsyncSession, handle: str, actor: Actor) -> StartOutcome:
        """Connect a paired session, or issue a fresh pairing code to one that is not."""
        row = await self._row(session, check_handle(handle))
        if row.state == State.ONLINE.value:
            raise Conflict(f"session {handle} is already online", code="illegal_transition")
        if row.login_state is None:
            pairing = await self._issue_pairing(session, row, actor, "started without a login")
            return StartOutcome(_view(row), pairing=pairing)
        failure = await self._connect(session, row, actor, "started")
        return StartOutcome(_view(row), failure=failure)

    async def stop(self, session: AsyncSession, handle: str, actor: Actor) -> SessionView:
        row = await self._row(session, check_handle(handle))
        if row.state not in (State.ONLINE.value, State.PAIRING.value):
            raise Conflict(f"session {handle} is not running", code="illegal_transition")
        await self._call(self.connector.disconnect(row.handle))
        await self._move(session, row, State.OFFLINE, actor, "stopped")
        return _view(row)

    async def delete(self, session: AsyncSession, handle: str, actor: Actor) -> None:
        """Remove the session and its login state; its backup stays (see the module notes)."""
        row = await self._row(session, check_handle(handle))
        await self._call(self.connector.disconnect(row.handle))
        await self._remove(session, row, actor, "deleted")

    async def logout(self, session: AsyncSession, handle: str, actor: Actor) -> None:
        """Log out at the platform, then delete the session and its backup.

        A login state this installation cannot open is not sent (see the module notes).
        """
        row = await self._row(session, check_handle(handle))
        check_move(row, State.LOGGED_OUT)  # before the platform is told
        backup = await session.get(SessionBackup, row.handle, with_for_update=True)
        await self._call(self.connector.logout(row.handle, self._open_login(row)))
        await self._move(session, row, State.LOGGED_OUT, actor, "logged out")
        if backup is not None:
            await session.delete(backup)
        await self._remove(session, row, actor, "deleted")

    async def backup(self, session: AsyncSession, handle: str, actor: Actor) -> BackupView:
        """Keep the session's login state, sealed, replacing any earlier backup."""
        row = await self._row(session, check_handle(handle))
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

    async def restore(self, session: AsyncSession, handle: str, actor: Actor) -> BackupView:
        """Put the backed-up login back (recreating a deleted session); it can then start.

        Refused, changing nothing, into a session that is online or has another phone number.
        """
        handle = check_handle(handle)
        # Session row first, then backup: the order logout takes them in.
        row = await session.scalar(
            select(BotSession).where(BotSession.handle == handle).with_for_update()
        )
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
        if row.state == State.ONLINE.value:
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

    async def expire_pairings(self, session: AsyncSession, actor: Actor) -> builtins.list[str]:
        """Move every session whose pairing code ran out to ``failed``; their handles."""
        now = utcnow()
        rows = await session.scalars(
            select(BotSession)
            .where(
                BotSession.state == State.PAIRING.value,
                BotSession.pairing_expires_at <= now,
            )
            .with_for_update(skip_locked=True)
        )
        expired = []
        for row in rows:
            await self._move(session, row, State.FAILED, actor, PAIRING_EXPIRED, now=now)
            expired.append(row.handle)
        return expired

    async def resumable(self, session: AsyncSession) -> builtins.list[str]:
        """The sessions that were online when Guildhall stopped, oldest first."""
        query = (
            select(BotSession.handle)
            .where(BotSession.state == State.ONLINE.value)
            .order_by(BotSession.id)
        )
        return list(await session.scalars(query))

    async def resume(self, session: AsyncSession, handle: str, actor: Actor) -> str | None:
        """Reconnect one session that was online when Guildhall stopped; why it failed, or None.

        Run each in its own unit of work (see :meth:`resumable`). A session that
        is no longer online, or whose row another process holds, is left alone.
        """
        row = await session.scalar(
            select(BotSession)
            .where(BotSession.handle == handle, BotSession.state == State.ONLINE.value)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return None
        failure = await self._login(row)
        if failure is not None:
            await self._move(session, row, State.FAILED, actor, failure)
            return failure
        # online -> online is not a move; reconnecting is bookkeeping on the same state.
        row.last_connected_at = utcnow()
        await session.flush()
        await audit.record(
            session,
            actor,
            "session.resumed",
            f"{actor.name} reconnected session {row.handle} after a restart",
            target=f"session:{row.handle}",
        )
        return None
