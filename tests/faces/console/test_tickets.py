"""The console's tickets: the list, a transcript, closing one (as Rustmail's modmail does)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import func, select

from guildhall.core.accounts.models import Role
from guildhall.core.support import service as support
from guildhall.core.support.models import INBOUND, NOTE, OUTBOUND, Ticket
from guildhall.events.models import AuditEntry, OutboxEvent, PlatformJob
from guildhall.faces.console.app import create_app
from guildhall.faces.rustmail.app import create_app as rustmail_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.faces.console.conftest import (
    CONSOLE_URL,
    STAFF_PASSWORD,
    make_staff,
    post_form,
    sign_in,
)
from tests.faces.rustmail.conftest import ADMIN, logged_in

CONSOLE_ACTOR = "account:console:root"


async def _ticket(
    runtime: Runtime, username: str, discord: str, messages: tuple[tuple[str, str, str], ...] = ()
) -> str:
    """An open ticket (as the modmail bot opens one), with (direction, author, text) messages."""
    account = await make_account(runtime, username, discord=discord)
    async with runtime.database.unit_of_work() as session:
        ticket = await support.open_ticket(session, account, username, TEST_ACTOR)
        for direction, author, text in messages:
            await support.record_message(session, ticket, direction, (discord, author), text)
        return ticket.public_id


async def _status(runtime: Runtime, public_id: str) -> tuple[int, str | None]:
    async with runtime.database.unit_of_work(write=False) as session:
        row = (
            await session.execute(
                select(Ticket.status, Ticket.close_reason).where(Ticket.public_id == public_id)
            )
        ).one()
        return row[0], row[1]


async def _count(runtime: Runtime, model: type) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_list_shows_open_tickets_and_filters_by_state(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await _ticket(runtime, "seeker", "700000000000000001")
    second = await _ticket(runtime, "asker", "700000000000000002")
    async with runtime.database.unit_of_work() as session:
        await support.close_ticket(session, second, TEST_ACTOR, reason="answered")
    page = await admin.get("/tickets")
    assert page.status_code == 200
    assert first in page.text and "seeker" in page.text and second not in page.text
    assert '<span class="state open">open</span>' in page.text
    closed = await admin.get("/tickets", params={"status": "closed"})
    assert second in closed.text and first not in closed.text
    assert '<span class="state closed">closed</span>' in closed.text
    every = await admin.get("/tickets", params={"status": "all"})
    assert first in every.text and second in every.text
    for bad in ({"status": "bogus"}, {"page": "x"}, {"page": "0"}):
        assert (await admin.get("/tickets", params=bad)).status_code == 400


async def test_the_list_pages_in_the_database(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    made = [await _ticket(runtime, f"member{n:02}", f"7100000000000000{n:02}") for n in range(51)]
    first = await admin.get("/tickets")
    assert made[-1] in first.text and made[1] in first.text and made[0] not in first.text
    assert "status=open&amp;page=2" in first.text
    second = await admin.get("/tickets", params={"page": "2"})
    assert made[0] in second.text and made[1] not in second.text


async def test_a_transcript_shows_the_messages_in_order(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    public_id = await _ticket(
        runtime,
        "seeker",
        "700000000000000001",
        (
            (INBOUND, "seeker", "My server is down <script>alert(1)</script>"),
            (OUTBOUND, "Helper", "Restarting it now."),
            (NOTE, "Helper", "Node 3 again."),
        ),
    )
    page = await admin.get(f"/tickets/{public_id}")
    assert page.status_code == 200
    text = page.text
    transcript = text[text.index('<ol class="transcript">') :]
    first = transcript.index("My server is down &lt;script&gt;")
    assert first < transcript.index("Restarting it now.") < transcript.index("Node 3 again.")
    assert "<script>alert" not in text
    assert "(member)" in transcript and "(staff)" in transcript and "(note)" in transcript
    assert "Helper" in transcript and " UTC" in transcript
    assert f'action="/tickets/{public_id}/close"' in text
    for unknown in ("nonexistent", "a%00b", "x" * 40):
        assert (await admin.get(f"/tickets/{unknown}")).status_code == 404


async def test_closing_a_ticket_is_rustmails_close(
    admin: httpx.AsyncClient, runtime: Runtime, other_runtime: Callable[..., Runtime]
) -> None:
    public_id = await _ticket(runtime, "seeker", "700000000000000001")
    answer = await post_form(
        admin, f"/tickets/{public_id}", f"/tickets/{public_id}/close", {"reason": "solved"}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/tickets/{public_id}"
    page = await admin.get(f"/tickets/{public_id}")
    assert f"Ticket {public_id} with seeker closed." in page.text
    assert '<span class="state closed">closed</span>' in page.text and "solved" in page.text
    assert f'action="/tickets/{public_id}/close"' not in page.text
    assert await _status(runtime, public_id) == (0, "solved")
    async with runtime.database.unit_of_work(write=False) as session:
        actors = list(
            await session.scalars(
                select(AuditEntry.actor).where(AuditEntry.action == "ticket.closed")
            )
        )
        events = list(
            await session.scalars(
                select(OutboxEvent.event).where(OutboxEvent.event == "ticket.closed")
            )
        )
    assert actors == [CONSOLE_ACTOR] and events == ["ticket.closed"]
    assert await _count(runtime, PlatformJob) == 0  # no Discord connection: nothing to do there

    # Rustmail's panel lists it as closed.
    rustmail = other_runtime(faces__rustmail__super_admin_users=[ADMIN])
    transport = httpx.ASGITransport(app=rustmail_app(rustmail))
    async with httpx.AsyncClient(transport=transport, base_url="http://panel.test") as panel:
        panel.cookies.set("rustmail_session", await logged_in(rustmail, ADMIN))
        listed = (await panel.get("/api/bot/tickets", params={"status": "closed"})).json()
        assert listed["total"] == 1
        assert (listed["tickets"][0]["id"], listed["tickets"][0]["status"]) == (public_id, 0)
        assert (await panel.get("/api/bot/tickets")).json()["total"] == 0

    twice = await post_form(admin, f"/tickets/{public_id}", f"/tickets/{public_id}/close", {})
    assert twice.status_code == 409
    assert "already closed" in twice.text


@pytest.fixture
async def discord_console(
    other_runtime: Callable[..., Runtime],
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A runtime whose modmail runs on Discord (never connected here), its console as root."""
    runtime = other_runtime(
        discord__token="MTAw.test.token", discord__guild_id="900000000000000001"
    )
    await make_staff(runtime, "root", Role.ADMIN)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as client:
        assert (await sign_in(client, "root", STAFF_PASSWORD)).status_code == 303
        yield runtime, client


async def test_with_discord_the_close_goes_to_the_platform_through_the_outbox(
    discord_console: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, console = discord_console
    public_id = await _ticket(runtime, "seeker", "700000000000000001")
    answer = await post_form(console, f"/tickets/{public_id}", f"/tickets/{public_id}/close", {})
    assert answer.status_code == 303
    async with runtime.database.unit_of_work(write=False) as session:
        jobs = list(await session.execute(select(PlatformJob.kind, PlatformJob.payload)))
    assert [(kind, payload) for kind, payload in jobs] == [
        (support.CLOSE_JOB, {"ticket": public_id})
    ]


async def test_a_bad_close_changes_nothing(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    public_id = await _ticket(runtime, "seeker", "700000000000000001")
    await admin.get(f"/tickets/{public_id}")
    no_token = await admin.post(f"/tickets/{public_id}/close", data={"reason": "x"})
    assert no_token.status_code == 403
    for reason in ("x" * 501, "a\x00b"):
        answer = await post_form(
            admin, f"/tickets/{public_id}", f"/tickets/{public_id}/close", {"reason": reason}
        )
        assert answer.status_code == 400
    unknown = await post_form(admin, f"/tickets/{public_id}", "/tickets/nonexistent/close", {})
    assert unknown.status_code == 404
    assert await _status(runtime, public_id) == (1, None)
    async with runtime.database.unit_of_work(write=False) as session:
        closed = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "ticket.closed")
        )
    assert closed == 0


async def test_a_moderator_lists_reads_and_closes_tickets(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    public_id = await _ticket(
        runtime, "seeker", "700000000000000001", ((INBOUND, "seeker", "Hello?"),)
    )
    assert public_id in (await moderator.get("/tickets")).text
    assert "Hello?" in (await moderator.get(f"/tickets/{public_id}")).text
    answer = await post_form(
        moderator, f"/tickets/{public_id}", f"/tickets/{public_id}/close", {"reason": "done"}
    )
    assert answer.status_code == 303
    assert await _status(runtime, public_id) == (0, "done")
    async with runtime.database.unit_of_work(write=False) as session:
        actor = await session.scalar(
            select(AuditEntry.actor).where(AuditEntry.action == "ticket.closed")
        )
    assert actor == "account:console:mod"
