"""SkyPANEL's servers as libvirt domains, on libvirt's test driver (``test:///default``:
the real libvirt API over a simulated hypervisor, no daemon; its state lives in this
process, so each test names its own domains)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from guildhall.connectors.libvirt.driver import on_libvirt_thread
from guildhall.core.errors import Invalid
from guildhall.core.hosting.models import Server
from guildhall.runtime import Runtime
from tests.conftest import IN_CI, TEST_ACTOR
from tests.connectors.hosting_helpers import make_server, power, skypanel_as_owner, status_of
from tests.faces.skypanel.conftest import envelope_error
from tests.waiting import eventually

if IN_CI:
    import libvirt  # CI installs the extra: its absence is a failure there
else:
    libvirt = pytest.importorskip(
        "libvirt", reason="needs libvirt's binding: apt install libvirt-dev, then scripts/bootstrap"
    )

URI = "test:///default"
POOL = "default-pool"
BASE_VOLUME = "debian-12.qcow2"
PLANS = {
    "Basic": {
        "driver": "libvirt",
        "vcpus": 2,
        "memory_mb": 512,
        "disk_gb": 5,
        "image": "debian-12",
    },
    "Broken": {"driver": "libvirt", "image": "missing"},
}


@pytest.fixture(scope="session")
def hypervisor() -> libvirt.virConnect:
    """The test hypervisor, with the base image the plans clone."""
    connection = libvirt.open(URI)
    pool = connection.storagePoolLookupByName(POOL)
    if BASE_VOLUME not in pool.listVolumes():
        pool.createXML(
            f"<volume><name>{BASE_VOLUME}</name><capacity unit='G'>2</capacity>"
            "<target><format type='qcow2'/></target></volume>",
            0,
        )
    return connection


@pytest.fixture
def on_libvirt(
    other_runtime: Callable[..., Runtime], hypervisor: libvirt.virConnect
) -> Callable[[], Runtime]:
    def make() -> Runtime:
        return other_runtime(
            hosting__plans=PLANS,
            hosting__shutdown_grace_seconds=0.5,
            hosting__libvirt={
                "uri": URI,
                "storage_pool": POOL,
                "network": "default",
                "base_images": {"debian-12": BASE_VOLUME, "missing": "no-such.qcow2"},
            },
        )

    return make


@pytest.fixture
async def runtime_on_libvirt(on_libvirt: Callable[[], Runtime]) -> AsyncIterator[Runtime]:
    runtime = on_libvirt()
    await runtime.prepare()
    yield runtime


def domain(hypervisor: libvirt.virConnect, server_id: str) -> libvirt.virDomain:
    return hypervisor.lookupByName(server_id)


async def test_creating_defines_a_domain_from_the_plan_with_a_cloned_disk(
    runtime_on_libvirt: Runtime, hypervisor: libvirt.virConnect
) -> None:
    async with skypanel_as_owner(runtime_on_libvirt) as (api, owner):
        server_id = await make_server(runtime_on_libvirt, owner)
        made = domain(hypervisor, server_id)
        state, max_memory_kib, _, vcpus, _ = made.info()
        assert (state, max_memory_kib, vcpus) == (libvirt.VIR_DOMAIN_SHUTOFF, 512 * 1024, 2)
        volume = hypervisor.storagePoolLookupByName(POOL).storageVolLookupByName(
            f"{server_id}.qcow2"
        )
        assert volume.info()[1] == 5 * 1024**3
        assert volume.path() in made.XMLDesc(0)
        assert "<source network='default'" in made.XMLDesc(0)
        assert await status_of(api, server_id) == "stopped"


async def test_each_power_action_acts_on_the_domain_and_libvirt_judges_transitions(
    runtime_on_libvirt: Runtime, hypervisor: libvirt.virConnect
) -> None:
    async with skypanel_as_owner(runtime_on_libvirt) as (api, owner):
        server_id = await make_server(runtime_on_libvirt, owner)
        started = await power(api, server_id, "start")
        assert started.status_code == 200, started.text
        assert started.json()["data"]["status"] == "running"
        assert domain(hypervisor, server_id).state()[0] == libvirt.VIR_DOMAIN_RUNNING

        again = envelope_error(await power(api, server_id, "start"), 409, "CONFLICT")
        assert "already running" in again["message"]
        assert await status_of(api, server_id) == "running"

        assert (await power(api, server_id, "restart")).json()["data"]["status"] == "running"
        assert (await power(api, server_id, "stop")).json()["data"]["status"] == "stopped"
        assert domain(hypervisor, server_id).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
        refused = envelope_error(await power(api, server_id, "kill"), 409, "CONFLICT")
        assert "not running" in refused["message"]

        assert (await power(api, server_id, "start")).status_code == 200
        assert (await power(api, server_id, "kill")).json()["data"]["status"] == "stopped"
        assert domain(hypervisor, server_id).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
        assert (await power(api, server_id, "start")).status_code == 200
        assert (await power(api, server_id, "shutdown")).json()["data"]["status"] == "stopped"


async def test_a_change_made_on_the_hypervisor_reaches_skypanel_by_its_event(
    runtime_on_libvirt: Runtime, hypervisor: libvirt.virConnect
) -> None:
    async with skypanel_as_owner(runtime_on_libvirt) as (api, owner):
        server_id = await make_server(runtime_on_libvirt, owner)
        # Someone starts it with virsh: in this process, a call like any other on libvirt's
        # thread (a real virsh's change arrives over libvirtd's socket instead).
        await on_libvirt_thread(lambda: domain(hypervisor, server_id).create())
        await eventually(lambda: status_of(api, server_id), lambda found: found == "running")
        await on_libvirt_thread(lambda: domain(hypervisor, server_id).destroy())
        await eventually(lambda: status_of(api, server_id), lambda found: found == "stopped")


async def test_a_restarted_guildhall_shows_what_changed_while_it_was_down(
    on_libvirt: Callable[[], Runtime], hypervisor: libvirt.virConnect
) -> None:
    first = on_libvirt()
    await first.prepare()
    async with skypanel_as_owner(first) as (api, owner):
        server_id = await make_server(first, owner)
        assert (await power(api, server_id, "start")).status_code == 200
    await first.close()
    domain(hypervisor, server_id).destroy()  # while Guildhall is down

    second = on_libvirt()
    await second.prepare()
    async with second.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(Server).where(Server.public_id == server_id))
        assert second.hosting.observed(row).value == "stopped"


async def test_deleting_destroys_undefines_and_removes_the_volume(
    runtime_on_libvirt: Runtime, hypervisor: libvirt.virConnect
) -> None:
    async with skypanel_as_owner(runtime_on_libvirt) as (api, owner):
        server_id = await make_server(runtime_on_libvirt, owner)
        assert (await power(api, server_id, "start")).status_code == 200
        await runtime_on_libvirt.hosting.delete(server_id, TEST_ACTOR)
        assert server_id not in [d.name() for d in hypervisor.listAllDomains()]
        pool = hypervisor.storagePoolLookupByName(POOL)
        assert f"{server_id}.qcow2" not in pool.listVolumes()
        assert (await api.get("/api/servers")).json()["data"] == []


async def test_a_machine_that_cannot_be_made_leaves_nothing(runtime_on_libvirt: Runtime) -> None:
    async with skypanel_as_owner(runtime_on_libvirt) as (api, owner):
        with pytest.raises(Invalid, match="create failed"):
            await make_server(runtime_on_libvirt, owner, plan="Broken")
        assert (await api.get("/api/servers")).json()["data"] == []
