"""Issue 15: an installation made by the CLI and ``guildhall serve`` is private to its
owner: the data directory 0700; the database, its log, its shared memory and the
installation secret 0600, under the usual 022 umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.process import free_port, guildhall, serve, write_config

pytestmark = pytest.mark.e2e


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the processes started here inherit it
    yield
    os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
def test_cli_and_served_installation_files_are_private(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite", heliactyl={"host": "127.0.0.1", "port": free_port()})
    data_dir = tmp_path / "var"
    guildhall(config, "migrate")
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "guildhall.db") == 0o600

    served = serve(config, "--demo")
    try:
        added = httpx.post(  # a write: the log and its shared memory exist while serving
            served.url("heliactyl") + "/api/v3/addcoins",
            json={"id": "123456789", "coins": 1},
            headers={"Authorization": f"Bearer {served.demo_key}"},
            timeout=30,
        )
        assert added.json() == {"status": "success"}
        modes = {
            name: _mode(data_dir / name)
            for name in ("guildhall.db", "guildhall.db-wal", "guildhall.db-shm", "secret.key")
        }
        directory = _mode(data_dir)
    finally:
        served.stop()
        served.output()
    assert directory == 0o700
    assert modes == dict.fromkeys(modes, 0o600)
