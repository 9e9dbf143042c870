"""The key, as the document describes it:

You can secure your API endpoints by setting an `API_KEY` environment
variable. When set, most API endpoints will require this key ...
X-API-Key: your_api_key_here
Endpoints that don't require API key: GET /, GET /api/stats,
GET /api/sessions, GET /api/sessions/:userId
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from guildhall.config import ConfigError, load_settings
from guildhall.runtime import Runtime
from guildhall.server import plan_listeners
from tests.conftest import make_key
from tests.faces.ld7.conftest import BOT, client_for, counts

KEY = "k" * 40
UNAUTHORIZED = {"success": False, "message": "Unauthorized: invalid or missing API key"}
PROTECTED = [
    ("POST", "/api/sessions"),
    ("POST", "/api/sessions/bot_1234567890/start"),
    ("POST", "/api/sessions/bot_1234567890/stop"),
    ("DELETE", "/api/sessions/bot_1234567890"),
    ("POST", "/api/sessions/bot_1234567890/logout"),
    ("POST", "/api/sessions/bot_1234567890/backup"),
    ("POST", "/api/sessions/bot_1234567890/restore"),
    ("GET", "/api/sessions/bot_1234567890/pairing"),
    ("GET", "/api/sessions/bot_1234567890/qr"),
    ("POST", "/api/sessions/bot_1234567890/messages"),
]
PUBLIC = ["/", "/api/stats", "/api/sessions", "/api/sessions/bot_1234567890"]


@pytest.fixture
def keyed(other_runtime: Callable[..., Runtime]) -> Runtime:
    return other_runtime(faces__ld7__api_key=KEY)


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("header", [None, "wrong", KEY[:-1]])
async def test_protected_routes_need_the_key(
    keyed: Runtime, method: str, path: str, header: str | None
) -> None:
    async with client_for(keyed) as ld7:
        headers = {} if header is None else {"X-API-Key": header}
        before = await counts(keyed)
        response = await ld7.request(method, path, json=BOT, headers=headers)
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert await counts(keyed) == before


async def test_the_configured_key_opens_them(keyed: Runtime) -> None:
    async with client_for(keyed) as ld7:
        ld7.headers["X-API-Key"] = KEY
        created = await ld7.post("/api/sessions", json=BOT)
        assert created.status_code == 200
        pending = await ld7.get("/api/sessions/bot_1234567890/pairing")
        assert pending.json()["pairingCode"] == created.json()["pairingCode"]
        assert (await ld7.post("/api/sessions/bot_1234567890/stop")).status_code == 200


@pytest.mark.parametrize("path", PUBLIC)
async def test_the_four_documented_routes_stay_public(keyed: Runtime, path: str) -> None:
    async with client_for(keyed, peer="203.0.113.9") as ld7:
        await ld7.post("/api/sessions", json=BOT, headers={"X-API-Key": KEY})
        response = await ld7.get(path)
        assert response.status_code == 200


async def test_a_guildhall_key_needs_the_ld7_scope(keyed: Runtime) -> None:
    good = await make_key(keyed, "ld7")
    other = await make_key(keyed, "heliactyl")
    async with client_for(keyed) as ld7:
        refused = await ld7.post("/api/sessions", json=BOT, headers={"X-API-Key": other})
        assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)
        accepted = await ld7.post("/api/sessions", json=BOT, headers={"X-API-Key": good})
        assert accepted.status_code == 200


async def test_require_key_without_a_static_key_takes_guildhall_keys_only(
    other_runtime: Callable[..., Runtime],
) -> None:
    runtime = other_runtime(faces__ld7__require_key=True)
    async with client_for(runtime) as ld7:
        assert (await ld7.post("/api/sessions", json=BOT)).status_code == 401
        key = await make_key(runtime, "ld7")
        assert (
            await ld7.post("/api/sessions", json=BOT, headers={"X-API-Key": key})
        ).status_code == 200


async def test_without_a_key_the_pairing_code_is_for_this_machine_only(
    runtime: Runtime,
) -> None:
    async with client_for(runtime) as local:
        await local.post("/api/sessions", json=BOT)
        assert (await local.get("/api/sessions/bot_1234567890/pairing")).status_code == 200
        for proxy_header in (
            {"X-Forwarded-For": "198.51.100.7"},
            {"Forwarded": "for=198.51.100.7;proto=https"},
            {"X-Real-IP": "198.51.100.7"},
        ):
            proxied = await local.get("/api/sessions/bot_1234567890/pairing", headers=proxy_header)
            assert (proxied.status_code, proxied.json()) == (401, UNAUTHORIZED), proxy_header
    async with client_for(runtime, peer="203.0.113.9") as remote:
        response = await remote.get("/api/sessions/bot_1234567890/pairing")
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_the_api_key_environment_variable_of_ld7_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_KEY", "from-the-environment")
    assert load_settings(None).faces.ld7.api_key == "from-the-environment"
    assert load_settings(None).faces.ld7.keyless is False


def test_without_a_key_the_face_refuses_a_public_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("API_KEY", raising=False)
    exposed = load_settings(None, faces={"ld7": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match=r"ld7 face has no API key.*loopback"):
        plan_listeners(exposed)
    keyed = load_settings(None, faces={"ld7": {"host": "0.0.0.0", "api_key": KEY}})
    assert "ld7" in [listener.face for listener in plan_listeners(keyed)]
    for host in ("127.0.0.1", "::1", "localhost"):
        assert plan_listeners(load_settings(None, faces={"ld7": {"host": host}}))
