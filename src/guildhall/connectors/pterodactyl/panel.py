"""The Pterodactyl panel's application API, as the core's :class:`GamePanel`.

A thin httpx client rather than a wrapper library: the ten calls needed are
plain JSON over HTTP, httpx is already how Guildhall speaks HTTP, and the
maintained wrappers (py-dactyl's async client among them) hide the panel's
error envelope and status codes that the operator needs to read, and choose
their own timeouts. Every call sends ``Accept: application/json``: without it
the panel answers a failed validation with a redirect to a web page.

The panel's refusals become one sentence (``PanelError``); a panel that is
down, slow or failing (a timeout, 429, 5xx) is ``transient``, so a job is
retried and a request answers "try again later".

Where the panel is silent:

- A panel username is the account's, lowercased, with every character the
  panel refuses replaced by ``_`` and padded to the panel's 3-character minimum.
- Egg variables the operator does not set take the egg's defaults; all values
  are sent as strings, as the panel stores them.
- New servers get no databases, backups or extra allocations: Heliactyl's
  packages count RAM, disk, CPU and servers only.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import httpx

from guildhall.config import PterodactylSettings
from guildhall.connectors.http import json_api
from guildhall.core.hosting.panel import GameServerSpec, PanelError, PanelPerson

PAGE_SIZE = 100
FEW_USERS = 5  # up to this many users are fetched one by one, more by listing pages
_NOT_USERNAME = re.compile(r"[^a-z0-9_.-]")


class _Gone(PanelError):
    """The panel answered 404: the object is not (or no longer) there."""


@dataclass(frozen=True, slots=True)
class _Egg:
    id: int
    docker_image: str
    startup: str
    defaults: dict[str, str]


def panel_username(username: str) -> str:
    """``username`` as the panel accepts it: ``^[a-z0-9]([\\w.-]+)[a-z0-9]$``."""
    name = _NOT_USERNAME.sub("_", username.lower()).strip("_.-") or "user"
    return name.ljust(3, "0")[:191]


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Pterodactyl:
    """One panel, one application key; implements ``core.hosting.panel.GamePanel``."""

    def __init__(self, settings: PterodactylSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._client = json_api(
            f"{self.url}/api/application", settings.api_key, settings.timeout_seconds
        )
        self._eggs: dict[int, _Egg] = {}

    async def close(self) -> None:
        await self._client.aclose()

    # ---- the wire -----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, params=params, json=body)
        except httpx.TimeoutException:
            raise PanelError(
                f"the Pterodactyl panel at {self.url} did not answer within "
                f"{self.settings.timeout_seconds:g} s",
                transient=True,
            ) from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise PanelError(
                f"the Pterodactyl panel at {self.url} cannot be reached ({reason})", transient=True
            ) from None
        if response.status_code >= 400:
            raise self._refusal(response)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise PanelError(
                f"the Pterodactyl panel at {self.url} answered {method} {path} with something "
                "that is not its JSON (is [pterodactyl] url the panel's address?)",
                transient=True,
            )
        return found

    def _refusal(self, response: httpx.Response) -> PanelError:
        """The panel's error envelope (``errors: [{code, status, detail}]``) in one sentence."""
        try:
            errors = response.json().get("errors") or []
            details = [str(e.get("detail") or e.get("code")) for e in errors if isinstance(e, dict)]
        except (ValueError, AttributeError):
            details = []
        detail = "; ".join(dict.fromkeys(details)) or response.reason_phrase
        status = response.status_code
        if status == 401:
            return PanelError(f"the Pterodactyl panel refused [pterodactyl] api_key ({detail})")
        if status == 403:
            return PanelError(
                "the Pterodactyl panel does not let [pterodactyl] api_key do this "
                f"({detail}); give the key read and write on users, servers, nodes, "
                "allocations, locations, nests and eggs"
            )
        if status == 404:
            return _Gone(f"the Pterodactyl panel has no {response.request.url.path} ({detail})")
        if status == 422:
            return PanelError(f"the Pterodactyl panel refused the request: {detail}")
        if status == 429 or status >= 500:
            return PanelError(
                f"the Pterodactyl panel failed ({status}: {detail}); try again later",
                transient=True,
            )
        return PanelError(f"the Pterodactyl panel refused: {detail}")

    async def _pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every object of a list, page by page."""
        objects: list[dict[str, Any]] = []
        page = 1
        while True:
            found = await self._call(
                "GET", path, params={**params, "per_page": PAGE_SIZE, "page": page}
            )
            objects.extend(found.get("data") or [])
            pagination = (found.get("meta") or {}).get("pagination") or {}
            if page >= int(pagination.get("total_pages") or 1):
                return objects
            page += 1

    # ---- users --------------------------------------------------------------------

    async def find_or_create_user(self, person: PanelPerson) -> int:
        found = await self._find_user(person)
        if found is not None:
            return found
        try:
            created = await self._call(
                "POST",
                "/users",
                body={
                    "email": person.email,
                    "username": panel_username(person.username),
                    "first_name": person.first_name[:191],
                    "last_name": person.last_name[:191],
                    "external_id": person.external_id,
                },
            )
        except PanelError:
            # Another process may have made this very user meanwhile (the email is taken).
            found = await self._find_user(person)
            if found is None:
                raise
            return found
        return int(created["attributes"]["id"])

    async def _find_user(self, person: PanelPerson) -> int | None:
        """By external id, then email; exact matches only (the panel's filters match
        parts). A user found by email is taken only if no other account claimed it."""
        for field, value in (("external_id", person.external_id), ("email", person.email)):
            found = await self._call("GET", "/users", params={f"filter[{field}]": value})
            for user in found.get("data") or []:
                attributes = user["attributes"]
                if str(attributes.get(field) or "").lower() != value.lower():
                    continue
                claimed = attributes.get("external_id")
                if field == "email" and claimed and claimed != person.external_id:
                    continue
                return int(attributes["id"])
        return None

    async def users_with_servers(self, ids: set[int]) -> dict[int, dict[str, Any]]:
        if len(ids) <= FEW_USERS:
            found: dict[int, dict[str, Any]] = {}
            for user_id in sorted(ids):
                try:
                    found[user_id] = await self._call(
                        "GET", f"/users/{user_id}", params={"include": "servers"}
                    )
                except _Gone:
                    continue
            return found
        every = await self._pages("/users", {"include": "servers"})
        return {
            int(user["attributes"]["id"]): user
            for user in every
            if int(user["attributes"]["id"]) in ids
        }

    # ---- servers ------------------------------------------------------------------

    async def _egg(self, egg_id: int) -> _Egg:
        """The egg's image, startup and variable defaults (eggs live under their nest)."""
        if egg_id in self._eggs:
            return self._eggs[egg_id]
        for nest in await self._pages("/nests", {}):
            nest_id = nest["attributes"]["id"]
            try:
                found = await self._call(
                    "GET", f"/nests/{nest_id}/eggs/{egg_id}", params={"include": "variables"}
                )
            except _Gone:
                continue
            attributes = found["attributes"]
            variables = attributes.get("relationships", {}).get("variables", {}).get("data", [])
            egg = _Egg(
                id=egg_id,
                docker_image=attributes.get("docker_image") or "",
                startup=attributes.get("startup") or "",
                defaults={
                    v["attributes"]["env_variable"]: v["attributes"].get("default_value") or ""
                    for v in variables
                },
            )
            self._eggs[egg_id] = egg
            return egg
        raise PanelError(f"the Pterodactyl panel has no egg #{egg_id} (see [pterodactyl.eggs])")

    async def create_server(self, spec: GameServerSpec) -> int:
        chosen = self.settings.eggs[spec.egg]
        egg = await self._egg(chosen.egg_id)
        environment = egg.defaults | {k: _text(v) for k, v in chosen.environment.items()}
        created = await self._call(
            "POST",
            "/servers",
            body={
                "external_id": spec.external_id,
                "name": spec.name,
                "user": spec.owner_panel_id,
                "egg": egg.id,
                "docker_image": chosen.docker_image or egg.docker_image,
                "startup": chosen.startup or egg.startup,
                "environment": environment,
                "limits": {
                    "memory": spec.ram,
                    "swap": 0,
                    "disk": spec.disk,
                    "io": 500,
                    "cpu": spec.cpu,
                },
                "feature_limits": {"databases": 0, "allocations": 0, "backups": 0},
                "deploy": {
                    "locations": list(self.settings.location_ids),
                    "dedicated_ip": False,
                    "port_range": [],
                },
            },
        )
        return int(created["attributes"]["id"])

    async def find_server(self, external_id: str) -> int | None:
        try:
            found = await self._call("GET", f"/servers/external/{external_id}")
        except _Gone:
            return None
        return int(found["attributes"]["id"])

    async def delete_server(self, panel_id: int) -> None:
        try:
            await self._call("DELETE", f"/servers/{panel_id}")
        except _Gone:
            return

    async def set_suspended(self, panel_id: int, suspended: bool) -> None:
        """Suspend or unsuspend; a server already gone from the panel needs neither."""
        action = "suspend" if suspended else "unsuspend"
        with contextlib.suppress(_Gone):
            await self._call("POST", f"/servers/{panel_id}/{action}")
