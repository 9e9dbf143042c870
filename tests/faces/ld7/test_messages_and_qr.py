"""Beyond LD7's document: the pairing QR as a PNG, sending a text, and incoming messages
as ``session.message`` events (on the loopback platform; the connector contract suite,
tests/core/test_session_platforms.py, runs the same on WhatsApp)."""

from __future__ import annotations

import io

import httpx
import segno
from PIL import Image
from sqlalchemy import func, select

from guildhall.connectors.messaging.loopback import LoopbackConnector
from guildhall.events import outbox
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime
from tests.faces.ld7.conftest import BOT, counts, online_bot

SEND = "/api/sessions/bot_1234567890/messages"


def _loopback(runtime: Runtime) -> LoopbackConnector:
    connector = runtime.sessions.connector
    assert isinstance(connector, LoopbackConnector)
    return connector


def _shows(png: bytes, content: str) -> bool:
    """Whether the PNG shows the QR code of ``content``: every module, read off the image
    at its centre (8 pixels a module, a quiet zone of 4), is dark exactly where it must be."""
    image = Image.open(io.BytesIO(png)).convert("L")
    matrix = segno.make(content, error="m").matrix
    if image.size != ((len(matrix) + 8) * 8,) * 2:
        return False
    return all(
        (image.getpixel(((col + 4) * 8 + 4, (row + 4) * 8 + 4)) < 128) == bool(dark)
        for row, line in enumerate(matrix)
        for col, dark in enumerate(line)
    )


async def test_the_pairing_qr_is_a_png_of_the_platforms_code_and_changes_with_it(
    ld7: httpx.AsyncClient,
) -> None:
    created = (await ld7.post("/api/sessions", json=BOT)).json()
    first = await ld7.get("/api/sessions/bot_1234567890/qr")
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/png"
    assert first.headers["cache-control"] == "no-store"
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "PNG" and image.width == image.height >= 200  # scannable off a screen
    # The loopback platform's QR carries its pairing code (WhatsApp's carries its own).
    expected = f"loopback-pairing:bot_1234567890:{created['pairingCode']}"
    assert _shows(first.content, expected)
    assert not _shows(first.content, expected + "x")

    await ld7.post("/api/sessions/bot_1234567890/stop")
    assert (await ld7.get("/api/sessions/bot_1234567890/qr")).status_code == 404
    await ld7.post("/api/sessions/bot_1234567890/start")
    second = await ld7.get("/api/sessions/bot_1234567890/qr")
    assert second.status_code == 200 and second.content != first.content


async def test_no_qr_outside_a_pairing(ld7: httpx.AsyncClient, runtime: Runtime) -> None:
    await online_bot(ld7, runtime)
    answer = await ld7.get("/api/sessions/bot_1234567890/qr")
    assert answer.status_code == 404
    assert answer.json() == {
        "success": False,
        "message": "Session bot_1234567890 has no pending pairing code",
    }
    unknown = await ld7.get("/api/sessions/nobody/qr")
    assert unknown.status_code == 404


async def test_an_online_session_sends_a_text(ld7: httpx.AsyncClient, runtime: Runtime) -> None:
    await online_bot(ld7, runtime)
    sent = await ld7.post(SEND, json={"to": "+49 151 1234 5678", "text": "Your server is ready"})
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["success"] is True and body["userId"] == "bot_1234567890"
    assert body["to"] == "4915112345678" and body["messageId"]
    assert _loopback(runtime).sent == [("bot_1234567890", "4915112345678", "Your server is ready")]
    async with runtime.database.unit_of_work(write=False) as session:
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "session.message_sent")
        )
    assert audited == 1


async def test_a_text_is_refused_cleanly_and_nothing_is_sent(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await ld7.post("/api/sessions", json=BOT)  # pairing, not online
    before = await counts(runtime)
    refusals = [
        ({"to": "4915112345678", "text": "hi"}, 409, "Session bot_1234567890 is not online"),
        ({"text": "hi"}, 400, "to and text are required"),
        ({"to": "12", "text": "hi"}, 400, None),
        ({"to": "4915112345678", "text": ""}, 400, None),
        ({"to": "4915112345678", "text": "x" * 4097}, 400, None),
        ({"to": "4915112345678", "text": "a\x00b"}, 400, None),
        ({"to": ["4915112345678"], "text": "hi"}, 400, "to must be a string of digits"),
    ]
    for body, status, message in refusals:
        answer = await ld7.post(SEND, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["success"] is False
        if message is not None:
            assert answer.json()["message"] == message
    garbage = await ld7.post(
        SEND, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 400
    assert _loopback(runtime).sent == []
    assert await counts(runtime) == before


async def test_incoming_messages_are_events_with_the_senders_number(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    await _loopback(runtime).incoming_text("bot_1234567890", "4915112345678", "!status")
    async with runtime.database.unit_of_work(write=False) as session:
        [event] = await outbox.recent(session, "session.message")
    assert event["event"] == "session.message"
    assert event["data"]["session"] == "bot_1234567890"
    assert event["data"]["from"] == "4915112345678"
    assert event["data"]["text"] == "!status"
    assert "session.message" in outbox.EVENTS  # webhooks can subscribe to it
