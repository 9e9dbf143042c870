"""A stateful Pterodactyl panel (v1.11 application API) served for real on a loopback port.

Guildhall's Pterodactyl connector is tested end to end against this peer, so it is
strict where the real panel is strict: objects come out shaped exactly as the
panel's Fractal transformers shape them (``{"object": ..., "attributes": ...}``,
includes under ``attributes.relationships``, paginated lists with
``meta.pagination``), errors use the panel's JSON:API-ish envelope
(``{"errors": [{"code", "status", "detail"}]}``) and validation failures list
one item per failed rule with ``meta.source_field`` and ``meta.rule``.

Requests go through the same stages, in the same order, as in the panel:
route matching (404/405), the bearer key (401), malformed JSON (400), route
model binding (404), the key's permissions (403), the request's validation
rules (422), then the service (400 for a ``DisplayException`` such as
"no viable node").

Laravel only renders errors as JSON when the request *expects* JSON
(``Accept: application/json``, or an XHR that accepts anything). Otherwise an
unauthenticated request is redirected to ``/auth/login``, a validation error or
a ``DisplayException`` is redirected "back", and anything else is an HTML
error page. Successful responses are JSON either way. The peer does the same,
so a client that forgets the header sees what it would see in production.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from tests.peers.loopback import LoopbackServer, bind_loopback

API_KEY = "ptla_" + "Gh7kQ2mX9vLp4RtZ8wYc1NbJ5sFd3HqA6eUo0iKxTgV"
READ_ONLY_KEY = "ptla_" + "r3adOnLyK3yF0rT3st5n0Wr1t3sAll0w3dH3r3zzzzz"

PREFIX = "/api/application"
UNEXPECTED = "An unexpected error was encountered while processing this request, please try again."
NOT_FOUND = "The requested resource could not be found on the server."
NO_VIABLE_NODE = (
    "No nodes satisfying the requirements specified for automatic deployment could be found."
)
NO_VIABLE_ALLOCATION = (
    "No allocations satisfying the requirements for automatic deployment were found."
)
USER_HAS_SERVERS = (
    "Cannot delete a user with active servers attached to their account. "
    "Please delete their servers before continuing."
)
TOO_MANY_PORTS = "Adding more than 1000 ports in a single range at once is not supported."
USERNAME_MESSAGE = (
    "The :attribute must start and end with alpha-numeric characters and\n"
    "                contain only letters, numbers, dashes, underscores, and periods."
)
LANGUAGES = ("en",)
MISSING: Any = object()

# Symfony exception class per status, for fail_next() and route errors.
HTTP_EXCEPTIONS = {
    400: "BadRequestHttpException",
    401: "UnauthorizedHttpException",
    403: "AccessDeniedHttpException",
    404: "NotFoundHttpException",
    405: "MethodNotAllowedHttpException",
    409: "ConflictHttpException",
    429: "TooManyRequestsHttpException",
    503: "ServiceUnavailableHttpException",
}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _ts(moment: datetime) -> str:
    """BaseTransformer::formatTimestamp: an ATOM string in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _model_ts(moment: datetime) -> str:
    """How Eloquent's toArray() serialises a date (used by EggVariableTransformer)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _dumps(payload: object) -> bytes:
    # PHP's json_encode escapes slashes and non-ASCII characters by default.
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status, headers=headers, media_type="application/json")


class ApiError(Exception):
    """An exception the panel's handler renders; ``display`` marks a DisplayException."""

    def __init__(
        self, status: int, code: str, detail: str, *, display: bool = False, headers=None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.display = display
        self.headers: dict[str, str] = headers or {}


class ValidationFailed(Exception):
    def __init__(self, failures: list[tuple[str, str, str]]) -> None:
        super().__init__("The given data was invalid.")
        self.failures = failures  # (source_field, rule, message)


def _not_found() -> ApiError:
    return ApiError(404, "NotFoundHttpException", NOT_FOUND)


def _display(detail: str, code: str = "DisplayException") -> ApiError:
    return ApiError(400, code, detail, display=True)


# --------------------------------------------------------------------------- validation
# A small re-implementation of the parts of Laravel's validator the panel's
# requests use, with its semantics: ``sometimes`` skips absent fields,
# ``nullable`` skips nulls, non-implicit rules skip absent/empty values, a
# failed implicit rule (or ``bail``) stops the field, and ``exists``/``unique``
# only run while the field has no error yet.

Rule = tuple[Any, ...]
IMPLICIT = {"required", "present", "required_with", "required_without"}
NUMERIC_RULES = {"numeric", "integer"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def parse_rules(text: str) -> list[Rule]:
    """'required|between:1,191|regex:/x/' -> [("required",), ("between", "1", "191"), ...]."""
    rules: list[Rule] = []
    for part in text.split("|"):
        if not part:
            continue
        name, _, params = part.partition(":")
        if name == "regex":
            rules.append((name, params))
        else:
            rules.append((name, *([p for p in params.split(",")] if params else [])))
    return rules


def _php_regex(pattern: str) -> re.Pattern[str]:
    delimiter = pattern[0]
    end = pattern.rindex(delimiter)
    flags = re.IGNORECASE if "i" in pattern[end + 1 :] else 0
    return re.compile(pattern[1:end], flags)


def _lookup(data: Any, path: str) -> Any:
    current = data
    for piece in path.split("."):
        if isinstance(current, dict) and piece in current:
            current = current[piece]
        elif isinstance(current, list) and piece.isdigit() and int(piece) < len(current):
            current = current[int(piece)]
        else:
            return MISSING
    return current


def _expand(data: Any, path: str) -> list[str]:
    if "*" not in path:
        return [path]
    head, _, tail = path.partition(".*")
    container = _lookup(data, head)
    keys: list[str] = []
    if isinstance(container, list):
        keys = [str(i) for i in range(len(container))]
    elif isinstance(container, dict):
        keys = [str(k) for k in container]
    out: list[str] = []
    for key in keys:
        out.extend(_expand(data, f"{head}.{key}{tail}"))
    return out


def _is_int(value: Any) -> bool:
    if isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and bool(INTEGER.match(value))


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and bool(NUMBER.match(value))


def _empty(value: Any) -> bool:
    return value is None or value is MISSING or value in ("", [], {})


class Validator:
    def __init__(self, data: dict[str, Any], attributes: dict[str, str] | None = None) -> None:
        self.data = data
        self.attributes = attributes or {}
        self.failures: list[tuple[str, str, str]] = []

    def display(self, field: str) -> str:
        if field in self.attributes:
            return self.attributes[field]
        return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", field).lower().replace("_", " ")

    def run(self, rules: list[tuple[str, list[Rule]]]) -> None:
        for pattern, field_rules in rules:
            for name in _expand(self.data, pattern):
                self._field(name, field_rules)
        if self.failures:
            raise ValidationFailed(self.failures)

    def _size(self, value: Any, rules: list[Rule]) -> tuple[float, str]:
        numeric = any(r[0] in NUMERIC_RULES for r in rules)
        if numeric and _is_numeric(value):
            return float(value), "numeric"
        if isinstance(value, list | dict):
            return float(len(value)), "array"
        return float(len(str(value))), "string"

    def _field(self, name: str, rules: list[Rule]) -> None:
        value = _lookup(self.data, name)
        names = {r[0] for r in rules}
        if "sometimes" in names and value is MISSING:
            return
        failed: list[str] = []
        for rule in rules:
            rule_name = rule[0]
            if rule_name in ("sometimes", "nullable", "bail"):
                continue
            implicit = rule_name in IMPLICIT
            if not implicit:
                if value is MISSING or (isinstance(value, str) and value.strip() == ""):
                    continue
                if value is None and "nullable" in names:
                    continue
                if rule_name in ("exists", "unique") and failed:
                    continue
            message = self._check(name, value, rule, rules)
            if message is not None:
                code = "p_username" if rule_name == "username" else rule_name
                self.failures.append((name, code, message))
                failed.append(rule_name)
                if "bail" in names or implicit:
                    break

    def _check(self, name: str, value: Any, rule: Rule, rules: list[Rule]) -> str | None:
        attr = self.display(name)
        kind, params = rule[0], rule[1:]
        if kind == "required":
            return None if not _empty(value) else f"The {attr} field is required."
        if kind == "present":
            return None if value is not MISSING else f"The {attr} field must be present."
        if kind in ("required_with", "required_without"):
            others = [not _empty(_lookup(self.data, p)) for p in params]
            needed = any(others) if kind == "required_with" else not all(others)
            if not needed or not _empty(value):
                return None
            values = " / ".join(self.display(p) for p in params)
            when = "present" if kind == "required_with" else "not present"
            return f"The {attr} field is required when {values} is {when}."
        if kind == "string":
            return None if isinstance(value, str) else f"The {attr} must be a string."
        if kind == "integer":
            return None if _is_int(value) else f"The {attr} must be an integer."
        if kind == "numeric":
            return None if _is_numeric(value) else f"The {attr} must be a number."
        if kind == "boolean":
            ok = value in (True, False, "0", "1") and not isinstance(value, float)
            return None if ok else f"The {attr} field must be true or false."
        if kind == "array":
            return None if isinstance(value, list | dict) else f"The {attr} must be an array."
        if kind == "email":
            ok = isinstance(value, str) and bool(EMAIL.match(value))
            return None if ok else f"The {attr} must be a valid email address."
        if kind == "regex":
            ok = (isinstance(value, str) or _is_numeric(value)) and bool(
                _php_regex(params[0]).search(str(value))
            )
            return None if ok else f"The {attr} format is invalid."
        if kind in ("min", "max", "between"):
            size, unit = self._size(value, rules)
            low = float(params[0]) if kind != "max" else -math.inf
            high = float(params[-1]) if kind != "min" else math.inf
            if low <= size <= high:
                return None
            suffix = {"numeric": "", "string": " characters", "array": " items"}[unit]
            if kind == "between":
                if unit == "array":
                    return f"The {attr} must have between {params[0]} and {params[1]} items."
                return f"The {attr} must be between {params[0]} and {params[1]}{suffix}."
            if kind == "min":
                if unit == "array":
                    return f"The {attr} must have at least {params[0]} items."
                return f"The {attr} must be at least {params[0]}{suffix}."
            if unit == "array":
                return f"The {attr} may not have more than {params[0]} items."
            return f"The {attr} may not be greater than {params[0]}{suffix}."
        if kind == "in":
            return None if str(value) in params else f"The selected {attr} is invalid."
        if kind == "exists":
            return None if params[0](value) else f"The selected {attr} is invalid."
        if kind == "unique":
            return None if params[0](value) else f"The {attr} has already been taken."
        if kind == "username":
            ok = isinstance(value, str) and bool(
                re.match(r"^[a-z0-9]([\w.-]+)[a-z0-9]$", value.lower())
            )
            return None if ok else USERNAME_MESSAGE.replace(":attribute", attr)
        raise AssertionError(f"unmodelled rule {kind}")


def _normalise(value: Any, key: str = "") -> Any:
    """Laravel's TrimStrings and ConvertEmptyStringsToNull middleware."""
    if isinstance(value, dict):
        return {k: _normalise(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str):
        if key not in ("password", "password_confirmation", "current_password"):
            value = value.strip()
        return None if value == "" else value
    return value


# --------------------------------------------------------------------------- the peer

Handler = Callable[[Request, dict[str, Any], dict[str, Any]], Awaitable[Response]]


@dataclass
class _Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler
    write: bool


@dataclass
class PterodactylPeer:
    port: int
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    servers: dict[int, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[int, dict[str, Any]] = field(default_factory=dict)
    allocations: dict[int, dict[str, Any]] = field(default_factory=dict)
    locations: dict[int, dict[str, Any]] = field(default_factory=dict)
    nests: dict[int, dict[str, Any]] = field(default_factory=dict)
    eggs: dict[int, dict[str, Any]] = field(default_factory=dict)
    egg_variables: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    _ids: dict[str, itertools.count[int]] = field(default_factory=dict)
    _routes: list[_Route] = field(default_factory=list)
    _listener: LoopbackServer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._listener = LoopbackServer(self.handle, self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------- test controls

    def _next_id(self, table: str) -> int:
        return next(self._ids.setdefault(table, itertools.count(1)))

    def add_location(self, short: str, long: str | None = None) -> int:
        location_id = self._next_id("locations")
        now = _now()
        self.locations[location_id] = {
            "id": location_id,
            "short": short,
            "long": long,
            "created_at": now,
            "updated_at": now,
        }
        return location_id

    def add_node(
        self,
        location_id: int,
        *,
        memory: int = 8192,
        disk: int = 102400,
        allocations: int = 10,
        memory_overallocate: int = 0,
        disk_overallocate: int = 0,
    ) -> int:
        assert location_id in self.locations, f"no location {location_id}"
        node_id = self._next_id("nodes")
        now = _now()
        self.nodes[node_id] = {
            "id": node_id,
            "uuid": str(uuid.uuid4()),
            "public": True,
            "name": f"Node {node_id}",
            "description": None,
            "location_id": location_id,
            "fqdn": "127.0.0.1",
            "scheme": "http",
            "behind_proxy": False,
            "maintenance_mode": False,
            "memory": memory,
            "memory_overallocate": memory_overallocate,
            "disk": disk,
            "disk_overallocate": disk_overallocate,
            "upload_size": 100,
            "daemon_listen": 8080,
            "daemon_sftp": 2022,
            "daemon_base": "/var/lib/pterodactyl/volumes",
            "created_at": now,
            "updated_at": now,
        }
        for port in range(25565, 25565 + allocations):
            allocation_id = self._next_id("allocations")
            self.allocations[allocation_id] = {
                "id": allocation_id,
                "node_id": node_id,
                "ip": "127.0.0.1",
                "ip_alias": None,
                "port": port,
                "server_id": None,
                "notes": None,
            }
        return node_id

    def add_user(self, username: str, email: str, **fields: Any) -> int:
        user_id = self._next_id("users")
        now = _now()
        self.users[user_id] = {
            "id": user_id,
            "external_id": fields.get("external_id"),
            "uuid": str(uuid.uuid4()),
            "username": username,
            "email": email,
            "name_first": fields.get("name_first", "Test"),
            "name_last": fields.get("name_last", "User"),
            "password": fields.get("password"),
            "language": fields.get("language", "en"),
            "root_admin": bool(fields.get("root_admin", False)),
            "use_totp": False,
            "created_at": now,
            "updated_at": now,
        }
        return user_id

    def finish_install(self, server_id: int, *, failed: bool = False) -> None:
        server = self.servers[server_id]
        server["status"] = "install_failed" if failed else None
        server["updated_at"] = _now()

    def fail_next(self, status: int, count: int = 1) -> None:
        self._failures.extend([status] * count)

    def node_usage(self, node_id: int) -> dict[str, int]:
        on_node = [s for s in self.servers.values() if s["node_id"] == node_id]
        return {
            "memory": sum(s["memory"] for s in on_node),
            "disk": sum(s["disk"] for s in on_node),
        }

    def _seed(self) -> None:
        location_id = self.add_location("local")
        self.add_node(location_id)
        now = _now()
        self.nests[1] = {
            "id": 1,
            "uuid": str(uuid.uuid4()),
            "author": "support@pterodactyl.io",
            "name": "Minecraft",
            "description": "Minecraft - the classic game from Mojang.",
            "created_at": now,
            "updated_at": now,
        }
        self._ids["nests"] = itertools.count(2)
        self.eggs[1] = {
            "id": 1,
            "uuid": str(uuid.uuid4()),
            "name": "Paper",
            "nest_id": 1,
            "author": "parker@pterodactyl.io",
            "description": (
                "High performance Spigot fork that aims to fix gameplay and mechanics "
                "inconsistencies."
            ),
            "docker_images": {
                "Java 17": "ghcr.io/pterodactyl/yolks:java_17",
                "Java 21": "ghcr.io/pterodactyl/yolks:java_21",
            },
            "config_files": {
                "server.properties": {
                    "parser": "properties",
                    "find": {
                        "server-ip": "0.0.0.0",
                        "server-port": "{{server.build.default.port}}",
                        "query.port": "{{server.build.default.port}}",
                    },
                }
            },
            "config_startup": {"done": ")! For help, type "},
            "config_stop": "stop",
            "config_logs": {},
            "file_denylist": [],
            "config_from": None,
            "startup": "java -Xms128M -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}}",
            "script_is_privileged": True,
            "script_install": "#!/bin/ash\n# Paper installation script\ncd /mnt/server\n",
            "script_entry": "ash",
            "script_container": "ghcr.io/pterodactyl/installers:alpine",
            "copy_script_from": None,
            "created_at": now,
            "updated_at": now,
        }
        self._ids["eggs"] = itertools.count(2)
        variables = [
            (
                "Server Jar File",
                "SERVER_JARFILE",
                "server.jar",
                r"required|regex:/^([\w\d._-]+)(\.jar)$/",
            ),
            ("Build Number", "BUILD_NUMBER", "latest", "required|string|max:20"),
            ("Minecraft Version", "MINECRAFT_VERSION", "latest", "nullable|string|max:20"),
        ]
        for name, env, default, rules in variables:
            variable_id = self._next_id("egg_variables")
            self.egg_variables[variable_id] = {
                "id": variable_id,
                "egg_id": 1,
                "name": name,
                "description": f"The {name.lower()} to use.",
                "env_variable": env,
                "default_value": default,
                "user_viewable": True,
                "user_editable": True,
                "rules": rules,
                "created_at": now,
                "updated_at": now,
            }

    # ----------------------------------------------------------------- transformers

    def _user(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": user["id"],
            "external_id": user["external_id"],
            "uuid": user["uuid"],
            "username": user["username"],
            "email": user["email"],
            "first_name": user["name_first"],
            "last_name": user["name_last"],
            "language": user["language"],
            "root_admin": bool(user["root_admin"]),
            "2fa": bool(user["use_totp"]),
            "created_at": _ts(user["created_at"]),
            "updated_at": _ts(user["updated_at"]),
        }

    def _environment(self, server: dict[str, Any]) -> dict[str, Any]:
        env: dict[str, Any] = {}
        for variable in self._variables_of(server["egg_id"]):
            value = server["variables"].get(variable["id"])
            env[variable["env_variable"]] = (
                value if value is not None else variable["default_value"]
            )
        node = self.nodes.get(server["node_id"])
        location = self.locations.get(node["location_id"]) if node else None
        env["STARTUP"] = server["startup"]
        env["P_SERVER_LOCATION"] = location["short"] if location else None
        env["P_SERVER_UUID"] = server["uuid"]
        env["P_SERVER_ALLOCATION_LIMIT"] = server["allocation_limit"]
        return env

    def _server(self, server: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": server["id"],
            "external_id": server["external_id"],
            "uuid": server["uuid"],
            "identifier": server["uuid"][:8],
            "name": server["name"],
            "description": server["description"],
            "status": server["status"],
            "suspended": server["status"] == "suspended",
            "limits": {
                "memory": server["memory"],
                "swap": server["swap"],
                "disk": server["disk"],
                "io": server["io"],
                "cpu": server["cpu"],
                "threads": server["threads"],
                "oom_disabled": server["oom_disabled"],
            },
            "feature_limits": {
                "databases": server["database_limit"],
                "allocations": server["allocation_limit"],
                "backups": server["backup_limit"],
            },
            "user": server["owner_id"],
            "node": server["node_id"],
            "allocation": server["allocation_id"],
            "nest": server["nest_id"],
            "egg": server["egg_id"],
            "container": {
                "startup_command": server["startup"],
                "image": server["image"],
                "installed": 0 if server["status"] in ("installing", "install_failed") else 1,
                "environment": self._environment(server),
            },
            "updated_at": _ts(server["updated_at"]),
            "created_at": _ts(server["created_at"]),
        }

    def _node(self, node: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in node.items() if k not in ("created_at", "updated_at")}
        out["created_at"] = _ts(node["created_at"])
        out["updated_at"] = _ts(node["updated_at"])
        out["allocated_resources"] = self.node_usage(node["id"])
        return out

    def _allocation(self, allocation: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": allocation["id"],
            "ip": allocation["ip"],
            "alias": allocation["ip_alias"],
            "port": allocation["port"],
            "notes": allocation["notes"],
            "assigned": allocation["server_id"] is not None,
        }

    def _location(self, location: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": location["id"],
            "short": location["short"],
            "long": location["long"],
            "updated_at": _ts(location["updated_at"]),
            "created_at": _ts(location["created_at"]),
        }

    def _nest(self, nest: dict[str, Any]) -> dict[str, Any]:
        out = dict(nest)
        out["created_at"] = _ts(nest["created_at"])
        out["updated_at"] = _ts(nest["updated_at"])
        return out

    def _egg(self, egg: dict[str, Any]) -> dict[str, Any]:
        images = egg["docker_images"]
        return {
            "id": egg["id"],
            "uuid": egg["uuid"],
            "name": egg["name"],
            "nest": egg["nest_id"],
            "author": egg["author"],
            "description": egg["description"],
            "docker_image": next(iter(images.values()), ""),
            "docker_images": images,
            "config": {
                "files": egg["config_files"] or {},
                "startup": egg["config_startup"],
                "stop": egg["config_stop"],
                "logs": egg["config_logs"],
                "file_denylist": egg["file_denylist"],
                "extends": egg["config_from"],
            },
            "startup": egg["startup"],
            "script": {
                "privileged": egg["script_is_privileged"],
                "install": egg["script_install"],
                "entry": egg["script_entry"],
                "container": egg["script_container"],
                "extends": egg["copy_script_from"],
            },
            "created_at": _ts(egg["created_at"]),
            "updated_at": _ts(egg["updated_at"]),
        }

    def _egg_variable(self, variable: dict[str, Any]) -> dict[str, Any]:
        out = dict(variable)
        out["created_at"] = _model_ts(variable["created_at"])
        out["updated_at"] = _model_ts(variable["updated_at"])
        return out

    def _variables_of(self, egg_id: int) -> list[dict[str, Any]]:
        return [v for v in self.egg_variables.values() if v["egg_id"] == egg_id]

    # Fractal: item/collection wrappers with includes merged under "relationships".

    def _item(self, kind: str, model: dict[str, Any], includes: list[str]) -> dict[str, Any]:
        render, relations = self._kinds()[kind]
        attributes = render(model)
        related = {name: relations[name](model) for name in includes if name in relations}
        if related:
            attributes["relationships"] = related
        return {"object": kind, "attributes": attributes}

    def _collection(
        self, kind: str, models: list[dict[str, Any]], includes: list[str] | None = None
    ) -> dict[str, Any]:
        return {"object": "list", "data": [self._item(kind, m, includes or []) for m in models]}

    def _kinds(self) -> dict[str, tuple[Callable[[Any], dict[str, Any]], dict[str, Callable]]]:
        def servers_where(key: str, value: Any) -> list[dict[str, Any]]:
            return [s for s in self.servers.values() if s[key] == value]

        def null() -> dict[str, Any]:
            return {"object": "null_resource", "attributes": None}

        def one(kind: str, model: dict[str, Any] | None) -> dict[str, Any]:
            return null() if model is None else self._item(kind, model, [])

        def many(kind: str, models: list[dict[str, Any]]) -> dict[str, Any]:
            return self._collection(kind, models)

        return {
            "user": (
                self._user,
                {"servers": lambda u: many("server", servers_where("owner_id", u["id"]))},
            ),
            "server": (
                self._server,
                {
                    "allocations": lambda s: many(
                        "allocation",
                        [a for a in self.allocations.values() if a["server_id"] == s["id"]],
                    ),
                    "user": lambda s: one("user", self.users.get(s["owner_id"])),
                    "subusers": lambda s: many("subuser", []),
                    "nest": lambda s: one("nest", self.nests.get(s["nest_id"])),
                    "egg": lambda s: one("egg", self.eggs.get(s["egg_id"])),
                    "location": lambda s: one(
                        "location", self.locations.get(self.nodes[s["node_id"]]["location_id"])
                    ),
                    "node": lambda s: one("node", self.nodes.get(s["node_id"])),
                    "databases": lambda s: many("databases", []),
                },
            ),
            "node": (
                self._node,
                {
                    "allocations": lambda n: many(
                        "allocation",
                        [a for a in self.allocations.values() if a["node_id"] == n["id"]],
                    ),
                    "location": lambda n: one("location", self.locations.get(n["location_id"])),
                    "servers": lambda n: many("server", servers_where("node_id", n["id"])),
                },
            ),
            "allocation": (
                self._allocation,
                {
                    "node": lambda a: one("node", self.nodes.get(a["node_id"])),
                    "server": lambda a: (
                        one("server", self.servers.get(a["server_id"]))
                        if a["server_id"]
                        else null()
                    ),
                },
            ),
            "location": (
                self._location,
                {
                    "nodes": lambda loc: many(
                        "node", [n for n in self.nodes.values() if n["location_id"] == loc["id"]]
                    ),
                    "servers": lambda loc: many(
                        "server",
                        [
                            s
                            for s in self.servers.values()
                            if self.nodes[s["node_id"]]["location_id"] == loc["id"]
                        ],
                    ),
                },
            ),
            "nest": (
                self._nest,
                {
                    "eggs": lambda n: many(
                        "egg", [e for e in self.eggs.values() if e["nest_id"] == n["id"]]
                    ),
                    "servers": lambda n: many("server", servers_where("nest_id", n["id"])),
                },
            ),
            "egg": (
                self._egg,
                {
                    "nest": lambda e: one("nest", self.nests.get(e["nest_id"])),
                    "servers": lambda e: many("server", servers_where("egg_id", e["id"])),
                    "variables": lambda e: many("egg_variable", self._variables_of(e["id"])),
                    "config": lambda e: null(),
                    "script": lambda e: null(),
                },
            ),
            "egg_variable": (self._egg_variable, {}),
        }

    # ----------------------------------------------------------------- listing

    def _paginate(
        self,
        request: Request,
        kind: str,
        models: list[dict[str, Any]],
        *,
        filters: tuple[str, ...],
        sorts: tuple[str, ...],
        includes: list[str],
    ) -> Response:
        params = request.query_params
        requested = {
            key[len("filter[") : -1]: value
            for key, value in params.multi_items()
            if key.startswith("filter[") and key.endswith("]")
        }
        unknown = [name for name in requested if name not in filters]
        if unknown:
            raise ApiError(
                400,
                "InvalidFilterQuery",
                f"Requested filter(s) `{', '.join(unknown)}` are not allowed. "
                f"Allowed filter(s) are `{', '.join(filters)}`.",
            )
        for name, raw in requested.items():
            # spatie/laravel-query-builder: a plain allowed filter is a partial,
            # case-insensitive LIKE match; a comma separates alternatives.
            needles = [n.lower() for n in raw.split(",") if n != ""]
            if not needles:
                continue
            models = [
                m
                for m in models
                if m.get(name) is not None and any(n in str(m[name]).lower() for n in needles)
            ]
        sort = params.get("sort")
        if sort:
            keys = [k for k in sort.split(",") if k]
            bad = [k for k in keys if k.lstrip("-") not in sorts]
            if bad:
                raise ApiError(
                    400,
                    "InvalidSortQuery",
                    f"Requested sort(s) `{', '.join(bad)}` is not allowed. "
                    f"Allowed sort(s) are `{', '.join(sorts)}`.",
                )
            for key in reversed(keys):
                models = sorted(models, key=lambda m: m[key.lstrip("-")], reverse=key[0] == "-")
        # The panel passes per_page straight to Laravel's paginator: no upper bound.
        raw_per_page = params.get("per_page", "")
        per_page = int(raw_per_page) if raw_per_page.isdigit() and int(raw_per_page) > 0 else 50
        raw_page = params.get("page", "")
        page = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
        total = len(models)
        last = max(math.ceil(total / per_page), 1)
        chunk = models[(page - 1) * per_page : page * per_page]
        body = self._collection(kind, chunk, includes)
        base = f"{self.url}{request.url.path}"
        links: dict[str, str] = {}
        if page > 1:
            links["previous"] = f"{base}?page={page - 1}"
        if page < last:
            links["next"] = f"{base}?page={page + 1}"
        body["meta"] = {
            "pagination": {
                "total": total,
                "count": len(chunk),
                "per_page": per_page,
                "current_page": page,
                "total_pages": last,
                "links": links,
            }
        }
        return _json(body)

    # ----------------------------------------------------------------- users

    def _user_rules(self, ignore: int | None) -> list[tuple[str, list[Rule]]]:
        def unique(column: str) -> Callable[[Any], bool]:
            return lambda value: (
                not any(
                    u[column] is not None
                    and str(u[column]).lower() == str(value).lower()
                    and u["id"] != ignore
                    for u in self.users.values()
                )
            )

        return [
            (
                "external_id",
                [
                    ("sometimes",),
                    ("nullable",),
                    ("string",),
                    ("max", "191"),
                    ("unique", unique("external_id")),
                ],
            ),
            (
                "email",
                [("required",), ("email",), ("between", "1", "191"), ("unique", unique("email"))],
            ),
            (
                "username",
                [
                    ("required",),
                    ("between", "1", "191"),
                    ("unique", unique("username")),
                    ("username",),
                ],
            ),
            ("password", [("sometimes",), ("nullable",), ("string",)]),
            ("language", [("string",), ("in", *LANGUAGES)]),
            ("root_admin", [("boolean",)]),
            ("first_name", [("required",), ("string",), ("between", "1", "191")]),
            ("last_name", [("required",), ("string",), ("between", "1", "191")]),
        ]

    _USER_ATTRIBUTES = {
        "external_id": "Third Party Identifier",
        "root_admin": "Root Administrator Status",
    }

    async def list_users(self, request: Request, body: dict, ctx: dict) -> Response:
        return self._paginate(
            request,
            "user",
            list(self.users.values()),
            filters=("email", "uuid", "username", "external_id"),
            sorts=("id", "uuid"),
            includes=ctx["includes"],
        )

    async def view_user(self, request: Request, body: dict, ctx: dict) -> Response:
        return _json(self._item("user", ctx["user"], ctx["includes"]))

    async def external_user(self, request: Request, body: dict, ctx: dict) -> Response:
        wanted = ctx["external_id"]
        for user in self.users.values():
            if user["external_id"] == wanted:
                return _json(self._item("user", user, ctx["includes"]))
        raise _not_found()

    async def store_user(self, request: Request, body: dict, ctx: dict) -> Response:
        Validator(body, self._USER_ATTRIBUTES).run(self._user_rules(None))
        user_id = self.add_user(
            body["username"],
            body["email"],
            external_id=body.get("external_id"),
            name_first=body["first_name"],
            name_last=body["last_name"],
            password=body.get("password"),
            language=body.get("language") or "en",
            root_admin=body.get("root_admin") in (True, 1, "1"),
        )
        payload = self._item("user", self.users[user_id], ctx["includes"])
        payload["meta"] = {"resource": f"{self.url}{PREFIX}/users/{user_id}"}
        return _json(payload, 201)

    async def update_user(self, request: Request, body: dict, ctx: dict) -> Response:
        user = ctx["user"]
        Validator(body, self._USER_ATTRIBUTES).run(self._user_rules(user["id"]))
        user.update(
            username=body["username"],
            email=body["email"],
            name_first=body["first_name"],
            name_last=body["last_name"],
            updated_at=_now(),
        )
        if "external_id" in body:
            user["external_id"] = body["external_id"]
        if body.get("password"):
            user["password"] = body["password"]
        if "language" in body:
            user["language"] = body["language"]
        if "root_admin" in body:
            user["root_admin"] = body["root_admin"] in (True, 1, "1")
        return _json(self._item("user", user, ctx["includes"]))

    async def delete_user(self, request: Request, body: dict, ctx: dict) -> Response:
        user = ctx["user"]
        if any(s["owner_id"] == user["id"] for s in self.servers.values()):
            raise _display(USER_HAS_SERVERS)
        del self.users[user["id"]]
        return Response(status_code=204)

    # ----------------------------------------------------------------- servers

    async def list_servers(self, request: Request, body: dict, ctx: dict) -> Response:
        models = [dict(s, uuidShort=s["uuid"][:8]) for s in self.servers.values()]
        return self._paginate(
            request,
            "server",
            models,
            filters=("uuid", "uuidShort", "name", "description", "image", "external_id"),
            sorts=("id", "uuid"),
            includes=ctx["includes"],
        )

    async def view_server(self, request: Request, body: dict, ctx: dict) -> Response:
        return _json(self._item("server", ctx["server"], ctx["includes"]))

    async def external_server(self, request: Request, body: dict, ctx: dict) -> Response:
        for server in self.servers.values():
            if server["external_id"] == ctx["external_id"]:
                return _json(self._item("server", server, ctx["includes"]))
        raise _not_found()

    def _free_allocation(self, value: Any) -> bool:
        if not _is_int(value):
            return False
        allocation = self.allocations.get(int(value))
        return allocation is not None and allocation["server_id"] is None

    def _limit_rules(self, prefix: str) -> list[tuple[str, list[Rule]]]:
        return [
            (f"{prefix}memory", [("required",), ("numeric",), ("min", "0")]),
            (f"{prefix}swap", [("required",), ("numeric",), ("min", "-1")]),
            (f"{prefix}disk", [("required",), ("numeric",), ("min", "0")]),
            (f"{prefix}io", [("required",), ("numeric",), ("between", "10", "1000")]),
            (f"{prefix}threads", [("nullable",), ("regex", "/^[0-9-,]+$/")]),
            (f"{prefix}cpu", [("required",), ("numeric",), ("min", "0")]),
        ]

    def _unique_server_external_id(self, ignore: int | None) -> Callable[[Any], bool]:
        return lambda value: (
            not any(s["external_id"] == value and s["id"] != ignore for s in self.servers.values())
        )

    async def store_server(self, request: Request, body: dict, ctx: dict) -> Response:
        deploy = body.get("deploy")
        rules: list[tuple[str, list[Rule]]] = [
            (
                "external_id",
                [
                    ("sometimes",),
                    ("nullable",),
                    ("string",),
                    ("between", "1", "191"),
                    ("unique", self._unique_server_external_id(None)),
                ],
            ),
            ("name", [("required",), ("string",), ("min", "1"), ("max", "191")]),
            ("description", [("nullable",), ("string",)]),
            (
                "user",
                [
                    ("required",),
                    ("integer",),
                    ("exists", lambda v: _is_int(v) and int(v) in self.users),
                ],
            ),
            ("egg", [("required",), ("exists", lambda v: _is_int(v) and int(v) in self.eggs)]),
            (
                "docker_image",
                [("required",), ("string",), ("max", "191"), ("regex", r"/^~?[\w\.\/\-:@ ]*$/")],
            ),
            ("startup", [("required",), ("string",)]),
            ("environment", [("present",), ("array",)]),
            ("skip_scripts", [("sometimes",), ("boolean",)]),
            ("oom_disabled", [("sometimes",), ("boolean",)]),
            ("limits", [("required",), ("array",)]),
            *self._limit_rules("limits."),
            ("feature_limits", [("required",), ("array",)]),
            ("feature_limits.databases", [("present",), ("nullable",), ("integer",), ("min", "0")]),
            (
                "feature_limits.allocations",
                [("sometimes",), ("nullable",), ("integer",), ("min", "0")],
            ),
            ("feature_limits.backups", [("present",), ("nullable",), ("integer",), ("min", "0")]),
        ]
        if not deploy:
            rules += [
                (
                    "allocation.default",
                    [("required",), ("integer",), ("bail",), ("exists", self._free_allocation)],
                ),
                ("allocation.additional.*", [("integer",), ("exists", self._free_allocation)]),
            ]
        rules += [
            ("deploy", [("sometimes",), ("required",), ("array",)]),
            ("deploy.locations", [("array",), *([("present",)] if deploy else [])]),
            ("deploy.locations.*", [("integer",), ("min", "1")]),
            ("deploy.dedicated_ip", [("required_with", "deploy", "boolean")]),
            ("deploy.port_range", [("array",), *([("present",)] if deploy else [])]),
            ("deploy.port_range.*", [("string",)]),
            ("start_on_completion", [("sometimes",), ("boolean",)]),
        ]
        Validator(body, {}).run(rules)

        limits = body["limits"]
        memory, disk = int(float(limits["memory"])), int(float(limits["disk"]))
        if deploy:
            allocation = self._deploy(deploy, memory, disk)
            additional: list[int] = []
        else:
            allocation = self.allocations[int(body["allocation"]["default"])]
            additional = [int(a) for a in (body["allocation"].get("additional") or [])]
        egg = self.eggs[int(body["egg"])]
        values = self._validate_variables(egg["id"], body.get("environment") or {})

        server_id = self._next_id("servers")
        now = _now()
        features = body["feature_limits"]
        self.servers[server_id] = {
            "id": server_id,
            "external_id": body.get("external_id"),
            "uuid": str(uuid.uuid4()),
            "node_id": allocation["node_id"],
            "name": body["name"],
            "description": body.get("description") or "",
            "status": "installing",
            "skip_scripts": body.get("skip_scripts") in (True, 1, "1"),
            "owner_id": int(body["user"]),
            "memory": memory,
            "swap": int(float(limits["swap"])),
            "disk": disk,
            "io": int(float(limits["io"])),
            "cpu": int(float(limits["cpu"])),
            "threads": limits.get("threads"),
            "oom_disabled": body.get("oom_disabled", True) in (True, 1, "1"),
            "allocation_id": allocation["id"],
            "nest_id": egg["nest_id"],
            "egg_id": egg["id"],
            "startup": body["startup"],
            "image": body["docker_image"],
            "database_limit": int(features.get("databases") or 0),
            "allocation_limit": int(features.get("allocations") or 0),
            "backup_limit": int(features.get("backups") or 0),
            "variables": values,
            "created_at": now,
            "updated_at": now,
        }
        for allocation_id in [allocation["id"], *additional]:
            self.allocations[allocation_id]["server_id"] = server_id
        return _json(self._item("server", self.servers[server_id], ctx["includes"]), 201)

    def _deploy(self, deploy: dict[str, Any], memory: int, disk: int) -> dict[str, Any]:
        locations = {int(x) for x in deploy.get("locations") or []}
        viable = []
        for node in self.nodes.values():
            if not node["public"] or (locations and node["location_id"] not in locations):
                continue
            used = self.node_usage(node["id"])
            memory_cap = node["memory"] * (1 + node["memory_overallocate"] / 100)
            disk_cap = node["disk"] * (1 + node["disk_overallocate"] / 100)
            if used["memory"] + memory <= memory_cap and used["disk"] + disk <= disk_cap:
                viable.append(node["id"])
        if not viable:
            raise _display(NO_VIABLE_NODE, "NoViableNodeException")

        ports: list[int] = []
        ranges: list[tuple[int, int]] = []
        for port in deploy.get("port_range") or []:
            text = str(port)
            if text.isdigit():
                ports.append(int(text))
            match = re.match(r"^(\d{4,5})-(\d{4,5})$", text)
            if match:
                low, high = int(match[1]), int(match[2])
                if abs(high - low) > 1000:
                    raise _display(TOO_MANY_PORTS)
                ranges.append((low, high))

        def port_ok(port: int) -> bool:
            if not ports and not ranges:
                return True
            return port in ports or any(low <= port <= high for low, high in ranges)

        dedicated = deploy.get("dedicated_ip") in (True, 1, "1")
        candidates = []
        for allocation in self.allocations.values():
            if allocation["node_id"] not in viable or allocation["server_id"] is not None:
                continue
            if not port_ok(allocation["port"]):
                continue
            if dedicated and any(
                a["ip"] == allocation["ip"]
                and a["node_id"] == allocation["node_id"]
                and a["server_id"] is not None
                for a in self.allocations.values()
            ):
                continue
            candidates.append(allocation)
        if not candidates:
            raise _display(NO_VIABLE_ALLOCATION, "NoViableAllocationException")
        # The panel picks at random; the lowest id keeps tests deterministic.
        return min(candidates, key=lambda a: a["id"])

    def _validate_variables(self, egg_id: int, fields: dict[str, Any]) -> dict[int, Any]:
        variables = self._variables_of(egg_id)
        data = {
            "environment": {v["env_variable"]: fields.get(v["env_variable"]) for v in variables}
        }
        names = {f"environment.{v['env_variable']}": f"{v['name']} variable" for v in variables}
        Validator(data, names).run(
            [(f"environment.{v['env_variable']}", parse_rules(v["rules"])) for v in variables]
        )
        return {
            v["id"]: "" if fields.get(v["env_variable"]) is None else fields[v["env_variable"]]
            for v in variables
        }

    async def server_details(self, request: Request, body: dict, ctx: dict) -> Response:
        server = ctx["server"]
        Validator(body, {"user": "User ID", "name": "Server Name"}).run(
            [
                (
                    "external_id",
                    [
                        ("sometimes",),
                        ("nullable",),
                        ("string",),
                        ("between", "1", "191"),
                        ("unique", self._unique_server_external_id(server["id"])),
                    ],
                ),
                ("name", [("required",), ("string",), ("min", "1"), ("max", "191")]),
                (
                    "user",
                    [
                        ("required",),
                        ("integer",),
                        ("exists", lambda v: _is_int(v) and int(v) in self.users),
                    ],
                ),
                ("description", [("nullable",), ("string",)]),
            ]
        )
        # The panel takes every field from the input: an omitted external_id is cleared.
        server.update(
            external_id=body.get("external_id"),
            owner_id=int(body["user"]),
            name=body["name"],
            description=body.get("description") or "",
            updated_at=_now(),
        )
        return _json(self._item("server", server, ctx["includes"]))

    async def server_build(self, request: Request, body: dict, ctx: dict) -> Response:
        server = ctx["server"]

        def allocation_ok(value: Any) -> bool:
            return _is_int(value) and int(value) in self.allocations

        def allocation_unique(value: Any) -> bool:
            return not any(
                s["allocation_id"] == int(value) and s["id"] != server["id"]
                for s in self.servers.values()
            )

        rules: list[tuple[str, list[Rule]]] = [
            (
                "allocation",
                [
                    ("required",),
                    ("bail",),
                    ("unique", allocation_unique),
                    ("exists", allocation_ok),
                ],
            ),
            ("oom_disabled", [("sometimes",), ("boolean",)]),
            ("limits", [("sometimes",), ("array",)]),
        ]
        for name, field_rules in self._limit_rules(""):
            nested = [("required_with", "limits") if r == ("required",) else r for r in field_rules]
            legacy = [
                ("required_without", "limits") if r == ("required",) else r for r in field_rules
            ]
            rules.append((f"limits.{name}", nested))
            rules.append((name, legacy))
        rules += [
            ("add_allocations", [("bail",), ("array",)]),
            ("add_allocations.*", [("integer",)]),
            ("remove_allocations", [("bail",), ("array",)]),
            ("remove_allocations.*", [("integer",)]),
            ("feature_limits", [("required",), ("array",)]),
            ("feature_limits.databases", [("present",), ("nullable",), ("integer",), ("min", "0")]),
            (
                "feature_limits.allocations",
                [("sometimes",), ("nullable",), ("integer",), ("min", "0")],
            ),
            ("feature_limits.backups", [("present",), ("nullable",), ("integer",), ("min", "0")]),
        ]
        Validator(
            body,
            {
                "add_allocations": "allocations to add",
                "remove_allocations": "allocations to remove",
                "feature_limits.databases": "Database Limit",
                "feature_limits.allocations": "Allocation Limit",
                "feature_limits.backups": "Backup Limit",
            },
        ).run(rules)

        for allocation_id in body.get("add_allocations") or []:
            allocation = self.allocations.get(int(allocation_id))
            if (
                allocation
                and allocation["server_id"] is None
                and allocation["node_id"] == server["node_id"]
            ):
                allocation["server_id"] = server["id"]
        for allocation_id in body.get("remove_allocations") or []:
            allocation = self.allocations.get(int(allocation_id))
            if allocation and allocation["server_id"] == server["id"]:
                if allocation["id"] == int(body["allocation"]):
                    raise _display(
                        "You are attempting to delete the default allocation for this server "
                        "but there is no fallback allocation to use."
                    )
                allocation["server_id"] = None
        if self.allocations[int(body["allocation"])]["server_id"] != server["id"]:
            raise _display(
                "The requested default allocation is not currently assigned to this server."
            )
        limits = body.get("limits") or {
            k: body[k] for k in ("memory", "swap", "disk", "io", "cpu", "threads") if k in body
        }
        for key in ("memory", "swap", "disk", "io", "cpu"):
            if limits.get(key) is not None:
                server[key] = int(float(limits[key]))
        if "threads" in limits:
            server["threads"] = limits["threads"]
        if "oom_disabled" in body:
            server["oom_disabled"] = body["oom_disabled"] in (True, 1, "1")
        features = body["feature_limits"]
        server["database_limit"] = features.get("databases")
        server["allocation_limit"] = features.get("allocations")
        server["backup_limit"] = features.get("backups")
        server["allocation_id"] = int(body["allocation"])
        server["updated_at"] = _now()
        return _json(self._item("server", server, ctx["includes"]))

    async def suspend(self, request: Request, body: dict, ctx: dict) -> Response:
        ctx["server"]["status"] = "suspended"
        return Response(status_code=204)

    async def unsuspend(self, request: Request, body: dict, ctx: dict) -> Response:
        if ctx["server"]["status"] == "suspended":
            ctx["server"]["status"] = None
        return Response(status_code=204)

    async def reinstall(self, request: Request, body: dict, ctx: dict) -> Response:
        ctx["server"]["status"] = "installing"
        return Response(status_code=204)

    async def delete_server(self, request: Request, body: dict, ctx: dict) -> Response:
        server = ctx["server"]
        for allocation in self.allocations.values():
            if allocation["server_id"] == server["id"]:
                allocation["server_id"] = None
        del self.servers[server["id"]]
        return Response(status_code=204)

    # ----------------------------------------------------------------- nodes, locations, nests

    async def list_nodes(self, request: Request, body: dict, ctx: dict) -> Response:
        return self._paginate(
            request,
            "node",
            list(self.nodes.values()),
            filters=("uuid", "name", "fqdn", "daemon_token_id"),
            sorts=("id", "uuid", "memory", "disk"),
            includes=ctx["includes"],
        )

    async def view_node(self, request: Request, body: dict, ctx: dict) -> Response:
        return _json(self._item("node", ctx["node"], ctx["includes"]))

    async def list_allocations(self, request: Request, body: dict, ctx: dict) -> Response:
        models = [a for a in self.allocations.values() if a["node_id"] == ctx["node"]["id"]]
        return self._paginate(
            request,
            "allocation",
            models,
            filters=("ip", "port", "ip_alias", "server_id"),
            sorts=(),
            includes=ctx["includes"],
        )

    async def list_locations(self, request: Request, body: dict, ctx: dict) -> Response:
        return self._paginate(
            request,
            "location",
            list(self.locations.values()),
            filters=("short", "long"),
            sorts=("id",),
            includes=ctx["includes"],
        )

    async def view_location(self, request: Request, body: dict, ctx: dict) -> Response:
        return _json(self._item("location", ctx["location"], ctx["includes"]))

    async def list_nests(self, request: Request, body: dict, ctx: dict) -> Response:
        return self._paginate(
            request,
            "nest",
            list(self.nests.values()),
            filters=(),
            sorts=(),
            includes=ctx["includes"],
        )

    async def view_nest(self, request: Request, body: dict, ctx: dict) -> Response:
        return _json(self._item("nest", ctx["nest"], ctx["includes"]))

    async def list_eggs(self, request: Request, body: dict, ctx: dict) -> Response:
        # Not paginated in the panel: the nest's eggs as a plain list, no meta.
        eggs = [e for e in self.eggs.values() if e["nest_id"] == ctx["nest"]["id"]]
        return _json(self._collection("egg", eggs, ctx["includes"]))

    async def view_egg(self, request: Request, body: dict, ctx: dict) -> Response:
        return _json(self._item("egg", ctx["egg"], ctx["includes"]))

    # ----------------------------------------------------------------- dispatch

    def _build_routes(self) -> None:
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/users", self.list_users, False),
            ("GET", "/users/{user}", self.view_user, False),
            ("GET", "/users/external/{external_id}", self.external_user, False),
            ("POST", "/users", self.store_user, True),
            ("PATCH", "/users/{user}", self.update_user, True),
            ("DELETE", "/users/{user}", self.delete_user, True),
            ("GET", "/nodes", self.list_nodes, False),
            ("GET", "/nodes/{node}", self.view_node, False),
            ("GET", "/nodes/{node}/allocations", self.list_allocations, False),
            ("GET", "/locations", self.list_locations, False),
            ("GET", "/locations/{location}", self.view_location, False),
            ("GET", "/servers", self.list_servers, False),
            ("GET", "/servers/{server}", self.view_server, False),
            ("GET", "/servers/external/{external_id}", self.external_server, False),
            ("PATCH", "/servers/{server}/details", self.server_details, True),
            ("PATCH", "/servers/{server}/build", self.server_build, True),
            ("POST", "/servers", self.store_server, True),
            ("POST", "/servers/{server}/suspend", self.suspend, True),
            ("POST", "/servers/{server}/unsuspend", self.unsuspend, True),
            ("POST", "/servers/{server}/reinstall", self.reinstall, True),
            ("DELETE", "/servers/{server}", self.delete_server, True),
            ("DELETE", "/servers/{server}/{force}", self.delete_server, True),
            ("GET", "/nests", self.list_nests, False),
            ("GET", "/nests/{nest}", self.view_nest, False),
            ("GET", "/nests/{nest}/eggs", self.list_eggs, False),
            ("GET", "/nests/{nest}/eggs/{egg}", self.view_egg, False),
        ]
        for method, template, handler, write in table:
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
            regex = re.compile(f"^{re.escape(PREFIX)}{pattern}/?$")
            self._routes.append(_Route(method, regex, handler, write))

    def _bind(self, params: dict[str, str]) -> dict[str, Any]:
        """Route model binding (scoped: an egg must belong to the nest in the URL)."""
        tables = {
            "user": self.users,
            "server": self.servers,
            "node": self.nodes,
            "location": self.locations,
            "nest": self.nests,
            "egg": self.eggs,
        }
        ctx: dict[str, Any] = {}
        for name, raw in params.items():
            if name in tables:
                model = tables[name].get(int(raw)) if raw.isdigit() else None
                if model is None:
                    raise _not_found()
                ctx[name] = model
            else:
                ctx[name] = raw
        if "egg" in ctx and ctx["egg"]["nest_id"] != ctx["nest"]["id"]:
            raise _not_found()
        return ctx

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        query = request.url.query
        self.requests.append((request.method, path + (f"?{query}" if query else "")))
        try:
            return await self._handle(request, path)
        except ApiError as error:
            return self._render_error(request, error)
        except ValidationFailed as error:
            return self._render_validation(request, error)

    async def _handle(self, request: Request, path: str) -> Response:
        if self._failures:
            status = self._failures.pop(0)
            if status >= 500:
                raise ApiError(status, "HttpException", UNEXPECTED)
            detail = "Too Many Attempts." if status == 429 else ""
            headers = {"Retry-After": "60"} if status == 429 else None
            code = (
                "ThrottleRequestsException"
                if status == 429
                else HTTP_EXCEPTIONS.get(status, "HttpException")
            )
            raise ApiError(status, code, detail, headers=headers)

        matches = [(r, r.regex.match(path)) for r in self._routes]
        matches = [(r, m) for r, m in matches if m]
        if not matches:
            route_path = path.strip("/")
            raise ApiError(
                404, "NotFoundHttpException", f"The route {route_path} could not be found."
            )
        chosen = next(((r, m) for r, m in matches if r.method == request.method), None)
        if chosen is None:
            allowed = ", ".join(sorted({r.method for r, _ in matches}))
            raise ApiError(
                405,
                "MethodNotAllowedHttpException",
                f"The {request.method} method is not supported for route {path.strip('/')}. "
                f"Supported methods: {allowed}.",
            )
        route, match = chosen

        header = request.headers.get("authorization", "")
        key = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        if key not in (API_KEY, READ_ONLY_KEY):
            raise ApiError(401, "AuthenticationException", "Unauthenticated.")

        raw = await request.body()
        content_type = request.headers.get("content-type", "").lower()
        body: Any = {}
        if "/json" in content_type or "+json" in content_type:
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError as error:
                    raise ApiError(
                        400,
                        "BadRequestHttpException",
                        "The JSON data passed in the request appears to be malformed: Syntax error",
                    ) from error
        elif raw:
            body = dict(parse_qsl(raw.decode(errors="replace")))
        if not isinstance(body, dict):
            body = {}
        body = _normalise(body)

        params = match.groupdict()
        if route.handler == self.delete_server and params.get("force", "force") != "force":
            params["force"] = ""
        ctx = self._bind(params)

        if route.write and key == READ_ONLY_KEY:
            raise ApiError(403, "AuthorizationException", "This action is unauthorized.")

        include = request.query_params.get("include", "")
        ctx["includes"] = [part.strip() for part in include.split(",") if part.strip()]
        return await route.handler(request, body, ctx)

    # ----------------------------------------------------------------- error rendering

    @staticmethod
    def _expects_json(request: Request) -> bool:
        """Laravel's Request::expectsJson()."""
        accept = request.headers.get("accept", "")
        types: list[tuple[float, int, str]] = []
        for index, part in enumerate(p for p in accept.split(",") if p.strip()):
            media, *options = (x.strip() for x in part.split(";"))
            quality = 1.0
            for option in options:
                if option.startswith("q="):
                    with contextlib.suppress(ValueError):
                        quality = float(option[2:])
            types.append((-quality, index, media.lower()))
        types.sort()
        first = types[0][2] if types else ""
        wants_json = "/json" in first or "+json" in first
        ajax = request.headers.get("x-requested-with") == "XMLHttpRequest"
        pjax = request.headers.get("x-pjax") == "true"
        any_type = first in ("", "*/*", "*")
        return wants_json or (ajax and not pjax and any_type)

    def _back(self, request: Request) -> Response:
        target = request.headers.get("referer") or self.url
        return Response(status_code=302, headers={"Location": target})

    def _render_error(self, request: Request, error: ApiError) -> Response:
        if not self._expects_json(request):
            if error.status == 401:
                return Response(status_code=302, headers={"Location": f"{self.url}/auth/login"})
            if error.display:
                return self._back(request)
            page = f"<!DOCTYPE html><html><body><h1>{error.status}</h1></body></html>"
            return Response(page, error.status, headers=error.headers, media_type="text/html")
        envelope = {
            "errors": [{"code": error.code, "status": str(error.status), "detail": error.detail}]
        }
        return _json(envelope, error.status, error.headers)

    def _render_validation(self, request: Request, error: ValidationFailed) -> Response:
        if not self._expects_json(request):
            return self._back(request)
        items = [
            {
                "code": "ValidationException",
                "status": "422",
                "detail": message,
                "meta": {"source_field": source, "rule": rule},
            }
            for source, rule, message in error.failures
        ]
        return _json({"errors": items}, 422)

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on ``self.port`` (again, after stop())."""
        await self._listener.start()

    async def stop(self) -> None:
        """Stop listening (clients get connection refused); the state stays."""
        await self._listener.stop()


@contextlib.asynccontextmanager
async def running_pterodactyl(
    *, seed: bool = True, port: int = 0
) -> AsyncIterator[PterodactylPeer]:
    """Serve a fresh panel (seeded unless ``seed=False``) on ``port`` (0: any free)."""
    sock = bind_loopback(port)
    peer = PterodactylPeer(port=sock.getsockname()[1])
    peer._build_routes()
    if seed:
        peer._seed()
    await peer._listener.start(sock)
    try:
        yield peer
    finally:
        await peer.stop()
