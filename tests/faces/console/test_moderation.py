"""The moderation page: cases filtered and paged in the database, opened and cleared.

Moderators use it as admins do; what they do is audited as the console user and
seen by the Aurora face, which reads the same cases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.moderation import cases
from guildhall.core.moderation.models import ModerationCase
from guildhall.events.models import AuditEntry, OutboxEvent
from guildhall.faces.aurora.app import create_app as aurora_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.faces.console.conftest import form_token, post_form

MOD = "account:console:mod"


@pytest.fixture
async def aurora(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The Aurora face in-process, as it runs by default (no key, on loopback)."""
    transport = httpx.ASGITransport(app=aurora_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def totals(runtime: Runtime) -> tuple[int, int, int]:
    return (
        await count(runtime, ModerationCase),
        await count(runtime, AuditEntry),
        await count(runtime, OutboxEvent),
    )


async def audit_of(runtime: Runtime, action: str) -> list[AuditEntry]:
    async with runtime.database.unit_of_work(write=False) as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def open_cases(runtime: Runtime, *specs: tuple[str, str]) -> list[str]:
    """Cases opened through the core, as another face would; their labels."""
    labels = []
    async with runtime.database.unit_of_work() as session:
        for user, kind in specs:
            row = await cases.create(
                session,
                cases.NewCase(type=kind, user_id=user, moderator_id="1", reason=f"{kind} {user}"),
                TEST_ACTOR,
            )
            labels.append(cases.case_label(row.id))
    return labels


async def test_a_moderator_opens_and_clears_a_case_that_aurora_sees(
    moderator: httpx.AsyncClient, runtime: Runtime, aurora: httpx.AsyncClient
) -> None:
    player = await make_account(runtime, "player", discord="424242424242")
    answer = await post_form(
        moderator,
        "/moderation",
        "/moderation/cases",
        {"user": "424242424242", "username": "player", "type": "warn", "reason": "spam"},
    )
    assert answer.status_code == 303, answer.text
    page = await moderator.get("/moderation")
    assert "CASE-0001 opened: warn for user 424242424242." in page.text
    assert "CASE-0001" in page.text and "spam" in page.text

    [created] = await audit_of(runtime, "moderation.case_created")
    assert created.actor == MOD
    assert created.target_account_id == player.id
    async with runtime.database.unit_of_work(write=False) as session:
        staff_id = await accounts.holder_of_username(session, "mod")
    seen = (await aurora.get("/api/moderation", params={"userId": "424242424242"})).json()
    assert seen["total"] == 1
    case = seen["cases"][0]
    assert (case["caseId"], case["type"], case["reason"], case["active"]) == (
        "CASE-0001",
        "warn",
        "spam",
        True,
    )
    assert (case["moderatorName"], case["moderatorId"]) == ("mod", f"console:{staff_id}")

    answer = await post_form(
        moderator,
        "/moderation?user=424242424242",
        "/moderation/cases/CASE-0001/clear",
        {"reason": "appealed", "return": "/moderation?user=424242424242"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/moderation?user=424242424242"
    [cleared] = await audit_of(runtime, "moderation.case_cleared")
    assert cleared.actor == MOD
    case = (await aurora.get("/api/moderation/CASE-0001")).json()
    assert case["active"] is False
    assert (case["resolvedBy"], case["resolvedReason"]) == (f"console:{staff_id}", "appealed")
    page = await moderator.get("/moderation")
    assert "CASE-0001 cleared." in page.text and "appealed" in page.text

    before = await totals(runtime)
    again = await post_form(moderator, "/moderation", "/moderation/cases/CASE-0001/clear", {})
    assert again.status_code == 409 and "already cleared" in again.text
    missing = await post_form(moderator, "/moderation", "/moderation/cases/CASE-9999/clear", {})
    assert missing.status_code == 404
    nonsense = await post_form(moderator, "/moderation", "/moderation/cases/nonsense/clear", {})
    assert nonsense.status_code == 404
    assert await totals(runtime) == before


async def test_a_case_aurora_opened_is_cleared_from_the_console(
    admin: httpx.AsyncClient, runtime: Runtime, aurora: httpx.AsyncClient
) -> None:
    made = await aurora.post(
        "/api/moderation",
        json={"type": "ban", "userId": "777", "moderatorId": "1", "reason": "raid"},
    )
    assert made.status_code == 201, made.text
    page = await admin.get("/moderation")
    assert "CASE-0001" in page.text and "raid" in page.text
    answer = await post_form(admin, "/moderation", "/moderation/cases/CASE-0001/clear", {})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/moderation"
    assert (await aurora.get("/api/moderation/CASE-0001")).json()["active"] is False
    [cleared] = await audit_of(runtime, "moderation.case_cleared")
    assert cleared.actor == "account:console:root"


async def test_the_moderator_is_named_by_their_discord_id_when_linked(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.unit_of_work() as session:
        staff_id = await accounts.holder_of_username(session, "mod")
        assert staff_id is not None
        await accounts.link(
            session, accounts.AccountRef(staff_id, "mod", ""), Provider.DISCORD, "9001", TEST_ACTOR
        )
    answer = await post_form(
        moderator, "/moderation", "/moderation/cases", {"user": "55", "type": "note"}
    )
    assert answer.status_code == 303
    async with runtime.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(ModerationCase))
    assert row is not None and (row.moderator_id, row.moderator_name) == ("9001", "mod")


async def test_cases_filter_and_page_in_the_database(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    labels = await open_cases(
        runtime, ("100", "warn"), ("100", "ban"), ("200", "warn"), ("300", "kick")
    )
    async with runtime.database.unit_of_work() as session:
        await cases.clear(session, labels[1], TEST_ACTOR, cleared_by="1", reason="lifted")

    async def shown(**query: str) -> set[str]:
        page = await moderator.get("/moderation", params=query)
        assert page.status_code == 200, page.text
        return {label for label in labels if f"<b>{label}</b>" in page.text}

    assert await shown() == set(labels)
    assert await shown(user="100") == {labels[0], labels[1]}
    assert await shown(type="warn") == {labels[0], labels[2]}
    assert await shown(active="cleared") == {labels[1]}
    assert await shown(active="active", user="100") == {labels[0]}
    assert await shown(user="999") == set()

    for query, message in (
        ({"type": "hug"}, "The type must be one of"),
        ({"active": "maybe"}, "The state must be active or cleared."),
        ({"user": "9" * 33}, "The user id must be at most 32 characters."),
        ({"user": "1\x002"}, "must not contain NUL"),
        ({"page": "zero"}, "The page must be a whole number"),
    ):
        page = await moderator.get("/moderation", params=query)
        assert page.status_code == 400, query
        assert message in page.text, query


async def test_cases_page_fifty_at_a_time_keeping_filters(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    labels = await open_cases(runtime, *[("100", "warn")] * 51, ("200", "warn"))
    first = await moderator.get("/moderation", params={"user": "100"})
    # Newest first: the page holds the 50 newest of user 100's 51.
    assert f"<b>{labels[50]}</b>" in first.text and f"<b>{labels[0]}</b>" not in first.text
    assert f"<b>{labels[51]}</b>" not in first.text
    assert 'href="/moderation?user=100&amp;page=2"' in first.text
    second = await moderator.get("/moderation", params={"user": "100", "page": "2"})
    assert f"<b>{labels[0]}</b>" in second.text and f"<b>{labels[1]}</b>" not in second.text


async def test_a_bad_case_is_refused_in_place_and_changes_nothing(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    before = await totals(runtime)
    for fields, message in (
        ({"user": "", "type": "warn"}, "The user id is required."),
        ({"user": "1" * 33, "type": "warn"}, "The user id must be at most 32 characters."),
        ({"user": "42", "type": "hug"}, "type must be one of"),
        ({"user": "42", "type": "timeout", "duration": "forever"}, "metadata.duration must be"),
        ({"user": "42", "type": "timeout", "duration": "30d"}, "at most 28 days"),
        ({"user": "42", "type": "warn", "reason": "r" * 1001}, "at most 1000 characters"),
        ({"user": "4\x002", "type": "warn"}, "must not contain NUL"),
    ):
        answer = await post_form(moderator, "/moderation", "/moderation/cases", fields)
        assert answer.status_code == 400, fields
        assert message in answer.text, fields
        assert 'class="field-error"' in answer.text, fields
    assert await totals(runtime) == before


async def test_a_timeout_keeps_its_duration(moderator: httpx.AsyncClient, runtime: Runtime) -> None:
    answer = await post_form(
        moderator,
        "/moderation",
        "/moderation/cases",
        {"user": "42", "type": "timeout", "duration": "30m", "reason": "calm down"},
    )
    assert answer.status_code == 303
    async with runtime.database.unit_of_work(write=False) as session:
        row = await session.scalar(select(ModerationCase))
    assert row is not None and row.details == {"duration": "30m"}
    assert "(30m)" in (await moderator.get("/moderation")).text


async def test_forms_without_their_token_change_nothing(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    [label] = await open_cases(runtime, ("100", "warn"))
    before = await totals(runtime)
    answer = await moderator.post("/moderation/cases", data={"user": "42", "type": "warn"})
    assert answer.status_code == 403
    answer = await moderator.post(f"/moderation/cases/{label}/clear", data={"csrf": "f" * 64})
    assert answer.status_code == 403
    assert await totals(runtime) == before
    page = await moderator.get("/moderation", params={"active": "active"})
    assert f"<b>{label}</b>" in page.text


async def test_clear_returns_only_to_the_moderation_list(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    labels = await open_cases(runtime, ("100", "warn"), ("100", "warn"))
    page = await admin.get("/moderation")
    for label, target in zip(labels, ("//evil.example/moderation", "/accounts"), strict=True):
        answer = await admin.post(
            f"/moderation/cases/{label}/clear",
            data={"csrf": form_token(page.text), "return": target},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/moderation"
