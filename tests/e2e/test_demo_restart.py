"""``serve --demo`` again after the documents' own examples changed the demo data.

The examples rename the demo user (Aurora), change its password (SkyPANEL),
ban it and change its plan (Heliactyl), create and delete bot sessions (LD7)
and open tickets that make accounts (Rustmail). The next start must find the
demo data again by what clients cannot change, leave their changes alone,
make nothing twice, and print a key that works.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.process import Served, guildhall, last_line, serve, write_config

pytestmark = pytest.mark.e2e

DEMO_DISCORD = "123456789"


def _heliactyl(served: Served, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=served.url("heliactyl"), headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _run_the_documents_examples(served: Served) -> None:
    """The examples that change what the demo loader made, as the documents show them."""
    key = served.demo_key
    with httpx.Client(base_url=served.url("skypanel"), timeout=30) as skypanel:
        login = skypanel.post(
            "/api/auth/login", json={"email": "user@example.com", "password": "yourpassword"}
        )
        assert login.status_code == 200, login.text
        token = login.json()["data"]["token"]
        profile = skypanel.put(
            "/api/users/me",
            json={
                "firstName": "John",
                "lastName": "Doe",
                "currentPassword": "yourpassword",
                "newPassword": "newsecurepassword",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert profile.status_code == 200, profile.text
    with httpx.Client(base_url=served.url("aurora"), timeout=30) as aurora:
        renamed = aurora.put(
            f"/api/users/{DEMO_DISCORD}",
            json={
                "username": "NewName",
                "balance": "2000",
                "xp": "750",
                "level": 10,
                "dailyStreak": 5,
                "classId": "1",
                "isActive": True,
                "settings": {},
            },
        )
        assert renamed.status_code == 200, renamed.text
        made = aurora.post(
            "/api/classes", json={"id": "2", "name": "Mage", "balance": "0", "roleId": "987654321"}
        )
        assert made.status_code in (200, 201), made.text
        changed = aurora.put(
            "/api/classes/1",
            json={"name": "Updated Name", "balance": "10000", "roleId": "111222333"},
        )
        assert changed.status_code == 200, changed.text
    with _heliactyl(served, key) as heliactyl:
        for path, body in (
            ("/api/v3/setplan", {"id": DEMO_DISCORD, "package": "premium"}),
            ("/api/v3/setplan", {"id": DEMO_DISCORD}),
            ("/api/v3/setresources", {"id": DEMO_DISCORD, "ram": 2048, "disk": 10240}),
            ("/api/v3/addcoins", {"id": DEMO_DISCORD, "coins": 500}),
            ("/api/v3/ban", {"id": DEMO_DISCORD, "reason": "Violation of terms"}),
        ):
            answer = heliactyl.post(path, json=body)
            assert answer.json()["status"] == "success", (path, answer.text)
    with httpx.Client(base_url=served.url("ld7"), timeout=30) as ld7:
        created = ld7.post(
            "/api/sessions", json={"userId": "bot_1234567890", "phoneNumber": "1234567890"}
        )
        assert created.json()["success"] is True, created.text
        assert ld7.delete("/api/sessions/bot_1234567890").json()["success"] is True
    with httpx.Client(
        base_url=served.url("rustmail"), headers={"X-API-Key": key}, timeout=30
    ) as rustmail:
        for member in ("689149284871962727", "123456789012345678"):
            ticket = rustmail.post("/api/externals/tickets/create", json={"discord_id": member})
            assert ticket.json()["success"] is True, ticket.text


def _users(served: Served) -> list[dict[str, object]]:
    with httpx.Client(base_url=served.url("aurora"), timeout=30) as aurora:
        return aurora.get("/api/users", params={"sortBy": "username"}).json()["users"]


def test_a_restart_after_every_documents_examples_starts_and_keeps_their_changes(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)
    first = serve(config, "--demo")
    try:
        _run_the_documents_examples(first)
        users_before = _users(first)
        old_key = first.demo_key
    finally:
        assert first.stop() == 0
        first.output()

    second = serve(config, "--demo")
    try:
        new_key = second.demo_key
        assert new_key != old_key
        with _heliactyl(second, new_key) as heliactyl:
            info = heliactyl.get("/api/v3/userinfo", params={"id": DEMO_DISCORD}).json()
            # Found again by its Discord id, with the examples' changes kept.
            assert info["userinfo"]["attributes"]["username"] == "NewName"
            assert info["package"]["name"] == "default"
            assert (info["extra"]["ram"], info["extra"]["disk"]) == (2048, 10240)
            assert info["coins"] == 2000 + 500  # Aurora's balance, then Heliactyl's addcoins
        with _heliactyl(second, old_key) as stale:
            assert stale.get("/api").status_code == 403  # the earlier demo key is revoked
        assert _users(second) == users_before  # nothing made twice, nothing reset
        with httpx.Client(base_url=second.url("skypanel"), timeout=30) as skypanel:
            login = skypanel.post(
                "/api/auth/login",
                json={"email": "user@example.com", "password": "newsecurepassword"},
            )
            assert login.status_code == 403  # still banned, as Heliactyl's example left it
        with httpx.Client(base_url=second.url("ld7"), timeout=30) as ld7:
            sessions = ld7.get("/api/sessions").json()["sessions"]
            assert [s["userId"] for s in sessions] == ["bot_9876543210"]
    finally:
        assert second.stop() == 0
        output = second.output()
    assert "Demo data:" not in output  # nothing had to be made differently

    # And `guildhall demo` once more, beside it: nothing to make, a fresh key.
    again = guildhall(config, "demo")
    assert "created demo account" not in again.stdout
    assert last_line(again.stdout).startswith("gh_")
