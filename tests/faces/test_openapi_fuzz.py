"""Schemathesis holds every served face to its OpenAPI document.

Each face runs as ``guildhall serve --demo`` (a real process, on SQLite and on
PostgreSQL) with ``serve_openapi = true``, and is fuzzed twice with a real
credential of the face:

- Schemathesis's own runner (``st run``) reads the served ``/openapi.json`` and
  sends generated requests, valid and invalid: every answer must be one the
  document describes (status, content type, headers, body schema), none a 5xx,
  and its stateful phase follows the documents' links (create, read, delete).
- Only invalid requests, driven from this process: after each refusal the whole
  database (every table, every row) must be what it was before, as the earlier
  hand-written garbage tests check for Heliactyl.

The run is short by default (``FUZZ_EXAMPLES`` cases per operation, a fixed seed);
``pytest --long-fuzz`` runs many more with a fresh seed. Checks left out, and why:
``negative_data_rejection`` and ``positive_data_acceptance`` expect 4xx for any
invalid input and 2xx for any valid one, but Heliactyl answers its errors with
HTTP 200 as its document says, the faces do not judge a body's content type, and
a valid-looking id of nobody is a 404 on every face; ``unsupported_method`` and
``allow_header_conformance`` expect 405 with ``Allow``, but the originals answer
an unrouted method with their 404, as Guildhall does; ``missing_required_header``
expects a 4xx that the faces give as their own auth answer, which
``ignored_auth`` already checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from guildhall.config import load_settings
from guildhall.core.access import panel
from guildhall.core.accounts import service as accounts
from guildhall.db.models import metadata
from guildhall.faces import FACES
from guildhall.faces.common import openapi
from guildhall.runtime import Runtime
from tests.conftest import empty_postgres
from tests.process import Served, cli_env, free_port, serve, write_config

FUZZ_EXAMPLES = 10
FIXED_SEED = 20261204
"""CI's run is repeatable; ``--long-fuzz`` explores with a fresh seed (printed on failure)."""
LONG_FUZZ_EXAMPLES = 300
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "ignored_auth",
        "use_after_free",
        "ensure_resource_availability",
    )
)
LEFT_TO_OTHER_TESTS = {"rustmail": ("logout",)}
"""Operations the runner leaves out: logging out would end the session every other
panel operation is fuzzed with (tests/faces/rustmail/test_openapi_answers.py covers it)."""
RECORDS_OF_USE = {"api_keys": ("last_used_at",)}
"""Columns any authenticated request may write, refused or not (when a key was last used)."""
DEMO_DISCORD_ID = "123456789"
"""The demo user ``user123``: the Rustmail panel's super admin in this run."""
DEMO_LOGIN = {"email": "user@example.com", "password": "yourpassword"}
RATE_LIMIT = {"requests": 10_000_000, "per_seconds": 1}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Every face with its document served, generous rate limits and the demo data: one
    process per database for the whole module (its tests only add to what it holds)."""
    directory = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), directory / "guildhall.db")
        database_url = f"sqlite+aiosqlite:///{directory / 'guildhall.db'}"
    else:
        database_url = request.getfixturevalue("postgres_database")
        asyncio.run(empty_postgres(database_url))
    faces = {
        name: {"host": "127.0.0.1", "port": free_port(), "serve_openapi": True} for name in FACES
    }
    faces["rustmail"]["super_admin_users"] = [DEMO_DISCORD_ID]
    limits = {
        f"faces.{name}.rate_limits.{group}": RATE_LIMIT
        for name in FACES
        for group in ("default", "auth")
    }
    # Sessions the fuzzer pairs expire long after the run, not in the middle of a check.
    tables = {**limits, "sessions": {"pairing_ttl_seconds": 3600}}
    config = write_config(directory, database_url, tables=tables, **faces)
    process = serve(config, "--demo")  # its output is read as it serves (tests/process.py)
    yield process
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.stop()
    process.output()  # the readers finish and the pipes close


async def _panel_session(config: Path) -> str:
    """A Rustmail panel session for the demo user, as a finished Discord login leaves it."""
    runtime = Runtime(load_settings(config))
    try:
        async with runtime.database.unit_of_work() as session:
            account = await accounts.require_by_identity(session, DEMO_DISCORD_ID)
            return await panel.open_session(
                session, account.id, DEMO_DISCORD_ID, None, timedelta(hours=1)
            )
    finally:
        await runtime.close()


def credentials(face: str, served: Served) -> list[str]:
    """The headers a client of the face authenticates with."""
    key = served.demo_key
    if face == "ld7":
        return [f"X-API-Key: {key}"]
    if face == "skypanel":
        login = httpx.post(f"{served.url(face)}/api/auth/login", json=DEMO_LOGIN, timeout=30)
        login.raise_for_status()
        return [f"Authorization: Bearer {login.json()['data']['token']}"]
    if face == "rustmail":
        cookie = asyncio.run(_panel_session(served.config))
        return [f"Cookie: rustmail_session={cookie}", f"X-API-Key: {key}"]
    return [f"Authorization: Bearer {key}"]


def run_schemathesis(
    face: str,
    served: Served,
    request: pytest.FixtureRequest,
    directory: Path,
    headers: list[str],
    *options: str,
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``st run`` against the served face's document, sending ``headers``."""
    long = request.config.getoption("--long-fuzz")
    seed = request.config.getoption("--fuzz-seed")
    if seed is None:
        seed = random.randrange(2**32) if long else FIXED_SEED
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{served.url(face)}/openapi.json"),
        *("--max-examples", str(LONG_FUZZ_EXAMPLES if long else FUZZ_EXAMPLES)),
        *("--seed", str(seed), "--workers", "1", "--generation-database", "none"),
        *("--suppress-health-check", "all", "--request-timeout", "30"),
        *("--output-truncate", "false", *options),
    ]
    for header in headers:
        command += ["--header", header]
    result = subprocess.run(
        command,
        cwd=directory,
        env=cli_env(served.config),
        capture_output=True,
        text=True,
        timeout=3600 if long else 600,
    )
    return result, seed


def _report(result: subprocess.CompletedProcess[str], seed: int) -> str:
    return f"seed {seed}\n" + result.stdout[-20_000:] + result.stderr[-5_000:]


@pytest.mark.parametrize("face", sorted(FACES))
def test_every_answer_is_the_one_the_document_describes(
    face: str, served: Served, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    headers = credentials(face, served)
    left_out = LEFT_TO_OTHER_TESTS.get(face, ())
    excluded = [option for name in left_out for option in ("--exclude-operation-id", name)]
    result, seed = run_schemathesis(
        face, served, request, tmp_path, headers, "--checks", CHECKS, *excluded
    )
    assert result.returncode == 0, _report(result, seed)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert tested, _report(result, seed)
    described = openapi.described_operations(openapi.document(face))
    assert int(tested[1]) == len(described) - len(left_out)


async def _contents(runtime: Runtime) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in primary key order."""
    async with runtime.database.unit_of_work(write=False) as session:
        contents = {}
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in RECORDS_OF_USE.get(table.name, ())]
            query = select(*columns).order_by(*table.primary_key.columns)
            contents[table.name] = [tuple(row) for row in await session.execute(query)]
        return contents


def refused(face: str, response: Response) -> bool:
    """Whether the face said no: an error status, or Heliactyl's HTTP 200 with an error
    ``status`` (its document answers every error after authentication that way)."""
    if response.status_code >= 400:
        return True
    content_type = response.headers.get("content-type", [""])[0]
    if face != "heliactyl" or not content_type.startswith("application/json"):
        return False
    body = response.json()
    return isinstance(body, dict) and body.get("status") not in (None, "success")


@pytest.mark.parametrize("face", sorted(FACES))
def test_requests_outside_the_document_are_refused_and_change_nothing(
    face: str, served: Served, request: pytest.FixtureRequest
) -> None:
    """Only invalid requests (Schemathesis's negative mode), in this process: each answer
    is a documented one, and after each refusal the database holds exactly what it held
    before. A generated request that is valid after all (its content type aside, which
    the faces do not judge) may be accepted; what it changed becomes the new baseline."""
    long = request.config.getoption("--long-fuzz")
    headers = dict(line.split(": ", 1) for line in credentials(face, served))
    schema = schemathesis.openapi.from_url(f"{served.url(face)}/openapi.json", timeout=30)
    runtime = Runtime(load_settings(served.config))
    loop = asyncio.new_event_loop()
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    tried = 0
    try:
        contents = loop.run_until_complete(_contents(runtime))
        for result in schema.get_all_operations():
            operation = result.ok()

            @hypothesis.given(case=operation.as_strategy(GenerationMode.NEGATIVE))
            @hypothesis.settings(
                max_examples=LONG_FUZZ_EXAMPLES if long else FUZZ_EXAMPLES,
                database=None,
                deadline=None,
                derandomize=not long,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            def each(case: Case) -> None:
                nonlocal contents
                response = case.call(base_url=served.url(face), headers=headers, timeout=30)
                case.validate_response(response, checks=checks)
                after = loop.run_until_complete(_contents(runtime))
                if refused(face, response):
                    changed = sorted(name for name in contents if contents[name] != after[name])
                    assert not changed, f"{case.as_curl_command(headers)}: changed {changed}"
                contents = after

            try:
                each()
                tried += 1
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing in it can be invalid: no parameters, no body
            except Exception as error:  # one report per operation, then the next
                failures.append(f"{operation.label}: {error}")
    finally:
        loop.run_until_complete(runtime.close())
        loop.close()
    assert not failures, "\n\n".join(failures)
    assert tried >= len(openapi.described_operations(schema.raw_schema)) // 2
