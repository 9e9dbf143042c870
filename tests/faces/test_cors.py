"""Pages on other sites calling a face from a browser (``cors_origins``).

LD7's document: "The API is configured to allow all origins by default", and
its frontend examples call it cross-site with ``X-API-Key``. The browser
first sends a preflight (``OPTIONS`` with ``Origin``,
``Access-Control-Request-Method`` and ``-Headers``), then the request, and
lets the page read the answer only when ``Access-Control-Allow-Origin``
admits it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from guildhall.config import ConfigError, load_settings
from guildhall.faces import FACES
from guildhall.runtime import Runtime
from tests.faces.ld7.conftest import BOT

FRONTEND = "https://bots.example.com"
KEY = "ld7-static-key-for-the-frontend"


def preflight(method: str, headers: str) -> dict[str, str]:
    return {
        "Origin": FRONTEND,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def client(runtime: Runtime, face: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=FACES[face](runtime), client=("127.0.0.1", 50123)),
        base_url="http://127.0.0.1",
    )


async def test_ld7_with_a_key_lets_the_documents_frontend_call_it_from_another_site(
    other_runtime: Callable[..., Runtime],
) -> None:
    runtime = other_runtime(faces__ld7__api_key=KEY)
    async with client(runtime, "ld7") as ld7:
        asked = await ld7.options(
            "/api/sessions", headers=preflight("POST", "content-type,x-api-key")
        )
        assert asked.status_code == 204
        assert asked.headers["access-control-allow-origin"] == "*"
        assert "POST" in asked.headers["access-control-allow-methods"]
        allowed_headers = asked.headers["access-control-allow-headers"].lower()
        assert "content-type" in allowed_headers and "x-api-key" in allowed_headers
        assert "access-control-allow-credentials" not in asked.headers

        created = await ld7.post(
            "/api/sessions",
            json=BOT,
            headers={"Origin": FRONTEND, "X-API-Key": KEY},
        )
        assert created.status_code == 200, created.text
        assert created.headers["access-control-allow-origin"] == "*"
        assert created.json()["pairingCode"]

        for method, path in (("DELETE", "/api/sessions/bot_1234567890"),):
            asked = await ld7.options(path, headers=preflight(method, "x-api-key"))
            assert asked.status_code == 204
            assert method in asked.headers["access-control-allow-methods"]

        # The key is still required: CORS opens the door to pages, not to everyone.
        refused = await ld7.post("/api/sessions", json=BOT, headers={"Origin": FRONTEND})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "*"


async def test_a_keyless_ld7_still_refuses_other_sites(runtime: Runtime) -> None:
    async with client(runtime, "ld7") as ld7:
        asked = await ld7.options("/api/sessions", headers=preflight("POST", "content-type"))
        created = await ld7.post("/api/sessions", json=BOT, headers={"Origin": FRONTEND})
    assert asked.status_code != 204
    assert "access-control-allow-origin" not in asked.headers
    assert created.status_code == 403
    assert "access-control-allow-origin" not in created.headers


async def test_a_keyless_face_obeys_a_page_the_operator_names(
    other_runtime: Callable[..., Runtime],
) -> None:
    runtime = other_runtime(faces__ld7__cors_origins=[FRONTEND])
    async with client(runtime, "ld7") as ld7:
        asked = await ld7.options("/api/sessions", headers=preflight("POST", "content-type"))
        assert asked.status_code == 204
        assert asked.headers["access-control-allow-origin"] == FRONTEND
        assert asked.headers["vary"] == "Origin"
        created = await ld7.post("/api/sessions", json=BOT, headers={"Origin": FRONTEND})
        assert created.status_code == 200, created.text
        assert created.headers["access-control-allow-origin"] == FRONTEND
        other = await ld7.post(
            "/api/sessions", json=BOT, headers={"Origin": "https://evil.example"}
        )
        assert other.status_code == 403


@pytest.mark.parametrize("face", ["heliactyl", "skypanel", "rustmail", "aurora"])
async def test_other_faces_send_no_cors_headers_unless_told(runtime: Runtime, face: str) -> None:
    async with client(runtime, face) as api:
        asked = await api.options("/api", headers=preflight("GET", "authorization"))
        plain = await api.get("/api", headers={"Origin": FRONTEND})
    assert asked.status_code != 204
    assert "access-control-allow-origin" not in asked.headers
    assert "access-control-allow-origin" not in plain.headers


async def test_every_face_takes_the_same_setting(other_runtime: Callable[..., Runtime]) -> None:
    runtime = other_runtime(faces__heliactyl__cors_origins=[FRONTEND + "/"])
    async with client(runtime, "heliactyl") as api:
        asked = await api.options("/api/v3/userinfo", headers=preflight("GET", "authorization"))
        assert asked.status_code == 204
        assert asked.headers["access-control-allow-origin"] == FRONTEND
        answer = await api.get("/api/v3/userinfo?id=1", headers={"Origin": FRONTEND})
        assert answer.status_code == 401  # still needs its key
        assert answer.headers["access-control-allow-origin"] == FRONTEND
        foreign = await api.get("/api", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"cors_origins": ["*"]}, "may not let every site call it"),
        ({"cors_origins": ["bots.example.com"]}, "is not an origin"),
        ({"cors_origins": ["https://bots.example.com/app"]}, "is not an origin"),
    ],
)
def test_unsafe_or_malformed_origins_are_refused(changes: dict[str, Any], sentence: str) -> None:
    with pytest.raises(ConfigError, match=sentence):
        load_settings(None, faces={"ld7": changes})
