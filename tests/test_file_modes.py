"""Issue 15: the data directory is 0700 and the database and secret files 0600.

An installation made before the rule (0755 directory, 0644 files) is tightened
when Guildhall starts, with a log line for each path.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from guildhall.config import Settings, load_settings
from guildhall.runtime import Runtime


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_an_open_installation_is_tightened_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = settings.data_dir
    secret = data_dir / "secret.key"
    secret.write_text("ab" * 32 + "\n")
    files = [secret]
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        database = Path(url.database or "")
        # A log and shared memory left by an older version (SQLite takes empty ones).
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").touch()
        files += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    for path in files:
        path.chmod(0o644)
    data_dir.chmod(0o755)

    caplog.set_level(logging.WARNING)
    runtime = Runtime(settings)
    try:
        await runtime.prepare()
        assert runtime.secrets.derive("x")  # the secret file is read, and kept
        modes = {path.name: mode(path) for path in files}  # before SQLite removes its log
    finally:
        await runtime.close()

    assert mode(data_dir) == 0o700
    assert modes == {path.name: 0o600 for path in files}
    tightened = [r.getMessage() for r in caplog.records if "Tightened" in r.getMessage()]
    assert len(tightened) == len(files) + 1, tightened
    assert any(str(data_dir) in line and "0755 to 0700" in line for line in tightened)


async def test_a_new_sqlite_installation_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Made by the first start, under the usual 022 umask."""
    data_dir = tmp_path / "fresh" / "var"
    database = data_dir / "guildhall.db"
    settings = load_settings(
        None, data_dir=str(data_dir), database_url=f"sqlite+aiosqlite:///{database}"
    )
    previous = os.umask(0o022)
    try:
        runtime = Runtime(settings)
        try:
            await runtime.prepare()
            runtime.secrets.derive("x")
            async with runtime.database.unit_of_work() as session:  # the log and its index
                await session.execute(text("CREATE TABLE scratch (x INTEGER)"))
            made = {
                path.name: mode(path)
                for path in (
                    data_dir,
                    database,
                    data_dir / "secret.key",
                    *data_dir.glob("guildhall.db-*"),
                )
            }
        finally:
            await runtime.close()
    finally:
        os.umask(previous)
    assert made["var"] == 0o700
    assert {name: value for name, value in made.items() if name != "var"} == {
        name: 0o600 for name in made if name != "var"
    }
    assert {"guildhall.db", "secret.key", "guildhall.db-wal", "guildhall.db-shm"} <= set(made)
