"""The connector contract: one suite, run on every messaging platform Guildhall speaks.

Each test drives a session through the core's ``SessionService`` and makes the
platform act on its own through a "phone": for the built-in loopback platform
its own methods (the operator stands in for the phone), for WhatsApp an
adapter-level fake of neonize's client that replays the library's real event
objects (``tests/peers/whatsapp``). The same assertions hold on both: pairing,
online, a dropped link that comes back, one that cannot and fails, a logout
from the phone, messages both ways, backup and restore, and one holder per
session across processes. Each runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import select, update

from guildhall.config import Settings
from guildhall.connectors.messaging.loopback import LoopbackConnector
from guildhall.connectors.whatsapp.connector import WhatsAppConnector
from guildhall.core.errors import Conflict
from guildhall.core.sessions.models import BotSession, SessionBackup, State
from guildhall.core.sessions.service import SessionService, SessionView
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.events import outbox
from guildhall.events.models import Lease
from guildhall.secrets import Secrets, master_secret
from tests.conftest import TEST_ACTOR
from tests.peers.whatsapp.fake_client import FakeWhatsApp
from tests.waiting import eventually

PHONE = "15551234567"
HANDLE = "bot_1"
RECONNECT_MAX = 0.4  # doubling from 0.05 s: four attempts within a second


class Phone(Protocol):
    """What the phone and the network do to one platform, and what the platform saw."""

    async def enter_code(self, service: SessionService, handle: str, code: str) -> None: ...
    async def drop(self, service: SessionService, handle: str) -> None: ...
    async def log_out(self, service: SessionService, handle: str) -> None: ...
    async def write(self, service: SessionService, handle: str, sender: str, text: str) -> None: ...
    def unlink_while_away(self, handle: str) -> None: ...
    def go_unreachable(self) -> None: ...
    def come_back(self) -> None: ...
    def texts_sent(self) -> list[tuple[str, str]]: ...
    def connector(self, store: Path) -> Any: ...


@dataclass
class LoopbackPhone:
    """The loopback platform: the operator enters the code (``guildhall sessions pair``)."""

    key: bytes
    made: list[LoopbackConnector] = field(default_factory=list)
    unlinked: set[str] = field(default_factory=set)

    def connector(self, store: Path) -> LoopbackConnector:
        made = LoopbackConnector(self.key)
        made.unlinked = self.unlinked  # one platform, whichever process connects
        self.made.append(made)
        return made

    def unlink_while_away(self, handle: str) -> None:
        self.unlinked.add(handle)

    async def enter_code(self, service: SessionService, handle: str, code: str) -> None:
        await service.complete_pairing(handle, code, TEST_ACTOR)

    async def drop(self, service: SessionService, handle: str) -> None:
        assert isinstance(service.connector, LoopbackConnector)
        await service.connector.drop(handle)

    async def log_out(self, service: SessionService, handle: str) -> None:
        assert isinstance(service.connector, LoopbackConnector)
        await service.connector.phone_logs_out(handle, "logged out from the phone")

    async def write(self, service: SessionService, handle: str, sender: str, text: str) -> None:
        assert isinstance(service.connector, LoopbackConnector)
        await service.connector.incoming_text(handle, sender, text)

    def go_unreachable(self) -> None:
        for made in self.made:
            made.refuse_connections("the loopback platform is unreachable")

    def come_back(self) -> None:
        for made in self.made:
            made.refuse_connections(None)

    def texts_sent(self) -> list[tuple[str, str]]:
        return [(to, text) for made in self.made for _handle, to, text in made.sent]


@dataclass
class WhatsAppPhone:
    """WhatsApp through the fake of neonize's client: the phone's owner types the code."""

    network: FakeWhatsApp = field(default_factory=FakeWhatsApp)
    devices: dict[str, str] = field(default_factory=dict)

    def connector(self, store: Path) -> WhatsAppConnector:
        return WhatsAppConnector(store, client_factory=self.network.factory, timeout=5)

    async def enter_code(self, service: SessionService, handle: str, code: str) -> None:
        self.devices[handle] = self.network.client(handle).phone_enters_code()
        await self.network.settle()

    def unlink_while_away(self, handle: str) -> None:
        self.network.unlinked.add(self.devices[handle])

    async def drop(self, service: SessionService, handle: str) -> None:
        self.network.client(handle).drop()
        await self.network.settle()

    async def log_out(self, service: SessionService, handle: str) -> None:
        self.network.client(handle).phone_logs_out("LOGGED_OUT")
        await self.network.settle()

    async def write(self, service: SessionService, handle: str, sender: str, text: str) -> None:
        # Addressed by LID, with the phone number beside it, as WhatsApp now sends.
        self.network.client(handle).incoming_text(
            "81234567890123@lid", text, sender_alt=f"{sender}@s.whatsapp.net"
        )
        await self.network.settle()

    def go_unreachable(self) -> None:
        self.network.go_unreachable()

    def come_back(self) -> None:
        self.network.come_back()

    def texts_sent(self) -> list[tuple[str, str]]:
        return [(sent.to.split("@")[0], sent.text) for sent in self.network.sent]


@dataclass
class Platform:
    phone: Phone
    make: Callable[[str], SessionService]
    """A session service as one more Guildhall process would have it (its own holder)."""


@pytest.fixture(params=["loopback", "whatsapp"])
async def platform(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[Platform]:
    secrets_ = Secrets(master_secret(settings))
    phone: Phone = (
        LoopbackPhone(secrets_.derive("connector:loopback"))
        if request.param == "loopback"
        else WhatsAppPhone()
    )
    made: list[tuple[SessionService, Database]] = []

    def make(holder: str) -> SessionService:
        database = Database(settings.resolved_database_url)
        service = SessionService(
            database,
            phone.connector(tmp_path / f"store-{holder}"),
            secrets_.sealer("sessions:login-state"),
            holder=holder,
            pairing_ttl=timedelta(minutes=3),
            connector_timeout=5,
            reconnect_max=RECONNECT_MAX,
        )
        made.append((service, database))
        return service

    yield Platform(phone, make)
    for service, database in made:
        await service.close()
        await database.dispose()


async def _view(service: SessionService, handle: str = HANDLE) -> SessionView:
    async with service.database.unit_of_work(write=False) as session:
        return await service.get(session, handle)


async def _moves(service: SessionService) -> list[tuple[str, str, str]]:
    async with service.database.unit_of_work(write=False) as session:
        events = reversed(await outbox.recent(session, "session.status"))
    return [(e["data"]["previous_state"], e["data"]["state"], e["data"]["reason"]) for e in events]


async def _online(platform: Platform, service: SessionService, handle: str = HANDLE) -> None:
    _created, pairing = await service.create(handle, PHONE, TEST_ACTOR)
    await platform.phone.enter_code(service, handle, pairing.code)
    await eventually(lambda: _view(service, handle), lambda v: v.state is State.ONLINE)


async def test_pairing_links_the_phone_and_the_session_goes_online(platform: Platform) -> None:
    service = platform.make("one")
    created, pairing = await service.create(HANDLE, PHONE, TEST_ACTOR)
    assert created.state is State.PAIRING and pairing.code
    async with service.database.unit_of_work(write=False) as session:
        assert (await service.pending_pairing(session, HANDLE)).code == pairing.code
        assert await service.pairing_qr(session, HANDLE)  # the QR the platform shows

    await platform.phone.enter_code(service, HANDLE, pairing.code)

    online = await eventually(lambda: _view(service), lambda v: v.state is State.ONLINE)
    assert online.paired and online.last_connected_at is not None
    assert service.connector.is_connected(HANDLE)
    assert [move[:2] for move in await _moves(service)] == [
        ("none", "created"),
        ("created", "pairing"),
        ("pairing", "online"),
    ]


async def test_an_online_session_comes_back_after_a_restart_without_pairing(
    platform: Platform,
) -> None:
    first = platform.make("first")
    await _online(platform, first)
    await first.close()  # the process stops; the session stays online for the next one

    restarted = platform.make("second")
    assert await restarted.resume_all(TEST_ACTOR) == {HANDLE: None}
    assert restarted.connector.is_connected(HANDLE)
    assert (await _view(restarted)).state is State.ONLINE


async def test_a_dropped_link_reconnects(platform: Platform) -> None:
    service = platform.make("one")
    await _online(platform, service)

    await platform.phone.drop(service, HANDLE)

    await eventually(lambda: _view(service), lambda v: v.state is State.ONLINE, timeout=5)
    moves = await _moves(service)
    assert moves[-2][:2] == ("online", "offline")
    assert moves[-1] == ("offline", "online", "reconnected")
    assert service.connector.is_connected(HANDLE)


async def test_a_link_that_cannot_come_back_fails_with_the_reason_and_is_kept(
    platform: Platform,
) -> None:
    service = platform.make("one")
    await _online(platform, service)
    platform.phone.go_unreachable()

    await platform.phone.drop(service, HANDLE)

    failed = await eventually(lambda: _view(service), lambda v: v.state is State.FAILED, 5)
    assert failed.failure_reason is not None
    assert failed.failure_reason.startswith("could not reconnect: ")
    assert failed.paired  # kept, login and all: the original deleted it
    # Once the platform is back, starting it again needs no pairing.
    platform.phone.come_back()
    outcome = await service.start(HANDLE, TEST_ACTOR)
    assert outcome.failure is None and outcome.pairing is None
    assert outcome.session.state is State.ONLINE


async def test_a_session_reconnecting_when_its_process_stops_is_reconnected_by_the_next(
    platform: Platform,
) -> None:
    first = platform.make("first")
    await _online(platform, first)
    platform.phone.go_unreachable()
    await platform.phone.drop(first, HANDLE)
    await eventually(lambda: _view(first), lambda v: v.state is State.OFFLINE)
    await first.close()  # a deploy in the middle of the backoff

    platform.phone.come_back()
    restarted = platform.make("second")
    assert await restarted.resume_all(TEST_ACTOR) == {HANDLE: None}
    assert (await _view(restarted)).state is State.ONLINE
    assert restarted.connector.is_connected(HANDLE)
    assert (await _moves(restarted))[-1] == ("offline", "online", "reconnected after a restart")


async def test_a_logout_from_the_phone_is_recorded_with_its_reason(platform: Platform) -> None:
    service = platform.make("one")
    await _online(platform, service)
    await service.backup(HANDLE, TEST_ACTOR)

    await platform.phone.log_out(service, HANDLE)

    gone = await eventually(lambda: _view(service), lambda v: v.state is State.LOGGED_OUT)
    assert gone.failure_reason is not None and "logged out" in gone.failure_reason.lower()
    assert not gone.paired
    assert not service.connector.is_connected(HANDLE)
    async with service.database.unit_of_work(write=False) as session:
        assert await session.get(SessionBackup, HANDLE) is None  # worthless now
    # Paired again from the start.
    outcome = await service.start(HANDLE, TEST_ACTOR)
    assert outcome.session.state is State.PAIRING and outcome.pairing is not None


async def test_a_logout_from_the_phone_while_guildhall_was_away_is_found_on_return(
    platform: Platform,
) -> None:
    first = platform.make("first")
    await _online(platform, first)
    await first.backup(HANDLE, TEST_ACTOR)
    await first.close()
    platform.phone.unlink_while_away(HANDLE)

    restarted = platform.make("second")
    reason = (await restarted.resume_all(TEST_ACTOR))[HANDLE]

    gone = await _view(restarted)
    assert gone.state is State.LOGGED_OUT  # not "failed": retrying could never help
    assert reason is not None and gone.failure_reason == reason
    assert not gone.paired
    async with restarted.database.unit_of_work(write=False) as session:
        assert await session.get(SessionBackup, HANDLE) is None


async def test_messages_become_events_and_texts_go_out(platform: Platform) -> None:
    service = platform.make("one")
    await _online(platform, service)

    await platform.phone.write(service, HANDLE, "4915112345678", "hello bot")
    sent_id = await service.send_text(HANDLE, "4915112345678", "hello human", TEST_ACTOR)

    async with service.database.unit_of_work(write=False) as session:
        [event] = await outbox.recent(session, "session.message")
    assert event["data"]["session"] == HANDLE
    assert event["data"]["from"] == "4915112345678"  # the number, not only an opaque id
    assert event["data"]["text"] == "hello bot"
    assert sent_id
    assert platform.phone.texts_sent() == [("4915112345678", "hello human")]


async def test_a_text_from_a_session_that_is_not_online_is_refused(platform: Platform) -> None:
    service = platform.make("one")
    await _online(platform, service)
    await service.stop(HANDLE, TEST_ACTOR)
    with pytest.raises(Conflict) as refused:
        await service.send_text(HANDLE, "4915112345678", "hello", TEST_ACTOR)
    assert refused.value.code == "not_online"
    assert platform.phone.texts_sent() == []


async def test_backup_delete_restore_start_needs_no_new_pairing(platform: Platform) -> None:
    service = platform.make("one")
    await _online(platform, service)
    await service.backup(HANDLE, TEST_ACTOR)
    await service.delete(HANDLE, TEST_ACTOR)
    assert not service.connector.is_connected(HANDLE)

    await service.restore(HANDLE, TEST_ACTOR)
    outcome = await service.start(HANDLE, TEST_ACTOR)

    assert outcome.failure is None and outcome.pairing is None
    assert outcome.session.state is State.ONLINE
    assert service.connector.is_connected(HANDLE)


async def test_one_process_holds_a_session_and_another_takes_over_when_it_dies(
    platform: Platform,
) -> None:
    first, second = platform.make("first"), platform.make("second")
    await _online(platform, first)

    # While the first process lives, the second leaves its session alone.
    assert await second.watch(TEST_ACTOR) == {}
    assert not second.connector.is_connected(HANDLE)
    with pytest.raises(Conflict) as elsewhere:
        await second.send_text(HANDLE, "4915112345678", "hi", TEST_ACTOR)
    assert elsewhere.value.code == "session_elsewhere"

    # The first dies: it stops renewing, and its lease runs out.
    async with first.database.unit_of_work() as session:
        await session.execute(
            update(Lease)
            .where(Lease.name == f"session:{HANDLE}")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await second.watch(TEST_ACTOR) == {HANDLE: None}
    assert second.connector.is_connected(HANDLE)
    async with second.database.unit_of_work(write=False) as session:
        holder = await session.scalar(select(Lease.holder).where(Lease.name == f"session:{HANDLE}"))
    assert holder == "second"
    # Were the first only slow, its next watch finds the lease gone and lets go.
    await first.watch(TEST_ACTOR)
    assert not first.connector.is_connected(HANDLE)
    assert (await _view(second)).state is State.ONLINE


async def test_a_reconnect_taken_over_by_another_process_is_given_up_by_the_first(
    platform: Platform,
) -> None:
    """Never two connections for one session: a holder presumed dead that is only slow
    stops its own reconnecting once it sees its lease taken."""
    first, second = platform.make("first"), platform.make("second")
    await _online(platform, first)
    platform.phone.go_unreachable()
    await platform.phone.drop(first, HANDLE)
    await eventually(lambda: _view(first), lambda v: v.state is State.OFFLINE)
    # The first is slow (its reconnect loop waits on its lock) long enough to look dead:
    # its lease runs out and the second takes the session over.
    async with first._driving(HANDLE):
        async with first.database.unit_of_work() as session:
            await session.execute(
                update(Lease)
                .where(Lease.name == f"session:{HANDLE}")
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        await second.watch(TEST_ACTOR)  # takes it over, and reconnects it with backoff
    platform.phone.come_back()

    await eventually(lambda: _view(second), lambda v: v.state is State.ONLINE, timeout=5)
    await eventually(
        lambda: _connected(first, second), lambda both: both == (False, True), timeout=5
    )


async def _connected(*services: SessionService) -> tuple[bool, ...]:
    return tuple(service.connector.is_connected(HANDLE) for service in services)


async def test_a_stop_in_another_process_reaches_the_holder(platform: Platform) -> None:
    holder, other = platform.make("holder"), platform.make("other")
    await _online(platform, holder)

    await other.stop(HANDLE, TEST_ACTOR)
    await holder.watch(TEST_ACTOR)

    assert not holder.connector.is_connected(HANDLE)
    async with holder.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(BotSession).where(BotSession.handle == HANDLE))
        lease = await session.get(Lease, f"session:{HANDLE}")
    assert row is not None and row.state == State.OFFLINE.value
    assert lease is None  # let go at once, for whoever starts it next


def test_the_suite_runs_on_every_connector_the_settings_offer() -> None:
    """A new ``[sessions] connector`` choice must join this suite."""
    choices = Settings.model_fields["sessions"].annotation
    assert choices is not None
    connector_field = choices.model_fields["connector"]  # type: ignore[union-attr]
    assert set(connector_field.annotation.__args__) == {"loopback", "whatsapp"}
