from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.runtime import Runtime
from tests.conftest import make_account, make_key


@pytest.fixture
async def api(heliactyl: httpx.AsyncClient, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The face with a valid ``heliactyl`` key in ``Authorization: Bearer``."""
    heliactyl.headers["Authorization"] = f"Bearer {await make_key(runtime, 'heliactyl')}"
    yield heliactyl


@pytest.fixture
async def user(runtime: Runtime) -> AccountRef:
    """The document's example user, Discord id 123456789."""
    return await make_account(runtime, "user123", discord="123456789", email="user@example.com")
