"""The ``virtfusion`` hosting driver: each server is a VirtFusion virtual machine.

VirtFusion's REST API (``/api/v1``, a Bearer token, objects wrapped in
``data``) through httpx. A server is made in two calls: ``POST /servers``
(the configured package and hypervisor group, the plan's cores, memory and
storage, for the owner's VirtFusion user, found by ``extRelationId`` = the
account id or made) and ``POST /servers/{id}/build`` with the OS template the
plan's image names; a build that fails deletes the half-made server. Power is
``POST /servers/{id}/power/{boot|shutdown|restart|poweroff}``: stop and
shutdown are a shutdown followed by a poweroff once the grace period has
passed, kill is a poweroff. VirtFusion judges the transitions: its 409 is
the conflict SkyPANEL shows.

VirtFusion sends no events, so the state shown is the hypervisor's as last
read (``GET /servers/{id}?remoteState=true``): on open, after each action,
and by the runtime's poll; a request never waits on VirtFusion.

Where VirtFusion's documentation is silent on an error body, the message is
read from ``message`` (Laravel's shape) and the first of ``errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from guildhall.config import VirtFusionSettings
from guildhall.connectors.http import json_api
from guildhall.core.hosting.driver import DriverError, ServerSpec

POLL_SECONDS = 0.2


class _Gone(DriverError):
    """VirtFusion answered 404."""


class VirtFusionDriver:
    name = "virtfusion"
    judges_transitions = True
    polled = True

    def __init__(self, settings: VirtFusionSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._client = json_api(f"{self.url}/api/v1", settings.api_token, settings.timeout_seconds)
        self._running: dict[str, bool] = {}  # server id -> running, as last read

    async def open(self) -> None:
        """Nothing to hold open: the states are read by ``refresh``."""

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, what: str
    ) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise DriverError(
                f"{what}: VirtFusion at {self.url} cannot be reached ({reason})", unavailable=True
            ) from None
        if response.status_code >= 400:
            raise self._refusal(response, what)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise DriverError(f"{what}: VirtFusion answered something that is not its JSON")
        return found

    def _refusal(self, response: httpx.Response, what: str) -> DriverError:
        try:
            found = response.json()
        except ValueError:
            found = {}
        message = found.get("message") if isinstance(found, dict) else None
        errors = found.get("errors") if isinstance(found, dict) else None
        if isinstance(errors, dict) and errors:
            first = next(iter(errors.values()))
            message = first[0] if isinstance(first, list) and first else message
        text = f"{what}: {message or response.reason_phrase}"
        status = response.status_code
        if status == 404:
            return _Gone(text)
        if status == 409:
            return DriverError(text, conflict=True)
        if status in (401, 403):
            return DriverError(f"{what}: VirtFusion refused [hosting.virtfusion] api_token")
        return DriverError(text, unavailable=status == 423 or status >= 500)

    # ---- state ------------------------------------------------------------------

    def ip_address(self, spec: ServerSpec) -> str:
        return ""  # VirtFusion assigns it when the server is made

    def is_running(self, runtime_ref: str | None) -> bool:
        return runtime_ref is not None and self._running.get(runtime_ref, False)

    async def _read_state(self, runtime_ref: str) -> bool:
        found = await self._call(
            "GET", f"/servers/{runtime_ref}?remoteState=true", what="state unknown"
        )
        remote = (found.get("data") or {}).get("remoteState") or {}
        running = bool(remote.get("running")) if isinstance(remote, dict) else False
        self._running[runtime_ref] = running
        return running

    async def refresh(self, runtime_refs: list[str]) -> None:
        """Read the hypervisor's state of each server (one that is gone reads stopped)."""
        for ref in runtime_refs:
            try:
                await self._read_state(ref)
            except _Gone:
                self._running[ref] = False

    # ---- making and removing ------------------------------------------------------

    async def _user_id(self, spec: ServerSpec) -> int:
        try:
            found = await self._call(
                "GET", f"/users/{spec.owner_id}/byExtRelation", what="the owner is unknown"
            )
        except _Gone:
            found = await self._call(
                "POST",
                "/users",
                body={
                    "name": spec.owner_name,
                    "email": spec.owner_email,
                    "extRelationId": spec.owner_id,
                },
                what="the owner could not be made a VirtFusion user",
            )
        return int(found["data"]["id"])

    async def provision(self, spec: ServerSpec) -> str:
        template = self.settings.templates.get(spec.image)
        if template is None:
            raise DriverError(f"image {spec.image!r} is not under [hosting.virtfusion] templates")
        user_id = await self._user_id(spec)
        made = await self._call(
            "POST",
            "/servers",
            body={
                "packageId": self.settings.package_id,
                "userId": user_id,
                "hypervisorId": self.settings.hypervisor_group_id,
                "ipv4": 1,
                "storage": spec.disk_gb,
                "memory": spec.memory_mb,
                "cpuCores": spec.vcpus,
            },
            what="the server could not be made",
        )
        ref = str(made["data"]["id"])
        try:
            await self._call(
                "POST",
                f"/servers/{ref}/build",
                body={"operatingSystemId": template, "name": spec.public_id},
                what="the server could not be built",
            )
        except DriverError:
            await self.remove(ref)
            raise
        self._running[ref] = False
        return ref

    async def remove(self, runtime_ref: str | None, public_id: str = "") -> None:
        if runtime_ref is None:
            return
        with contextlib.suppress(_Gone):
            await self._call(
                "DELETE", f"/servers/{runtime_ref}?delay=0", what="the server could not be removed"
            )
        self._running.pop(runtime_ref, None)

    # ---- power --------------------------------------------------------------------

    async def _power(self, runtime_ref: str, action: str, what: str) -> None:
        await self._call("POST", f"/servers/{runtime_ref}/power/{action}", what=what)
        await self._read_state(runtime_ref)

    async def start(self, spec: ServerSpec, runtime_ref: str | None) -> str:
        if runtime_ref is None:
            raise DriverError("start refused: the server was never made on VirtFusion")
        await self._power(runtime_ref, "boot", "start refused")
        return runtime_ref

    async def stop(self, runtime_ref: str, grace: float) -> None:
        await self.shutdown(runtime_ref, grace)

    async def shutdown(self, runtime_ref: str, grace: float) -> None:
        """A shutdown; a poweroff if the guest is still running after ``grace``."""
        await self._power(runtime_ref, "shutdown", "shutdown refused")
        deadline = time.monotonic() + grace
        while self._running.get(runtime_ref):
            if time.monotonic() >= deadline:
                await self.kill(runtime_ref)
                return
            await asyncio.sleep(POLL_SECONDS)
            await self._read_state(runtime_ref)

    async def kill(self, runtime_ref: str) -> None:
        await self._power(runtime_ref, "poweroff", "kill refused")

    async def restart(self, spec: ServerSpec, runtime_ref: str, grace: float) -> str:
        await self._power(runtime_ref, "restart", "restart refused")
        return runtime_ref
