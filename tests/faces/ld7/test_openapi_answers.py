"""Answers the fuzzer cannot reach, held to ``faces/ld7/openapi.yaml``.

The fuzzer drives the face over HTTP only, so it never pairs a session (the
phone's side), never meets a platform that refuses a login, a key, another
site's page or the rate limit. Here each of those answers is produced in
process and checked against the document: a documented status, its content
type, its required headers and its body schema.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from guildhall.faces.common import openapi
from guildhall.runtime import Runtime
from tests.faces.documented import Documented
from tests.faces.ld7.conftest import BOT, client_for, online_bot

HANDLE = BOT["userId"]
KEY = "k" * 40
DOCUMENT = openapi.document("ld7")


conforms = Documented("ld7").conforms


async def test_a_whole_life_with_pairing_backup_and_restore_is_documented(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    base = f"/api/sessions/{HANDLE}"
    conforms(await ld7.get("/"))
    await online_bot(ld7, runtime)
    steps = [
        ("GET", "/", 200),
        ("GET", "/api/stats", 200),
        ("GET", "/api/sessions", 200),
        ("GET", base, 200),
        ("POST", f"{base}/start", 409),  # already online
        ("GET", f"{base}/pairing", 404),  # online: no pending code
        ("POST", f"{base}/backup", 200),
        ("POST", f"{base}/restore", 409),  # online
        ("POST", f"{base}/stop", 200),
        ("POST", f"{base}/stop", 409),  # not running
        ("POST", f"{base}/restore", 200),
        ("POST", f"{base}/start", 200),  # connects with the kept login
        ("DELETE", base, 200),
        ("POST", f"{base}/restore", 200),  # recreated from the backup
        ("POST", f"{base}/logout", 200),
        ("POST", f"{base}/restore", 404),  # the backup went with the logout
        ("POST", f"{base}/start", 404),  # unknown, in LD7's words
        ("POST", f"{base}/backup", 404),
        ("DELETE", base, 200),  # unknown: success, as in the original
    ]
    for method, path, status in steps:
        answer = conforms(await ld7.request(method, path))
        assert answer.status_code == status, (method, path, answer.text)


async def test_a_fresh_pairing_code_and_its_reading_are_documented(ld7: httpx.AsyncClient) -> None:
    base = f"/api/sessions/{HANDLE}"
    created = conforms(await ld7.post("/api/sessions", json={**BOT, "name": "John's Bot"}))
    assert created.status_code == 200
    assert conforms(await ld7.get(f"{base}/pairing")).status_code == 200
    restarted = conforms(await ld7.post(f"{base}/start"))
    assert "pairingCode" in restarted.json()
    assert conforms(await ld7.post(f"{base}/backup")).status_code == 409  # never paired
    assert conforms(await ld7.post("/api/sessions", json=BOT)).status_code == 400  # exists


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"userId": "a b", "phoneNumber": "1234567890"}',
        b'{"userId": "bot", "phoneNumber": "123"}',
        b'{"userId": "bot", "phoneNumber": -12345678}',
        b'{"userId": "bot", "phoneNumber": "1234567890", "name": 5}',
        b'{"userId": 5, "phoneNumber": "1234567890"}',
        b"[" * 40 + b"]" * 40,
    ],
)
async def test_refused_bodies_are_documented(ld7: httpx.AsyncClient, body: bytes) -> None:
    response = conforms(
        await ld7.post("/api/sessions", content=body, headers={"Content-Type": "application/json"})
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sessions/a%20b"),
        ("GET", "/api/sessions/" + "a" * 65 + "/pairing"),
        ("POST", "/api/sessions/a.b/stop"),
        ("DELETE", "/api/sessions/%C3%A9"),
    ],
)
async def test_a_bad_user_id_in_the_path_is_documented(
    ld7: httpx.AsyncClient, method: str, path: str
) -> None:
    assert conforms(await ld7.request(method, path)).status_code == 400


async def test_an_encoded_slash_in_the_user_id_is_documented(ld7: httpx.AsyncClient) -> None:
    # /api/sessions/x%2Fstop is routed as /api/sessions/x/stop, which takes POST only.
    response = conforms(await ld7.get("/api/sessions/x%2Fstop"))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_a_platform_that_refuses_the_login_is_documented(
    ld7: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    await online_bot(ld7, runtime)
    await ld7.post(f"/api/sessions/{HANDLE}/backup")
    await ld7.post(f"/api/sessions/{HANDLE}/stop")
    await ld7.post("/api/sessions", json={**BOT, "userId": "bot_pairing"})
    stranger = other_runtime(secret_key="another installation's secret, 32+ characters")
    async with client_for(stranger) as other:
        assert conforms(await other.post(f"/api/sessions/{HANDLE}/start")).status_code == 502
        assert conforms(await other.post(f"/api/sessions/{HANDLE}/restore")).status_code == 400
        assert conforms(await other.post(f"/api/sessions/{HANDLE}/backup")).status_code == 409
        assert conforms(await other.get("/api/sessions/bot_pairing/pairing")).status_code == 409
        assert conforms(await other.get(f"/api/sessions/{HANDLE}")).status_code == 200


async def test_keys_other_sites_and_the_rate_limit_are_documented(
    other_runtime: Callable[..., Runtime], runtime: Runtime
) -> None:
    keyed = other_runtime(faces__ld7__api_key=KEY)
    async with client_for(keyed, peer="203.0.113.9") as remote:
        assert conforms(await remote.post("/api/sessions", json=BOT)).status_code == 401
        assert conforms(await remote.get(f"/api/sessions/{HANDLE}/pairing")).status_code == 401
        wrong = {"X-API-Key": "wrong"}
        refused = await remote.delete(f"/api/sessions/{HANDLE}", headers=wrong)
        assert conforms(refused).status_code == 401
    async with client_for(runtime, peer="203.0.113.9") as remote:
        # Keyless: the pairing code is for this machine only.
        assert conforms(await remote.get(f"/api/sessions/{HANDLE}/pairing")).status_code == 401
    async with client_for(runtime) as local:
        page = {"Origin": "https://evil.example"}
        for method, path in [("GET", "/"), ("GET", "/api/stats"), ("POST", "/api/sessions")]:
            refused = conforms(await local.request(method, path, headers=page))
            assert refused.status_code == 403
    limited = other_runtime(faces__ld7__rate_limits={"default": {"requests": 1, "per_seconds": 60}})
    async with client_for(limited) as client:
        assert conforms(await client.get("/api/stats")).status_code == 200
        over = conforms(await client.get("/api/stats"))
        assert over.status_code == 429
        assert conforms(await client.post("/api/sessions", json=BOT)).status_code == 429
