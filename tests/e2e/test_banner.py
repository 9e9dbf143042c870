"""``guildhall serve``'s banner, read as a newcomer reads it: each face's base URL exactly
as its clients use it, how that face takes credentials, and what the demo key is."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from guildhall.faces import FACES
from tests.process import serve, write_config

pytestmark = pytest.mark.e2e


def test_the_banner_gives_base_urls_clients_use_as_they_are(
    database_url: str, tmp_path: Path
) -> None:
    served = serve(write_config(tmp_path, database_url), "--demo")
    try:
        lines = {line.split()[0]: line for line in served.banner if line.startswith("  ")}
        assert set(FACES) <= set(lines), served.banner
        key = served.demo_key
        auth = {"Authorization": f"Bearer {key}"}
        # Each document's first example, on the base URL as printed.
        heliactyl = served.base_url("heliactyl")
        assert heliactyl.endswith("/api")
        assert (
            httpx.get(f"{heliactyl}/v3/userinfo?id=123456789", headers=auth).json()["status"]
            == "success"
        )
        ld7 = served.base_url("ld7")
        assert not ld7.endswith("/api")
        assert httpx.get(f"{ld7}/api/stats").json()["success"] is True
        skypanel = served.base_url("skypanel")
        login = httpx.post(
            f"{skypanel}/auth/login",
            json={"email": "user@example.com", "password": "yourpassword"},
        )
        assert login.json()["success"] is True
        aurora = served.base_url("aurora")
        assert httpx.get(f"{aurora}/users/123456789").status_code == 200
        rustmail = served.base_url("rustmail")
        ticket = httpx.post(
            f"{rustmail}/externals/tickets/create",
            json={"discord_id": "689149284871962727"},
            headers={"X-API-Key": key},
        )
        assert ticket.status_code in (200, 201), ticket.text
    finally:
        served.stop()
        served.output()  # reads and closes its pipes
    assert "Authorization: Bearer <key>" in lines["heliactyl"]
    assert "email and password" in lines["skypanel"]
    assert "X-API-Key" in lines["ld7"] and "optional" in lines["ld7"]
    assert "X-API-Key: <key> on /api/externals/* only" in lines["rustmail"]
    demo_line = next(line for line in served.banner if line.startswith("Demo API key"))
    assert "a new one replaces it at each --demo start" in demo_line


def test_a_face_with_a_key_says_the_key_is_needed(database_url: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        database_url,
        ld7={"port": 0, "api_key": "a-long-enough-ld7-key-for-tests"},
        aurora={"port": 0, "require_key": True},
    )
    served = serve(config)
    try:
        lines = {line.split()[0]: line for line in served.banner if line.startswith("  ")}
    finally:
        served.stop()
        served.output()  # reads and closes its pipes
    assert "X-API-Key: <key>" in lines["ld7"] and "optional" not in lines["ld7"]
    assert "Bearer <key> or X-API-Key: <key>" in lines["aurora"]
