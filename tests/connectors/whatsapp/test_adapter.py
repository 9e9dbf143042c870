"""The WhatsApp connector against a fake of neonize's client (tests/peers/whatsapp).

What the platform does on its own is observed the way the core observes it:
through a recording ``PlatformEvents``.
"""

from __future__ import annotations

import re
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ImageMessage
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage

from guildhall.config import ConfigError
from guildhall.connectors.whatsapp import load_neonize
from guildhall.connectors.whatsapp.connector import WhatsAppConnector
from guildhall.core.sessions.connector import ConnectorError, IncomingMessage, LoggedOut
from tests.peers.whatsapp.fake_client import FakeClient, FakeWhatsApp, linked_state

PHONE = "15550001111"
CODE = re.compile(r"[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}")


class Recorder:
    """The core's receiver, reduced to a list of what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def of(self, kind: str) -> list[Any]:
        return [value for what, _handle, value in self.calls if what == kind]

    async def linked(self, handle: str, login_state: bytes) -> None:
        self.calls.append(("linked", handle, login_state))

    async def saved(self, handle: str, login_state: bytes) -> None:
        self.calls.append(("saved", handle, login_state))

    async def dropped(self, handle: str, reason: str) -> None:
        self.calls.append(("dropped", handle, reason))

    async def logged_out(self, handle: str, reason: str) -> None:
        self.calls.append(("logged_out", handle, reason))

    async def message(self, handle: str, message: IncomingMessage) -> None:
        self.calls.append(("message", handle, message))

    async def qr(self, handle: str, code: str) -> None:
        self.calls.append(("qr", handle, code))


@pytest.fixture
def whatsapp() -> FakeWhatsApp:
    return FakeWhatsApp()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def connector(
    tmp_path: Path, whatsapp: FakeWhatsApp, recorder: Recorder
) -> AsyncIterator[WhatsAppConnector]:
    connector = WhatsAppConnector(tmp_path / "whatsapp", client_factory=whatsapp.factory, timeout=2)
    connector.attach(recorder)
    yield connector
    await connector.close()
    await whatsapp.settle()


async def online(connector: WhatsAppConnector, whatsapp: FakeWhatsApp, handle: str) -> FakeClient:
    await connector.connect(handle, linked_state(PHONE))
    await whatsapp.settle()
    return whatsapp.client(handle)


def devices_in(state: bytes) -> list[str]:
    database = sqlite3.connect(":memory:")
    try:
        database.deserialize(state)
        return [row[0] for row in database.execute("SELECT jid FROM whatsmeow_device")]
    finally:
        database.close()


# --- the library itself -------------------------------------------------------------


def test_without_neonize_the_connector_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "neonize", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as missing:
        WhatsAppConnector(tmp_path)
    assert str(missing.value) == (
        "The WhatsApp connector needs the neonize library: pip install 'guildhall[whatsapp]'."
    )


def test_with_neonize_installed_it_loads() -> None:
    assert load_neonize().__name__ == "neonize"


# --- pairing ------------------------------------------------------------------------


async def test_pairing_issues_whatsapps_code_and_reports_the_link(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder, tmp_path: Path
) -> None:
    code = await connector.request_pairing_code("alice", PHONE)
    assert CODE.fullmatch(code)
    client = whatsapp.client("alice")
    assert client.store == tmp_path / "whatsapp" / "alice.db"
    assert stat.S_IMODE(client.store.stat().st_mode) == 0o600
    assert stat.S_IMODE(client.store.parent.stat().st_mode) == 0o700
    await whatsapp.settle()
    assert recorder.of("linked") == []

    jid = client.phone_enters_code()
    await whatsapp.settle()
    [state] = recorder.of("linked")
    assert devices_in(state) == [jid]
    assert connector.export_state(state) == state
    # Online at once: the bot can answer.
    assert await connector.send_text("alice", "15559990000", "hello")


async def test_pairing_reports_the_qr_as_it_rotates_and_never_a_stale_one(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    await connector.request_pairing_code("alice", PHONE)
    await whatsapp.settle()
    [first] = recorder.of("qr")
    assert first.startswith("2@")
    client = whatsapp.client("alice")
    client.rotate_qr("2@second,code")
    await whatsapp.settle()
    assert recorder.of("qr") == [first, "2@second,code"]
    # neonize delivers its queued QREv (the first code again) once the link is made.
    client.phone_enters_code()
    await whatsapp.settle()
    assert recorder.of("qr") == [first, "2@second,code"]
    assert len(recorder.of("linked")) == 1


async def test_a_failed_pairing_on_the_phone_is_left_to_the_cores_expiry(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    await connector.request_pairing_code("alice", PHONE)
    client = whatsapp.client("alice")
    client.phone_rejects_code()
    await whatsapp.settle()
    assert recorder.of("linked") == []
    assert not connector.is_connected("alice")
    with pytest.raises(ConnectorError, match="session alice is not connected to WhatsApp here"):
        await connector.send_text("alice", "15559990000", "hello")
    await connector.disconnect("alice")  # the core's expiry
    await whatsapp.settle()
    assert client.hung and not client.stopped


async def test_an_abandoned_pairing_is_disconnected_not_stopped(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    """Stopped, neonize's thread would read the removed client when the QR codes run
    out and take the process down with it."""
    await connector.request_pairing_code("alice", PHONE)
    client = whatsapp.client("alice")
    await connector.disconnect("alice")
    assert not client.stopped
    client.qr_codes_run_out()
    await whatsapp.settle()  # raises if the process would have died
    assert recorder.of("saved") == []  # an unlinked store is no login to keep


async def test_a_phone_number_whatsapp_refuses_is_the_error(connector: WhatsAppConnector) -> None:
    with pytest.raises(ConnectorError, match=r"must not start with 0"):
        await connector.request_pairing_code("alice", "0612345678")


async def test_pairing_when_whatsapp_cannot_be_reached(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    whatsapp.fail_next_connect()
    with pytest.raises(ConnectorError) as failed:
        await connector.request_pairing_code("alice", PHONE)
    assert str(failed.value).startswith("WhatsApp could not be reached: failed to dial")
    assert whatsapp.client("alice").stopped


async def test_asking_for_a_new_code_starts_from_an_empty_store(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    await connector.request_pairing_code("alice", PHONE)
    first = whatsapp.client("alice")
    await connector.request_pairing_code("alice", PHONE)
    second = whatsapp.client("alice")
    assert second is not first and not first.stopped  # disconnected: see above
    first.qr_codes_run_out()
    second.phone_enters_code()
    await whatsapp.settle()
    assert len(recorder.of("linked")) == 1


async def test_codes_are_entered_on_the_phone_not_here(connector: WhatsAppConnector) -> None:
    with pytest.raises(ConnectorError, match="entered on the phone"):
        await connector.complete_pairing("alice", PHONE, datetime.now(UTC))


# --- connecting with a kept login -------------------------------------------------


async def test_connect_with_a_kept_login_returns_once_online(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, tmp_path: Path
) -> None:
    client = await online(connector, whatsapp, "alice")
    assert client.connected
    assert connector.is_connected("alice") and not connector.is_connected("bob")
    assert client.proxy is None
    assert stat.S_IMODE(client.store.stat().st_mode) == 0o600


async def test_connect_refused_by_whatsapp(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    whatsapp.refuse_next_login("SERVICE_UNAVAILABLE")
    with pytest.raises(
        ConnectorError, match=r"refused the connection \(SERVICE_UNAVAILABLE\)"
    ) as e:
        await connector.connect("alice", linked_state(PHONE))
    assert not isinstance(e.value, LoggedOut)  # worth retrying
    whatsapp.refuse_next_login("LOGGED_OUT")
    with pytest.raises(LoggedOut, match=r"refused the connection \(LOGGED_OUT\)"):
        await connector.connect("alice", linked_state(PHONE))


async def test_connect_when_whatsapp_cannot_be_reached(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    whatsapp.fail_next_connect()
    with pytest.raises(
        ConnectorError, match=r"^WhatsApp could not be reached: .*connection refused"
    ):
        await connector.connect("alice", linked_state(PHONE))


async def test_connect_refuses_a_store_without_a_device(connector: WhatsAppConnector) -> None:
    empty = sqlite3.connect(":memory:")
    empty.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY)")
    state = empty.serialize()
    empty.close()
    with pytest.raises(ConnectorError, match=r"^the login state holds no linked WhatsApp device$"):
        await connector.connect("alice", state)


async def test_a_second_connect_stops_the_first_client(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    first = await online(connector, whatsapp, "alice")
    second = await online(connector, whatsapp, "alice")
    assert first.stopped and not second.stopped


# --- what WhatsApp does on its own ------------------------------------------------------


async def test_a_drop_saves_the_login_stops_the_client_and_leaves_reconnecting_to_the_core(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    client = await online(connector, whatsapp, "alice")
    client.drop()
    await whatsapp.settle()
    assert [what for what, _, _ in recorder.calls] == ["saved", "dropped"]
    assert recorder.of("dropped") == ["the connection to WhatsApp was lost"]
    assert client.stopped and client.auto_reconnects == 0  # whatsmeow's own loop stayed out
    assert not connector.is_connected("alice")
    with pytest.raises(ConnectorError, match="not connected"):
        await connector.send_text("alice", "15559990000", "hello")
    # The core reconnects with the login it was just given.
    await connector.connect("alice", recorder.of("saved")[0])
    await whatsapp.settle()
    assert await connector.send_text("alice", "15559990000", "back")


async def test_a_logout_from_the_phone_is_reported_with_its_reason_and_the_store_goes(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    state = linked_state(PHONE)
    await connector.connect("alice", state)
    client = whatsapp.client("alice")
    client.phone_logs_out("LOGGED_OUT")
    await whatsapp.settle()
    assert recorder.of("logged_out") == ["logged out from the phone (LOGGED_OUT)"]
    assert not client.store.exists()
    # The old login is worthless now, and the error says so (retrying cannot help).
    with pytest.raises(LoggedOut, match=r"logged this device out \(LOGGED_OUT\)"):
        await connector.connect("alice", state)


async def test_a_text_message_reaches_the_core(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    client = await online(connector, whatsapp, "alice")
    message_id = client.incoming_text("15552223333:4@s.whatsapp.net", "hi bot")
    await whatsapp.settle()
    [message] = recorder.of("message")
    assert message.sender == "15552223333"
    assert message.sender_id == "15552223333@s.whatsapp.net"
    assert message.chat == "15552223333@s.whatsapp.net"
    assert message.text == "hi bot"
    assert message.message_id == message_id
    assert abs((datetime.now(UTC) - message.sent_at).total_seconds()) < 60


async def test_while_messages_flow_the_store_is_saved_at_most_once_a_minute(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    """Each message moves the keys on; a crash must not lose more than a minute of them."""
    client = await online(connector, whatsapp, "alice")
    for text in ("one", "two", "three"):
        client.incoming_text("15552223333:4@s.whatsapp.net", text)
        await whatsapp.settle()
    assert len(recorder.of("message")) == 3
    [state] = recorder.of("saved")  # the first message's; the next two came within a minute
    assert devices_in(state) == [f"{PHONE}:7@s.whatsapp.net"]


async def test_a_sender_known_by_lid_is_named_by_senderalts_phone_number(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    client = await online(connector, whatsapp, "alice")
    client.incoming_text(
        "98765432101234@lid", "hi", sender_alt="15552223333@s.whatsapp.net", extended=True
    )
    await whatsapp.settle()
    [message] = recorder.of("message")
    assert message.sender == "15552223333"
    assert message.sender_id == "98765432101234@lid"
    assert message.text == "hi"


async def test_a_lid_without_senderalt_is_looked_up_else_kept(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    client = await online(connector, whatsapp, "alice")
    whatsapp.map_lid("11112222333344", "15554445555")
    client.incoming_text("11112222333344@lid", "mapped")
    client.incoming_text("55556666777788@lid", "unknown")
    await whatsapp.settle()
    senders = {message.text: message.sender for message in recorder.of("message")}
    assert senders == {"mapped": "15554445555", "unknown": "55556666777788@lid"}


async def test_own_messages_and_non_text_are_not_reported(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    client = await online(connector, whatsapp, "alice")
    client.incoming_text("15552223333@s.whatsapp.net", "echo", from_me=True)
    client.incoming(
        "15552223333@s.whatsapp.net", WAMessage(imageMessage=ImageMessage(mimetype="image/jpeg"))
    )
    client.incoming_text("15552223333@s.whatsapp.net", "in a group", chat="120363000000000000@g.us")
    await whatsapp.settle()
    [message] = recorder.of("message")
    assert message.text == "in a group"
    assert message.chat == "120363000000000000@g.us"


# --- sending ------------------------------------------------------------------------


async def test_send_text_goes_to_the_numbers_jid(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    await online(connector, whatsapp, "alice")
    message_id = await connector.send_text("alice", "+15559990000", "hello there")
    [sent] = whatsapp.sent
    assert (sent.to, sent.text, sent.message_id) == (
        "15559990000@s.whatsapp.net",
        "hello there",
        message_id,
    )


async def test_send_text_needs_a_connection_here(connector: WhatsAppConnector) -> None:
    with pytest.raises(ConnectorError) as refused:
        await connector.send_text("alice", "15559990000", "hello")
    assert str(refused.value) == "session alice is not connected to WhatsApp here"


async def test_send_text_refuses_what_is_not_a_number(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    await online(connector, whatsapp, "alice")
    with pytest.raises(ConnectorError, match="not a phone number"):
        await connector.send_text("alice", "someone@example.org", "hello")


# --- disconnect, logout, close ---------------------------------------------------------


async def test_disconnect_saves_the_latest_login_and_stops(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    client = await online(connector, whatsapp, "alice")
    assert client.store.exists()
    await connector.disconnect("alice")
    [state] = recorder.of("saved")
    assert devices_in(state) == [f"{PHONE}:7@s.whatsapp.net"]
    assert client.stopped
    assert not client.store.exists()  # the core keeps the keys sealed; none left in the clear
    await connector.disconnect("alice")  # nothing left: no-op
    await connector.disconnect("nobody")
    assert len(recorder.of("saved")) == 1


async def test_logout_of_a_connected_session_ends_the_link_at_whatsapp(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    client = await online(connector, whatsapp, "alice")
    await connector.logout("alice", None)
    assert whatsapp.logouts == [f"{PHONE}:7@s.whatsapp.net"]
    assert client.stopped and not client.store.exists()


async def test_logout_with_only_the_kept_login_connects_to_log_out(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp
) -> None:
    await connector.logout("alice", linked_state(PHONE))
    assert whatsapp.logouts == [f"{PHONE}:7@s.whatsapp.net"]
    assert whatsapp.client("alice").stopped
    assert not whatsapp.client("alice").store.exists()


async def test_logout_is_best_effort(connector: WhatsAppConnector, whatsapp: FakeWhatsApp) -> None:
    whatsapp.fail_next_connect()
    await connector.logout("alice", linked_state(PHONE))  # unreachable: logged, not raised
    await connector.logout("alice", b"not a store")
    await connector.logout("alice", None)
    assert whatsapp.logouts == []


async def test_close_saves_and_stops_every_session(
    connector: WhatsAppConnector, whatsapp: FakeWhatsApp, recorder: Recorder
) -> None:
    alice = await online(connector, whatsapp, "alice")
    bob = await online(connector, whatsapp, "bob")
    await connector.close()
    assert sorted(handle for what, handle, _ in recorder.calls if what == "saved") == [
        "alice",
        "bob",
    ]
    assert alice.stopped and bob.stopped
    assert whatsapp.logouts == []


# --- login state as a backup ----------------------------------------------------------


def test_export_and_import_round_trip(connector: WhatsAppConnector) -> None:
    state = linked_state(PHONE)
    assert connector.import_state(connector.export_state(state)) == state


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"SQLite format 3\x00" + b"\x00" * 100, b'{"platform": "loopback"}'],
)
def test_garbage_is_not_a_login_state(connector: WhatsAppConnector, garbage: bytes) -> None:
    with pytest.raises(ConnectorError, match=r"^the login state is not a WhatsApp device store$"):
        connector.import_state(garbage)
    with pytest.raises(ConnectorError, match=r"^the login state is not a WhatsApp device store$"):
        connector.export_state(garbage)


def test_another_sqlite_database_is_not_a_login_state(connector: WhatsAppConnector) -> None:
    other = sqlite3.connect(":memory:")
    other.execute("CREATE TABLE notes (text TEXT)")
    state = other.serialize()
    other.close()
    with pytest.raises(ConnectorError, match="not a WhatsApp device store"):
        connector.import_state(state)
