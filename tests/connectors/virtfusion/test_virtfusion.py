"""SkyPANEL's servers on VirtFusion, through its API (the loopback peer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from guildhall.core.errors import Invalid
from guildhall.core.hosting.models import Server
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.connectors.hosting_helpers import make_server, power, skypanel_as_owner, status_of
from tests.faces.skypanel.conftest import envelope_error
from tests.peers.virtfusion.peer import API_TOKEN, VirtFusionPeer, running_virtfusion

PLANS = {
    "Basic": {
        "driver": "virtfusion",
        "vcpus": 2,
        "memory_mb": 2048,
        "disk_gb": 40,
        "image": "debian-12",
    },
    "Unknown": {"driver": "virtfusion", "image": "arch"},
}


@pytest.fixture
async def virtfusion() -> AsyncIterator[VirtFusionPeer]:
    async with running_virtfusion() as peer:
        yield peer


@pytest.fixture
def on_virtfusion(
    other_runtime: Callable[..., Runtime], virtfusion: VirtFusionPeer
) -> Callable[[], Runtime]:
    def make() -> Runtime:
        return other_runtime(
            hosting__plans=PLANS,
            hosting__shutdown_grace_seconds=0.5,
            hosting__virtfusion={
                "url": virtfusion.url,
                "api_token": API_TOKEN,
                "hypervisor_group_id": 1,
                "package_id": 1,
                "templates": {"debian-12": 1, "arch": 99},
            },
        )

    return make


@pytest.fixture
async def runtime_on_virtfusion(on_virtfusion: Callable[[], Runtime]) -> Runtime:
    runtime = on_virtfusion()
    await runtime.prepare()
    return runtime


async def test_creating_makes_and_builds_a_server_for_the_owners_virtfusion_user(
    runtime_on_virtfusion: Runtime, virtfusion: VirtFusionPeer
) -> None:
    async with skypanel_as_owner(runtime_on_virtfusion) as (api, owner):
        server_id = await make_server(runtime_on_virtfusion, owner)
        [made] = virtfusion.servers.values()
        [user] = virtfusion.users.values()
        assert user["extRelationId"] == owner.id and user["email"] == "user@example.com"
        assert made["ownerId"] == user["id"]
        assert made["settings"]["resources"]["memory"] == 2048
        assert made["settings"]["resources"]["cpuCores"] == 2
        assert made["settings"]["resources"]["storage"] == 40
        assert made["built"]
        assert await status_of(api, server_id) == "stopped"
        second = await make_server(runtime_on_virtfusion, owner)  # the same VirtFusion user
        assert len(virtfusion.users) == 1 and second != server_id


async def test_power_goes_through_virtfusion_which_judges_the_transitions(
    runtime_on_virtfusion: Runtime, virtfusion: VirtFusionPeer
) -> None:
    async with skypanel_as_owner(runtime_on_virtfusion) as (api, owner):
        server_id = await make_server(runtime_on_virtfusion, owner)
        [vm_id] = virtfusion.servers
        started = await power(api, server_id, "start")
        assert started.json()["data"]["status"] == "running", started.text
        assert virtfusion.power_state(vm_id) == "running"
        refused = envelope_error(await power(api, server_id, "start"), 409, "CONFLICT")
        assert "already running" in refused["message"]
        assert (await power(api, server_id, "restart")).json()["data"]["status"] == "running"
        assert (await power(api, server_id, "shutdown")).json()["data"]["status"] == "stopped"
        assert virtfusion.power_state(vm_id) == "shutoff"
        assert (await power(api, server_id, "start")).status_code == 200
        assert (await power(api, server_id, "kill")).json()["data"]["status"] == "stopped"
        paths = [path for method, path in virtfusion.requests if method == "POST"]
        assert f"/api/v1/servers/{vm_id}/power/poweroff" in paths


async def test_a_change_on_the_hypervisor_shows_after_the_next_read(
    runtime_on_virtfusion: Runtime, virtfusion: VirtFusionPeer
) -> None:
    async with skypanel_as_owner(runtime_on_virtfusion) as (api, owner):
        server_id = await make_server(runtime_on_virtfusion, owner)
        [vm_id] = virtfusion.servers
        virtfusion.set_power_state(vm_id, "running")
        assert await status_of(api, server_id) == "stopped"  # never a call per request
        await runtime_on_virtfusion.hosting.refresh()  # the runtime's poll
        assert await status_of(api, server_id) == "running"


async def test_a_restarted_guildhall_reads_every_servers_state(
    on_virtfusion: Callable[[], Runtime], virtfusion: VirtFusionPeer
) -> None:
    first = on_virtfusion()
    await first.prepare()
    async with skypanel_as_owner(first) as (_api, owner):
        server_id = await make_server(first, owner)
    await first.close()
    [vm_id] = virtfusion.servers
    virtfusion.set_power_state(vm_id, "running")  # while Guildhall is down
    second = on_virtfusion()
    await second.prepare()
    async with second.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(Server).where(Server.public_id == server_id))
        assert second.hosting.observed(row).value == "running"


async def test_virtfusion_down_is_a_bad_gateway_and_changes_nothing(
    runtime_on_virtfusion: Runtime, virtfusion: VirtFusionPeer
) -> None:
    async with skypanel_as_owner(runtime_on_virtfusion) as (api, owner):
        server_id = await make_server(runtime_on_virtfusion, owner)
        await virtfusion.stop()
        try:
            envelope_error(await power(api, server_id, "start"), 502, "BAD_GATEWAY")
        finally:
            await virtfusion.start()
        assert await status_of(api, server_id) == "stopped"


async def test_delete_removes_it_on_virtfusion_and_a_failed_build_leaves_nothing(
    runtime_on_virtfusion: Runtime, virtfusion: VirtFusionPeer
) -> None:
    async with skypanel_as_owner(runtime_on_virtfusion) as (api, owner):
        server_id = await make_server(runtime_on_virtfusion, owner)
        await runtime_on_virtfusion.hosting.delete(server_id, TEST_ACTOR)
        assert virtfusion.servers == {}
        with pytest.raises(Invalid, match="create failed"):
            await make_server(runtime_on_virtfusion, owner, plan="Unknown")
        assert virtfusion.servers == {}
        assert (await api.get("/api/servers")).json()["data"] == []
