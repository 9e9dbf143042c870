from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from guildhall.config import Settings
from guildhall.core.accounts import service as accounts
from guildhall.core.hosting.models import Server
from guildhall.faces.skypanel.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR

PASSWORD = "yourpassword"
PLANS = {
    "Basic": {"command": "sleep 3600"},
    # Ignores SIGTERM: only SIGKILL ends it.
    "Stubborn": {"command": "sh -c 'trap \"\" TERM; while :; do sleep 0.05; done'"},
    # Runs for a moment, then dies by itself.
    "Crashy": {"command": "sh -c 'sleep 0.6; exit 3'"},
    # Cannot come up at all.
    "Broken": {"command": "sh -c 'exit 7'"},
}


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime whose plans run small real commands, with a short shutdown grace.

    Every server process still alive at the end is killed and checked gone:
    no test leaves a process behind.
    """
    data = settings.model_dump()
    data["hosting"] = {
        "plans": PLANS,
        "shutdown_grace_seconds": 0.5,
        "start_check_seconds": 0.1,
    }
    runtime = Runtime(Settings(**data))
    yield runtime
    async with runtime.database.unit_of_work(write=False) as session:
        refs = list(await session.scalars(select(Server.runtime_ref)))
    for ref in refs:
        if ref and runtime.hosting.driver.is_running(ref):
            await runtime.hosting.driver.kill(ref)
        assert not runtime.hosting.driver.is_running(ref)
    await runtime.close()


@pytest.fixture
async def skypanel(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://skypanel.test") as client:
        yield client


async def make_user(
    runtime: Runtime, username: str = "john", email: str = "user@example.com"
) -> accounts.AccountRef:
    async with runtime.database.unit_of_work() as session:
        account = await accounts.create(
            session,
            username=username,
            email=email,
            password=PASSWORD,
            first_name="John",
            last_name="Doe",
            actor=TEST_ACTOR,
        )
        return accounts.AccountRef(account.id, account.username, account.uuid)


async def login(client: httpx.AsyncClient, email: str = "user@example.com") -> str:
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["data"]["token"]


@pytest.fixture
async def user(runtime: Runtime) -> accounts.AccountRef:
    return await make_user(runtime)


@pytest.fixture
async def api(skypanel: httpx.AsyncClient, user: accounts.AccountRef) -> httpx.AsyncClient:
    """The face with the user's token in ``Authorization: Bearer``."""
    skypanel.headers["Authorization"] = f"Bearer {await login(skypanel)}"
    return skypanel


def envelope_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]
