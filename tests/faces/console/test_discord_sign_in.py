"""Signing in to the console through Discord: the whole redirect round trip against a real
local OAuth2 provider (tests/peers/oauth), for staff already linked to a Discord id only."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import func, select

from guildhall.core.access.models import ConsoleSession
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Provider, Role
from guildhall.faces.console.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.peers.oauth.provider import running_provider

CALLBACK = "http://console.test/sign-in/discord/callback"
DISCORD_ID = "555000111222333444"  # who the provider says signs in


@pytest.fixture
async def provider_and_console(
    other_runtime: Callable[..., Runtime],
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with running_provider() as provider:
        runtime = other_runtime(console__oauth=provider.settings(CALLBACK))
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as web:
            yield runtime, web


async def _link(runtime: Runtime, role: Role) -> None:
    async with runtime.database.unit_of_work() as session:
        await accounts.create(
            session,
            username="discord-staff",
            role=role,
            identities={Provider.DISCORD: DISCORD_ID},
            actor=TEST_ACTOR,
        )


async def _round_trip(web: httpx.AsyncClient, next_path: str = "/moderation") -> httpx.Response:
    start = await web.get("/sign-in/discord", params={"next": next_path})
    assert start.status_code == 302
    target = urlparse(start.headers["location"])
    assert parse_qs(target.query)["redirect_uri"] == [CALLBACK]
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(start.headers["location"])
    assert approved.status_code == 302
    return await web.get(approved.headers["location"])


async def _sessions(runtime: Runtime) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(ConsoleSession)) or 0)


async def test_linked_staff_sign_in_with_discord(
    provider_and_console: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, web = provider_and_console
    await _link(runtime, Role.MODERATOR)
    page = await web.get("/sign-in")
    assert 'href="/sign-in/discord?next=/"' in page.text
    back = await _round_trip(web)
    # A page of ours sends the browser on (a redirect would still belong to the trip
    # that began on Discord's site, and the SameSite=Strict cookie would not go with it).
    assert back.status_code == 200
    assert '<meta http-equiv="refresh" content="0;url=/moderation">' in back.text
    cookie = back.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert (await web.get("/moderation")).status_code == 200
    assert await _sessions(runtime) == 1


async def test_a_discord_account_that_is_not_staff_gets_nothing(
    provider_and_console: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, web = provider_and_console
    back = await _round_trip(web)
    assert back.status_code == 403
    assert "not linked to an administrator or moderator" in back.text
    assert await _sessions(runtime) == 0
    async with runtime.database.unit_of_work(write=False) as session:
        # Signing in never makes an account.
        assert await session.scalar(select(func.count()).select_from(Account)) == 0
    await _link(runtime, Role.USER)
    assert (await _round_trip(web)).status_code == 403
    assert await _sessions(runtime) == 0


async def test_a_state_works_once_and_only_in_its_browser(
    provider_and_console: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, web = provider_and_console
    await _link(runtime, Role.ADMIN)
    start = await web.get("/sign-in/discord")
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(start.headers["location"])
    callback = approved.headers["location"]
    web.cookies.clear()  # another browser comes back with this state
    assert (await web.get(callback)).status_code == 400
    assert await _sessions(runtime) == 0


async def test_without_configuration_there_is_no_discord_sign_in(
    console: httpx.AsyncClient,
) -> None:
    assert "sign-in/discord" not in (await console.get("/sign-in")).text
    assert (await console.get("/sign-in/discord")).status_code == 404


async def _approved_callback(web: httpx.AsyncClient) -> str:
    start = await web.get("/sign-in/discord")
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(start.headers["location"])
    return approved.headers["location"]


async def test_a_provider_that_refuses_the_code_opens_nothing(
    other_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = other_runtime(console__oauth=provider.settings(CALLBACK))
        await _link(runtime, Role.ADMIN)
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as web:
            callback = await _approved_callback(web)
            provider.codes.clear()  # the code is no longer good at the provider
            refused = await web.get(callback)
            assert refused.status_code == 502
            assert "Discord did not confirm who you are" in refused.text
            assert await _sessions(runtime) == 0


async def test_a_provider_slower_than_the_timeout_opens_nothing(
    other_runtime: Callable[..., Runtime],
) -> None:
    async with running_provider() as provider:
        runtime = other_runtime(
            console__oauth={**provider.settings(CALLBACK), "timeout_seconds": 0.5}
        )
        await _link(runtime, Role.ADMIN)
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as web:
            callback = await _approved_callback(web)
            provider.token_delay = 5
            started = time.perf_counter()
            refused = await web.get(callback)
            assert time.perf_counter() - started < 3
            assert refused.status_code == 502
            assert "did not answer within 0.5 seconds" in refused.text
            assert await _sessions(runtime) == 0


async def test_a_provider_that_is_down_opens_nothing(
    other_runtime: Callable[..., Runtime],
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        provider = await stack.enter_async_context(running_provider())
        runtime = other_runtime(console__oauth=provider.settings(CALLBACK))
        await _link(runtime, Role.ADMIN)
        transport = httpx.ASGITransport(app=create_app(runtime))
        web = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://console.test")
        )
        callback = await _approved_callback(web)
        await provider.stop()  # the provider goes down between approval and callback
        refused = await web.get(callback)
        assert refused.status_code == 502
        assert "Discord did not confirm who you are" in refused.text
        assert await _sessions(runtime) == 0
