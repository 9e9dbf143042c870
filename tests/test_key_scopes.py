"""Key scopes: one list, checked when a key is made, and a refused request leaves no trace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from guildhall.config import load_settings
from guildhall.core.access import service as access
from guildhall.core.access.models import ApiKey
from guildhall.faces import FACES
from guildhall.faces.aurora import auth as aurora_auth
from guildhall.faces.heliactyl import auth as heliactyl_auth
from guildhall.faces.ld7 import auth as ld7_auth
from guildhall.faces.rustmail import wire as rustmail_wire
from guildhall.runtime import Runtime
from tests.conftest import make_key
from tests.process import guildhall, last_line, write_config


def test_every_scope_a_face_checks_is_on_the_list() -> None:
    checked = {heliactyl_auth.SCOPE, ld7_auth.SCOPE, aurora_auth.SCOPE}
    checked |= set(rustmail_wire.KEY_PERMISSIONS)
    assert checked | {"*"} == set(access.SCOPES)


@pytest.mark.e2e
def test_the_cli_refuses_a_misspelled_scope_with_the_list(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)
    refused = guildhall(
        config, "keys", "create", "--name", "typo", "--scope", "heliacytl", check=False
    )
    assert refused.returncode != 0
    assert "'heliacytl' is not a valid scope" in refused.stderr
    assert "the valid scopes are *, aurora, heliactyl, ld7, read:tickets, write:tickets" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr
    # Nothing was made; the right spelling still works.
    assert "typo" not in guildhall(config, "keys", "list").stdout
    made = guildhall(config, "keys", "create", "--name", "typo", "--scope", "HELIACTYL")
    assert last_line(made.stdout).startswith("gh_")
    assert "heliactyl" in guildhall(config, "keys", "list").stdout


@pytest.fixture
async def keyed_runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """Aurora asking for a key (as it must off loopback), everything else as default."""
    settings = load_settings(
        None,
        data_dir=str(tmp_path),
        database_url=database_url,
        faces={"aurora": {"require_key": True}, "ld7": {"require_key": True}},
    )
    runtime = Runtime(settings)
    yield runtime
    await runtime.close()


async def _last_used(runtime: Runtime) -> object:
    await runtime.drain()  # the stamp, if any, is written after the request
    async with runtime.database.unit_of_work(write=False) as session:
        (key,) = await access.list_keys(session)
        assert isinstance(key, ApiKey)
        return key.last_used_at


async def test_a_request_refused_for_scope_does_not_stamp_the_key(keyed_runtime: Runtime) -> None:
    runtime = keyed_runtime
    key = await make_key(runtime, "heliactyl")

    def client(face: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=FACES[face](runtime))
        return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")

    async with client("aurora") as aurora, client("rustmail") as rustmail:
        refused = await aurora.get("/api/users", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401
        forbidden = await rustmail.post(
            "/api/externals/tickets/create",
            json={"discord_id": "689149284871962727"},
            headers={"X-API-Key": key},
        )
        assert forbidden.status_code == 403
    assert await _last_used(runtime) is None

    # The scope it holds is used, and stamped (the refusals did not spend the
    # once-a-minute stamp either).
    async with client("heliactyl") as heliactyl:
        answered = await heliactyl.get("/api", headers={"Authorization": f"Bearer {key}"})
        assert answered.status_code == 200
    assert await _last_used(runtime) is not None


@pytest.mark.parametrize(
    ("face", "method", "path", "body"),
    [
        ("heliactyl", "POST", "/api/addcoins", {"id": "123", "coins": "lots"}),
        ("aurora", "GET", "/api/users/404404404404404404", None),
        ("ld7", "POST", "/api/sessions", {"userId": "bad id!", "phoneNumber": "1"}),
        ("rustmail", "POST", "/api/externals/tickets/create", {"discord_id": "not digits"}),
    ],
)
async def test_a_request_refused_after_its_key_was_accepted_does_not_stamp_it(
    keyed_runtime: Runtime, face: str, method: str, path: str, body: object
) -> None:
    """One rule for every face: a key is stamped when its request succeeds, not when the
    key is merely good (a refused body or a missing record is no use)."""
    runtime = keyed_runtime
    key = await make_key(runtime, "*")
    transport = httpx.ASGITransport(app=FACES[face](runtime))
    headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        refused = await client.request(method, path, json=body, headers=headers)
    assert refused.status_code >= 400 or refused.json().get("status") != "success", refused.text
    assert await _last_used(runtime) is None
