"""The console's bot sessions, on the loopback platform: create, pair, start, stop, back up,
restore, log out; the pairing code and QR; what LD7's face then reports."""

from __future__ import annotations

import io
import re

import httpx
from PIL import Image
from sqlalchemy import func, select

from guildhall.connectors.messaging.loopback import LoopbackConnector
from guildhall.core.sessions.models import BotSession, SessionBackup
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.console.conftest import form_token, post_form
from tests.faces.ld7.conftest import PAIRING_CODE, client_for, counts

HANDLE = "bot_1234567890"
PAGE = f"/sessions/{HANDLE}"


async def _create(client: httpx.AsyncClient, handle: str = HANDLE) -> httpx.Response:
    return await post_form(
        client, "/sessions", "/sessions", {"handle": handle, "phone": "1234567890"}
    )


async def _act(client: httpx.AsyncClient, action: str, handle: str = HANDLE) -> httpx.Response:
    return await post_form(client, f"/sessions/{handle}", f"/sessions/{handle}/{action}", {})


async def _state(runtime: Runtime, handle: str = HANDLE) -> str | None:
    async with runtime.database.unit_of_work(write=False) as session:
        return await session.scalar(select(BotSession.state).where(BotSession.handle == handle))


async def _backups(runtime: Runtime) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(SessionBackup)) or 0)


async def _console_actions(runtime: Runtime) -> list[str]:
    async with runtime.database.unit_of_work(write=False) as session:
        rows = await session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.actor == "account:console:root")
            .order_by(AuditEntry.id)
        )
        return list(rows)


async def test_creating_shows_the_pairing_code_and_its_qr(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    answer = await _create(admin)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == PAGE
    page = await admin.get(PAGE)
    assert f"Session {HANDLE} created" in page.text
    assert '<span class="state pairing">pairing</span>' in page.text
    async with runtime.database.unit_of_work(write=False) as session:
        pending = await runtime.sessions.pending_pairing(session, HANDLE)
    assert re.fullmatch(PAIRING_CODE, pending.code)
    assert f'<p class="secret pairing-code">{pending.code}</p>' in page.text
    assert f'<img class="qr" src="/sessions/{HANDLE}/qr"' in page.text
    qr = await admin.get(f"/sessions/{HANDLE}/qr")
    assert qr.status_code == 200
    assert qr.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(qr.content))
    assert image.format == "PNG" and image.width == image.height >= 200
    listed = await admin.get("/sessions")
    assert HANDLE in listed.text and "1234567890" in listed.text
    assert pending.code not in listed.text  # only on the session's own page
    assert "session.status" in await _console_actions(runtime)
    async with client_for(runtime) as ld7:
        info = (await ld7.get(f"/api/sessions/{HANDLE}")).json()
    assert info["state"] == "pairing"


async def test_the_life_of_a_session_through_the_console(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _create(admin)
    async with runtime.database.unit_of_work(write=False) as session:
        code = (await runtime.sessions.pending_pairing(session, HANDLE)).code
    await runtime.sessions.complete_pairing(HANDLE, code, TEST_ACTOR)  # the phone enters it
    page = await admin.get(PAGE)
    assert '<span class="state online">online</span>' in page.text
    assert code not in page.text and 'class="qr"' not in page.text
    assert (await admin.get(f"/sessions/{HANDLE}/qr")).status_code == 404

    backed_up = await _act(admin, "backup")
    assert backed_up.status_code == 303 and backed_up.headers["location"] == PAGE
    assert await _backups(runtime) == 1
    assert f'action="/sessions/{HANDLE}/restore"' in (await admin.get(PAGE)).text

    assert (await _act(admin, "stop")).status_code == 303
    assert await _state(runtime) == "offline"
    restored = await _act(admin, "restore")
    assert restored.status_code == 303
    assert "restored from its backup" in (await admin.get(PAGE)).text

    started = await _act(admin, "start")
    assert started.status_code == 303
    assert f"Session {HANDLE} started; it is online." in (await admin.get(PAGE)).text
    assert await _state(runtime) == "online"
    async with client_for(runtime) as ld7:
        assert (await ld7.get(f"/api/sessions/{HANDLE}")).json()["status"] == "online"

    already = await _act(admin, "start")
    assert already.status_code == 409 and "already online" in already.text

    out = await _act(admin, "logout")
    assert out.status_code == 303 and out.headers["location"] == "/sessions"
    assert f"Session {HANDLE} logged out and deleted." in (await admin.get("/sessions")).text
    assert await _state(runtime) is None and await _backups(runtime) == 0
    assert (await admin.get(PAGE)).status_code == 404
    actions = await _console_actions(runtime)
    for action in ("session.backup", "session.restore", "session.status"):
        assert action in actions


async def test_a_start_that_cannot_connect_shows_the_failure(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _create(admin)
    async with runtime.database.unit_of_work(write=False) as session:
        code = (await runtime.sessions.pending_pairing(session, HANDLE)).code
    await runtime.sessions.complete_pairing(HANDLE, code, TEST_ACTOR)
    await _act(admin, "stop")
    connector = runtime.sessions.connector
    assert isinstance(connector, LoopbackConnector)
    connector.refuse_connections("the platform is down")
    answer = await _act(admin, "start")
    assert answer.status_code == 303
    page = await admin.get(PAGE)
    assert f"Session {HANDLE} could not connect: the platform is down" in page.text
    assert '<span class="state failed">failed</span>' in page.text
    assert await _state(runtime) == "failed"


async def test_refusals_are_error_pages_that_change_nothing(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _create(admin)
    before = await counts(runtime)
    for fields, status in (
        ({"handle": "bad handle!", "phone": "1234567890"}, 400),
        ({"handle": "bot_2", "phone": "12"}, 400),
        ({"handle": "bot_2", "phone": "1234567890", "name": "x" * 101}, 400),
        ({"handle": "bot_2", "phone": "1234567890", "name": "a\x00b"}, 400),
        ({"handle": HANDLE, "phone": "1234567890"}, 409),
    ):
        answer = await post_form(admin, "/sessions", "/sessions", fields)
        assert answer.status_code == status, (fields, answer.text)
        assert 'class="error"' in answer.text
    assert (await _act(admin, "restore")).status_code == 404  # no backup yet
    assert (await _act(admin, "backup")).status_code == 409  # not paired
    token = form_token((await admin.get(PAGE)).text)
    unknown = await admin.post("/sessions/nobody/stop", data={"csrf": token})
    assert unknown.status_code == 404
    assert (await admin.get("/sessions/nobody")).status_code == 404
    assert (await admin.get("/sessions/nobody/qr")).status_code == 404
    assert (await admin.get("/sessions/bad%20handle")).status_code == 400
    assert (await admin.get("/sessions", params={"page": "x"})).status_code == 400
    assert await counts(runtime) == before
    assert await _state(runtime) == "pairing"


async def test_without_its_token_nothing_is_created_or_stopped(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _create(admin)
    before = await counts(runtime)
    made = await admin.post("/sessions", data={"handle": "bot_2", "phone": "1234567890"})
    assert made.status_code == 403
    for action in ("stop", "logout", "start"):
        assert (await admin.post(f"/sessions/{HANDLE}/{action}", data={})).status_code == 403
    assert await counts(runtime) == before
    assert await _state(runtime) == "pairing"


async def test_the_list_pages_in_the_database(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    async with runtime.database.unit_of_work() as session:
        for number in range(51):
            session.add(
                BotSession(
                    handle=f"bot_{number:02}",
                    phone_number="1234567890",
                    connector="loopback",
                    state="offline",
                )
            )
    first = await admin.get("/sessions")
    assert "bot_00" in first.text and "bot_49" in first.text and "bot_50" not in first.text
    assert 'href="/sessions?page=2"' in first.text
    second = await admin.get("/sessions", params={"page": "2"})
    assert "bot_50" in second.text and "bot_49" not in second.text


async def test_a_moderator_runs_sessions_but_not_servers(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert (await _create(moderator)).status_code == 303
    assert (await _act(moderator, "stop")).status_code == 303
    assert await _state(runtime) == "offline"
    assert (await moderator.get(PAGE)).status_code == 200
    async with runtime.database.unit_of_work(write=False) as session:
        actors = set(await session.scalars(select(AuditEntry.actor)))
    assert "account:console:mod" in actors
    assert (await moderator.get("/servers")).status_code == 403
    token = form_token((await moderator.get("/sessions")).text)
    refused = await moderator.post(
        "/servers", data={"csrf": token, "owner": "mod", "plan": "Basic"}
    )
    assert refused.status_code == 403
