"""A Guildhall runtime whose game servers live on the loopback Pterodactyl peer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.core.hosting.games import GameServers
from guildhall.faces.heliactyl.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import make_account, make_key
from tests.peers.pterodactyl.peer import API_KEY, PterodactylPeer, running_pterodactyl

DISCORD_ID = "123456789"


@pytest.fixture
async def panel() -> AsyncIterator[PterodactylPeer]:
    async with running_pterodactyl() as running:
        yield running


@pytest.fixture
def hosted(other_runtime: Callable[..., Runtime], panel: PterodactylPeer) -> Callable[..., Runtime]:
    """Runtimes on the test database with ``[pterodactyl]`` pointing at the peer."""

    def make(**changes: object) -> Runtime:
        base: dict[str, object] = {
            "pterodactyl__url": panel.url,
            "pterodactyl__api_key": API_KEY,
            "pterodactyl__location_ids": [1],
            "pterodactyl__eggs": {"paper": {"egg_id": 1, "environment": {"BUILD_NUMBER": 42}}},
        }
        return other_runtime(**{**base, **changes})

    return make


@pytest.fixture
async def runtime_on_panel(hosted: Callable[..., Runtime]) -> Runtime:
    runtime = hosted()
    await runtime.prepare()
    return runtime


@pytest.fixture
def games(runtime_on_panel: Runtime) -> GameServers:
    assert runtime_on_panel.games is not None
    return runtime_on_panel.games


@pytest.fixture
async def owner(runtime_on_panel: Runtime) -> AccountRef:
    return await make_account(
        runtime_on_panel, "Alice.Smith", discord=DISCORD_ID, email="alice@example.com"
    )


@contextlib.asynccontextmanager
async def heliactyl_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The Heliactyl face of ``runtime``, with a valid key."""
    key = await make_key(runtime, "heliactyl")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://heliactyl.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        yield client


@pytest.fixture
async def heliactyl_api(runtime_on_panel: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with heliactyl_client(runtime_on_panel) as client:
        yield client


async def panel_get(panel: PterodactylPeer, path: str, **params: str) -> dict[str, Any]:
    """What an operator sees on the panel itself, through its own API."""
    async with httpx.AsyncClient(
        base_url=f"{panel.url}/api/application",
        headers={"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"},
    ) as client:
        response = await client.get(path, params=params)
        response.raise_for_status()
        return response.json()


async def panel_servers(panel: PterodactylPeer) -> list[dict[str, Any]]:
    return [s["attributes"] for s in (await panel_get(panel, "/servers"))["data"]]
