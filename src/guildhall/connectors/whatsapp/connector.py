"""WhatsApp multi-device links through neonize (whatsmeow), shaped to the core's connector.

A session's bot is a linked device of its owner's WhatsApp account. The
decisions, and why:

- **The store is the login state.** whatsmeow keeps a device's keys, signal
  sessions and pre-keys in its own SQLite store; that whole store, as bytes,
  is what the core seals and keeps. Each session gets one store file,
  ``<store_dir>/<handle>.db`` (0600, in a 0700 directory: it holds the
  account's keys), written from the kept bytes at ``connect`` and removed when
  the connection ends (the core keeps it sealed): at rest it is never in the
  clear. Bytes are taken with SQLite's backup API into memory, so they are a
  consistent snapshot even while whatsmeow writes, never a torn file read.
  Keys ratchet as messages flow, so a fresh snapshot goes to the core
  (``saved``) whenever a connection ends (a clean disconnect, a drop, close)
  and, while messages arrive, at most once a minute.
- **Reconnects are the core's.** It backs off, records failures and moves
  leases between processes; a second reconnect loop here would fight it. On a
  drop the connector reports ``dropped`` and stops the client. neonize does
  not expose whatsmeow's ``EnableAutoReconnect``, so stopping the client
  (whatsmeow treats a local disconnect as expected and does not reconnect) is
  the only way to keep whatsmeow's own loop out of it.
- **Pairing is by code, on the phone.** ``request_pairing_code`` connects an
  empty store, waits until WhatsApp is reachable (an unlinked device is sent
  its first QR once the websocket is up; neonize hands QR codes to the ``qr``
  callback while pairing and queues every other event until the QR loop ends,
  so the QR is the only sign of life), then asks for the code. The link
  arrives later as a successful ``PairStatusEv``; a failed one is only logged
  (the core expires the pairing). ``complete_pairing`` is for stand-in
  platforms and is refused here.
- **The sender's phone number.** WhatsApp increasingly addresses people by
  LID (``…@lid``), an id that hides the number. The number is taken from
  ``Sender`` when it is a phone JID, else from ``SenderAlt`` (whatsmeow puts
  the phone JID there when the server sends it), else from the store's
  LID-to-number map; failing all three, the LID itself stands in.
- **neonize's quirks handled here**: events reach Python on one event loop
  chosen once per process (the first ``connect``), so the default client
  factory points it at the running loop; its ``is_connected`` property returns
  an un-awaited coroutine, so the connector tracks state from events instead.

Every platform call is bounded by ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from guildhall.connectors.whatsapp import load_neonize
from guildhall.core.sessions.connector import (
    ConnectorError,
    IncomingMessage,
    LoggedOut,
    PlatformEvents,
)
from guildhall.filemodes import PRIVATE_FILE, private_directory

PLATFORM = "whatsapp"
PHONE_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
SQLITE_HEADER = b"SQLite format 3\x00"
# The core's own rule for handles; checked again because a handle names a file here.
HANDLE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
PHONE_PATTERN = re.compile(r"[0-9]{5,20}")

SAVE_EVERY_SECONDS = 60
"""While messages flow, the store goes to the core at most this often (and at every end)."""
NOT_A_STORE = "the login state is not a WhatsApp device store"
NO_DEVICE = "the login state holds no linked WhatsApp device"
DROPPED = "the connection to WhatsApp was lost"
CODE_ON_PHONE = (
    "WhatsApp links when the code is entered on the phone; there is nothing to enter here"
)

ClientFactory = Callable[[str], Any]
"""Makes a neonize ``NewAClient`` on the store file at the given path."""

logger = logging.getLogger(__name__)


def _neonize_client(path: str) -> Any:
    """neonize's own client. neonize dispatches every event to one loop, kept in a module
    global that its ``connect`` sets only once per process; a process (or test run)
    that runs more than one loop would have events sent to a closed one, so the
    global is pointed at the loop that makes the client."""
    load_neonize()
    from neonize.aioze import events as neonize_events
    from neonize.aioze.client import NewAClient

    neonize_events.event_global_loop = asyncio.get_running_loop()
    # Its own id per client (the store path is only the file): goneonize keys its clients,
    # event channels and stop signals by id, and an abandoned pairing's thread lingers
    # (see ``_forget``); a new client under the same id would share them with it.
    return NewAClient(path, uuid=f"{path}#{secrets.token_hex(8)}")


def _jid_string(jid: Any) -> str:
    """``user@server`` without the device part: the address of a person, not of one phone."""
    return f"{jid.User}@{jid.Server}" if jid.User else str(jid.Server)


def _linked_devices(state: bytes) -> int:
    """How many devices a store holds; ConnectorError if the bytes are no whatsmeow store."""
    if not isinstance(state, bytes) or not state.startswith(SQLITE_HEADER):
        raise ConnectorError(NOT_A_STORE)
    database = sqlite3.connect(":memory:")
    try:
        database.deserialize(state)
        row = database.execute(
            "SELECT count(*) FROM whatsmeow_device WHERE jid IS NOT NULL AND jid != ''"
        ).fetchone()
    except sqlite3.DatabaseError:
        raise ConnectorError(NOT_A_STORE) from None
    finally:
        database.close()
    return int(row[0])


def _checked_state(state: bytes) -> bytes:
    if _linked_devices(state) == 0:
        raise ConnectorError(NO_DEVICE)
    return state


def _snapshot_file(path: Path) -> bytes:
    """A consistent copy of a live SQLite file: the backup API copies under SQLite's own
    locking (and starts over if a writer changes the file meanwhile)."""
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    copy = sqlite3.connect(":memory:")
    try:
        source.backup(copy)
        return copy.serialize()
    finally:
        copy.close()
        source.close()


def _remove_store(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _write_store(path: Path, state: bytes) -> None:
    """Put kept bytes back as the store file, made 0600 before any byte is in it."""
    _remove_store(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(state)


@dataclass(eq=False)
class _Session:
    """One neonize client and what is known of its connection."""

    handle: str
    client: Any
    store: Path
    purpose: Literal["pairing", "login"]
    ready: asyncio.Future[None]
    """Pairing: the websocket is up (the first QR came). Login: WhatsApp accepted the login."""
    task: asyncio.Future[Any] | None = None
    online: bool = False
    shown: set[str] = field(default_factory=set)
    """QR codes already reported."""
    order: asyncio.Lock = field(default_factory=asyncio.Lock)
    """neonize runs each event in its own task; this keeps one client's events in order."""
    saved_at: float = 0.0
    """When the store was last handed to the core (the event loop's clock)."""


class WhatsAppConnector:
    name = PLATFORM

    def __init__(
        self,
        store_dir: Path,
        *,
        client_factory: ClientFactory | None = None,
        proxy: str | None = None,
        timeout: float = 10,
    ) -> None:
        load_neonize()  # a missing library stops the start here, in one sentence
        from neonize._binder import ProxySettings
        from neonize.aioze import events as neonize_events
        from neonize.exc import NeonizeError
        from neonize.proto.Neonize_pb2 import ConnectFailureReason, PairStatus
        from neonize.utils.jid import build_jid

        self._ev = neonize_events
        self._neonize_error: type[Exception] = NeonizeError
        self._build_jid = build_jid
        self._failure_reason = ConnectFailureReason
        self._pair_success = PairStatus.SUCCESS
        self._proxy_settings = ProxySettings(proxy_address=proxy) if proxy else None
        self.store_dir = Path(store_dir)
        self._factory = client_factory or _neonize_client
        self._timeout = timeout
        self._sessions: dict[str, _Session] = {}
        self._events: PlatformEvents | None = None

    def attach(self, events: PlatformEvents) -> None:
        self._events = events

    # --- the core's calls -------------------------------------------------------------

    async def request_pairing_code(self, handle: str, phone_number: str) -> str:
        store = self._store_path(handle)
        await self._forget(handle)
        _remove_store(store)
        self._prepare_store(store)
        session = await self._start(handle, store, "pairing")
        try:
            async with asyncio.timeout(self._timeout):
                code: str = await session.client.PairPhone(phone_number, True)
        except TimeoutError:
            await self._forget(handle)
            raise ConnectorError("WhatsApp gave no pairing code in time") from None
        except self._neonize_error as exc:
            await self._forget(handle)
            raise ConnectorError(f"WhatsApp refused to issue a pairing code: {exc}") from None
        return code

    async def complete_pairing(self, handle: str, phone_number: str, paired_at: datetime) -> bytes:
        raise ConnectorError(CODE_ON_PHONE)

    async def connect(self, handle: str, login_state: bytes) -> None:
        store = self._store_path(handle)
        _checked_state(login_state)
        await self._forget(handle)
        private_directory(self.store_dir)
        await asyncio.to_thread(_write_store, store, login_state)
        try:
            await self._start(handle, store, "login")
        except ConnectorError:
            _remove_store(store)  # kept sealed by the core; nothing stays in the clear
            raise

    def is_connected(self, handle: str) -> bool:
        session = self._sessions.get(handle)
        return session is not None and session.online

    async def disconnect(self, handle: str) -> None:
        session = self._sessions.get(handle)
        if session is None:
            return
        await self._save(session)
        await self._forget(handle)
        _remove_store(session.store)  # the core keeps it, sealed; nothing stays in the clear

    async def logout(self, handle: str, login_state: bytes | None) -> None:
        store = self._store_path(handle)
        session = self._sessions.get(handle)
        try:
            if session is not None and session.online:
                async with asyncio.timeout(self._timeout):
                    await session.client.logout()
            elif login_state is not None:
                await self._forget(handle)
                await self.connect(handle, login_state)
                session = self._sessions[handle]
                async with asyncio.timeout(self._timeout):
                    await session.client.logout()
        except (ConnectorError, TimeoutError, self._neonize_error) as exc:
            logger.warning("WhatsApp session %s: logging out at WhatsApp failed: %s", handle, exc)
        finally:
            await self._forget(handle)
            _remove_store(store)

    async def send_text(self, handle: str, to: str, text: str) -> str:
        session = self._sessions.get(handle)
        if session is None or not session.online:
            raise ConnectorError(f"session {handle} is not connected to WhatsApp here")
        number = to.removeprefix("+")
        if not PHONE_PATTERN.fullmatch(number):
            raise ConnectorError(f"{to!r} is not a phone number")
        try:
            async with asyncio.timeout(self._timeout):
                response = await session.client.send_message(self._build_jid(number), text)
        except TimeoutError:
            raise ConnectorError("WhatsApp did not confirm the message in time") from None
        except self._neonize_error as exc:
            raise ConnectorError(f"WhatsApp refused the message: {exc}") from None
        return str(response.ID)

    def export_state(self, login_state: bytes) -> bytes:
        return _checked_state(login_state)

    def import_state(self, exported: bytes) -> bytes:
        return _checked_state(exported)

    async def close(self) -> None:
        for handle, session in list(self._sessions.items()):
            try:
                await self._save(session)
            finally:
                await self._forget(handle)
                _remove_store(session.store)

    # --- clients ----------------------------------------------------------------------

    def _store_path(self, handle: str) -> Path:
        if not HANDLE_PATTERN.fullmatch(handle):
            raise ConnectorError(f"session handle {handle!r} cannot name a WhatsApp store")
        return self.store_dir / f"{handle}.db"

    def _prepare_store(self, store: Path) -> None:
        """An empty 0600 file before whatsmeow makes it with the umask's mode."""
        private_directory(self.store_dir)
        _write_store(store, b"")

    async def _start(
        self, handle: str, store: Path, purpose: Literal["pairing", "login"]
    ) -> _Session:
        """Make a client on ``store``, connect it and wait until it is ``ready``."""
        loop = asyncio.get_running_loop()
        session = _Session(handle, self._factory(str(store)), store, purpose, loop.create_future())
        self._subscribe(session)
        self._sessions[handle] = session
        try:
            async with asyncio.timeout(self._timeout):
                session.task = await session.client.connect(self._proxy_settings)
                await asyncio.wait(
                    {session.ready, session.task}, return_when=asyncio.FIRST_COMPLETED
                )
        except TimeoutError:
            await self._forget(handle)
            raise ConnectorError(
                f"WhatsApp did not answer within {self._timeout:g} seconds"
            ) from None
        except self._neonize_error as exc:
            await self._forget(handle)
            raise ConnectorError(f"WhatsApp could not be reached: {exc}") from None
        if session.ready.done():
            if (refused := session.ready.exception()) is not None:
                await self._forget(handle)
                raise refused
            return session
        assert session.task is not None
        failure = None if session.task.cancelled() else session.task.exception()
        await self._forget(handle)
        if failure is not None:
            raise ConnectorError(f"WhatsApp could not be reached: {failure}")
        raise ConnectorError("WhatsApp closed the connection before it was ready")

    async def _forget(self, handle: str) -> None:
        """End the handle's client, if any; its later events are ignored.

        A client still in its QR loop (pairing, not linked) is only disconnected,
        never stopped: neonize leaves that loop when the QR codes run out and then
        reads the client from its table, so a stopped (removed) one makes Go
        dereference nil and the whole process dies. Disconnected, its thread waits
        there for a device that never comes: a leak, not a crash.
        """
        session = self._sessions.pop(handle, None)
        if session is None:
            return
        task = session.task
        # Its connection task still running and no link yet: goneonize is in the QR loop.
        in_qr_loop = (
            session.purpose == "pairing"
            and not session.online
            and task is not None
            and not task.done()
        )
        if not session.ready.done():
            session.ready.cancel()
        elif not session.ready.cancelled():
            session.ready.exception()  # seen: no "exception never retrieved" later
        try:
            async with asyncio.timeout(self._timeout):
                if in_qr_loop:
                    await session.client.disconnect()
                else:
                    await session.client.stop()
        except (TimeoutError, self._neonize_error) as exc:
            logger.warning("WhatsApp session %s: ending the client failed: %s", handle, exc)
        if task is None:
            return
        task.add_done_callback(_retrieve)
        if not in_qr_loop:
            # Stopping ends neonize's connection task; wait a little for its outcome.
            await asyncio.wait({task}, timeout=min(self._timeout, 1))

    def _current(self, session: _Session) -> bool:
        return self._sessions.get(session.handle) is session

    async def _save(self, session: _Session) -> None:
        """Hand the core the store as it is now; failing that, it keeps the older one."""
        try:
            state = await asyncio.to_thread(_snapshot_file, session.store)
            _checked_state(state)
        except (sqlite3.Error, ConnectorError) as exc:
            logger.warning("WhatsApp session %s: no login state to save: %s", session.handle, exc)
            return
        session.saved_at = asyncio.get_running_loop().time()
        await self._report("saved", session.handle, state)

    async def _report(self, what: str, *args: Any) -> None:
        """Tell the core; an error there is logged, since no caller waits for it."""
        if self._events is None:
            logger.warning("WhatsApp event %s for %s dropped: no receiver attached", what, args[0])
            return
        try:
            await getattr(self._events, what)(*args)
        except Exception:
            logger.exception("WhatsApp session %s: the core failed on %s", args[0], what)

    # --- what WhatsApp does on its own ----------------------------------------------

    def _subscribe(self, session: _Session) -> None:
        ev = self._ev

        def ordered(
            handler: Callable[[_Session, Any], Awaitable[None]],
        ) -> Callable[[Any, Any], Awaitable[None]]:
            async def run(_client: Any, event: Any) -> None:
                async with session.order:
                    if not self._current(session):
                        return  # a stopped client's late event
                    try:
                        await handler(session, event)
                    except Exception:
                        logger.exception(
                            "WhatsApp session %s: handling an event failed", session.handle
                        )

            return run

        client = session.client
        client.qr(ordered(self._on_qr_code))
        client.event(ev.QREv)(ordered(self._on_qr_event))
        client.event(ev.PairStatusEv)(ordered(self._on_pair_status))
        client.event(ev.ConnectedEv)(ordered(self._on_connected))
        client.event(ev.ConnectFailureEv)(ordered(self._on_connect_failure))
        client.event(ev.LoggedOutEv)(ordered(self._on_logged_out))
        client.event(ev.DisconnectedEv)(ordered(self._on_disconnected))
        client.event(ev.MessageEv)(ordered(self._on_message))

    async def _on_qr_code(self, session: _Session, data: bytes) -> None:
        await self._qr(session, data.decode() if isinstance(data, bytes) else str(data))

    async def _on_qr_event(self, session: _Session, event: Any) -> None:
        if event.Codes:
            await self._qr(session, str(event.Codes[0]))

    async def _qr(self, session: _Session, code: str) -> None:
        if session.purpose == "login":
            # whatsmeow found no device in the store and started pairing instead.
            if not session.ready.done():
                session.ready.set_exception(ConnectorError(NO_DEVICE))
            return
        if not session.ready.done():
            session.ready.set_result(None)
        # neonize hands each code to the qr callback as it is due, and queues the QREv
        # (whose first code was shown long ago) until the QR loop ends: never show a code twice.
        if session.online or code in session.shown:
            return
        session.shown.add(code)
        await self._report("qr", session.handle, code)

    async def _on_pair_status(self, session: _Session, event: Any) -> None:
        if event.Status != self._pair_success or event.Error:
            logger.info("WhatsApp session %s: pairing failed: %s", session.handle, event.Error)
            return
        state = await asyncio.to_thread(_snapshot_file, session.store)
        session.online = True
        await self._report("linked", session.handle, state)

    async def _on_connected(self, session: _Session, event: Any) -> None:
        if session.purpose == "login":
            session.online = True
            if not session.ready.done():
                session.ready.set_result(None)

    def _reason(self, reason: int) -> str:
        try:
            return str(self._failure_reason.Name(reason))
        except ValueError:
            return f"reason {reason}"

    async def _on_connect_failure(self, session: _Session, event: Any) -> None:
        detail = self._reason(event.Reason) + (f": {event.Message}" if event.Message else "")
        unlinked = event.Reason == self._failure_reason.Value("LOGGED_OUT")
        failure = (LoggedOut if unlinked else ConnectorError)(
            f"WhatsApp refused the connection ({detail})"
        )
        if not session.ready.done():
            session.ready.set_exception(failure)
        else:
            logger.warning("WhatsApp session %s: %s", session.handle, failure)

    async def _on_logged_out(self, session: _Session, event: Any) -> None:
        reason = self._reason(event.Reason)
        if not session.ready.done():
            _remove_store(session.store)
            session.ready.set_exception(LoggedOut(f"WhatsApp logged this device out ({reason})"))
            return
        await self._forget(session.handle)
        _remove_store(session.store)
        await self._report("logged_out", session.handle, f"logged out from the phone ({reason})")

    async def _on_disconnected(self, session: _Session, event: Any) -> None:
        if not session.ready.done():
            session.ready.set_exception(
                ConnectorError("WhatsApp closed the connection before it was ready")
            )
            return
        if not session.online:
            return  # a pairing websocket going away: the core expires the pairing
        await self._save(session)
        await self._forget(session.handle)
        _remove_store(session.store)  # the core reconnects from its sealed copy
        await self._report("dropped", session.handle, DROPPED)

    async def _on_message(self, session: _Session, event: Any) -> None:
        source = event.Info.MessageSource
        if source.IsFromMe or source.Chat.Server == "broadcast":
            return
        body = event.Message
        text = body.conversation or body.extendedTextMessage.text
        if not text:
            return
        sender_id = _jid_string(source.Sender)
        timestamp = event.Info.Timestamp  # milliseconds since the epoch
        sent_at = datetime.fromtimestamp(timestamp / 1000, UTC) if timestamp else datetime.now(UTC)
        message = IncomingMessage(
            sender=await self._phone_number(session, source) or sender_id,
            sender_id=sender_id,
            chat=_jid_string(source.Chat),
            text=str(text),
            message_id=str(event.Info.ID),
            sent_at=sent_at,
        )
        await self._report("message", session.handle, message)
        # Every message moves the keys on: keep a recent copy, so a crash loses little.
        if asyncio.get_running_loop().time() - session.saved_at >= SAVE_EVERY_SECONDS:
            await self._save(session)

    async def _phone_number(self, session: _Session, source: Any) -> str | None:
        sender, alternative = source.Sender, source.SenderAlt
        if sender.Server == PHONE_SERVER and sender.User:
            return str(sender.User)
        if alternative.Server == PHONE_SERVER and alternative.User:
            return str(alternative.User)
        if sender.Server != LID_SERVER:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                mapped = await session.client.get_pn_from_lid(
                    self._build_jid(sender.User, LID_SERVER)
                )
        except (TimeoutError, self._neonize_error) as exc:
            logger.info(
                "WhatsApp session %s: no number for %s: %s", session.handle, sender.User, exc
            )
            return None
        if mapped.Server == PHONE_SERVER and mapped.User:
            return str(mapped.User)
        return None


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            logger.debug("neonize's connection task ended: %s", error)
