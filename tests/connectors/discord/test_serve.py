"""``guildhall serve`` with a bot token: it connects when the bot's stored state is
running, and a second installation process takes the gateway over when the
holder dies (killed, so it cannot hand the lease back)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from guildhall.config import ConfigError, load_settings
from guildhall.connectors.discord import MISSING
from guildhall.connectors.discord.connection import LEASE, LEASE_SECONDS, RECONCILE_SECONDS
from guildhall.core.actor import SYSTEM
from guildhall.core.support import service as support
from guildhall.events import leases
from guildhall.runtime import Runtime
from tests.peers.discord.peer import BOT_TOKEN, GUILD_ID, DiscordPeer
from tests.process import serve, write_config

pytestmark = pytest.mark.e2e


def _config(tmp_path: Path, database_url: str, peer: DiscordPeer) -> Path:
    (tmp_path / "served").mkdir()
    return write_config(
        tmp_path / "served",
        database_url,
        top={"database_url": database_url} if database_url.startswith("sqlite") else None,
        tables={"discord": {"token": BOT_TOKEN, "api_url": peer.api_url, "guild_id": GUILD_ID}},
    )


async def test_serve_connects_and_a_second_process_takes_over_when_it_dies(
    database_url: str,
    tmp_path: Path,
    peer: DiscordPeer,
    connected: Callable[..., Runtime],
) -> None:
    second = connected()
    async with second.database.unit_of_work() as session:
        await support.start(session, SYSTEM)  # stored state: running
    served = await asyncio.to_thread(serve, _config(tmp_path, database_url, peer))
    try:
        await peer.wait_for(lambda: peer.identifies == 1 and peer.connected == 1, timeout=20)
        await second.start({"rustmail"})  # another process of the installation
        await asyncio.sleep(RECONCILE_SECONDS + 1)
        assert peer.identifies == 1  # it does not connect while the lease is held
        async with second.database.unit_of_work(write=False) as session:
            holder = await leases.current(session, LEASE)
        assert holder is not None and holder != second.discord.holder
    finally:
        served.stop(signal.SIGKILL)  # dies: no clean hand-over
        served.output()
    await peer.wait_for(lambda: peer.connected == 1 and peer.identifies == 2, timeout=30)
    assert LEASE_SECONDS + RECONCILE_SECONDS < 30  # "taken over within 30 s"
    async with second.database.unit_of_work(write=False) as session:
        assert await leases.current(session, LEASE) == second.discord.holder
        status = await support.status(session, gateway=LEASE)
    assert status.online


async def test_without_hikari_a_token_stops_the_start_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "hikari", None)  # as if the extra were not installed
    settings = load_settings(
        None, data_dir=str(tmp_path), discord={"token": BOT_TOKEN, "guild_id": GUILD_ID}
    )
    runtime = Runtime(settings)
    with pytest.raises(ConfigError) as refused:
        await runtime.prepare()
    await runtime.close()
    assert str(refused.value) == MISSING
    assert "pip install 'guildhall[discord]'" in MISSING
