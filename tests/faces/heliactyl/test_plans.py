"""``POST /api/v3/setplan`` and ``POST /api/v3/setresources``.

setplan: "package" (optional) names a package from the configuration; omit
it to remove the package. Errors "missing body", "missing id", "invalid id",
"invalid package".

setresources: ram, disk, cpu, servers (each optional, 0-999999999999999);
"You can set individual resources without affecting others"; "Setting all
resources to 0 removes the extra resource allocation". Errors "missing body",
"missing id", "invalid id", "ram size", "disk size", "cpu size", "server
size", "missing variables".
"""

from __future__ import annotations

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.runtime import Runtime
from tests.faces.heliactyl.state import assert_refused


async def _package(api: httpx.AsyncClient) -> dict[str, object]:
    return (await api.get("/api/v3/userinfo", params={"id": "123456789"})).json()["package"]


async def test_setplan_assigns_and_removes_a_package(
    api: httpx.AsyncClient, user: AccountRef
) -> None:
    response = await api.post("/api/v3/setplan", json={"id": "123456789", "package": "premium"})
    assert response.json() == {"status": "success"}
    assert await _package(api) == {
        "name": "premium",
        "ram": 8192,
        "disk": 40960,
        "cpu": 400,
        "servers": 6,
    }
    removed = await api.post("/api/v3/setplan", json={"id": "123456789"})
    assert removed.json() == {"status": "success"}
    assert (await _package(api))["name"] == "default"


async def test_the_documents_package_2_exists(api: httpx.AsyncClient, user: AccountRef) -> None:
    response = await api.post("/api/v3/setplan", json={"id": "123456789", "package": "2"})
    assert response.json() == {"status": "success"}
    assert (await _package(api))["name"] == "2"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", "missing body"),
        (b"not json", "missing body"),
        (b"{}", "missing id"),
        (b'{"id": 1}', "missing id"),
        (b'{"id": "nobody", "package": "premium"}', "invalid id"),
        (b'{"id": "123456789", "package": "platinum"}', "invalid package"),
    ],
)
async def test_setplan_errors_change_nothing(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, body: bytes, status: str
) -> None:
    await api.post("/api/v3/setplan", json={"id": "123456789", "package": "premium"})
    await assert_refused(api, runtime, user.id, "/api/v3/setplan", body, status)


async def _extra(api: httpx.AsyncClient) -> dict[str, int]:
    return (await api.get("/api/v3/userinfo", params={"id": "123456789"})).json()["extra"]


async def test_setresources_changes_only_the_fields_given(
    api: httpx.AsyncClient, user: AccountRef
) -> None:
    body = {"id": "123456789", "ram": 1024, "disk": 5120, "cpu": 50, "servers": 1}
    assert (await api.post("/api/v3/setresources", json=body)).json() == {"status": "success"}
    assert await _extra(api) == {"ram": 1024, "disk": 5120, "cpu": 50, "servers": 1}
    await api.post("/api/v3/setresources", json={"id": "123456789", "ram": 2048})
    assert await _extra(api) == {"ram": 2048, "disk": 5120, "cpu": 50, "servers": 1}


async def test_all_zero_removes_the_extra_allocation(
    api: httpx.AsyncClient, user: AccountRef
) -> None:
    await api.post("/api/v3/setresources", json={"id": "123456789", "ram": 1024, "servers": 2})
    body = {"id": "123456789", "ram": 0, "disk": 0, "cpu": 0, "servers": 0}
    assert (await api.post("/api/v3/setresources", json=body)).json() == {"status": "success"}
    assert await _extra(api) == {"ram": 0, "disk": 0, "cpu": 0, "servers": 0}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", "missing body"),
        (b"{}", "missing id"),
        (b'{"id": "nobody", "ram": 5}', "invalid id"),
        (b'{"id": "123456789"}', "missing variables"),
        (b'{"id": "123456789", "ram": -1}', "ram size"),
        (b'{"id": "123456789", "disk": 1000000000000000}', "disk size"),
        (b'{"id": "123456789", "cpu": 1.5}', "cpu size"),
        (b'{"id": "123456789", "servers": "2"}', "server size"),
        (b'{"id": "123456789", "ram": 512, "servers": -3}', "server size"),
    ],
)
async def test_setresources_errors_change_nothing(
    api: httpx.AsyncClient, runtime: Runtime, user: AccountRef, body: bytes, status: str
) -> None:
    await api.post("/api/v3/setresources", json={"id": "123456789", "ram": 100, "servers": 1})
    await assert_refused(api, runtime, user.id, "/api/v3/setresources", body, status)
