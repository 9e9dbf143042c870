"""Authentication, as the document's "Common Error Responses" give it:

API Disabled:          {"status": "error", "message": "API is disabled"}           403
Missing Authorization: {"status": "error", "message": "Missing authorization header"} 401
Invalid API Key:       {"status": "error", "message": "Invalid API key"}           403
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from guildhall.config import load_settings
from guildhall.core.access import service as access
from guildhall.core.access.models import ApiKey
from guildhall.faces.heliactyl.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_key

PATHS = [("GET", "/api"), ("GET", "/api/v3/userinfo?id=1"), ("POST", "/api/v3/addcoins")]


@pytest.mark.parametrize(("method", "path"), PATHS)
async def test_missing_header_is_401(heliactyl: httpx.AsyncClient, method: str, path: str) -> None:
    response = await heliactyl.request(method, path)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": "Missing authorization header"}


@pytest.mark.parametrize(
    "header", ["Bearer wrong", "Bearer ", "Basic dXNlcjpwYXNz", "gh_notakey", "Bearer gh_x y"]
)
async def test_wrong_key_is_403(heliactyl: httpx.AsyncClient, header: str) -> None:
    response = await heliactyl.get("/api", headers={"Authorization": header})
    assert response.status_code == 403
    assert response.json() == {"status": "error", "message": "Invalid API key"}


async def test_guildhall_key_with_scope_opens_the_api(
    heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = await make_key(runtime, "heliactyl")
    response = await heliactyl.get("/api", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.json() == {
        "status": True,
        "version": "3.2.1-beta.1",
        "platform_codename": "Avalanche 2",
    }


async def test_key_without_heliactyl_scope_is_refused(
    heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = await make_key(runtime, "aurora")
    response = await heliactyl.get("/api", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403


async def test_revoked_key_is_refused_at_once(
    heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = await make_key(runtime, "heliactyl")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await heliactyl.get("/api", headers=headers)).status_code == 200
    async with runtime.database.unit_of_work() as session:
        key_id = (await access.list_keys(session))[0].id
        await access.revoke(session, key_id, TEST_ACTOR)
    response = await heliactyl.get("/api", headers=headers)
    assert response.status_code == 403
    assert response.json()["message"] == "Invalid API key"


async def test_expired_key_is_refused(heliactyl: httpx.AsyncClient, runtime: Runtime) -> None:
    key = await make_key(runtime, "heliactyl", expires_at=datetime.now(UTC) + timedelta(hours=1))
    async with runtime.database.unit_of_work() as session:
        stored = (await access.list_keys(session))[0]
        stored.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = await heliactyl.get("/api", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403


async def test_key_use_is_stamped_and_only_the_hash_is_stored(
    heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = await make_key(runtime, "heliactyl")
    await heliactyl.get("/api", headers={"Authorization": f"Bearer {key}"})
    await runtime.drain()  # the stamp is written after the request, outside it
    async with runtime.database.unit_of_work(write=False) as session:
        stored: ApiKey = (await access.list_keys(session))[0]
    assert stored.last_used_at is not None
    assert key not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == access.hash_key(key)


def _variant(runtime: Runtime, **face: object) -> Runtime:
    """Another runtime on the same database with different face settings."""
    return Runtime(
        load_settings(
            None,
            data_dir=str(runtime.settings.data_dir),
            database_url=runtime.settings.database_url,
            faces={"heliactyl": face},
        )
    )


async def test_static_api_code_works_for_operators_moving_from_heliactyl(
    runtime: Runtime,
) -> None:
    other = _variant(runtime, api_code="your-api-key-here")
    try:
        transport = httpx.ASGITransport(app=create_app(other))
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
            ok = await client.get("/api", headers={"Authorization": "Bearer your-api-key-here"})
            wrong = await client.get("/api", headers={"Authorization": "Bearer your-api-key"})
    finally:
        await other.close()
    assert ok.status_code == 200
    assert wrong.status_code == 403


async def test_disabled_api_is_403_even_with_a_good_key(runtime: Runtime) -> None:
    key = await make_key(runtime, "heliactyl")
    other = _variant(runtime, api_enabled=False)
    try:
        transport = httpx.ASGITransport(app=create_app(other))
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
            response = await client.get("/api", headers={"Authorization": f"Bearer {key}"})
    finally:
        await other.close()
    assert response.status_code == 403
    assert response.json() == {"status": "error", "message": "API is disabled"}


async def test_unknown_route_and_wrong_method_answer_json(
    heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = {"Authorization": f"Bearer {await make_key(runtime, 'heliactyl')}"}
    missing = await heliactyl.get("/api/v3/nothing", headers=headers)
    assert missing.status_code == 404
    assert missing.json() == {"status": "error", "message": "Not found"}
    wrong = await heliactyl.get("/api/v3/addcoins", headers=headers)
    assert wrong.status_code == 405
    assert wrong.json()["status"] == "error"
