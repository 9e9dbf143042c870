"""A stateful VirtFusion control server (API v1) served for real on a loopback port.

Guildhall's VirtFusion hosting driver is tested end to end against this peer, so it
answers the way the control server's Global API does, as its documentation
(docs.virtfusion.com/api and its OpenAPI 3.0.1 spec) describes it: everything lives
under ``/api/v1``, every route needs ``Authorization: Bearer <token>``, and objects
come back wrapped in ``{"data": ...}`` with VirtFusion's camelCase field names
(``ownerId``, ``hypervisorId``, ``extRelationId``, ...).

Documented behaviour reproduced here:

* ``POST /users`` answers 201 with the user and a generated ``password``;
  ``GET /users/{extRelationId}/byExtRelation`` finds it by the caller's own id.
* ``POST /servers`` takes ``packageId``, ``userId`` and ``hypervisorId`` (which is a
  hypervisor *group* id) and answers 201 with the new, unbuilt server.
* ``POST /servers/{id}/build`` needs ``operatingSystemId`` and answers 200 with the
  server.
* ``GET /servers/{id}`` answers 200; only with ``?remoteState=true`` is the
  hypervisor asked for the live power state.
* ``POST /servers/{id}/power/{boot|shutdown|restart|poweroff}`` queues the action
  and answers 200 ``{"data": {"queueId": n}}``.
* ``DELETE /servers/{id}?delay=<minutes>`` (0-43800) answers 204.

Where the documentation is silent, these are the decisions (the real server is a
Laravel application, so its conventions fill the gaps):

* A missing or wrong token is 401 ``{"message": "Unauthenticated."}``.
* A validation failure is 422 ``{"message": <first error>, "errors": {field:
  [messages]}}``. An unknown package, user or hypervisor group on ``POST /servers``
  and an unknown ``operatingSystemId`` on build are validation failures of that
  field ("The selected package id is invalid."), as Laravel's ``exists`` rule
  reports them. A duplicate ``extRelationId`` (or email) on ``POST /users`` is
  "The ext relation id has already been taken." A body that is not JSON is
  treated as an empty one, so it fails validation rather than being a 400.
* An unknown server or user is 404 ``{"message": "..."}``; an unknown route is 404
  ``{"message": "Not Found"}``.
* A power action that makes no sense in the current state (boot a running server,
  shutdown or poweroff a stopped one, restart a stopped one) is refused with 409
  ``{"message": "Server is already running."}`` (or "... is not running.") and
  nothing is queued. Power actions on a server that is not built are 409 too.
* Actions complete at once: there is no queue to wait on, so the peer never answers
  the documented 423 "tasks pending" by itself; ``fail_next(423)`` produces it.
* Power state: a new server is ``"shutoff"``; boot -> ``"running"``,
  shutdown/poweroff -> ``"shutoff"``, restart keeps ``"running"``. ``data.state``
  in the server object is what the control server last recorded (it follows power
  actions made through the API). The hypervisor's live state is only in
  ``data.remoteState`` when ``?remoteState=true`` is asked for:
  ``{"state": "running"|"shutoff", "running": bool}``; otherwise
  ``remoteState`` is ``false``. ``set_power_state()`` changes only the live
  state, as if someone acted on the hypervisor, so a driver that does not ask for
  ``remoteState`` does not see it.
* ``DELETE`` with ``delay=0`` (or no delay) removes the server at once; with a
  delay the server stays, is marked ``deleteScheduled`` (minutes), and the peer
  never removes it by itself.
* Responses are JSON whatever the ``Accept`` header says.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tests.peers.loopback import LoopbackServer, bind_loopback

API_TOKEN = "vf_" + "Zk3Qm8PwL2xT9rVb6NcH4sJd7GyA1eUo5iKfR0tWqBn"

PREFIX = "/api/v1"
MAX_DELAY = 43800
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
POWER_ACTIONS = ("boot", "shutdown", "restart", "poweroff")

STATUS_MESSAGES = {
    400: "Bad Request",
    401: "Unauthenticated.",
    403: "This action is unauthorized.",
    404: "Not Found",
    409: "Conflict",
    423: "The server has pending tasks.",
    429: "Too Many Attempts.",
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _json(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload), status, media_type="application/json")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Invalid(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("The given data was invalid.")
        self.errors = errors


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()) is not None


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "on", "yes")


class VirtFusionPeer:
    def __init__(self, *, port: int) -> None:
        self.port = port
        self.users: dict[int, dict] = {}
        self.servers: dict[int, dict] = {}
        self.packages: dict[int, dict] = {}
        self.hypervisor_groups: dict[int, dict] = {}
        self.templates: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self._failures: list[int] = []
        self._user_ids = itertools.count(1)
        self._server_ids = itertools.count(1)
        self._queue_ids = itertools.count(1)
        self._listener = LoopbackServer(self.handle, port)
        self._seed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ test hooks

    def power_state(self, server_id: int) -> str:
        """The live state on the hypervisor, as ``remoteState.state`` reports it."""
        return self.servers[server_id]["_power"]

    def set_power_state(self, server_id: int, state: str) -> None:
        """Change the live state as if someone acted on the hypervisor directly."""
        self.servers[server_id]["_power"] = state

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` requests (after recording them) with ``status``."""
        self._failures.extend([status] * count)

    # ------------------------------------------------------------------ seed

    def _seed(self) -> None:
        stamp = _now()
        self.packages[1] = {
            "id": 1,
            "name": "Standard",
            "description": "",
            "enabled": True,
            "memory": 2048,
            "primaryStorage": 40,
            "traffic": 1000,
            "cpuCores": 2,
            "primaryNetworkSpeedIn": 0,
            "primaryNetworkSpeedOut": 0,
            "created": stamp,
            "updated": stamp,
        }
        self.hypervisor_groups[1] = {
            "id": 1,
            "name": "Default",
            "label": None,
            "description": "",
            "distributionType": 1,
            "enabled": True,
            "default": True,
            "created": stamp,
            "updated": stamp,
        }
        self.templates[1] = {
            "id": 1,
            "name": "Debian",
            "version": "12",
            "variant": "",
            "arch": 1,
            "description": "Debian 12",
            "eol": False,
            "type": "linux",
        }

    # ------------------------------------------------------------------ shapes

    def _user_view(self, user: dict) -> dict:
        return {k: v for k, v in user.items() if not k.startswith("_")}

    def _server_view(self, server: dict, *, remote: bool) -> dict:
        data = {k: v for k, v in server.items() if not k.startswith("_")}
        owner = self.users.get(server["ownerId"])
        data["owner"] = self._user_view(owner) if owner else None
        if remote:
            live = server["_power"]
            data["remoteState"] = {"state": live, "running": live == "running"}
        else:
            data["remoteState"] = False
        return data

    # ------------------------------------------------------------------ helpers

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _server(self, raw_id: str) -> dict:
        if _is_int(raw_id) and int(raw_id) in self.servers:
            return self.servers[int(raw_id)]
        raise ApiError(404, "Server not found.")

    @staticmethod
    def _require_int(
        body: dict, field: str, label: str, errors: dict[str, list[str]], *, required: bool
    ) -> int | None:
        value = body.get(field)
        if value is None or value == "":
            if required:
                errors.setdefault(field, []).append(f"The {label} field is required.")
            return None
        if not _is_int(value):
            errors.setdefault(field, []).append(f"The {label} must be an integer.")
            return None
        number = int(value)
        if number < 0:
            errors.setdefault(field, []).append(f"The {label} must be at least 0.")
            return None
        return number

    # ------------------------------------------------------------------ handlers

    async def connect(self, request: Request, params: dict[str, str]) -> Response:
        return _json({"data": {"connected": True}})

    async def create_user(self, request: Request, params: dict[str, str]) -> Response:
        body = await self._body(request)
        errors: dict[str, list[str]] = {}
        name = body.get("name")
        if name is None or name == "":
            errors["name"] = ["The name field is required."]
        elif not isinstance(name, str):
            errors["name"] = ["The name must be a string."]
        elif len(name) > 255:
            errors["name"] = ["The name must not be greater than 255 characters."]
        email = body.get("email")
        if email is None or email == "":
            errors["email"] = ["The email field is required."]
        elif not isinstance(email, str) or not EMAIL.match(email):
            errors["email"] = ["The email must be a valid email address."]
        elif any(u["email"].lower() == email.lower() for u in self.users.values()):
            errors["email"] = ["The email has already been taken."]
        ext = self._require_int(body, "extRelationId", "ext relation id", errors, required=False)
        if ext is not None and any(u["extRelationId"] == ext for u in self.users.values()):
            errors["extRelationId"] = ["The ext relation id has already been taken."]
        if errors:
            raise Invalid(errors)
        stamp = _now()
        user_id = next(self._user_ids)
        user = {
            "id": user_id,
            "admin": False,
            "extRelationId": ext,
            "selfService": int(body.get("selfService") or 0),
            "selfServiceHourlyGroupProfiles": [],
            "selfServiceResourceGroupProfiles": [],
            "selfServiceHourlyResourcePack": None,
            "name": name,
            "email": email,
            "timezone": "UTC",
            "suspended": False,
            "twoFactorAuth": False,
            "created": stamp,
            "updated": stamp,
        }
        self.users[user_id] = user
        return _json({"data": {**user, "password": secrets.token_urlsafe(12)}}, 201)

    async def user_by_ext(self, request: Request, params: dict[str, str]) -> Response:
        raw = params["ext"]
        for user in self.users.values():
            if _is_int(raw) and user["extRelationId"] == int(raw):
                return _json({"data": self._user_view(user)})
        raise ApiError(404, "User not found.")

    async def create_server(self, request: Request, params: dict[str, str]) -> Response:
        body = await self._body(request)
        errors: dict[str, list[str]] = {}
        package_id = self._require_int(body, "packageId", "package id", errors, required=True)
        user_id = self._require_int(body, "userId", "user id", errors, required=True)
        group_id = self._require_int(body, "hypervisorId", "hypervisor id", errors, required=True)
        optional = {
            "ipv4": "ipv4",
            "storage": "storage",
            "traffic": "traffic",
            "memory": "memory",
            "cpuCores": "cpu cores",
            "networkSpeedInbound": "network speed inbound",
            "networkSpeedOutbound": "network speed outbound",
        }
        extras = {
            f: self._require_int(body, f, label, errors, required=False)
            for f, label in optional.items()
        }
        package = self.packages.get(package_id) if package_id is not None else None
        if package_id is not None and (package is None or not package["enabled"]):
            errors.setdefault("packageId", []).append("The selected package id is invalid.")
        if user_id is not None and user_id not in self.users:
            errors.setdefault("userId", []).append("The selected user id is invalid.")
        group = self.hypervisor_groups.get(group_id) if group_id is not None else None
        if group_id is not None and (group is None or not group["enabled"]):
            errors.setdefault("hypervisorId", []).append("The selected hypervisor id is invalid.")
        if errors:
            raise Invalid(errors)
        assert package is not None and user_id is not None and group is not None
        if _truthy(request.query_params.get("dryRun")):
            return _json({"data": {"dryRun": True}}, 200)
        server_id = next(self._server_ids)
        stamp = _now()
        resources = {
            "memory": extras["memory"] if extras["memory"] is not None else package["memory"],
            "storage": (
                extras["storage"] if extras["storage"] is not None else package["primaryStorage"]
            ),
            "traffic": extras["traffic"] if extras["traffic"] is not None else package["traffic"],
            "cpuCores": (
                extras["cpuCores"] if extras["cpuCores"] is not None else package["cpuCores"]
            ),
        }
        ipv4_count = extras["ipv4"] if extras["ipv4"] is not None else 1
        addresses = [
            {
                "id": server_id * 10 + n,
                "order": n + 1,
                "enabled": True,
                "blockId": 1,
                "address": f"192.0.2.{(server_id * 10 + n) % 250 + 1}",
                "gateway": "192.0.2.254",
                "netmask": "255.255.255.0",
                "resolver1": "1.1.1.1",
                "resolver2": "8.8.8.8",
                "rdns": None,
                "mac": None,
            }
            for n in range(ipv4_count)
        ]
        server = {
            "id": server_id,
            "ownerId": user_id,
            "hypervisorId": 1,
            "arch": 1,
            "name": f"server-{server_id}",
            "hostname": None,
            "commissionStatus": 0,
            "uuid": str(uuid.uuid4()),
            "state": "shutoff",
            "suspended": False,
            "protected": False,
            "buildFailed": False,
            "built": None,
            "created": stamp,
            "updated": stamp,
            "packageId": package["id"],
            "settings": {
                "osTemplateInstall": False,
                "osTemplateInstallId": None,
                "resources": resources,
            },
            "cpu": {"cores": resources["cpuCores"]},
            "network": {
                "interfaces": [
                    {
                        "id": server_id,
                        "order": 1,
                        "enabled": True,
                        "name": "eth0",
                        "type": "public",
                        "ipv4": addresses,
                        "ipv6": [],
                    }
                ]
            },
            "hypervisor": {"id": 1, "groupId": group["id"], "group": {"name": group["name"]}},
            "tasks": {"active": False, "actions": {"pending": []}},
            "_power": "shutoff",
        }
        self.servers[server_id] = server
        return _json({"data": self._server_view(server, remote=False)}, 201)

    async def build_server(self, request: Request, params: dict[str, str]) -> Response:
        server = self._server(params["id"])
        body = await self._body(request)
        errors: dict[str, list[str]] = {}
        os_id = self._require_int(
            body, "operatingSystemId", "operating system id", errors, required=True
        )
        if os_id is not None and os_id not in self.templates:
            errors["operatingSystemId"] = ["The selected operating system id is invalid."]
        for field in ("name", "hostname"):
            value = body.get(field)
            if value is not None and not isinstance(value, str):
                errors[field] = [f"The {field} must be a string."]
        ssh_keys = body.get("sshKeys")
        if ssh_keys is not None and not isinstance(ssh_keys, list):
            errors["sshKeys"] = ["The ssh keys must be an array."]
        if errors:
            raise Invalid(errors)
        if body.get("name"):
            server["name"] = body["name"]
        if body.get("hostname"):
            server["hostname"] = body["hostname"]
        stamp = _now()
        server["commissionStatus"] = 3
        server["built"] = stamp
        server["updated"] = stamp
        server["settings"]["osTemplateInstall"] = True
        server["settings"]["osTemplateInstallId"] = os_id
        return _json({"data": self._server_view(server, remote=False)})

    async def get_server(self, request: Request, params: dict[str, str]) -> Response:
        server = self._server(params["id"])
        remote = _truthy(request.query_params.get("remoteState"))
        return _json({"data": self._server_view(server, remote=remote)})

    async def power(self, request: Request, params: dict[str, str]) -> Response:
        server = self._server(params["id"])
        action = params["action"]
        if server["built"] is None:
            raise ApiError(409, "Server has not been built.")
        running = server["_power"] == "running"
        if action == "boot" and running:
            raise ApiError(409, "Server is already running.")
        if action in ("shutdown", "poweroff", "restart") and not running:
            raise ApiError(409, "Server is not running.")
        new_state = "shutoff" if action in ("shutdown", "poweroff") else "running"
        server["_power"] = new_state
        server["state"] = new_state
        server["updated"] = _now()
        return _json({"data": {"queueId": next(self._queue_ids)}})

    async def delete_server(self, request: Request, params: dict[str, str]) -> Response:
        server = self._server(params["id"])
        raw = request.query_params.get("delay")
        delay = 0
        if raw not in (None, ""):
            if not _is_int(raw) or not 0 <= int(raw) <= MAX_DELAY:
                raise Invalid({"delay": [f"The delay must be between 0 and {MAX_DELAY}."]})
            delay = int(raw)
        if delay == 0:
            del self.servers[server["id"]]
        else:
            server["deleteScheduled"] = delay
        return Response(status_code=204)

    # ------------------------------------------------------------------ routing

    _ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
        ("GET", re.compile(r"/connect"), "connect"),
        ("POST", re.compile(r"/users"), "create_user"),
        ("GET", re.compile(r"/users/(?P<ext>[^/]+)/byExtRelation"), "user_by_ext"),
        ("POST", re.compile(r"/servers"), "create_server"),
        ("GET", re.compile(r"/servers/(?P<id>[^/]+)"), "get_server"),
        ("DELETE", re.compile(r"/servers/(?P<id>[^/]+)"), "delete_server"),
        ("POST", re.compile(r"/servers/(?P<id>[^/]+)/build"), "build_server"),
        (
            "POST",
            re.compile(r"/servers/(?P<id>[^/]+)/power/(?P<action>boot|shutdown|restart|poweroff)"),
            "power",
        ),
    )

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        query = request.url.query
        self.requests.append((request.method, path + (f"?{query}" if query else "")))
        try:
            return await self._dispatch(request, path)
        except ApiError as error:
            return _json({"message": error.message}, error.status)
        except Invalid as error:
            first = next(iter(error.errors.values()))[0]
            return _json({"message": first, "errors": error.errors}, 422)

    def _authorised(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            token.strip().encode(), API_TOKEN.encode()
        )

    async def _dispatch(self, request: Request, path: str) -> Response:
        if self._failures:
            status = self._failures.pop(0)
            raise ApiError(status, STATUS_MESSAGES.get(status, "Error"))
        if not path.startswith(PREFIX + "/"):
            raise ApiError(404, "Not Found")
        sub = path[len(PREFIX) :].rstrip("/") or "/"
        matched = [(m, r, h) for m, r, h in self._ROUTES if r.fullmatch(sub)]
        if not matched:
            raise ApiError(404, "Not Found")
        if not self._authorised(request):
            raise ApiError(401, "Unauthenticated.")
        for method, regex, handler in matched:
            if method == request.method:
                hit = regex.fullmatch(sub)
                assert hit is not None
                return await getattr(self, handler)(request, hit.groupdict())
        raise ApiError(405, f"The {request.method} method is not supported for this route.")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on ``self.port`` again after stop(); the state is as it was."""
        await self._listener.start()

    async def stop(self) -> None:
        """Stop listening (clients get connection refused); the state stays."""
        await self._listener.stop()


@contextlib.asynccontextmanager
async def running_virtfusion(*, port: int = 0) -> AsyncIterator[VirtFusionPeer]:
    """Serve a fresh, seeded control server on ``port`` (0: any free port)."""
    sock = bind_loopback(port)
    peer = VirtFusionPeer(port=sock.getsockname()[1])
    await peer._listener.start(sock)
    try:
        yield peer
    finally:
        await peer.stop()
