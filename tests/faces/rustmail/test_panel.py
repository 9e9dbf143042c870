"""Permissions, bot control, configuration, tickets, members and roles on the panel."""

from __future__ import annotations

import json

import httpx
import pytest

from guildhall.core.community import service as community
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.rustmail.conftest import STAFF, STAFF_ROLE, client_for, logged_in


async def test_panel_routes_need_a_session(rt: Runtime) -> None:
    async with client_for(rt) as anonymous:
        for path in (
            "/api/bot/status",
            "/api/bot/tickets",
            "/api/apikeys",
            "/api/admin/roles",
            "/api/user/permissions",
        ):
            response = await anonymous.get(path)
            assert response.status_code == 401
            assert response.json() == {"error": "Authentication required", "code": "UNAUTHORIZED"}


async def test_grants_to_a_user_or_a_role_count_at_once_and_revoking_too(
    rt: Runtime, admin: httpx.AsyncClient
) -> None:
    async with client_for(rt) as staff:
        staff.cookies.set("rustmail_session", await logged_in(rt, STAFF, roles=(STAFF_ROLE,)))
        denied = await staff.get("/api/bot/tickets")
        assert denied.status_code == 403
        assert denied.json() == {"error": "Missing permission: view_tickets", "code": "FORBIDDEN"}

        granted = await admin.post(
            "/api/admin/permissions",
            json={"subject_type": "user", "subject_id": STAFF, "permission": "view_tickets"},
        )
        assert granted.json()["success"] is True
        assert (await staff.get("/api/bot/tickets")).status_code == 200
        listed = (await admin.get("/api/admin/permissions")).json()["permissions"]
        assert [(p["subject_type"], p["subject_id"], p["permission"]) for p in listed] == [
            ("user", STAFF, "view_tickets")
        ]
        assert listed[0]["granted_by"] == "111111111111111111"
        assert isinstance(listed[0]["granted_at"], int)

        await admin.delete(f"/api/admin/permissions/{granted.json()['id']}")
        assert (await staff.get("/api/bot/tickets")).status_code == 403  # the next request

        await admin.post(
            "/api/admin/permissions",
            json={"subject_type": "role", "subject_id": STAFF_ROLE, "permission": "manage_bot"},
        )
        assert (await staff.post("/api/bot/start")).status_code == 200
        mine = (await staff.get("/api/user/permissions")).json()
        assert mine == {"is_super_admin": False, "permissions": ["manage_bot"]}
        assert (await staff.get("/api/admin/permissions")).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"subject_type": "group", "subject_id": STAFF, "permission": "view_tickets"},
        {"subject_type": "user", "subject_id": STAFF, "permission": "own_everything"},
        {"subject_type": "user", "subject_id": "abc", "permission": "view_tickets"},
        {"subject_type": "user"},
    ],
)
async def test_bad_grants_are_400(admin: httpx.AsyncClient, body: dict) -> None:
    response = await admin.post("/api/admin/permissions", json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "code"}


async def test_bot_control(admin: httpx.AsyncClient) -> None:
    status = (await admin.get("/api/bot/status")).json()
    assert status == {
        "online": False,
        "uptime": 0,
        "presence": "DM for support",
        "guild_count": 1,
        "ticket_count": 0,
    }
    assert (await admin.post("/api/bot/start")).json() == {
        "success": True,
        "message": "Bot started",
    }
    assert (await admin.post("/api/bot/start")).json()["message"] == "Bot is already running"
    assert (await admin.get("/api/bot/status")).json()["online"] is True
    assert (
        await admin.post("/api/bot/presence", json={"status": "New status message"})
    ).json() == {"success": True}
    assert (await admin.get("/api/bot/status")).json()["presence"] == "New status message"
    assert (await admin.post("/api/bot/presence", json={"status": ""})).status_code == 400
    assert (await admin.post("/api/bot/restart")).json()["message"] == "Bot restarted"
    assert (await admin.post("/api/bot/stop")).json() == {"success": True, "message": "Bot stopped"}
    assert (await admin.post("/api/bot/stop")).json()["message"] == "Bot is already stopped"


async def test_config_hides_secrets_and_keeps_them_when_sent_back_masked(
    admin: httpx.AsyncClient,
) -> None:
    await admin.put("/api/bot/config", json={"bot": {"token": "real-discord-token"}})
    shown = (await admin.get("/api/bot/config")).json()
    assert shown["bot"]["token"] == "********"
    assert shown["thread"] == {"embedded_message": True, "user_message_color": "5865f2"}
    shown["bot"]["status"] = "Updated status"
    assert (await admin.put("/api/bot/config", json=shown)).json() == {"success": True}
    again = (await admin.get("/api/bot/config")).json()
    assert again["bot"]["status"] == "Updated status" and again["bot"]["token"] == "********"
    assert "real-discord-token" not in (await admin.get("/api/bot/config")).text
    for bad in (
        {"bot": {"enable_logs": "yes"}},
        # The status follows the rule of POST /api/bot/presence.
        {"bot": {"status": None}},
        {"bot": {"status": ""}},
        {"bot": {"status": "x\u0000y"}},
        {"bot": {"status": "x" * 129}},
    ):
        refused = await admin.put("/api/bot/config", json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["code"] == "BAD_REQUEST"
    assert (await admin.get("/api/bot/config")).json() == again


async def test_members_and_roles_come_from_the_directory(
    rt: Runtime, admin: httpx.AsyncClient
) -> None:
    async with rt.database.unit_of_work() as session:
        await community.put_directory_entry(
            session, "role", "5", "Moderator", "#3498DB", TEST_ACTOR
        )
    roles = (await admin.get("/api/admin/roles")).json()["roles"]
    assert roles == [{"id": "5", "name": "Moderator", "color": 3447003}]
    members = (await admin.get("/api/admin/members")).json()["members"]
    assert {"id": "111111111111111111", "username": "user111111", "avatar": None} in members


async def test_super_admin_roles_from_config_hold_every_permission(
    make_runtime: object,
) -> None:
    runtime = make_runtime(super_admin_roles=["777"])  # type: ignore[operator]
    async with client_for(runtime) as boss:
        boss.cookies.set("rustmail_session", await logged_in(runtime, STAFF, roles=("777",)))
        mine = (await boss.get("/api/user/permissions")).json()
        assert mine["is_super_admin"] is True
        assert (await boss.get("/api/admin/permissions")).status_code == 200


async def test_panel_check_needs_view_panel(rt: Runtime) -> None:
    async with client_for(rt) as staff:
        staff.cookies.set("rustmail_session", await logged_in(rt, STAFF))
        refused = await staff.get("/api/panel/check")
        assert refused.status_code == 403
        assert refused.json()["code"] == "FORBIDDEN"


async def test_config_refuses_a_body_that_is_not_a_json_object(admin: httpx.AsyncClient) -> None:
    before = (await admin.get("/api/bot/config")).json()
    for body, message in (
        (b"{not json", "The request body must be valid JSON"),
        (b"[1, 2]", "The request body must be a JSON object"),
    ):
        response = await admin.put(
            "/api/bot/config", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json() == {"error": message, "code": "BAD_REQUEST"}
    assert (await admin.get("/api/bot/config")).json() == before


@pytest.mark.parametrize(
    ("origin", "content_type", "allowed"),
    [
        ("http://evil.example", "text/plain", False),
        ("http://panel.test:8080", "application/x-www-form-urlencoded", False),  # another port
        ("null", "text/plain", False),  # a sandboxed page
        ("http://panel.test", "application/json", True),  # the panel itself
        (None, "application/json", True),  # an API client
    ],
)
async def test_changes_from_another_sites_page_are_refused(
    admin: httpx.AsyncClient, origin: str | None, content_type: str, allowed: bool
) -> None:
    """SameSite=Lax still sends the cookie from the same host's other ports and sibling
    subdomains, so a change is obeyed only from the panel's own origin, or from a client
    that names none."""
    headers = {"Content-Type": content_type} | ({"Origin": origin} if origin else {})
    grant = json.dumps(
        {"subject_type": "user", "subject_id": "333000000000000003", "permission": "view_tickets"}
    )
    response = await admin.post("/api/admin/permissions", content=grant, headers=headers)
    listed = (await admin.get("/api/admin/permissions")).json()["permissions"]
    if allowed:
        assert response.status_code == 200, response.text
        assert len(listed) == 1
    else:
        assert response.status_code == 403
        assert response.json() == {
            "error": "Requests from other sites are refused",
            "code": "FORBIDDEN",
        }
        assert listed == []
