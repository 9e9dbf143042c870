"""The WhatsApp connector on the real neonize library, offline.

WhatsApp is out of reach of a test, so the real client is pointed (through
neonize's proxy setting) at a local port nobody listens on: everything up to
the dial runs for real (whatsmeow opens and migrates the store, looks for a
device, dials), and the dial's failure must come back quickly as a
ConnectorError saying WhatsApp could not be reached.
"""

from __future__ import annotations

import socket
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from guildhall.config import Settings
from guildhall.connectors.whatsapp.connector import WhatsAppConnector
from guildhall.core.sessions.connector import ConnectorError
from guildhall.core.sessions.models import BotSession, State
from guildhall.core.sessions.service import SessionService
from guildhall.db.engine import Database
from guildhall.secrets import Secrets, master_secret
from tests.conftest import TEST_ACTOR
from tests.peers.whatsapp.fake_client import link_store

PHONE = "15550001111"


def closed_port() -> int:
    """A local port with no listener: bound by us, read, and closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def connector(tmp_path: Path) -> AsyncIterator[WhatsAppConnector]:
    connector = WhatsAppConnector(
        tmp_path / "whatsapp", proxy=f"socks5://127.0.0.1:{closed_port()}", timeout=10
    )
    yield connector
    await connector.close()


def tables(store: Path) -> set[str]:
    database = sqlite3.connect(store)
    try:
        return {row[0] for row in database.execute("SELECT name FROM sqlite_master")}
    finally:
        database.close()


async def whatsmeows_linked_store(connector: WhatsAppConnector, store_dir: Path) -> bytes:
    """A login state the real library accepts: a store whatsmeow made and migrated (by a
    pairing attempt that could not reach WhatsApp), holding a linked device."""
    with pytest.raises(ConnectorError):
        await connector.request_pairing_code("alice", PHONE)
    store = store_dir / "alice.db"
    link_store(store, f"{PHONE}:7@s.whatsapp.net")
    return connector.export_state(store.read_bytes())


async def test_a_sessions_store_is_private_and_whatsmeows(
    connector: WhatsAppConnector, tmp_path: Path
) -> None:
    with pytest.raises(ConnectorError):
        await connector.request_pairing_code("alice", PHONE)
    store = tmp_path / "whatsapp" / "alice.db"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    assert "whatsmeow_device" in tables(store)  # whatsmeow migrated the file we made


async def test_pairing_fails_fast_when_whatsapp_cannot_be_reached(
    connector: WhatsAppConnector,
) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectorError) as failed:
        await connector.request_pairing_code("alice", PHONE)
    assert time.monotonic() - started < 5
    assert str(failed.value).startswith("WhatsApp could not be reached: ")
    assert "connection refused" in str(failed.value)


async def test_connect_fails_fast_when_whatsapp_cannot_be_reached(
    connector: WhatsAppConnector, tmp_path: Path
) -> None:
    state = await whatsmeows_linked_store(connector, tmp_path / "whatsapp")
    store = tmp_path / "whatsapp" / "alice.db"

    started = time.monotonic()
    with pytest.raises(ConnectorError) as failed:
        await connector.connect("alice", state)
    assert time.monotonic() - started < 5
    assert str(failed.value).startswith("WhatsApp could not be reached: ")
    assert "connection refused" in str(failed.value)
    assert not store.exists()  # the keys are kept sealed by the core, never left in the clear


async def test_a_session_whose_link_cannot_reach_whatsapp_is_failed_with_the_reason(
    settings: Settings, tmp_path: Path
) -> None:
    """Through the core, on each database: starting a paired session whose connection
    is refused moves it to ``failed`` with the library's reason, quickly, and keeps it."""
    connector = WhatsAppConnector(
        tmp_path / "whatsapp", proxy=f"socks5://127.0.0.1:{closed_port()}", timeout=10
    )
    secrets_ = Secrets(master_secret(settings))
    sealer = secrets_.sealer("sessions:login-state")
    database = Database(settings.resolved_database_url)
    service = SessionService(
        database,
        connector,
        sealer,
        holder="test",
        pairing_ttl=timedelta(minutes=3),
        connector_timeout=10,
        reconnect_max=1,
    )
    try:
        # A session paired earlier: its kept login is a linked store the library accepts.
        state = await whatsmeows_linked_store(connector, tmp_path / "whatsapp")
        async with database.unit_of_work() as session:
            session.add(
                BotSession(
                    handle="alice",
                    phone_number=PHONE,
                    connector="whatsapp",
                    state=State.OFFLINE.value,
                    login_state=sealer.seal(state),
                )
            )

        started = time.monotonic()
        outcome = await service.start("alice", TEST_ACTOR)

        assert time.monotonic() - started < 5
        assert outcome.session.state is State.FAILED
        assert outcome.failure is not None
        assert outcome.failure.startswith("WhatsApp could not be reached: ")
        assert outcome.session.failure_reason == outcome.failure
        assert outcome.session.paired  # the login is kept for the next start
    finally:
        await service.close()
        await database.dispose()
