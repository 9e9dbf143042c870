"""Whole-installation backup and restore, and the move from SQLite to PostgreSQL, run
as an operator runs them: the commands as real processes, next to a serving Guildhall."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text

from guildhall.config import load_settings
from guildhall.core.accounts import service as accounts
from guildhall.core.hosting.models import Server
from guildhall.db import backup as backups
from guildhall.db.engine import Database
from guildhall.db.migrate import is_current, upgrade
from guildhall.faces.aurora.app import create_app as aurora_app
from guildhall.faces.heliactyl.app import create_app as heliactyl_app
from guildhall.faces.ld7.app import create_app as ld7_app
from guildhall.faces.rustmail.app import create_app as rustmail_app
from guildhall.faces.skypanel.app import create_app as skypanel_app
from guildhall.runtime import Runtime
from tests.conftest import POSTGRES_SERVER, TEST_ACTOR, postgres_admin
from tests.process import free_port, guildhall, last_line, serve, write_config

pytestmark = pytest.mark.e2e

DEMO_DISCORD = "123456789"
PASSPHRASE = "correct horse battery staple"


@contextlib.contextmanager
def spare_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database (no schema), dropped afterwards."""
    name = f"guildhall_spare_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_SERVER.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def planned_rows(url: str, table: str) -> float:
    """The row count PostgreSQL's planner assumes for ``table`` (``pg_class.reltuples``)."""
    connection = await asyncpg.connect(url, timeout=5)
    try:
        rows: float = await connection.fetchval(
            "SELECT reltuples FROM pg_class WHERE relname = $1", table
        )
        return rows
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_installation(kind: str, directory: Path) -> Iterator[Path]:
    """The configuration of an installation with nothing in it yet, of ``kind``."""
    directory.mkdir()
    if kind == "sqlite":
        yield write_config(directory, "sqlite")
        return
    with spare_postgres() as url:
        yield write_config(directory, url)


@contextlib.asynccontextmanager
async def face(app: Any, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=headers
    ) as client:
        yield client


async def answers(config: Path, key: str) -> dict[str, Any]:
    """What every face's read endpoints answer about the demo data, as its clients see it."""
    runtime = Runtime(load_settings(config))
    await runtime.prepare()
    seen: dict[str, Any] = {}
    try:
        async with face(heliactyl_app(runtime), Authorization=f"Bearer {key}") as client:
            for path in (
                f"/api/v3/userinfo?id={DEMO_DISCORD}",
                f"/api/v3/userinteractions?id={DEMO_DISCORD}&limit=100",
            ):
                seen[f"heliactyl {path}"] = (await client.get(path)).json()
        async with face(aurora_app(runtime), Authorization=f"Bearer {key}") as client:
            for path in ("/api/users?limit=50", "/api/items", "/api/settings"):
                seen[f"aurora {path}"] = (await client.get(path)).json()
        async with face(ld7_app(runtime), **{"X-API-Key": key}) as client:
            seen["ld7 /api/sessions"] = (await client.get("/api/sessions")).json()
        async with face(skypanel_app(runtime)) as client:
            login = await client.post(
                "/api/auth/login", json={"email": "user@example.com", "password": "yourpassword"}
            )
            client.headers["Authorization"] = f"Bearer {login.json()['data']['token']}"
            for path in ("/api/servers", "/api/billing/invoices", "/api/users/me"):
                seen[f"skypanel {path}"] = (await client.get(path)).json()
    finally:
        await runtime.close()
    return seen


async def activity(config: Path, key: str) -> None:
    """Beyond the demo data: what clients of the other faces add (a bot session, a ticket
    opened from outside, an Aurora member's coins moved by Heliactyl's addcoins)."""
    runtime = Runtime(load_settings(config))
    await runtime.prepare()
    try:
        async with face(ld7_app(runtime), **{"X-API-Key": key}) as client:
            made = await client.post(
                "/api/sessions", json={"userId": "bot_backup", "phoneNumber": "1234567890"}
            )
            assert made.status_code in (200, 201), made.text
        async with face(rustmail_app(runtime), **{"X-API-Key": key}) as client:
            opened = await client.post(
                "/api/externals/tickets/create", json={"discord_id": "689149284871962727"}
            )
            assert opened.status_code in (200, 201), opened.text
    finally:
        await runtime.close()


def keep_adding_coins(url: str, key: str, stop: threading.Event) -> list[int]:
    """addcoins, one after another, until ``stop``: the load a backup runs under."""
    statuses: list[int] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        while not stop.is_set():
            response = client.post("/api/v3/addcoins", json={"id": DEMO_DISCORD, "coins": 1})
            statuses.append(response.status_code)
    return statuses


def test_a_backup_taken_under_load_restores_into_a_fresh_installation_answering_the_same(
    database_url: str, tmp_path: Path
) -> None:
    kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    source = write_config(tmp_path, database_url, heliactyl={"port": free_port()})
    key = last_line(guildhall(source, "demo").stdout)
    asyncio.run(activity(source, key))
    phrase = tmp_path / "passphrase"
    phrase.write_text(PASSPHRASE + "\n")
    served = serve(source)
    stop = threading.Event()
    try:
        adder = threading.Thread(
            target=keep_adding_coins, args=(served.url("heliactyl"), key, stop)
        )
        adder.start()
        under_load = tmp_path / "under-load.ghbk"
        made = guildhall(source, "backup", str(under_load), "--passphrase-file", str(phrase))
        assert f"to {under_load}" in made.stdout
    finally:
        stop.set()
        adder.join()
        served.stop()
        served.output()

    with fresh_installation(kind, tmp_path / "fresh") as fresh:
        # Restoring checks every balance against its ledger: a torn snapshot fails here.
        restored = guildhall(fresh, "restore", str(under_load), "--passphrase-file", str(phrase))
        assert "every balance against its ledger checked" in restored.stdout

        quiet = tmp_path / "quiet.ghbk"
        guildhall(source, "backup", str(quiet), "--passphrase-file", str(phrase))
        refused = guildhall(
            fresh, "restore", str(quiet), "--passphrase-file", str(phrase), check=False
        )
        assert refused.returncode == 1 and "is not empty" in refused.stderr
        replaced = guildhall(
            fresh, "restore", str(quiet), "--passphrase-file", str(phrase), "--replace"
        )
        assert "What was replaced is backed up in" in replaced.stderr
        assert asyncio.run(answers(fresh, key)) == asyncio.run(answers(source, key))


def test_a_move_to_postgresql_copies_everything_and_serves_from_there(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("postgres_database")  # PostgreSQL must answer (fails under CI)
    source = write_config(tmp_path, "sqlite")
    key = last_line(guildhall(source, "demo").stdout)
    guildhall(source, "users", "create", "--username", "late", "--discord", "555")
    with spare_postgres() as target:
        moved = guildhall(source, "move", "--to", target)
        assert last_line(moved.stdout) == f'database_url = "{target}"'
        again = guildhall(source, "move", "--to", target, check=False)
        assert again.returncode == 1 and "is not empty" in again.stderr
        # The planner knows the copied tables (-1: never analyzed) from the first query.
        assert asyncio.run(planned_rows(target, "accounts")) >= 3

        on_postgres = tmp_path / "pg"
        on_postgres.mkdir()
        switched = write_config(on_postgres, target, heliactyl={"port": free_port()})
        (on_postgres / "var").mkdir(mode=0o700)
        (on_postgres / "var" / "secret.key").write_bytes(
            (tmp_path / "var" / "secret.key").read_bytes()
        )
        assert asyncio.run(answers(switched, key)) == asyncio.run(answers(source, key))
        # The server runs on PostgreSQL, and new rows take ids past the copied ones.
        served = serve(switched)
        try:
            response = httpx.get(
                f"{served.url('heliactyl')}/api/v3/userinfo",
                params={"id": DEMO_DISCORD},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.json()["status"] == "success"
        finally:
            served.stop()
            served.output()
        newest = guildhall(switched, "users", "create", "--username", "after", "--discord", "666")
        assert int(last_line(newest.stdout)) > 3


def test_damaged_backups_are_refused_with_the_reason_and_change_nothing(tmp_path: Path) -> None:
    source = write_config(tmp_path, "sqlite")
    guildhall(source, "demo")
    phrase = tmp_path / "passphrase"
    phrase.write_text(PASSPHRASE)
    wrong = tmp_path / "wrong"
    wrong.write_text("not it")
    backup = tmp_path / "full.ghbk"
    guildhall(source, "backup", str(backup), "--passphrase-file", str(phrase))
    whole = backup.read_bytes()
    truncated = tmp_path / "truncated.ghbk"
    truncated.write_bytes(whole[: len(whole) // 2])
    corrupted = tmp_path / "corrupted.ghbk"
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(flipped))
    interrupted = tmp_path / ".full.ghbk.x.partial"  # what a killed backup leaves
    interrupted.write_bytes(whole[:100])

    with fresh_installation("sqlite", tmp_path / "fresh") as fresh:
        cases = {
            truncated: "is truncated",
            corrupted: "is corrupted",
            interrupted: "is truncated",
            tmp_path / "passphrase": "is not a Guildhall backup",
        }
        for path, reason in cases.items():
            refused = guildhall(
                fresh, "restore", str(path), "--passphrase-file", str(phrase), check=False
            )
            assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
        refused = guildhall(
            fresh, "restore", str(backup), "--passphrase-file", str(wrong), check=False
        )
        assert "The passphrase is wrong for this backup." in refused.stderr
        unasked = guildhall(fresh, "restore", str(backup), check=False)
        assert "is encrypted: give its passphrase" in unasked.stderr
        users = guildhall(fresh, "users", "list").stdout
        assert "user123" not in users  # nothing was written by any of them
        guildhall(fresh, "restore", str(backup), "--passphrase-file", str(phrase))
        assert "user123" in guildhall(fresh, "users", "list").stdout


def test_without_a_passphrase_the_secret_is_left_out(tmp_path: Path) -> None:
    source = write_config(tmp_path, "sqlite")
    guildhall(source, "demo")
    backup = tmp_path / "plain.ghbk"
    made = guildhall(source, "backup", str(backup))
    assert "without the installation secret" in made.stderr
    assert (tmp_path / "var" / "secret.key").read_bytes().strip().hex().encode() not in (
        backup.read_bytes()
    )
    with fresh_installation("sqlite", tmp_path / "fresh") as fresh:
        guildhall(fresh, "restore", str(backup))
        assert not (tmp_path / "fresh" / "var" / "secret.key").exists() or (
            (tmp_path / "fresh" / "var" / "secret.key").read_bytes()
            != (tmp_path / "var" / "secret.key").read_bytes()
        )


def test_scheduled_backups_keep_the_newest(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        data_dir=str(tmp_path / "var"),
        backup={"every_hours": 1, "keep": 2, "dir": str(tmp_path / "kept")},
    )

    async def run() -> list[Path | None]:
        runtime = Runtime(settings)
        await runtime.prepare()
        try:
            first = await runtime.backup_if_due()
            again = await runtime.backup_if_due()  # the newest is not an hour old
            return [first, again]
        finally:
            await runtime.close()

    first, again = asyncio.run(run())
    assert first is not None and first.is_file() and again is None
    for name in ("guildhall-20200101-000000-000000.ghbk", "guildhall-20200102-000000-000000.ghbk"):
        (tmp_path / "kept" / name).write_bytes(b"older")
    os.utime(first, (0, 0))  # the newest now looks an hour old and more
    later = asyncio.run(run())[0]
    assert later is not None and later != first
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [first.name, later.name]


async def test_a_backup_from_an_older_schema_is_restored_and_migrated_forward(
    tmp_path: Path,
) -> None:
    older = Database(f"sqlite+aiosqlite:///{tmp_path / 'older.db'}")
    newer = Database(f"sqlite+aiosqlite:///{tmp_path / 'newer.db'}")
    try:
        await upgrade(older, "0010")  # before game servers had resources
        async with older.unit_of_work() as session:
            owner = await accounts.create(session, username="old", actor=TEST_ACTOR)
            await session.execute(
                text(
                    "INSERT INTO servers (public_id, account_id, name, plan, driver, status, "
                    "ip_address, created_at, updated_at, status_changed_at) VALUES "
                    "('server-old', :owner, 'Old VPS', 'Basic', 'process', 'stopped', "
                    "'127.0.0.1', '2026-01-01 00:00:00', '2026-01-01 00:00:00', "
                    "'2026-01-01 00:00:00')"
                ),
                {"owner": owner.id},
            )
        made = await backups.write_backup(
            older, tmp_path, tmp_path / "older.ghbk", None, lambda _name, _count: None
        )
        assert made.revision == "0010"
        with backups.opened(tmp_path / "older.ghbk", None) as (manifest, unpacked):
            await backups.fill(newer, manifest, unpacked / "tables", lambda _n, _c: None)
        assert await is_current(newer)
        async with newer.unit_of_work(write=False) as session:
            server = await session.scalar(select(Server).where(Server.public_id == "server-old"))
        assert server is not None and server.name == "Old VPS" and server.ram == 0
    finally:
        await older.dispose()
        await newer.dispose()
