"""Settings documents that grow by merges stop at their caps (core/community/service.py):
Aurora's ``POST /api/settings`` and Rustmail's ``PUT /api/bot/config`` share the merge.
An 8 MB document once made every later request touching it 150 times slower."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from guildhall.core.community import service as community
from guildhall.core.community.models import BotSettings
from guildhall.core.errors import Invalid
from guildhall.core.support import service as support
from guildhall.events.models import AuditEntry
from guildhall.faces import FACES
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.rustmail.conftest import ADMIN, logged_in


@dataclass
class Face:
    """A face's settings route, its seed example and how it words a refusal."""

    name: str
    client: httpx.AsyncClient
    method: str
    path: str
    example: dict[str, Any]

    async def merge(self, update: Any) -> httpx.Response:
        return await self.client.request(self.method, self.path, json=update)

    async def merge_raw(self, raw: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        return await self.client.request(self.method, self.path, content=raw, headers=headers)

    async def document(self) -> dict[str, Any]:
        response = await self.client.get(self.path)
        assert response.status_code == 200, response.text
        return response.json()

    def refusal(self, response: httpx.Response) -> str:
        """The documented 400, whose message it returns."""
        assert response.status_code == 400, response.text
        body = response.json()
        if self.name == "aurora":
            assert set(body) == {"error", "details"} and body["error"] == "Validation failed"
            return body["details"]
        assert set(body) == {"error", "code"} and body["code"] == "BAD_REQUEST"
        return body["error"]


@pytest.fixture(params=["aurora", "rustmail"])
async def face(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Face]:
    name = request.param
    transport = httpx.ASGITransport(app=FACES[name](runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        if name == "aurora":
            yield Face(name, client, "POST", "/api/settings", {"prefix": "?"})
        else:
            runtime.settings.faces.rustmail.super_admin_users.append(ADMIN)
            client.cookies.set("rustmail_session", await logged_in(runtime, ADMIN))
            yield Face(
                name, client, "PUT", "/api/bot/config", {"bot": {"status": "Updated status"}}
            )


async def audit_rows(runtime: Runtime) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return await session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def new_keys(batch: int, size: int) -> dict[str, Any]:
    """About ``size`` bytes of JSON in keys nobody has sent before."""
    return {f"custom_{batch:03}": {"note": "x" * (size - 40)}}


async def test_an_8_mb_merge_is_refused_and_changes_nothing(face: Face, runtime: Runtime) -> None:
    before, rows = await face.document(), await audit_rows(runtime)
    huge = {f"key{i:07}": "v" * 60 for i in range(8 * 1024 * 1024 // 72)}
    raw = orjson.dumps(huge)
    assert len(raw) >= 8 * 1024 * 1024
    face.refusal(await face.merge_raw(raw))
    # Under the 1 MB body limit, still over the document's 64 KB.
    message = face.refusal(await face.merge({"blob": "x" * 200_000}))
    assert f"at most {community.MAX_DOCUMENT_BYTES // 1024} KB" in message
    assert await face.document() == before
    assert await audit_rows(runtime) == rows


async def test_repeated_small_merges_stop_at_the_cap(face: Face, runtime: Runtime) -> None:
    answers = [(await face.merge(new_keys(batch, 1024))).status_code for batch in range(100)]
    accepted = answers.count(200)
    # Accepted until the cap, refused from then on.
    assert 50 <= accepted < 70
    assert answers == [200] * accepted + [400] * (100 - accepted)
    full = await face.document()
    assert len(orjson.dumps(full)) <= community.MAX_DOCUMENT_BYTES
    assert f"custom_{accepted - 1:03}" in full and f"custom_{accepted:03}" not in full
    rows = await audit_rows(runtime)
    message = face.refusal(await face.merge(new_keys(100, 1024)))
    assert "64 KB" in message
    assert await face.document() == full
    assert await audit_rows(runtime) == rows
    # Changing a value in place still works at the cap, and so do the seed's examples.
    smaller = await face.merge({"custom_000": {"note": "short"}})
    assert smaller.status_code == 200, smaller.text
    assert (await face.merge(face.example)).status_code == 200


async def test_too_many_keys_or_levels_are_refused(face: Face, runtime: Runtime) -> None:
    before = await face.document()
    many = {f"k{i}": 0 for i in range(community.MAX_DOCUMENT_KEYS)}
    assert len(orjson.dumps(many)) < community.MAX_DOCUMENT_BYTES
    message = face.refusal(await face.merge({"many": many}))
    assert f"at most {community.MAX_DOCUMENT_KEYS} keys" in message
    listed = {"list": list(range(community.MAX_DOCUMENT_KEYS))}
    face.refusal(await face.merge(listed))
    assert await face.document() == before


async def test_the_seed_examples_still_merge(face: Face) -> None:
    response = await face.merge(face.example)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    document = await face.document()
    if face.name == "aurora":
        assert document["prefix"] == "?"
        maintenance = await face.client.post(
            "/api/actions/maintenance-mode", json={"enabled": True, "reason": "Updating..."}
        )
        assert maintenance.status_code == 200, maintenance.text
        assert (await face.client.get("/api/health")).json()["maintenance"] is True
    else:
        assert document["bot"]["status"] == "Updated status"


@pytest.mark.parametrize("name", ["aurora", "rustmail"])
async def test_a_document_stored_over_the_cap_can_be_trimmed(runtime: Runtime, name: str) -> None:
    """As a document merged before the caps existed: changes that do not grow it are
    taken, so the operator can replace its bulk by null; growing it is refused."""
    document = community.AURORA_SETTINGS if name == "aurora" else support.CONFIG
    async with runtime.database.unit_of_work() as session:
        session.add(BotSettings(id=document.id, document={"bulk": "x" * 100_000}))
    async with runtime.database.unit_of_work() as session:
        with pytest.raises(Invalid, match="64 KB"):
            await community.merge_settings(session, {"more": "y"}, TEST_ACTOR, document=document)
    async with runtime.database.unit_of_work() as session:
        trimmed = await community.merge_settings(
            session, {"bulk": None}, TEST_ACTOR, document=document
        )
    assert trimmed["bulk"] is None
    assert len(orjson.dumps(trimmed)) < community.MAX_DOCUMENT_BYTES
