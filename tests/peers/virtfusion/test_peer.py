"""Tests of the VirtFusion peer itself, so driver tests can trust what it answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.peers.virtfusion.peer import API_TOKEN, VirtFusionPeer, running_virtfusion


def client(peer: VirtFusionPeer, token: str = API_TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    return httpx.AsyncClient(base_url=f"{peer.url}/api/v1", headers=headers)


async def make_user(http: httpx.AsyncClient, ext: int = 7) -> dict[str, Any]:
    body = {"name": "Ada Player", "email": f"ada{ext}@example.com", "extRelationId": ext}
    response = await http.post("/users", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def make_server(http: httpx.AsyncClient, *, built: bool = True) -> dict[str, Any]:
    user = await make_user(http)
    body = {"packageId": 1, "userId": user["id"], "hypervisorId": 1, "ipv4": 1}
    response = await http.post("/servers", json=body)
    assert response.status_code == 201, response.text
    server = response.json()["data"]
    if built:
        built_response = await http.post(
            f"/servers/{server['id']}/build",
            json={"operatingSystemId": 1, "name": "mc", "hostname": "mc.example.com"},
        )
        assert built_response.status_code == 200, built_response.text
    return server


async def test_seed_and_connect() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        assert peer.packages[1]["enabled"] is True
        assert 1 in peer.hypervisor_groups
        assert "Debian 12" in peer.templates[1]["description"]
        assert peer.users == {} and peer.servers == {}
        response = await http.get("/connect")
        assert response.status_code == 200
        assert peer.requests == [("GET", "/api/v1/connect")]


@pytest.mark.parametrize("token", ["", "wrong"])
async def test_bad_or_missing_token_is_401(token: str) -> None:
    async with running_virtfusion() as peer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=peer.url, headers=headers) as http:
            response = await http.get("/api/v1/connect")
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthenticated."}


async def test_unknown_route_is_404() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        response = await http.get("/nothing/here")
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}


async def test_user_create_lookup_and_duplicate() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        created = await make_user(http, ext=42)
        assert created["extRelationId"] == 42
        assert created["password"]
        found = await http.get("/users/42/byExtRelation")
        assert found.status_code == 200
        data = found.json()["data"]
        assert data["id"] == created["id"] and data["email"] == "ada42@example.com"
        assert "password" not in data

        missing = await http.get("/users/43/byExtRelation")
        assert missing.status_code == 404
        assert "message" in missing.json()

        again = await http.post(
            "/users", json={"name": "Other", "email": "other@example.com", "extRelationId": 42}
        )
        assert again.status_code == 422
        assert again.json()["errors"] == {
            "extRelationId": ["The ext relation id has already been taken."]
        }


async def test_user_validation() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        response = await http.post("/users", json={"email": "not-an-email"})
        assert response.status_code == 422
        body = response.json()
        assert body["errors"]["name"] == ["The name field is required."]
        assert body["errors"]["email"] == ["The email must be a valid email address."]
        assert body["message"] == "The name field is required."
        assert peer.users == {}


async def test_create_server_validation_and_unknown_references() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        empty = await http.post("/servers", json={})
        assert empty.status_code == 422
        assert set(empty.json()["errors"]) == {"packageId", "userId", "hypervisorId"}

        user = await make_user(http)
        unknown = await http.post(
            "/servers", json={"packageId": 99, "userId": user["id"], "hypervisorId": 1}
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"] == {"packageId": ["The selected package id is invalid."]}

        bad_refs = await http.post(
            "/servers", json={"packageId": 1, "userId": 555, "hypervisorId": 9}
        )
        assert bad_refs.status_code == 422
        assert set(bad_refs.json()["errors"]) == {"userId", "hypervisorId"}
        assert peer.servers == {}


async def test_create_and_build_server() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        user = await make_user(http)
        response = await http.post(
            "/servers",
            json={"packageId": 1, "userId": user["id"], "hypervisorId": 1, "memory": 4096},
        )
        assert response.status_code == 201
        server = response.json()["data"]
        assert server["ownerId"] == user["id"]
        assert server["built"] is None
        assert server["settings"]["resources"]["memory"] == 4096
        assert peer.power_state(server["id"]) == "shutoff"

        bad = await http.post(f"/servers/{server['id']}/build", json={"operatingSystemId": 9})
        assert bad.status_code == 422
        assert "operatingSystemId" in bad.json()["errors"]

        built = await http.post(
            f"/servers/{server['id']}/build",
            json={"operatingSystemId": 1, "name": "mc", "hostname": "mc.example.com"},
        )
        assert built.status_code == 200
        data = built.json()["data"]
        assert data["name"] == "mc" and data["hostname"] == "mc.example.com"
        assert data["built"] is not None
        assert data["settings"]["osTemplateInstallId"] == 1


async def test_power_transitions_and_refusals() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        server = await make_server(http)
        sid = server["id"]

        shutdown = await http.post(f"/servers/{sid}/power/shutdown")
        assert shutdown.status_code == 409
        assert shutdown.json() == {"message": "Server is not running."}

        boot = await http.post(f"/servers/{sid}/power/boot")
        assert boot.status_code == 200
        assert isinstance(boot.json()["data"]["queueId"], int)
        assert peer.power_state(sid) == "running"

        again = await http.post(f"/servers/{sid}/power/boot")
        assert again.status_code == 409
        assert again.json() == {"message": "Server is already running."}

        restart = await http.post(f"/servers/{sid}/power/restart")
        assert restart.status_code == 200
        assert peer.power_state(sid) == "running"

        off = await http.post(f"/servers/{sid}/power/poweroff")
        assert off.status_code == 200
        assert peer.power_state(sid) == "shutoff"

        await http.post(f"/servers/{sid}/power/boot")
        down = await http.post(f"/servers/{sid}/power/shutdown")
        assert down.status_code == 200
        assert peer.power_state(sid) == "shutoff"

        nonsense = await http.post(f"/servers/{sid}/power/suspend")
        assert nonsense.status_code == 404


async def test_unbuilt_server_cannot_be_powered() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        server = await make_server(http, built=False)
        response = await http.post(f"/servers/{server['id']}/power/boot")
        assert response.status_code == 409
        assert peer.power_state(server["id"]) == "shutoff"


async def test_remote_state_shows_hypervisor_changes() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        server = await make_server(http)
        sid = server["id"]
        await http.post(f"/servers/{sid}/power/boot")

        peer.set_power_state(sid, "shutoff")
        plain = (await http.get(f"/servers/{sid}")).json()["data"]
        assert plain["remoteState"] is False
        assert plain["state"] == "running"  # what the control server last recorded

        live = await http.get(f"/servers/{sid}", params={"remoteState": "true"})
        assert live.status_code == 200
        assert live.json()["data"]["remoteState"] == {"state": "shutoff", "running": False}
        assert ("GET", f"/api/v1/servers/{sid}?remoteState=true") in peer.requests

        booted = await http.post(f"/servers/{sid}/power/boot")
        assert booted.status_code == 200


async def test_delete_now_and_delayed_and_404() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        server = await make_server(http)
        sid = server["id"]

        too_long = await http.delete(f"/servers/{sid}", params={"delay": 50000})
        assert too_long.status_code == 422

        later = await http.delete(f"/servers/{sid}", params={"delay": 5})
        assert later.status_code == 204
        assert peer.servers[sid]["deleteScheduled"] == 5

        now = await http.delete(f"/servers/{sid}", params={"delay": 0})
        assert now.status_code == 204
        assert sid not in peer.servers

        for response in (
            await http.get(f"/servers/{sid}"),
            await http.delete(f"/servers/{sid}"),
            await http.post(f"/servers/{sid}/power/boot"),
            await http.post(f"/servers/{sid}/build", json={"operatingSystemId": 1}),
        ):
            assert response.status_code == 404
            assert response.json() == {"message": "Server not found."}


async def test_stop_start_keeps_state_and_port() -> None:
    async with running_virtfusion() as peer:
        async with client(peer) as http:
            server = await make_server(http)
        port = peer.port
        await peer.stop()
        async with client(peer) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/connect")
        await peer.start()
        assert peer.port == port
        async with client(peer) as http:
            response = await http.get(f"/servers/{server['id']}")
            assert response.status_code == 200


async def test_fail_next() -> None:
    async with running_virtfusion() as peer, client(peer) as http:
        peer.fail_next(503, count=2)
        first = await http.get("/connect")
        second = await http.get("/connect")
        third = await http.get("/connect")
        assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
        assert "message" in first.json()
        assert len(peer.requests) == 3

        peer.fail_next(423)
        locked = await http.post("/servers/1/power/boot")
        assert locked.status_code == 423
