"""Tests of the Pterodactyl peer itself, so connector tests can trust what it answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.peers.pterodactyl.peer import (
    API_KEY,
    NO_VIABLE_ALLOCATION,
    NO_VIABLE_NODE,
    READ_ONLY_KEY,
    PterodactylPeer,
    running_pterodactyl,
)

HEADERS = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}


def client(peer: PterodactylPeer, key: str = API_KEY) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    return httpx.AsyncClient(base_url=f"{peer.url}/api/application", headers=headers)


def user_body(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "email": f"player{n}@example.com",
        "username": f"player{n}",
        "first_name": "Play",
        "last_name": "Er",
        **extra,
    }


def server_body(user_id: int, memory: int = 1024, disk: int = 4096, **extra: Any) -> dict:
    return {
        "name": "Survival",
        "user": user_id,
        "egg": 1,
        "docker_image": "ghcr.io/pterodactyl/yolks:java_17",
        "startup": "java -Xms128M -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}}",
        "environment": {"SERVER_JARFILE": "server.jar", "BUILD_NUMBER": "latest"},
        "limits": {"memory": memory, "swap": 0, "disk": disk, "io": 500, "cpu": 100},
        "feature_limits": {"databases": 0, "backups": 1},
        "deploy": {"locations": [1], "dedicated_ip": False, "port_range": []},
        **extra,
    }


async def make_user(http: httpx.AsyncClient, n: int = 1, **extra: Any) -> int:
    response = await http.post("/users", json=user_body(n, **extra))
    assert response.status_code == 201, response.text
    return response.json()["attributes"]["id"]


async def test_auth_missing_unknown_and_read_only_keys() -> None:
    async with running_pterodactyl() as peer:
        async with httpx.AsyncClient(base_url=peer.url) as http:
            for headers in (
                {"Accept": "application/json"},
                {**HEADERS, "Authorization": "Bearer ptla_nope"},
            ):
                response = await http.get("/api/application/users", headers=headers)
                assert response.status_code == 401
                assert response.headers["content-type"] == "application/json"
                assert response.json() == {
                    "errors": [
                        {
                            "code": "AuthenticationException",
                            "status": "401",
                            "detail": "Unauthenticated.",
                        }
                    ]
                }
        async with client(peer, READ_ONLY_KEY) as http:
            assert (await http.get("/users")).status_code == 200
            response = await http.post("/users", json=user_body())
            assert response.status_code == 403
            assert response.json()["errors"][0] == {
                "code": "AuthorizationException",
                "status": "403",
                "detail": "This action is unauthorized.",
            }
            assert peer.users == {}


async def test_without_accept_json_errors_are_not_json() -> None:
    async with running_pterodactyl() as peer, httpx.AsyncClient(base_url=peer.url) as http:
        response = await http.get("/api/application/users")
        assert response.status_code == 302
        assert response.headers["location"] == f"{peer.url}/auth/login"
        auth = {"Authorization": f"Bearer {API_KEY}"}
        response = await http.post("/api/application/users", json={}, headers=auth)
        assert response.status_code == 302
        response = await http.get("/api/application/users/99", headers=auth)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        ok = await http.get("/api/application/users", headers=auth)
        assert ok.status_code == 200 and ok.json()["object"] == "list"


async def test_create_user_and_duplicate_email_is_422_with_meta() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        response = await http.post("/users", json=user_body(external_id="discord-1"))
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["object"] == "user"
        attributes = body["attributes"]
        assert set(attributes) == {
            "id", "external_id", "uuid", "username", "email", "first_name", "last_name",
            "language", "root_admin", "2fa", "created_at", "updated_at",
        }  # fmt: skip
        assert attributes["external_id"] == "discord-1"
        assert attributes["root_admin"] is False and attributes["2fa"] is False
        assert attributes["created_at"].endswith("+00:00")
        assert body["meta"]["resource"] == f"{peer.url}/api/application/users/{attributes['id']}"

        response = await http.post("/users", json=user_body(2, email="player1@example.com"))
        assert response.status_code == 422
        assert response.json() == {
            "errors": [
                {
                    "code": "ValidationException",
                    "status": "422",
                    "detail": "The email has already been taken.",
                    "meta": {"source_field": "email", "rule": "unique"},
                }
            ]
        }
        response = await http.post("/users", json={"username": "-bad-", "email": "nope"})
        rules = [(e["meta"]["source_field"], e["meta"]["rule"]) for e in response.json()["errors"]]
        assert rules == [
            ("email", "email"),
            ("username", "p_username"),
            ("first_name", "required"),
            ("last_name", "required"),
        ]


async def test_filter_by_external_id_and_external_route() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        await make_user(http, 1, external_id="abc-1")
        second = await make_user(http, 2, external_id="xyz-2")
        response = await http.get("/users", params={"filter[external_id]": "xyz-2"})
        data = response.json()["data"]
        assert [u["attributes"]["id"] for u in data] == [second]
        response = await http.get("/users/external/xyz-2")
        assert response.json()["attributes"]["id"] == second
        response = await http.get("/users/external/missing")
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "NotFoundHttpException"
        response = await http.get("/users", params={"filter[password]": "x"})
        assert response.status_code == 400


async def test_pagination_meta() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        for n in range(5):
            await make_user(http, n)
        response = await http.get("/users", params={"per_page": 2, "page": 2})
        body = response.json()
        assert len(body["data"]) == 2
        base = f"{peer.url}/api/application/users"
        assert body["meta"]["pagination"] == {
            "total": 5,
            "count": 2,
            "per_page": 2,
            "current_page": 2,
            "total_pages": 3,
            "links": {"previous": f"{base}?page=1", "next": f"{base}?page=3"},
        }
        empty = (await http.get("/servers")).json()
        assert empty["data"] == [] and empty["meta"]["pagination"]["links"] == {}


async def test_create_server_by_deploy() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        user_id = await make_user(http)
        response = await http.post("/servers", json=server_body(user_id, external_id="gh-7"))
        assert response.status_code == 201, response.text
        server = response.json()
        assert server["object"] == "server"
        attributes = server["attributes"]
        assert attributes["status"] == "installing"
        assert attributes["suspended"] is False
        assert attributes["container"]["installed"] == 0
        assert attributes["node"] == 1 and attributes["allocation"] == 1
        assert attributes["identifier"] == attributes["uuid"][:8]
        assert attributes["container"]["environment"]["SERVER_JARFILE"] == "server.jar"
        assert attributes["container"]["environment"]["P_SERVER_LOCATION"] == "local"
        assert peer.allocations[1]["server_id"] == attributes["id"]
        node = (await http.get("/nodes/1")).json()["attributes"]
        assert node["allocated_resources"] == {"memory": 1024, "disk": 4096}
        allocations = (await http.get("/nodes/1/allocations")).json()["data"]
        assert allocations[0]["attributes"]["assigned"] is True
        assert allocations[1]["attributes"]["assigned"] is False

        peer.finish_install(attributes["id"])
        again = await http.get(
            f"/servers/{attributes['id']}", params={"include": "allocations,node"}
        )
        again_attributes = again.json()["attributes"]
        assert again_attributes["status"] is None
        assert again_attributes["container"]["installed"] == 1
        relationships = again_attributes["relationships"]
        assert relationships["allocations"]["data"][0]["attributes"]["port"] == 25565
        assert relationships["node"]["object"] == "node"
        external = await http.get("/servers/external/gh-7")
        assert external.json()["attributes"]["id"] == attributes["id"]


async def test_missing_required_variable_is_422() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        user_id = await make_user(http)
        body = server_body(user_id)
        body["environment"] = {"BUILD_NUMBER": "latest"}
        response = await http.post("/servers", json=body)
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "code": "ValidationException",
                "status": "422",
                "detail": "The Server Jar File variable field is required.",
                "meta": {"source_field": "environment.SERVER_JARFILE", "rule": "required"},
            }
        ]
        assert peer.servers == {}
        assert peer.allocations[1]["server_id"] is None


async def test_no_room_is_400_no_viable_node() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        user_id = await make_user(http)
        response = await http.post("/servers", json=server_body(user_id, memory=8193))
        assert response.status_code == 400
        assert response.json() == {
            "errors": [{"code": "NoViableNodeException", "status": "400", "detail": NO_VIABLE_NODE}]
        }
        assert NO_VIABLE_NODE.startswith("No nodes satisfying the requirements")


async def test_no_free_allocation_is_400_no_viable_allocation() -> None:
    async with running_pterodactyl(seed=True) as peer, client(peer) as http:
        location = peer.add_location("eu")
        peer.add_node(location, allocations=1)
        user_id = await make_user(http)
        body = server_body(user_id, memory=512, disk=512)
        body["deploy"]["locations"] = [location]
        assert (await http.post("/servers", json=body)).status_code == 201
        response = await http.post("/servers", json=body)
        assert response.status_code == 400
        assert response.json()["errors"][0] == {
            "code": "NoViableAllocationException",
            "status": "400",
            "detail": NO_VIABLE_ALLOCATION,
        }


async def test_suspend_unsuspend_delete_frees_resources() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        user_id = await make_user(http)
        server_id = (await http.post("/servers", json=server_body(user_id, memory=8192))).json()[
            "attributes"
        ]["id"]
        assert (await http.post("/servers", json=server_body(user_id))).status_code == 400

        response = await http.post(f"/servers/{server_id}/suspend")
        assert response.status_code == 204 and response.content == b""
        attributes = (await http.get(f"/servers/{server_id}")).json()["attributes"]
        assert attributes["status"] == "suspended" and attributes["suspended"] is True
        assert (await http.post(f"/servers/{server_id}/unsuspend")).status_code == 204
        assert (await http.get(f"/servers/{server_id}")).json()["attributes"]["status"] is None

        refused = await http.delete(f"/users/{user_id}")
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["detail"].startswith("Cannot delete a user with active")

        assert (await http.delete(f"/servers/{server_id}")).status_code == 204
        assert (await http.get(f"/servers/{server_id}")).status_code == 404
        assert peer.allocations[1]["server_id"] is None
        node = (await http.get("/nodes/1")).json()["attributes"]
        assert node["allocated_resources"] == {"memory": 0, "disk": 0}
        assert (await http.post("/servers", json=server_body(user_id))).status_code == 201
        assert (await http.delete(f"/servers/{server_id}/force")).status_code == 404


async def test_user_include_servers() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        user_id = await make_user(http)
        await http.post("/servers", json=server_body(user_id))
        response = await http.get(f"/users/{user_id}", params={"include": "servers"})
        servers = response.json()["attributes"]["relationships"]["servers"]
        assert servers["object"] == "list"
        assert [s["object"] for s in servers["data"]] == ["server"]
        assert servers["data"][0]["attributes"]["user"] == user_id


async def test_eggs_with_variables() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        egg = (await http.get("/nests/1/eggs/1", params={"include": "variables"})).json()
        attributes = egg["attributes"]
        assert attributes["docker_image"] == "ghcr.io/pterodactyl/yolks:java_17"
        variables = attributes["relationships"]["variables"]["data"]
        assert [v["attributes"]["env_variable"] for v in variables] == [
            "SERVER_JARFILE",
            "BUILD_NUMBER",
            "MINECRAFT_VERSION",
        ]
        listing = (await http.get("/nests/1/eggs")).json()
        assert listing["object"] == "list" and "meta" not in listing
        assert (await http.get("/nests/2/eggs/1")).status_code == 404


async def test_stop_start_keeps_state_and_port() -> None:
    async with running_pterodactyl() as peer:
        async with client(peer) as http:
            user_id = await make_user(http)
        port = peer.port
        await peer.stop()
        async with client(peer) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/users")
        await peer.start()
        assert peer.port == port
        async with client(peer) as http:
            response = await http.get(f"/users/{user_id}")
            assert response.status_code == 200


async def test_fail_next() -> None:
    async with running_pterodactyl() as peer, client(peer) as http:
        peer.fail_next(500, count=2)
        for _ in range(2):
            response = await http.get("/users")
            assert response.status_code == 500
            assert response.json() == {
                "errors": [
                    {
                        "code": "HttpException",
                        "status": "500",
                        "detail": "An unexpected error was encountered while processing "
                        "this request, please try again.",
                    }
                ]
            }
        assert (await http.get("/users")).status_code == 200
        assert peer.requests[-1] == ("GET", "/api/application/users")
