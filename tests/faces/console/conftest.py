"""The console in-process (httpx over ASGI, cookies kept like a browser's), and staff.

``admin`` and ``moderator`` are clients already signed in; ``form_token`` reads the
CSRF token a page carries, as a browser would send it back with the page's forms.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Role
from guildhall.faces.console.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR

STAFF_PASSWORD = "correct horse battery staple"
CONSOLE_URL = "http://console.test"


def form_token(page: str) -> str:
    """The CSRF token of the first form on ``page``."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, f"no CSRF token on the page:\n{page[:2000]}"
    return found.group(1)


async def make_staff(runtime: Runtime, username: str, role: Role) -> int:
    async with runtime.database.unit_of_work() as session:
        account = await accounts.create(
            session,
            username=username,
            email=f"{username}@example.com",
            password=STAFF_PASSWORD,
            role=role,
            actor=TEST_ACTOR,
        )
        return account.id


async def sign_in(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    page = await client.get("/sign-in")
    return await client.post(
        "/sign-in",
        data={"csrf": form_token(page.text), "login": login, "password": password, "next": "/"},
    )


@pytest.fixture
async def console(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The console with no one signed in."""
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as client:
        yield client


async def _signed_in(runtime: Runtime, username: str, role: Role) -> httpx.AsyncClient:
    await make_staff(runtime, username, role)
    transport = httpx.ASGITransport(app=create_app(runtime))
    client = httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL)
    answer = await sign_in(client, username, STAFF_PASSWORD)
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
async def admin(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The console, signed in as an administrator (``root``)."""
    client = await _signed_in(runtime, "root", Role.ADMIN)
    yield client
    await client.aclose()


@pytest.fixture
async def moderator(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The console, signed in as a moderator (``mod``)."""
    client = await _signed_in(runtime, "mod", Role.MODERATOR)
    yield client
    await client.aclose()


async def post_form(
    client: httpx.AsyncClient, page_path: str, action: str, fields: dict[str, str]
) -> httpx.Response:
    """Open ``page_path`` and send ``fields`` to ``action`` with the page's CSRF token."""
    page = await client.get(page_path)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf": form_token(page.text), **fields})
