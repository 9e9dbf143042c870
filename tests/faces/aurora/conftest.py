from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from guildhall.core.accounts.service import AccountRef
from guildhall.core.economy.models import LedgerEntry
from guildhall.core.items.models import InventoryEntry, Item, ItemImage
from guildhall.core.moderation.models import ModerationCase
from guildhall.events.models import AuditEntry, OutboxEvent
from guildhall.faces.aurora.app import create_app
from guildhall.runtime import Runtime
from tests.conftest import make_account

POTION = {
    "name": "Health Potion",
    "description": "Restores HP",
    "type": "CONSUMABLE",
    "rarity": "C",
    "price": "100",
    "iconUrl": "/assets/items/placeholder.png",
    "imageUrl": "/assets/items/placeholder.png",
    "usageData": {"consume": True, "effects": []},
}


def client_for(runtime: Runtime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.fixture
async def aurora(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The Aurora face as it runs by default: no key, on loopback."""
    async with client_for(runtime) as client:
        yield client


@pytest.fixture
async def player(runtime: Runtime) -> AccountRef:
    return await make_account(runtime, "Player1", discord="123456789012345678")


def image_bytes(kind: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=kind)
    return buffer.getvalue()


@dataclass(frozen=True)
class Counts:
    items: int
    images: int
    inventory: int
    cases: int
    ledger: int
    audit: int
    events: int


async def counts(runtime: Runtime) -> Counts:
    async with runtime.database.unit_of_work(write=False) as session:

        async def count(model: type) -> int:
            return await session.scalar(select(func.count()).select_from(model)) or 0

        return Counts(
            *[
                await count(model)
                for model in (
                    Item,
                    ItemImage,
                    InventoryEntry,
                    ModerationCase,
                    LedgerEntry,
                    AuditEntry,
                    OutboxEvent,
                )
            ]
        )


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"error", "details"} and body["error"]
    return body.get("details", "")
