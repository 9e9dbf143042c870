"""A body is read only after its caller is authenticated, and only if the route takes it
(faces/common/body.py, session.py): a stranger's body, a multipart body on a JSON route
and one that declares more than 1 MB are answered without reading a byte of it, with
``Connection: close`` so the client stops sending."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guildhall.faces import FACES
from guildhall.runtime import Runtime
from tests.conftest import make_key
from tests.faces.rustmail.conftest import ADMIN, logged_in

MULTIPART = "multipart/form-data; boundary=x"


async def call(
    app: Any, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any, int]:
    """Status, headers and JSON body of the answer to a request whose body never ends,
    and how many times the app asked for a piece of it."""
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": b"\0" * 65536, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], answer_headers, json.loads(body), asked


BIG = {"Content-Type": MULTIPART, "Content-Length": str(15 * 1024 * 1024), "Host": "127.0.0.1"}


@pytest.mark.parametrize(
    ("face", "method", "path", "status"),
    [
        ("heliactyl", "POST", "/api/v3/ban", 401),
        ("skypanel", "PUT", "/api/users/me", 401),
        ("rustmail", "PUT", "/api/bot/config", 401),
        ("ld7", "POST", "/api/sessions", 401),
        ("aurora", "POST", "/api/items", 401),  # an upload route
        ("aurora", "POST", "/api/settings", 401),
    ],
)
async def test_a_strangers_body_is_refused_unread(
    runtime: Runtime, face: str, method: str, path: str, status: int
) -> None:
    runtime.settings.faces.ld7.require_key = True
    runtime.settings.faces.aurora.require_key = True
    headers = BIG | ({"Authorization": "Bearer wrong"} if face == "skypanel" else {})
    answer, answer_headers, _body, asked = await call(FACES[face](runtime), method, path, headers)
    assert answer == status
    assert asked == 0
    assert answer_headers["connection"] == "close"


async def test_a_wrong_key_is_refused_unread(runtime: Runtime) -> None:
    headers = BIG | {"Authorization": "Bearer not-a-key"}
    status, answer_headers, body, asked = await call(
        FACES["heliactyl"](runtime), "POST", "/api/v3/ban", headers
    )
    assert (status, body, asked) == (403, {"status": "error", "message": "Invalid API key"}, 0)
    assert answer_headers["connection"] == "close"


@pytest.mark.parametrize("content_type", [MULTIPART, "application/json"])
@pytest.mark.parametrize(
    ("face", "method", "path"),
    [
        ("heliactyl", "POST", "/api/v3/ban"),
        ("skypanel", "POST", "/api/auth/login"),
        ("rustmail", "PUT", "/api/bot/config"),
        ("ld7", "POST", "/api/sessions"),
        ("aurora", "PUT", "/api/items/1"),
        ("aurora", "POST", "/api/settings"),
    ],
)
async def test_json_routes_refuse_multipart_or_over_1_mb_unread(
    runtime: Runtime, face: str, method: str, path: str, content_type: str
) -> None:
    """Each in the face's answer to a bad body: 400, or Heliactyl's HTTP 200 with its
    status string (its every error after authentication)."""
    headers = BIG | {"Content-Type": content_type}
    if face == "heliactyl":
        headers["Authorization"] = f"Bearer {await make_key(runtime, 'heliactyl')}"
    if face == "rustmail":
        runtime.settings.faces.rustmail.super_admin_users.append(ADMIN)
        headers["Cookie"] = f"rustmail_session={await logged_in(runtime, ADMIN)}"
    status, answer_headers, body, asked = await call(FACES[face](runtime), method, path, headers)
    assert asked == 0
    assert answer_headers["connection"] == "close"
    if face == "heliactyl":
        assert (status, body) == (200, {"status": "body must be an object"})
    else:
        assert status == 400, body
        assert "JSON" in json.dumps(body)
