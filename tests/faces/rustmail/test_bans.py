"""Issue 15: a ban reaches the Rustmail panel.

A ban on the Guildhall account (Heliactyl's POST /api/v3/ban) ends the
account's panel sessions at once, and the OAuth callback refuses to log it in
again (403 FORBIDDEN, as SkyPANEL refuses a banned login); after
POST /api/v3/unban the same login works.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from guildhall.core.access.panel import PanelSession
from guildhall.faces.heliactyl.app import create_app as heliactyl_app
from guildhall.runtime import Runtime
from tests.conftest import make_key
from tests.faces.rustmail.conftest import client_for
from tests.faces.rustmail.test_login import CALLBACK, _start, _through_provider
from tests.peers.oauth.provider import running_provider

PERSON = "555000111222333444"


async def _panel_sessions(runtime: Runtime) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return await session.scalar(select(func.count()).select_from(PanelSession)) or 0


async def test_a_ban_ends_panel_sessions_and_refuses_logins_until_lifted(
    make_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = make_runtime(oauth=provider.settings(CALLBACK), super_admin_users=[PERSON])
        heliactyl = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=heliactyl_app(runtime)),
            base_url="http://heliactyl.test",
            headers={"Authorization": f"Bearer {await make_key(runtime, 'heliactyl')}"},
        )
        async with client_for(runtime) as panel, client_for(runtime) as other_browser, heliactyl:
            for browser in (panel, other_browser):
                back = await browser.get(await _through_provider(await _start(browser)))
                assert back.status_code == 302
                assert (await browser.get("/api/panel/check")).json()["authenticated"] is True
            assert await _panel_sessions(runtime) == 2

            banned = await heliactyl.post("/api/v3/ban", json={"id": PERSON, "reason": "Spam"})
            assert banned.json()["status"] == "success"
            assert await _panel_sessions(runtime) == 0
            for browser in (panel, other_browser):  # the same cookies, now worth nothing
                check = await browser.get("/api/panel/check")
                assert check.status_code == 401
                refused = await browser.get("/api/bot/status")
                assert refused.status_code == 401
                assert refused.json()["code"] == "UNAUTHORIZED"

            again = await panel.get(await _through_provider(await _start(panel)))
            assert again.status_code == 403
            assert again.json() == {"error": "This account is banned", "code": "FORBIDDEN"}
            assert await _panel_sessions(runtime) == 0
            assert (await panel.get("/api/panel/check")).status_code == 401

            lifted = await heliactyl.post("/api/v3/unban", json={"id": PERSON})
            assert lifted.json()["status"] == "success"
            back = await panel.get(await _through_provider(await _start(panel)))
            assert back.status_code == 302
            check = (await panel.get("/api/panel/check")).json()
            assert check == {"authenticated": True, "user_id": PERSON}
