"""A fake of neonize's ``NewAClient`` (``neonize.aioze.client``), strict where neonize is.

What it copies from the library (neonize 0.5.2, its Go side ``goneonize/main.go``,
and whatsmeow under it):

- ``connect()`` opens the store (an SQLite file at the client's name, whose
  schema it creates) and returns the connection *task*; a dial failure is
  that task raising ``NeonizeError``, not ``connect()`` raising. The task
  ends, without error, only when the client is stopped.
- A store with no device is pairing: once the websocket is up, the QR codes
  go to the ``qr`` callback (as bytes), one at a time, and every subscribed
  event (``QREv`` among them) waits in neonize's Go channel until the QR loop
  ends (pairing succeeded or failed). Then the client's own ``Device`` comes
  first (it sets ``client.me``), then the queue.
- Events go only to subscribed types, each handler run as its own task, with
  the event decoded from its serialized bytes, as ``Event.execute`` does;
  an exception in a handler goes nowhere in neonize (kept here for
  ``settle()`` to raise, so a test sees it).
- ``PairPhone`` needs the websocket ("websocket not connected") and a phone
  number in international form; the code looks like WhatsApp's (``ABCD-EFGH``).
- ``send_message`` needs a running client ("client is nil"), a linked device
  ("the store doesn't contain a device JID") and the websocket; a ``str`` goes
  out as an ``extendedTextMessage``, as neonize sends it.
- A drop (``DisconnectedEv``) is followed by whatsmeow's own reconnect a moment
  later unless the client was stopped or disconnected meanwhile; a logout from
  the phone (``LoggedOutEv``) deletes the device row from the store, as
  whatsmeow does, and the device stays unlinked at ``FakeWhatsApp``: a later
  connect with an old copy of the store is logged out on connect.
- ``logout()`` deletes the device row and emits nothing; ``disconnect()`` and
  ``stop()`` emit nothing either (whatsmeow emits ``Disconnected`` only when the
  server or the network ends the connection).
- The QR loop ends only on a link, a failed pairing or the codes running out;
  neither disconnect nor stop ends it. At its end goneonize's ``FetchMe`` reads
  the client from its table and waits for a device id: a client stopped
  meanwhile is gone from the table and Go dereferences nil, killing the
  process (recorded in ``FakeWhatsApp.fatal``, raised by ``settle``); a client
  with no device (failed pairing, codes ran out) waits forever, so its queued
  events are never delivered and its task never ends (``hung``).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from neonize.aioze.events import (
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    QREv,
)
from neonize.events import EVENT_TO_INT, INT_TO_EVENT
from neonize.exc import (
    GetJIDFromStoreError,
    LogoutError,
    NeonizeError,
    PairPhoneError,
    SendMessageError,
)
from neonize.proto.Neonize_pb2 import (
    JID,
    ConnectFailureReason,
    Device,
    MessageDebugTimings,
    MessageInfo,
    MessageSource,
    Node,
    SendResponse,
)
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ExtendedTextMessage
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage

PHONE_SERVER = "s.whatsapp.net"
DIAL_REFUSED = (
    "failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake "
    'request: Get "https://web.whatsapp.com/ws/chat": dial tcp 157.240.0.53:443: connect: '
    "connection refused"
)
# whatsmeow's pairing-code alphabet (Crockford-like base32 without 0, I, O, U).
CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"

# whatsmeow's device table as its migrations create it (the fake makes no other table).
DEVICE_TABLE = """
CREATE TABLE IF NOT EXISTS whatsmeow_device (
    jid TEXT PRIMARY KEY,
    lid TEXT,
    facebook_uuid uuid,
    registration_id BIGINT NOT NULL CHECK ( registration_id >= 0 AND registration_id < 4294967296 ),
    noise_key    bytea NOT NULL CHECK ( length(noise_key) = 32 ),
    identity_key bytea NOT NULL CHECK ( length(identity_key) = 32 ),
    signed_pre_key     bytea   NOT NULL CHECK ( length(signed_pre_key) = 32 ),
    signed_pre_key_id  INTEGER NOT NULL
        CHECK ( signed_pre_key_id >= 0 AND signed_pre_key_id < 16777216 ),
    signed_pre_key_sig bytea   NOT NULL CHECK ( length(signed_pre_key_sig) = 64 ),
    adv_key             bytea NOT NULL,
    adv_details         bytea NOT NULL,
    adv_account_sig     bytea NOT NULL CHECK ( length(adv_account_sig) = 64 ),
    adv_account_sig_key bytea NOT NULL CHECK ( length(adv_account_sig_key) = 32 ),
    adv_device_sig      bytea NOT NULL CHECK ( length(adv_device_sig) = 64 ),
    platform      TEXT NOT NULL DEFAULT '',
    business_name TEXT NOT NULL DEFAULT '',
    push_name     TEXT NOT NULL DEFAULT '',
    lid_migration_ts BIGINT NOT NULL DEFAULT 0,
    companion_meta_nonce TEXT NOT NULL DEFAULT ''
)
"""

Handler = Callable[[Any, Any], Awaitable[None]]


def parse_jid(text: str) -> JID:
    """``user[:device]@server`` as neonize's JID message."""
    user, _, server = text.partition("@")
    user, _, device = user.partition(":")
    return JID(
        User=user,
        Device=int(device or 0),
        Server=server,
        RawAgent=0,
        Integrator=0,
        IsEmpty=False,
    )


def empty_jid() -> JID:
    """What goneonize encodes for a JID whatsmeow left empty (every field is required)."""
    return JID(User="", RawAgent=0, Device=0, Integrator=0, Server="", IsEmpty=True)


def device_info(jid: str | None) -> Device:
    """The client's own device, as goneonize's FetchMe sends it first."""
    return Device(
        JID=parse_jid(jid) if jid else empty_jid(),
        LID=empty_jid(),
        Platform="",
        BussinessName="",
        PushName="Guildhall test" if jid else "",
        Initialized=jid is not None,
    )


def jid_text(jid: JID) -> str:
    return f"{jid.User}@{jid.Server}"


def device_jid(store: Path) -> str | None:
    """The linked device in a whatsmeow store file, if any."""
    database = sqlite3.connect(store)
    try:
        row = database.execute("SELECT jid FROM whatsmeow_device LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        database.close()
    return None if row is None else str(row[0])


def _insert_device(database: sqlite3.Connection, jid: str) -> None:
    with database:
        database.execute(DEVICE_TABLE)
        database.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key,"
            " signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details,"
            " adv_account_sig, adv_account_sig_key, adv_device_sig, platform, push_name)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'android', 'Guildhall test')",
            (
                jid,
                secrets.randbelow(2**31),
                secrets.token_bytes(32),
                secrets.token_bytes(32),
                secrets.token_bytes(32),
                1,
                secrets.token_bytes(64),
                secrets.token_bytes(32),
                secrets.token_bytes(48),
                secrets.token_bytes(64),
                secrets.token_bytes(32),
                secrets.token_bytes(64),
            ),
        )


def link_store(store: Path, jid: str) -> None:
    """Write a linked device's row into the store at ``store`` (as whatsmeow's pairing
    does), keys of the lengths whatsmeow checks; the table is made if it is missing."""
    database = sqlite3.connect(store)
    try:
        _insert_device(database, jid)
    finally:
        database.close()


def linked_state(phone: str, device: int = 7) -> bytes:
    """The bytes of a store holding one linked device: a login state made without pairing."""
    database = sqlite3.connect(":memory:")
    try:
        _insert_device(database, f"{phone}:{device}@{PHONE_SERVER}")
        return database.serialize()
    finally:
        database.close()


@dataclass(frozen=True)
class Sent:
    to: str
    text: str
    message_id: str


class FakeWhatsApp:
    """WhatsApp's side of every fake client: which devices the phones unlinked, who
    sent what, the LID-to-number map, and the switches that make a connect fail."""

    def __init__(self) -> None:
        self.clients: list[FakeClient] = []
        self.unlinked: set[str] = set()
        self.lid_numbers: dict[str, str] = {}
        self.sent: list[Sent] = []
        self.logouts: list[str] = []
        self.reconnect_delay = 0.05
        self._dial_error: str | None = None
        self.unreachable: str | None = None
        self._refusal: tuple[int, str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []
        self.fatal: list[str] = []

    # The connector's client_factory.
    def factory(self, path: str) -> FakeClient:
        client = FakeClient(self, path)
        self.clients.append(client)
        return client

    def client(self, handle: str) -> FakeClient:
        """The newest client made for the session ``handle``."""
        for client in reversed(self.clients):
            if Path(client.name).stem == handle:
                return client
        raise LookupError(f"no client was made for {handle}")

    def fail_next_connect(self, message: str = DIAL_REFUSED) -> None:
        """The next connect's task raises NeonizeError(message), as a failed dial does."""
        self._dial_error = message

    def refuse_next_login(self, reason: str = "SERVICE_UNAVAILABLE", message: str = "") -> None:
        """The next connect of a linked device gets ConnectFailureEv(reason) from the server."""
        self._refusal = (ConnectFailureReason.Value(reason), message)

    def map_lid(self, lid_user: str, phone: str) -> None:
        self.lid_numbers[lid_user] = phone

    async def settle(self) -> None:
        """Wait until every event handed to a handler (and every reconnect) has run."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        if self.fatal:
            raise RuntimeError(f"the process would have died: {self.fatal[0]}")
        if self._errors:
            raise self._errors.pop(0)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                self._errors.append(exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def go_unreachable(self, message: str = DIAL_REFUSED) -> None:
        """Every dial fails with ``message`` until ``come_back`` (the network is down)."""
        self.unreachable = message

    def come_back(self) -> None:
        self.unreachable = None

    def _take_dial_error(self) -> str | None:
        error, self._dial_error = self._dial_error, None
        return error or self.unreachable

    def _take_refusal(self) -> tuple[int, str] | None:
        refusal, self._refusal = self._refusal, None
        return refusal


class _Event:
    """neonize's ``Event``: handlers per event type, and the QR callback."""

    def __init__(self) -> None:
        self.list_func: dict[int, Handler] = {}
        self._qr: Handler = self._ignore_qr

    @staticmethod
    async def _ignore_qr(_client: Any, _code: bytes) -> None:
        return None  # neonize's default prints the QR to the terminal

    def qr(self, f: Handler) -> None:
        self._qr = f

    def __call__(self, event: type[ProtoMessage]) -> Callable[[Handler], None]:
        def callback(func: Handler) -> None:
            self.list_func.update({EVENT_TO_INT[event]: func})

        return callback


class FakeClient:
    """What the connector sees of ``neonize.aioze.client.NewAClient``."""

    def __init__(self, network: FakeWhatsApp, name: str) -> None:
        self.network = network
        self.name = name
        self.uuid = name.encode()
        self.event = _Event()
        self.qr = self.event.qr
        self.connect_task: asyncio.Task[None] | None = None
        self.connected = False
        self.me: Device | None = None
        self.proxy: Any = None
        self.stopped = False
        self.auto_reconnects = 0
        self._running = False  # in goneonize's client map: between connect and stop
        self._socket = False
        self._jid: str | None = None
        self._qr_loop = False
        self._queued: list[tuple[int, ProtoMessage]] = []
        self._pairing: tuple[str, str] | None = None
        self._stop = asyncio.Event()
        self._manual_disconnect = False
        self._removed = False  # stopped: gone from goneonize's client table
        self.hung = False  # goneonize's FetchMe waits forever for a device id

    @property
    def store(self) -> Path:
        return Path(self.name)

    # --- the library's surface ---------------------------------------------------------

    async def connect(self, proxy_settings: Any = None) -> asyncio.Task[None]:
        self.proxy = proxy_settings
        loop = asyncio.get_running_loop()
        self._running = True
        failure = self._open_store()
        if failure is None:
            failure = self.network._take_dial_error()
        if failure is None:
            self._handshake()

        async def run() -> None:
            if failure is not None:
                raise NeonizeError(failure)
            await self._stop.wait()
            while self.hung:  # stuck in FetchMe: stopping does not reach it
                await asyncio.sleep(0.1)

        self.connect_task = loop.create_task(run())
        return self.connect_task

    async def PairPhone(  # neonize's name
        self,
        phone: str,
        show_push_notification: bool,
        client_name: Any = None,
        client_type: Any = None,
    ) -> str:
        if not self._running:
            raise PairPhoneError("client is nil")
        if not self._socket:
            raise PairPhoneError("websocket not connected")
        digits = "".join(ch for ch in phone if ch.isdigit())
        if len(digits) <= 6:
            raise PairPhoneError("phone number too short")
        if digits.startswith("0"):
            raise PairPhoneError("international phone number required (must not start with 0)")
        letters = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
        code = f"{letters[:4]}-{letters[4:]}"
        self._pairing = (digits, code)
        return code

    async def send_message(self, to: JID | str, message: Any, **_options: Any) -> SendResponse:
        if not self._running:
            raise SendMessageError("client is nil")
        if self._jid is None:
            raise SendMessageError("the store doesn't contain a device JID")
        if not self._socket:
            raise SendMessageError(
                "failed to get device list: failed to send usync query: websocket not connected"
            )
        jid = to if isinstance(to, JID) else parse_jid(to if "@" in to else f"{to}@{PHONE_SERVER}")
        if isinstance(message, str):
            body = WAMessage(extendedTextMessage=ExtendedTextMessage(text=message))
        else:
            body = message
        text = body.conversation or body.extendedTextMessage.text
        message_id = "3EB0" + secrets.token_hex(8).upper()
        self.network.sent.append(Sent(jid_text(jid), text, message_id))
        timings = dict.fromkeys(MessageDebugTimings.DESCRIPTOR.fields_by_name, 0)
        return SendResponse(
            ID=message_id,
            Timestamp=int(time.time() * 1000),
            ServerID=0,
            DebugTimings=MessageDebugTimings(**timings),
            Sender=parse_jid(self._jid),
            Chat=jid,
            Message=body,
        )

    async def get_pn_from_lid(self, jid: JID) -> JID:
        if not self._running:
            raise GetJIDFromStoreError("client is nil")
        phone = self.network.lid_numbers.get(jid.User)
        if phone is None:
            return empty_jid()  # whatsmeow: an unknown LID is an empty JID, no error
        return parse_jid(f"{phone}@{PHONE_SERVER}")

    async def get_me(self) -> Device:
        return self.me or device_info(self._jid)

    async def logout(self) -> None:
        if not self._running:
            raise LogoutError("client is nil")
        if self._jid is None:
            raise LogoutError("the store doesn't contain a device JID")
        if not self._socket:
            raise LogoutError("error sending logout request: websocket not connected")
        self.network.logouts.append(self._jid)
        self.network.unlinked.add(self._jid)
        self._unlink()
        self._socket = False

    async def disconnect(self) -> None:
        self._socket = False
        self._manual_disconnect = True

    async def stop(self) -> None:
        self._socket = False
        self._running = False
        self._removed = True
        self.stopped = True
        self._stop.set()

    # --- what the test does at WhatsApp --------------------------------------------------

    def phone_enters_code(self, device: int = 12) -> str:
        """The phone's owner typed the code: the store holds the device, pairing
        succeeds, neonize's queue is delivered, and the client comes online."""
        if self._pairing is None or not self._qr_loop:
            raise RuntimeError("no pairing code is waiting on this client")
        phone, _code = self._pairing
        jid = f"{phone}:{device}@{PHONE_SERVER}"
        link_store(self.store, jid)
        self._jid = jid
        self._emit(
            PairStatusEv(
                ID=parse_jid(jid), Status=PairStatusEv.SUCCESS, Platform="android", BusinessName=""
            )
        )
        self._end_qr_loop()
        self._emit(ConnectedEv(status=True))  # after the 515 reconnect that follows pairing
        return jid

    def phone_rejects_code(self, error: str = "pairing code was entered incorrectly") -> None:
        if not self._qr_loop:
            raise RuntimeError("this client is not pairing")
        self._emit(
            PairStatusEv(
                ID=empty_jid(),
                Status=PairStatusEv.ERROR,
                Platform="",
                BusinessName="",
                Error=error,
            )
        )
        self._end_qr_loop()

    def qr_codes_run_out(self) -> None:
        """Nobody linked in time: whatsmeow ends the QR loop and disconnects."""
        if not self._qr_loop:
            raise RuntimeError("this client is not pairing")
        self._socket = False
        self._end_qr_loop()

    def rotate_qr(self, code: str) -> None:
        """The QR loop shows its next code (to the qr callback, as neonize delivers it)."""
        if not self._qr_loop:
            raise RuntimeError("this client is not pairing")
        self.network._spawn(self.event._qr(self, code.encode()))

    def drop(self) -> None:
        """The network loses the connection; whatsmeow reconnects on its own soon after."""
        if not self._socket:
            raise RuntimeError("this client has no connection to drop")
        self._socket = False
        self._emit(DisconnectedEv(status=True))
        self.network._spawn(self._auto_reconnect())

    def phone_logs_out(self, reason: str = "LOGGED_OUT") -> None:
        """The device is removed under Linked devices on the phone."""
        if self._jid is None or not self._socket:
            raise RuntimeError("this client is not logged in")
        self.network.unlinked.add(self._jid)
        self._unlink()
        self._socket = False
        self._emit(LoggedOutEv(OnConnect=False, Reason=ConnectFailureReason.Value(reason)))

    def incoming_text(
        self,
        sender_jid: str,
        text: str,
        sender_alt: str | None = None,
        *,
        chat: str | None = None,
        from_me: bool = False,
        extended: bool = False,
    ) -> str:
        """A text message reaches the bot; its message id."""
        if extended:
            body = WAMessage(extendedTextMessage=ExtendedTextMessage(text=text))
        else:
            body = WAMessage(conversation=text)
        return self.incoming(sender_jid, body, sender_alt, chat=chat, from_me=from_me)

    def incoming(
        self,
        sender_jid: str,
        body: WAMessage,
        sender_alt: str | None = None,
        *,
        chat: str | None = None,
        from_me: bool = False,
    ) -> str:
        if self._jid is None or not self._socket:
            raise RuntimeError("this client is not logged in")
        sender = parse_jid(sender_jid)
        chat_jid = parse_jid(chat) if chat else parse_jid(f"{sender.User}@{sender.Server}")
        message_id = "3A" + secrets.token_hex(9).upper()
        source = MessageSource(
            Chat=chat_jid,
            Sender=sender,
            IsFromMe=from_me,
            IsGroup=chat_jid.Server == "g.us",
            SenderAlt=parse_jid(sender_alt) if sender_alt else empty_jid(),
            RecipientAlt=empty_jid(),
            BroadcastListOwner=empty_jid(),
        )
        info = MessageInfo(
            MessageSource=source,
            ID=message_id,
            ServerID=0,
            Type="text" if body.conversation or body.extendedTextMessage.text else "media",
            Pushname="Someone",
            Timestamp=int(time.time() * 1000),  # goneonize encodes UnixMilli
            Category="",
            Multicast=False,
            MediaType="",
            Edit="",
        )
        flags = dict.fromkeys(
            (
                "IsEphemeral",
                "IsViewOnce",
                "IsViewOnceV2",
                "IsViewOnceV2Extension",
                "IsDocumentWithCaption",
                "IsLottieSticker",
                "IsEdit",
            ),
            False,
        )
        self._emit(
            MessageEv(Info=info, Message=body, UnavailableRequestID="", RetryCount=0, **flags)
        )
        return message_id

    # --- neonize's Go side ----------------------------------------------------------------

    def _open_store(self) -> str | None:
        """sqlstore.New with its upgrade: the schema, or the error neonize returns."""
        try:
            database = sqlite3.connect(self.store)
            try:
                with database:
                    database.execute(DEVICE_TABLE)
            finally:
                database.close()
        except sqlite3.DatabaseError as exc:
            return f"failed to upgrade database: {exc}"
        return None

    def _handshake(self) -> None:
        jid = device_jid(self.store)
        if jid is None:
            self._socket = True
            self._qr_loop = True
            codes = [f"2@{secrets.token_urlsafe(48)},{secrets.token_urlsafe(32)}" for _ in range(6)]
            self.network._spawn(self.event._qr(self, codes[0].encode()))
            self._emit(QREv(Codes=codes))
            return
        self._jid = jid
        self._deliver(0, device_info(jid))
        if jid in self.network.unlinked:
            self._unlink()
            self._emit(LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.LOGGED_OUT))
            return
        refusal = self.network._take_refusal()
        if refusal is not None:
            reason, message = refusal
            self._emit(ConnectFailureEv(Reason=reason, Message=message, Raw=Node(Tag="failure")))
            return
        self._socket = True
        self._emit(ConnectedEv(status=True))

    def _unlink(self) -> None:
        database = sqlite3.connect(self.store)
        try:
            with database:
                database.execute("DELETE FROM whatsmeow_device")
        finally:
            database.close()
        self._jid = None

    def _end_qr_loop(self) -> None:
        self._qr_loop = False
        if self._removed:
            self.network.fatal.append(
                f"goneonize's FetchMe read stopped client {self.name} (nil pointer dereference)"
            )
            return
        if self._jid is None:
            self.hung = True
            return
        self._deliver(0, device_info(self._jid))
        queued, self._queued = self._queued, []
        for code, message in queued:
            self._deliver(code, message)

    def _emit(self, message: ProtoMessage) -> None:
        code = EVENT_TO_INT[type(message)]
        if code not in self.event.list_func:
            return  # goneonize sends only subscribed events
        if self._qr_loop:
            self._queued.append((code, message))
        else:
            self._deliver(code, message)

    def _deliver(self, code: int, message: ProtoMessage) -> None:
        """``Event.execute``: decode, remember ``me``, mark connected, run the handler."""
        decoded = INT_TO_EVENT[code].FromString(message.SerializeToString())
        if code == 0:
            self.me = decoded  # type: ignore[assignment]
            return
        if code == EVENT_TO_INT[ConnectedEv]:
            self.connected = True
        handler = self.event.list_func.get(code)
        if handler is not None:
            self.network._spawn(_as_coroutine(handler(self, decoded)))

    async def _auto_reconnect(self) -> None:
        await asyncio.sleep(self.network.reconnect_delay)
        if not self._running or self._manual_disconnect or self._socket or self._jid is None:
            return
        self._socket = True
        self.auto_reconnects += 1
        self._emit(ConnectedEv(status=True))


async def _as_coroutine(work: Awaitable[None]) -> None:
    await work
