"""Servers and power, driving real processes.

GET /api/servers -> {"success": true, "data": [{"id": "server-123", "name": "My VPS",
    "status": "running", "ipAddress": "192.168.1.100", "plan": "Basic", "createdAt": ...}]}
POST /api/servers/:id/power {"action": "start"}  // or "stop", "restart", "shutdown"
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from guildhall.core.accounts.service import AccountRef
from guildhall.core.hosting.models import Server
from guildhall.db.base import utcnow
from guildhall.events import outbox
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.skypanel.conftest import envelope_error, make_user


async def _server(runtime: Runtime, owner: AccountRef, plan: str = "Basic") -> str:
    async with runtime.database.unit_of_work() as session:
        view = await runtime.hosting.create(session, owner, "My VPS", plan, TEST_ACTOR)
        return view.public_id


async def _pid(runtime: Runtime, server_id: str) -> int | None:
    async with runtime.database.unit_of_work(write=False) as session:
        ref = await session.scalar(select(Server.runtime_ref).where(Server.public_id == server_id))
    if not ref or not runtime.hosting.driver.is_running(ref):
        return None
    return int(ref.split(":")[0])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def _power(api: httpx.AsyncClient, server_id: str, action: str) -> httpx.Response:
    return await api.post(f"/api/servers/{server_id}/power", json={"action": action})


async def test_list_shows_the_callers_servers_in_the_documented_shape(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    mine = await _server(runtime, user)
    other = await make_user(runtime, "jane", "jane@example.com")
    await _server(runtime, other)
    body = (await api.get("/api/servers")).json()
    assert body["success"] is True
    assert len(body["data"]) == 1
    server = body["data"][0]
    assert server.pop("createdAt").endswith("Z")
    assert server == {
        "id": mine,
        "name": "My VPS",
        "status": "stopped",
        "ipAddress": "127.0.0.1",
        "plan": "Basic",
    }


async def test_someone_elses_server_does_not_exist(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    other = await make_user(runtime, "jane", "jane@example.com")
    theirs = await _server(runtime, other)
    for response in (
        await api.get(f"/api/servers/{theirs}"),
        await _power(api, theirs, "start"),
        await _power(api, "server-nonexistent", "start"),
    ):
        error = envelope_error(response, 404, "NOT_FOUND")
        assert error["details"]["resource"] == "server"
    assert await _pid(runtime, theirs) is None  # nothing was started


async def test_start_runs_a_real_process_in_its_own_directory_then_shutdown_ends_it(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user)
    started = await _power(api, server_id, "start")
    assert started.status_code == 200
    assert started.json()["data"]["status"] == "running"
    pid = await _pid(runtime, server_id)
    assert pid is not None and _alive(pid)
    workdir = runtime.settings.data_dir.resolve() / "servers" / server_id
    assert Path(os.readlink(f"/proc/{pid}/cwd")) == workdir
    assert (await api.get("/api/servers")).json()["data"][0]["status"] == "running"

    again = await _power(api, server_id, "start")
    assert envelope_error(again, 400, "VALIDATION_ERROR")["message"] == (
        "The server is already running"
    )
    assert await _pid(runtime, server_id) == pid  # still the same process

    stopped = await _power(api, server_id, "shutdown")
    assert stopped.json()["data"]["status"] == "stopped"
    assert not _alive(pid)
    twice = await _power(api, server_id, "shutdown")
    assert envelope_error(twice, 400, "VALIDATION_ERROR")["details"] == [
        {"field": "action", "message": "The server is already stopped"}
    ]


async def test_restart_gives_a_new_process_and_a_stopped_server_cannot_restart(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user)
    refused = await _power(api, server_id, "restart")
    assert envelope_error(refused, 400, "VALIDATION_ERROR")["message"] == (
        "The server is stopped; start it instead"
    )
    await _power(api, server_id, "start")
    first = await _pid(runtime, server_id)
    restarted = await _power(api, server_id, "restart")
    assert restarted.json()["data"]["status"] == "running"
    second = await _pid(runtime, server_id)
    assert first is not None and second is not None and first != second
    assert not _alive(first) and _alive(second)
    await _power(api, server_id, "stop")


async def test_stop_ends_a_process_that_ignores_sigterm_at_once(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user, "Stubborn")
    await _power(api, server_id, "start")
    pid = await _pid(runtime, server_id)
    assert pid is not None
    loop = asyncio.get_running_loop()
    began = loop.time()
    stopped = await _power(api, server_id, "stop")
    assert stopped.json()["data"]["status"] == "stopped"
    assert loop.time() - began < 0.5  # no grace period: SIGKILL
    assert not _alive(pid)


async def test_shutdown_waits_the_grace_period_then_kills_a_stubborn_process(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user, "Stubborn")
    await _power(api, server_id, "start")
    pid = await _pid(runtime, server_id)
    assert pid is not None
    loop = asyncio.get_running_loop()
    began = loop.time()
    stopped = await _power(api, server_id, "shutdown")
    assert stopped.json()["data"]["status"] == "stopped"
    assert loop.time() - began >= 0.5  # it was asked first, and given the grace period
    assert not _alive(pid)


async def test_a_process_that_dies_by_itself_reads_stopped(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user, "Crashy")
    assert (await _power(api, server_id, "start")).json()["data"]["status"] == "running"
    for _ in range(40):
        if (await api.get(f"/api/servers/{server_id}")).json()["data"]["status"] == "stopped":
            break
        await asyncio.sleep(0.05)
    assert (await api.get(f"/api/servers/{server_id}")).json()["data"]["status"] == "stopped"
    # And it can be started again.
    assert (await _power(api, server_id, "start")).json()["data"]["status"] == "running"
    await _power(api, server_id, "stop")


async def test_a_server_that_cannot_start_is_left_stopped_not_starting(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user, "Broken")
    failed = await _power(api, server_id, "start")
    error = envelope_error(failed, 500, "INTERNAL_ERROR")
    assert "exited at once with code 7" in error["message"]
    async with runtime.database.unit_of_work(write=False) as session:
        assert (
            await session.scalar(select(Server.status).where(Server.public_id == server_id))
            == "stopped"
        )
    assert (await api.get(f"/api/servers/{server_id}")).json()["data"]["status"] == "stopped"


async def test_a_transitional_state_left_by_a_crash_does_not_stick(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user)
    async with runtime.database.unit_of_work() as session:
        await session.execute(
            update(Server)
            .where(Server.public_id == server_id)
            .values(status="starting", status_changed_at=utcnow())
        )
    fresh = await _power(api, server_id, "start")
    assert envelope_error(fresh, 400, "VALIDATION_ERROR")["message"] == (
        "The server is starting; wait until it is running"
    )
    async with runtime.database.unit_of_work() as session:
        await session.execute(
            update(Server)
            .where(Server.public_id == server_id)
            .values(status_changed_at=utcnow() - timedelta(minutes=5))
        )
    assert (await api.get(f"/api/servers/{server_id}")).json()["data"]["status"] == "stopped"
    assert (await _power(api, server_id, "start")).json()["data"]["status"] == "running"
    await _power(api, server_id, "stop")


@pytest.mark.parametrize("body", [{}, {"action": "reboot"}, {"action": 1}, []])
async def test_a_bad_action_is_a_validation_error(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, body: object
) -> None:
    server_id = await _server(runtime, user)
    response = await api.post(f"/api/servers/{server_id}/power", json=body)
    error = envelope_error(response, 400, "VALIDATION_ERROR")
    if isinstance(body, dict):
        assert error["details"][0]["field"] == "action"
    assert await _pid(runtime, server_id) is None


async def test_power_needs_a_token(skypanel: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await make_user(runtime)
    server_id = await _server(runtime, owner)
    envelope_error(await _power(skypanel, server_id, "start"), 401, "UNAUTHORIZED")
    assert await _pid(runtime, server_id) is None


async def test_server_changes_are_events(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user)
    await _power(api, server_id, "start")
    await runtime.hosting.delete(server_id, TEST_ACTOR)
    async with runtime.database.unit_of_work(write=False) as session:
        events = [(e["event"], e["data"]["status"]) for e in reversed(await outbox.recent(session))]
    assert events == [
        ("server.created", "stopped"),
        ("server.updated", "starting"),
        ("server.updated", "running"),
        ("server.deleted", "deleted"),
    ]
    assert (await api.get("/api/servers")).json()["data"] == []


async def test_concurrent_starts_start_one_process(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    server_id = await _server(runtime, user)
    responses = await asyncio.gather(*(_power(api, server_id, "start") for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400, 400]
    pid = await _pid(runtime, server_id)
    assert pid is not None
    await _power(api, server_id, "stop")
