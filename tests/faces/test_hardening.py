"""What an attacker or an unlucky client sends: foreign pages, odd digits, a limiter
whose Redis is down. Each gets a clear answer in the face's format, never a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from guildhall.core.economy import service as economy
from guildhall.faces import FACES
from guildhall.faces.common.body import MAX_JSON_DEPTH
from guildhall.ratelimit import RateLimiter, counter_for
from guildhall.runtime import Runtime
from tests.conftest import make_account, make_key
from tests.faces.rustmail.conftest import logged_in
from tests.faces.skypanel.conftest import login, make_user


def client(runtime: Runtime, face: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=FACES[face](runtime)), base_url="http://127.0.0.1"
    )


@pytest.mark.parametrize(
    ("face", "method", "path"),
    [("aurora", "POST", "/api/settings"), ("ld7", "POST", "/api/sessions")],
)
async def test_keyless_faces_refuse_other_sites_pages(
    runtime: Runtime, face: str, method: str, path: str
) -> None:
    async with client(runtime, face) as api:
        evil = await api.request(
            method, path, json={"prefix": "?"}, headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403
        assert "other sites" in evil.text
        local = await api.request(
            method,
            path,
            json={"userId": "bot_1", "phoneNumber": "1234567890"},
            headers={"Origin": "http://127.0.0.1:3000"},
        )
        assert local.status_code in (200, 201)


@pytest.mark.parametrize(
    ("face", "path"),
    [
        ("aurora", "/api/items/²"),
        ("aurora", "/api/quests/" + "9" * 5000),
        ("aurora", "/api/users?limit=²"),
        ("rustmail", "/api/bot/tickets?limit=²"),
    ],
)
async def test_odd_digits_are_a_clear_client_error(runtime: Runtime, face: str, path: str) -> None:
    async with client(runtime, face) as api:
        if face == "rustmail":
            runtime.settings.faces.rustmail.super_admin_users.append("111111111111111111")
            api.cookies.set("rustmail_session", await logged_in(runtime, "111111111111111111"))
        response = await api.get(path)
        assert response.status_code in (400, 404), response.text
        assert response.status_code != 500


async def test_a_limiter_whose_redis_is_down_serves_and_counts(runtime: Runtime) -> None:
    """Served, not a 500, and still counted (in the process: test_rate_limits.py)."""
    runtime.rate_limiter = RateLimiter(counter_for("redis://127.0.0.1:1/0"))
    async with client(runtime, "aurora") as api:
        response = await api.get("/api/health")
    assert response.status_code == 200
    assert response.headers["ratelimit-limit"] == "1200"


def nested(depth: int) -> object:
    """A value with ``depth`` objects inside one another."""
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


TOO_DEEP = nested(MAX_JSON_DEPTH + 8)


@pytest.mark.parametrize(
    ("face", "method", "path", "body", "listing"),
    [
        (
            "aurora",
            "POST",
            "/api/items",
            {"name": "Poison", "type": "T", "rarity": "C", "usageData": TOO_DEEP},
            "/api/items",
        ),
        (
            "aurora",
            "POST",
            "/api/moderation",
            {"type": "note", "userId": "5", "moderatorId": "6", "metadata": TOO_DEEP},
            "/api/moderation",
        ),
        ("aurora", "POST", "/api/settings", {"deep": TOO_DEEP}, "/api/settings"),
        ("rustmail", "PUT", "/api/bot/config", {"deep": TOO_DEEP}, "/api/bot/config"),
        ("skypanel", "POST", "/api/auth/login", {"email": TOO_DEEP, "password": "x"}, None),
        ("ld7", "POST", "/api/sessions", {"userId": "bot_1", "phoneNumber": TOO_DEEP}, None),
    ],
)
async def test_deeply_nested_json_is_refused_and_stores_nothing(
    runtime: Runtime, face: str, method: str, path: str, body: object, listing: str | None
) -> None:
    """Stored this deep, a value could not be written out again (orjson stops at 255
    levels), and the list holding it would answer 500 to everyone from then on."""
    async with client(runtime, face) as api:
        if face == "rustmail":
            runtime.settings.faces.rustmail.super_admin_users.append("111111111111111111")
            api.cookies.set("rustmail_session", await logged_in(runtime, "111111111111111111"))
        before = (await api.get(listing)).json() if listing else None
        response = await api.request(method, path, json=body)
        assert response.status_code == 400, response.text
        assert f"at most {MAX_JSON_DEPTH}" in response.text
        if listing:
            after = await api.get(listing)
            assert after.status_code == 200
            assert after.json() == before


async def test_json_nested_to_the_limit_is_stored_and_read_back(runtime: Runtime) -> None:
    deepest = nested(MAX_JSON_DEPTH - 1)  # plus the body's own object
    async with client(runtime, "aurora") as api:
        saved = await api.post("/api/settings", json={"deep": deepest})
        assert saved.status_code == 200, saved.text
        listed = await api.get("/api/settings")
    assert listed.status_code == 200
    assert listed.json()["deep"] == deepest


@pytest.mark.parametrize("face", ["rustmail", "aurora"])
async def test_a_trailing_slash_is_the_faces_own_not_found(runtime: Runtime, face: str) -> None:
    """Not an empty redirect to whatever Host the client sent (axum and Aurora route strictly)."""
    path = {"rustmail": "/api/bot/status/", "aurora": "/api/stats/"}[face]
    async with client(runtime, face) as api:
        response = await api.get(path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()


@pytest.mark.parametrize(
    ("face", "route", "query"),
    [
        ("heliactyl", "/api/v3/userinfo", "?id=123456789"),
        ("heliactyl", "/api", ""),
        ("skypanel", "/api/users/me", ""),
        ("ld7", "/api/sessions", ""),
    ],
)
async def test_express_faces_serve_a_path_with_one_trailing_slash_as_the_route(
    runtime: Runtime, face: str, route: str, query: str
) -> None:
    """Heliactyl, SkyPANEL and LD7 run on Express, which routes ``/x/`` as ``/x``
    (one slash only), with the same handler and no redirect."""
    await make_user(runtime)
    await make_account(runtime, "user123", discord="123456789")
    async with client(runtime, face) as api:
        if face == "heliactyl":
            api.headers["Authorization"] = f"Bearer {await make_key(runtime, 'heliactyl')}"
        if face == "skypanel":
            api.headers["Authorization"] = f"Bearer {await login(api)}"
        plain = await api.get(route + query)
        slashed = await api.get(route + "/" + query)
        doubled = await api.get(route + "//" + query)
    assert plain.status_code == 200, plain.text
    assert slashed.status_code == 200, slashed.text
    assert slashed.json() == plain.json()
    assert doubled.status_code == 404


async def test_aurora_multipart_item_data_nested_too_deep_is_refused(runtime: Runtime) -> None:
    body = json.dumps({"name": "Poison", "type": "T", "rarity": "C", "usageData": TOO_DEEP})
    async with client(runtime, "aurora") as api:
        response = await api.post("/api/items", files={"data": (None, body)})
        assert response.status_code == 400, response.text
        assert f"at most {MAX_JSON_DEPTH}" in response.text
        listed = await api.get("/api/items")
    assert listed.status_code == 200
    assert "Poison" not in listed.text


@pytest.mark.parametrize("face", ["aurora", "ld7"])
@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("rebind.attacker.example:3000", False),
        ("127.0.0.1.attacker.example", False),
        ("127.0.0.1:8000", True),
        ("localhost:3000", True),
        ("[::1]:3000", True),
        ("[::1", False),  # no closing bracket: a URL parser raises on it
        ("[zz]:3000", False),
        ("attacker.example@127.0.0.1:3000", False),
        ("127.0.0.1:3000, attacker.example", False),  # two Hosts folded into one
    ],
)
async def test_keyless_faces_answer_only_requests_addressed_to_this_machine(
    runtime: Runtime, face: str, host: str, allowed: bool
) -> None:
    """A page on an attacker's domain that re-resolves to 127.0.0.1 (DNS rebinding) reads
    the face as its own origin, without an Origin header, but its Host is its domain."""
    path = "/api/users" if face == "aurora" else "/api/sessions/bot_1/pairing"
    async with client(runtime, face) as api:
        if face == "ld7":
            made = await api.post(
                "/api/sessions", json={"userId": "bot_1", "phoneNumber": "1234567890"}
            )
            assert made.status_code == 200, made.text
        response = await api.get(path, headers={"Host": host})
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403
        assert "other sites" in response.text
        assert "pairingCode" not in response.text


@pytest.mark.parametrize("face", ["aurora", "ld7"])
@pytest.mark.parametrize(
    "origins",
    [
        ["http://[::1"],
        ["http://[zz]:3000"],
        ["http://attacker.example@127.0.0.1:3000"],
        ["http://127.0.0.1:3000", "http://attacker.example"],
        ["http://127.0.0.1:3000, http://attacker.example"],
    ],
)
async def test_keyless_faces_refuse_garbage_or_repeated_origins(
    runtime: Runtime, face: str, origins: list[str]
) -> None:
    """Each in the face's own 403, never a 500 from a URL parser; of two Origin headers
    neither is trusted, whichever one a proxy on the way would have read."""
    path = "/api/settings" if face == "aurora" else "/api/sessions"
    async with client(runtime, face) as api:
        response = await api.post(
            path,
            json={"userId": "bot_1", "phoneNumber": "1234567890", "prefix": "?"},
            headers=[("Origin", origin) for origin in origins],
        )
        assert response.status_code == 403, response.text
        assert "other sites" in response.text
        if face == "aurora":
            assert (await api.get("/api/settings")).json()["prefix"] == "!"
        else:
            assert (await api.get("/api/sessions/bot_1")).status_code == 404


async def _hang_up_mid_body(
    app: Any, path: str, headers: dict[str, str], first_part: bytes
) -> list[dict[str, Any]]:
    """What the app sends to a client that sent the headers and part of the body, then
    hung up (uvicorn reports broken chunked encoding the same way). Raises what the
    app lets escape, which a server would log as a traceback."""
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": first_part, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8081),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("content_type", "first_part"),
    [
        ("application/json", b'{"id":"123456789","coins":5'),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="id"'),
    ],
)
async def test_a_client_that_hangs_up_mid_body_changes_nothing_and_logs_no_traceback(
    runtime: Runtime, content_type: str, first_part: bytes
) -> None:
    user = await make_account(runtime, "user123", discord="123456789")
    key = await make_key(runtime, "heliactyl")
    sent = await _hang_up_mid_body(
        FACES["heliactyl"](runtime),
        "/api/v3/addcoins",
        {"Authorization": f"Bearer {key}", "Content-Type": content_type, "Content-Length": "99"},
        first_part,
    )
    (start,) = [message for message in sent if message["type"] == "http.response.start"]
    body = b"".join(message.get("body", b"") for message in sent)
    # Heliactyl's errors are HTTP 200 with their status string.
    assert start["status"] == 200
    assert json.loads(body)["status"] == "body must be an object"
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, user.id) == 0


async def test_an_aurora_upload_cut_short_stores_nothing(runtime: Runtime) -> None:
    sent = await _hang_up_mid_body(
        FACES["aurora"](runtime),
        "/api/items",
        {"Content-Type": "multipart/form-data; boundary=x", "Host": "127.0.0.1:3000"},
        b'--x\r\nContent-Disposition: form-data; name="data"\r\n\r\n{"name":"Potion"',
    )
    (start,) = [message for message in sent if message["type"] == "http.response.start"]
    assert start["status"] == 400
    async with client(runtime, "aurora") as api:
        assert "Potion" not in (await api.get("/api/items")).text
