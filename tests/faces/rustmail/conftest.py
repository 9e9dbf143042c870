from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest

from guildhall.core.access import panel
from guildhall.core.community import service as community
from guildhall.faces.rustmail.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account

ADMIN = "111111111111111111"
STAFF = "222222222222222222"
MEMBER = "689149284871962727"
STAFF_ROLE = "900000000000000009"


@pytest.fixture
def make_runtime(other_runtime: Callable[..., Runtime]) -> Callable[..., Runtime]:
    """Runtimes on the one test database with ``[faces.rustmail]`` changed (ADMIN a super admin)."""

    def make(**rustmail: object) -> Runtime:
        changes = {"super_admin_users": [ADMIN], **rustmail}
        return other_runtime(**{f"faces__rustmail__{k}": v for k, v in changes.items()})

    return make


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime()


def client_for(runtime: Runtime, base: str = "http://panel.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=base)


async def logged_in(runtime: Runtime, discord_id: str, *, roles: tuple[str, ...] = ()) -> str:
    """A panel session for a member, as a finished login leaves it; the cookie value."""
    account = await make_account(runtime, f"user{discord_id[-6:]}", discord=discord_id)
    async with runtime.database.unit_of_work() as session:
        await community.put_member(
            session, discord_id, f"user{discord_id[-6:]}", list(roles), TEST_ACTOR
        )
        return await panel.open_session(session, account.id, discord_id, None, timedelta(hours=1))


@pytest.fixture
async def admin(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(rt) as client:
        client.cookies.set("rustmail_session", await logged_in(rt, ADMIN))
        yield client


@pytest.fixture
async def member(rt: Runtime) -> None:
    async with rt.database.unit_of_work() as session:
        await community.put_member(session, MEMBER, "supportseeker", [], TEST_ACTOR)
