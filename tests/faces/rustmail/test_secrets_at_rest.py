"""Issue 15: the bot's secrets are sealed at rest.

PUT /api/bot/config {"bot": {"token": ...}} stores the token sealed with the
installation secret; GET /api/bot/config shows it masked, as before ("Sensitive
fields (token, secrets) are not returned"). A token stored in plain text by an
older version is sealed when the database is prepared for serving.
"""

from __future__ import annotations

import httpx
from sqlalchemy import select, text

from guildhall.core.community import service as community
from guildhall.core.support import service as support
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR

TOKEN = "MTA1OTk2.bot-token-that-must-not-leak"
CLIENT_SECRET = "client-secret-that-must-not-leak"


async def _raw_document(runtime: Runtime) -> str:
    """The configuration row as the database holds it, read as text."""
    async with runtime.database.unit_of_work(write=False) as session:
        raw = await session.scalar(
            text("SELECT CAST(document AS TEXT) FROM bot_settings WHERE id = :id"),
            {"id": support.CONFIG.id},
        )
    assert raw is not None
    return raw


async def _plaintext(runtime: Runtime, name: str) -> str:
    async with runtime.database.unit_of_work(write=False) as session:
        return await support.bot_secret(session, name, runtime.secrets.sealer(support.SEAL_PURPOSE))


async def test_put_config_stores_the_token_sealed(rt: Runtime, admin: httpx.AsyncClient) -> None:
    sent = {"bot": {"token": TOKEN, "client_secret": CLIENT_SECRET, "status": "Open"}}
    assert (await admin.put("/api/bot/config", json=sent)).json() == {"success": True}
    raw = await _raw_document(rt)
    assert TOKEN not in raw and CLIENT_SECRET not in raw and "MTA1OTk2" not in raw
    assert "Open" in raw  # the rest of the document is stored as it was sent
    assert await _plaintext(rt, "token") == TOKEN
    assert await _plaintext(rt, "client_secret") == CLIENT_SECRET

    shown = (await admin.get("/api/bot/config")).json()
    assert shown["bot"]["token"] == "********" and shown["bot"]["client_secret"] == "********"
    assert TOKEN not in (await admin.get("/api/bot/config")).text
    shown["bot"]["status"] = "Closed"
    assert (await admin.put("/api/bot/config", json=shown)).json() == {"success": True}
    assert await _plaintext(rt, "token") == TOKEN  # the mask sent back kept it
    assert (await admin.get("/api/bot/config")).json()["bot"]["status"] == "Closed"

    await admin.put("/api/bot/config", json={"bot": {"token": "a-new-token"}})
    assert await _plaintext(rt, "token") == "a-new-token"
    assert "a-new-token" not in await _raw_document(rt)


async def test_a_token_stored_in_plain_text_is_sealed_at_start(
    rt: Runtime, admin: httpx.AsyncClient
) -> None:
    async with rt.database.unit_of_work() as session:  # as a version before sealing did
        await community.merge_settings(
            session, {"bot": {"token": TOKEN}}, TEST_ACTOR, document=support.CONFIG
        )
    assert TOKEN in await _raw_document(rt)

    await rt.prepare()
    assert TOKEN not in await _raw_document(rt)
    assert await _plaintext(rt, "token") == TOKEN
    assert (await admin.get("/api/bot/config")).json()["bot"]["token"] == "********"
    async with rt.database.unit_of_work(write=False) as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert actions.count("settings.sealed") == 1
    await rt.prepare()  # nothing left to seal: nothing written
    async with rt.database.unit_of_work(write=False) as session:
        assert list(await session.scalars(select(AuditEntry.action))) == actions
