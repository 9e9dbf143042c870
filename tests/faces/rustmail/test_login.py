"""The panel's OAuth2 login, the whole redirect round trip against a real local
provider, with a cookie-keeping client; and what the session then allows."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import select, update

from guildhall.config import Settings
from guildhall.core.access.panel import PanelSession
from guildhall.core.accounts import service as accounts
from guildhall.faces.heliactyl.app import create_app as heliactyl_app
from guildhall.runtime import Runtime
from tests.conftest import make_account, make_key
from tests.faces.rustmail.conftest import client_for
from tests.peers.oauth.provider import Provider, running_provider

CALLBACK = "http://panel.test/api/auth/callback"


async def _start(panel: httpx.AsyncClient, next_path: str = "/tickets") -> httpx.Response:
    response = await panel.get("/api/auth/login", params={"next": next_path})
    assert response.status_code == 302
    return response


async def _through_provider(login: httpx.Response) -> str:
    """The browser at the provider: it approves and is sent back with a code."""
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(login.headers["location"])
    assert approved.status_code == 302
    return approved.headers["location"]


def _runtime(
    make_runtime: Callable[..., Runtime],
    provider: Provider,
    callback: str = CALLBACK,
    **extra: object,
) -> Runtime:
    return make_runtime(oauth=provider.settings(callback), **extra)


async def test_the_whole_login_round_trip(make_runtime: Callable[..., Runtime]) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider, super_admin_users=["555000111222333444"])
        async with client_for(runtime) as panel:
            login = await _start(panel)
            target = urlparse(login.headers["location"])
            assert f"{target.scheme}://{target.netloc}{target.path}" == f"{provider.base}/authorize"
            query = parse_qs(target.query)
            assert query["scope"] == ["identify"] and query["redirect_uri"] == [CALLBACK]
            assert "httponly" in login.headers["set-cookie"].lower()

            back = await panel.get(await _through_provider(login))
            assert back.status_code == 302
            assert back.headers["location"] == "/tickets"
            cookie = back.headers["set-cookie"]
            assert "rustmail_session=" in cookie and "HttpOnly" in cookie
            assert "SameSite=lax" in cookie and "Secure" not in cookie

            check = (await panel.get("/api/panel/check")).json()
            assert check == {"authenticated": True, "user_id": "555000111222333444"}
            avatar = (await panel.get("/api/user/avatar")).json()["avatar_url"]
            assert avatar == "https://cdn.discordapp.com/avatars/555000111222333444/a1b2c3.png"
            mine = (await panel.get("/api/user/permissions")).json()
            assert mine["is_super_admin"] is True and "manage_bot" in mine["permissions"]

    async with runtime.database.unit_of_work(write=False) as session:
        account = await accounts.require_by_identity(session, "555000111222333444")
        assert account.username == "staffer"
        stored = list(await session.scalars(select(PanelSession.id_hash)))
    token = panel.cookies.get("rustmail_session")
    assert token is not None and token not in stored and len(stored) == 1  # only its hash


@pytest.mark.parametrize(
    ("username", "avatar"),
    [({"b": 2}, {"b": 2}), ("   ", "\u0000../../x"), (None, "a1b2c3.png?x=1")],
)
async def test_odd_names_and_avatars_from_the_provider_are_not_stored(
    make_runtime: Callable[..., Runtime], username: object, avatar: object
) -> None:
    """The avatar goes into a CDN path: only a hash is kept, the default avatar shows
    otherwise; a name that is not text becomes the person's id."""
    async with running_provider() as provider:
        provider.person = {"id": "555000111222333444", "username": username, "avatar": avatar}
        runtime = _runtime(make_runtime, provider)
        async with client_for(runtime) as panel:
            back = await panel.get(await _through_provider(await _start(panel)))
            assert back.status_code == 302
            shown = (await panel.get("/api/user/avatar")).json()["avatar_url"]
    assert shown == "https://cdn.discordapp.com/embed/avatars/0.png"  # the id modulo 6
    async with runtime.database.unit_of_work(write=False) as session:
        account = await accounts.require_by_identity(session, "555000111222333444")
    assert account.username == "555000111222333444"


async def test_forged_reused_foreign_and_missing_states_are_400(
    make_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider)
        async with client_for(runtime) as panel, client_for(runtime) as stranger:
            callback = await _through_provider(await _start(panel))
            code = parse_qs(urlparse(callback).query)["code"][0]
            forged = await panel.get("/api/auth/callback", params={"code": code, "state": "x"})
            assert forged.status_code == 400
            assert forged.json()["code"] == "BAD_REQUEST"
            foreign = await stranger.get(callback)  # another browser: no matching cookie
            assert foreign.status_code == 400
            assert (await panel.get(callback)).status_code == 302  # the rightful browser
            reused = await panel.get(callback)
            assert reused.status_code == 400
            missing = await panel.get("/api/auth/callback", params={"code": code})
            assert missing.status_code == 400


@pytest.mark.parametrize(
    "next_path",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", ""],
)
async def test_no_open_redirect(make_runtime: Callable[..., Runtime], next_path: str) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider)
        async with client_for(runtime) as panel:
            back = await panel.get(await _through_provider(await _start(panel, next_path)))
            assert back.headers["location"] == "/"


async def test_the_cookie_is_secure_over_https(make_runtime: Callable[..., Runtime]) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider, "https://panel.test/api/auth/callback")
        async with client_for(runtime, "https://panel.test") as panel:
            back = await panel.get(await _through_provider(await _start(panel)))
            assert "Secure" in back.headers["set-cookie"]


async def test_a_provider_refusal_is_a_clear_400(make_runtime: Callable[..., Runtime]) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider)
        async with client_for(runtime) as panel:
            callback = await _through_provider(await _start(panel))
            provider.codes.clear()  # the code is no longer valid at the provider
            refused = await panel.get(callback)
            assert refused.status_code == 400
            assert refused.json()["code"] == "OAUTH_ERROR"
            assert (await panel.get("/api/panel/check")).status_code == 401


async def test_logout_ends_the_session_on_the_server_and_expiry_counts(
    make_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider, super_admin_users=["555000111222333444"])
        async with client_for(runtime) as panel:
            await panel.get(await _through_provider(await _start(panel)))
            token = panel.cookies.get("rustmail_session")
            out = await panel.get("/api/auth/logout")
            assert out.status_code == 302 and out.headers["location"] == "/"
        async with client_for(runtime) as replay:
            replay.cookies.set("rustmail_session", token)
            assert (await replay.get("/api/bot/status")).status_code == 401

            async with client_for(runtime) as again:
                await again.get(await _through_provider(await _start(again)))
                assert (await again.get("/api/bot/status")).status_code == 200
                async with runtime.database.unit_of_work() as session:
                    await session.execute(
                        update(PanelSession).values(expires_at=PanelSession.created_at)
                    )
                expired = await again.get("/api/bot/status")
                assert expired.status_code == 401
                assert expired.json() == {
                    "error": "Authentication required",
                    "code": "UNAUTHORIZED",
                }


@pytest.mark.parametrize("odd_id", ["²", "٣٣٣", "1" * 21, ""])
async def test_a_provider_naming_no_discord_id_is_a_clear_400(
    make_runtime: Callable[..., Runtime], odd_id: str
) -> None:
    """An id that is not plain ASCII digits (a misbehaving provider) opens no session."""
    async with running_provider() as provider:
        provider.person = {**provider.person, "id": odd_id}
        runtime = _runtime(make_runtime, provider, super_admin_users=[odd_id])
        async with client_for(runtime) as panel:
            refused = await panel.get(await _through_provider(await _start(panel)))
            assert refused.status_code == 400
            assert refused.json()["code"] == "OAUTH_ERROR"
            assert (await panel.get("/api/panel/check")).status_code == 401


SLOW_LOGINS = 5
"""More slow logins at once than the PostgreSQL pool below has connections."""


async def test_a_slow_provider_holds_no_database_meanwhile(
    settings: Settings,
) -> None:
    """While five logins wait 3 s each for the provider's token, Heliactyl's addcoins
    (same database, a pool of 3 connections on PostgreSQL) still answers at once."""
    async with running_provider() as provider:
        data = settings.model_dump()
        data["database_pool_size"] = 3
        data["faces"]["rustmail"]["oauth"] = provider.settings(CALLBACK)
        data["faces"]["rustmail"]["super_admin_users"] = ["555000111222333444"]
        runtime = Runtime(Settings(**data))
        try:
            await make_account(runtime, "user123", discord="123456789")
            auth = {"Authorization": f"Bearer {await make_key(runtime, 'heliactyl')}"}
            transport = httpx.ASGITransport(app=heliactyl_app(runtime))
            async with contextlib.AsyncExitStack() as stack:
                heliactyl = await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://h.test", headers=auth)
                )
                panels = [
                    await stack.enter_async_context(client_for(runtime)) for _ in range(SLOW_LOGINS)
                ]
                callbacks = [await _through_provider(await _start(panel)) for panel in panels]
                add = {"id": "123456789", "coins": 1}
                assert (await heliactyl.post("/api/v3/addcoins", json=add)).json()["status"] == (
                    "success"
                )

                provider.token_delay = 3
                logins = [
                    asyncio.create_task(panel.get(url))
                    for panel, url in zip(panels, callbacks, strict=True)
                ]
                async with asyncio.timeout(10):
                    while provider.token_requests < SLOW_LOGINS:
                        await asyncio.sleep(0.01)
                for _ in range(3):
                    started = time.perf_counter()
                    answer = await heliactyl.post("/api/v3/addcoins", json=add)
                    elapsed = time.perf_counter() - started
                    assert answer.json()["status"] == "success"
                    assert elapsed < 0.1, f"addcoins took {elapsed:.3f} s during slow logins"
                assert not any(login.done() for login in logins)  # still at the provider
                done = await asyncio.gather(*logins)
                assert [response.status_code for response in done] == [302] * SLOW_LOGINS
                check = (await panels[-1].get("/api/panel/check")).json()
                assert check == {"authenticated": True, "user_id": "555000111222333444"}
                info = await heliactyl.get("/api/v3/userinfo", params={"id": "123456789"})
                assert info.json()["coins"] == 4
        finally:
            await runtime.close()


async def test_a_provider_slower_than_the_timeout_is_a_clear_400(
    make_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = make_runtime(oauth={**provider.settings(CALLBACK), "timeout_seconds": 0.5})
        async with client_for(runtime) as panel:
            callback = await _through_provider(await _start(panel))
            provider.token_delay = 5
            started = time.perf_counter()
            refused = await panel.get(callback)
            assert time.perf_counter() - started < 3
            assert refused.status_code == 400
            assert refused.json() == {
                "error": "Login failed: the provider did not answer within 0.5 seconds",
                "code": "OAUTH_ERROR",
            }
            assert (await panel.get("/api/panel/check")).status_code == 401

            assert (await panel.get("/api/panel/check")).status_code == 401


async def test_the_panels_own_login_call_with_redirect_lands_on_that_page(
    make_runtime: Callable[..., Runtime],
) -> None:
    """The Rustmail panel sends ``GET /api/auth/login?redirect=/panel/tickets`` and, back
    from the provider, expects to be on that page, logged in."""
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider, super_admin_users=["555000111222333444"])
        async with client_for(runtime) as panel:
            login = await panel.get("/api/auth/login?redirect=/panel/tickets")
            assert login.status_code == 302
            back = await panel.get(await _through_provider(login))
            assert back.headers["location"] == "/panel/tickets"
            page = await panel.get(back.headers["location"])
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "Logged in as" in page.text and "555000111222333444" in page.text
            assert 'href="/api/auth/logout"' in page.text
            check = await panel.get("/api/panel/check")
            assert check.json() == {"authenticated": True, "user_id": "555000111222333444"}

            out = await panel.get("/api/auth/logout")
            home = await panel.get(out.headers["location"])
            assert home.status_code == 200 and "Not logged in" in home.text
            assert 'href="/api/auth/login?redirect=/"' in home.text


@pytest.mark.parametrize("redirect", ["https://evil.example/", "//evil.example/x", "/\\evil"])
async def test_a_redirect_off_the_panel_lands_on_its_home(
    make_runtime: Callable[..., Runtime], redirect: str
) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider)
        async with client_for(runtime) as panel:
            login = await panel.get("/api/auth/login", params={"redirect": redirect})
            back = await panel.get(await _through_provider(login))
            assert back.headers["location"] == "/"


async def test_with_a_panel_url_login_and_logout_land_on_the_panel(
    make_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = _runtime(make_runtime, provider, panel_url="https://panel.example.com/")
        async with client_for(runtime) as panel:
            login = await panel.get("/api/auth/login?redirect=/panel/tickets")
            back = await panel.get(await _through_provider(login))
            assert back.headers["location"] == "https://panel.example.com/panel/tickets"
            out = await panel.get("/api/auth/logout")
            assert out.headers["location"] == "https://panel.example.com/"


async def test_the_panel_check_without_a_session_is_401_as_the_original_answers(
    make_runtime: Callable[..., Runtime],
) -> None:
    """The panel sends a visitor to login on any answer but 200."""
    async with client_for(make_runtime()) as panel:
        check = await panel.get(
            "/api/panel/check", headers={"Accept": "application/json", "Referer": "/panel"}
        )
    assert check.status_code == 401
    assert check.json() == {"error": "Authentication required", "code": "UNAUTHORIZED"}
