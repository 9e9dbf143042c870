"""A NUL in an email or a server id is an unknown one, on every database.

PostgreSQL refuses any text holding a NUL, even to compare it: before these
were checked in the face, such a login or server id was a 500.
"""

from __future__ import annotations

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from tests.faces.skypanel.conftest import PASSWORD, envelope_error


@pytest.mark.parametrize("email", ["user@example.com\u0000", "\u0000"])
async def test_an_email_with_a_nul_is_an_unknown_email(
    skypanel: httpx.AsyncClient, user: AccountRef, email: str
) -> None:
    response = await skypanel.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert envelope_error(response, 401, "UNAUTHORIZED")["message"] == "Invalid email or password"


async def test_a_server_id_with_a_nul_is_not_found(api: httpx.AsyncClient) -> None:
    error = envelope_error(await api.get("/api/servers/server-1%00"), 404, "NOT_FOUND")
    assert error["details"] == {"resource": "server", "id": "server-1\u0000"}


async def test_powering_a_server_id_with_a_nul_is_not_found(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/servers/%00/power", json={"action": "start"})
    assert envelope_error(response, 404, "NOT_FOUND")["details"] == {
        "resource": "server",
        "id": "\u0000",
    }
    # The action is still checked first, as for any id.
    response = await api.post("/api/servers/%00/power", json={"action": "fly"})
    envelope_error(response, 400, "VALIDATION_ERROR")
