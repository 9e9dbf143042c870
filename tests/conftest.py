"""Shared fixtures: a real database per test run, on SQLite and on PostgreSQL.

Every database test runs twice, once per engine. PostgreSQL comes from
``GUILDHALL_TEST_POSTGRES`` (default: the local server, user postgres); the
run creates its own database, migrates it once, empties it before each test
and drops it at the end. Under ``CI=true`` an unreachable PostgreSQL fails
the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from guildhall.config import Settings, load_settings
from guildhall.core.access import service as access
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.actor import Actor
from guildhall.db.engine import Database
from guildhall.db.migrate import upgrade
from guildhall.db.models import metadata
from guildhall.faces.heliactyl.app import create_app as heliactyl_app
from guildhall.runtime import Runtime

POSTGRES_SERVER = os.environ.get(
    "GUILDHALL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_ACTOR = Actor("operator", "test suite")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long-fuzz",
        action="store_true",
        help="fuzz every face with many more generated requests (tests/faces/test_openapi_fuzz.py)",
    )
    parser.addoption(
        "--fuzz-seed",
        type=int,
        default=None,
        help="the fuzzer's seed (default: a fixed one, or a random one with --long-fuzz)",
    )


def _unavailable(what: str, reason: object) -> None:
    message = f"{what} is not reachable ({reason}); start it or set GUILDHALL_TEST_{what.upper()}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A developer's own GUILDHALL_* variables must not change what tests see, nor their
    ./guildhall.toml (read when no file is named): an empty file in a folder of the
    test's own is named instead (so the default data directory is that folder's var/)."""
    for name in list(os.environ):
        if name.startswith("GUILDHALL_") and not name.startswith("GUILDHALL_TEST_"):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("config") / "guildhall.toml"
    empty.touch()
    monkeypatch.setenv("GUILDHALL_CONFIG", str(empty))


def pytest_collection_finish(session: pytest.Session) -> None:
    """What exists once tests are collected (modules, test items) lives for the whole run:
    frozen, the per-test collection below never scans it again and stays cheap."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _garbage_collected_here() -> Iterator[None]:
    """Each test's cyclic garbage (engines, pools) is collected in the main thread when the
    test ends. Left to chance, the collector may run in another thread (a served process's
    output reader, an executor thread) while the main thread registers SQLAlchemy events,
    and SQLAlchemy's event registry is not safe against that (a KeyError in
    ``_collection_gced``, reported as an error of some unrelated test)."""
    yield
    gc.collect()


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "guildhall.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


async def postgres_admin(statement: str) -> None:
    """Run one statement on the test server's maintenance database (CREATE DATABASE...)."""
    connection = await asyncpg.connect(POSTGRES_SERVER, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This run's own PostgreSQL database, migrated; dropped at the end."""
    name = f"guildhall_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = postgres_admin
    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unavailable("PostgreSQL", exc)
    # A test database need not survive a crash: commits do not wait for the disk, which
    # changes nothing a test can see (visibility, locks, constraints are the same).
    asyncio.run(admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    base = POSTGRES_SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    asyncio.run(_migrate(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def empty_postgres(url: str) -> None:
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    database = Database(url, pool_size=1)
    try:
        async with database.unit_of_work() as session:
            await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "guildhall.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    asyncio.run(empty_postgres(url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(None, data_dir=str(tmp_path), database_url=database_url)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings)
    yield runtime
    await runtime.close()


@pytest.fixture
async def other_runtime(settings: Settings) -> AsyncIterator[Callable[..., Runtime]]:
    """A runtime on the same database with other face or secret settings."""
    made: list[Runtime] = []

    def make(**changes: object) -> Runtime:
        data = settings.model_dump()
        for dotted, value in changes.items():
            target = data
            *parents, leaf = dotted.split("__")
            for parent in parents:
                target = target[parent]
            target[leaf] = value
        runtime = Runtime(Settings(**data))
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.close()


@pytest.fixture
async def heliactyl(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The Heliactyl face in-process, without credentials."""
    transport = httpx.ASGITransport(app=heliactyl_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://heliactyl.test") as client:
        yield client


async def make_account(
    runtime: Runtime,
    username: str,
    *,
    discord: str | None = None,
    github: str | None = None,
    email: str | None = None,
) -> accounts.AccountRef:
    identities = {}
    if discord:
        identities[Provider.DISCORD] = discord
    if github:
        identities[Provider.GITHUB] = github
    async with runtime.database.unit_of_work() as session:
        account = await accounts.create(
            session, username=username, email=email, identities=identities, actor=TEST_ACTOR
        )
        return accounts.AccountRef(account.id, account.username, discord or account.uuid)


async def make_key(runtime: Runtime, *scopes: str, name: str = "test", **kwargs: object) -> str:
    async with runtime.database.unit_of_work() as session:
        _key, plaintext = await access.create(
            session, name=name, scopes=scopes, actor=TEST_ACTOR, **kwargs
        )
        return plaintext


REDIS_SERVER = os.environ.get("GUILDHALL_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The local Redis (``GUILDHALL_TEST_REDIS``); under CI=true its absence fails the run."""
    import redis

    client = redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_SERVER
