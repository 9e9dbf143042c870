from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from guildhall.core.sessions.models import BotSession, SessionBackup
from guildhall.events.models import AuditEntry, OutboxEvent
from guildhall.faces.ld7.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR

PAIRING_CODE = r"[A-HJKMNP-Z2-9]{4}-[A-HJKMNP-Z2-9]{4}"
"""ABCD-1234: eight characters, none of 0, O, 1, I or L."""

BOT = {"userId": "bot_1234567890", "phoneNumber": "1234567890"}


def client_for(runtime: Runtime, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime), client=(peer, 50123))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.fixture
async def ld7(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The LD7 face as it runs by default: no key configured, on loopback."""
    async with client_for(runtime) as client:
        yield client


@dataclass(frozen=True)
class Counts:
    sessions: int
    backups: int
    audit: int
    events: int


async def counts(runtime: Runtime) -> Counts:
    async with runtime.database.unit_of_work(write=False) as session:

        async def count(model: type) -> int:
            return await session.scalar(select(func.count()).select_from(model)) or 0

        return Counts(
            await count(BotSession),
            await count(SessionBackup),
            await count(AuditEntry),
            await count(OutboxEvent),
        )


async def pair(runtime: Runtime, handle: str, code: str) -> None:
    """What ``guildhall sessions pair`` does: the phone enters the code."""
    await runtime.sessions.complete_pairing(handle, code, TEST_ACTOR)


async def online_bot(ld7: httpx.AsyncClient, runtime: Runtime, handle: str = BOT["userId"]) -> None:
    created = await ld7.post("/api/sessions", json={**BOT, "userId": handle})
    assert created.status_code == 200, created.text
    await pair(runtime, handle, created.json()["pairingCode"])
