"""What the hypervisor tests share: a SkyPANEL client logged in as a server's owner."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from guildhall.core.accounts.service import AccountRef
from guildhall.faces.skypanel.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.skypanel.conftest import login, make_user


@contextlib.asynccontextmanager
async def skypanel_as_owner(
    runtime: Runtime,
) -> AsyncIterator[tuple[httpx.AsyncClient, AccountRef]]:
    """SkyPANEL in-process, with the token of a fresh user (john, user@example.com)."""
    owner = await make_user(runtime)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://skypanel.test") as client:
        client.headers["Authorization"] = f"Bearer {await login(client)}"
        yield client, owner


async def make_server(runtime: Runtime, owner: AccountRef, plan: str = "Basic") -> str:
    """A server of ``plan``, recorded and then made on its driver, as the CLI does."""
    async with runtime.database.unit_of_work() as session:
        view = await runtime.hosting.create(session, owner, "My VPS", plan, TEST_ACTOR)
    await runtime.hosting.provision(view.public_id)
    return view.public_id


async def power(api: httpx.AsyncClient, server_id: str, action: str) -> httpx.Response:
    return await api.post(f"/api/servers/{server_id}/power", json={"action": action})


async def status_of(api: httpx.AsyncClient, server_id: str) -> str:
    listed = (await api.get("/api/servers")).json()["data"]
    return next(s["status"] for s in listed if s["id"] == server_id)
