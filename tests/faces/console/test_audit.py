"""The audit page: the trail newest first, narrowed in the database by actor, subject,
action and time, 50 rows a page; bad filters are a 400 with the message and no rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from guildhall.core.economy import service as economy
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _shown(page: str) -> list[str]:
    """The messages of the rows a page shows, in order."""
    return re.findall(r'<tr id="audit-\d+">.*?<td>([^<]*)</td>\s*</tr>', page, re.S)


async def _write(runtime: Runtime, *rows: dict[str, Any]) -> None:
    """Audit rows as the core writes them, at the moments the tests need."""
    defaults = {"actor_account_id": None, "target_account_id": None, "target": ""}
    async with runtime.database.unit_of_work() as session:
        await session.execute(insert(AuditEntry.__table__), [defaults | row for row in rows])


def _row(message: str, at: datetime, actor: str, action: str, **more: Any) -> dict[str, Any]:
    return {"message": message, "created_at": at, "actor": actor, "action": action, **more}


@pytest.fixture
async def trail(admin: httpx.AsyncClient, runtime: Runtime) -> int:
    """A small trail from several actors about several subjects; the account's id."""
    account = await make_account(runtime, "alice", discord="111")
    await _write(
        runtime,
        _row(
            "root banned alice",
            START,
            "account:console:root",
            "user.banned",
            target=f"account:{account.id}",
            target_account_id=account.id,
        ),
        _row(
            "rooted gave coins",
            START + timedelta(hours=1),
            "account:console:rooted",
            "coins.changed",
            target=f"account:{account.id}",
            target_account_id=account.id,
        ),
        _row(
            "api key spent",
            START + timedelta(days=1),
            "api_key:shop",
            "coins.spent",
            target="account:1234",
        ),
        _row(
            "operator added a hook",
            START + timedelta(days=2),
            "operator:ops",
            "webhook.added",
            target="webhook:3",
        ),
        _row(
            "case for account 12",
            START + timedelta(days=2, minutes=5),
            "api_key:shop",
            "moderation.case_created",
            target="account:12",
        ),
    )
    return account.id


async def test_the_trail_is_shown_newest_first(
    admin: httpx.AsyncClient, runtime: Runtime, trail: int
) -> None:
    account = await make_account(runtime, "bob", discord="222")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 10, actor=TEST_ACTOR, reason="welcome")
    page = await admin.get("/audit")
    assert page.status_code == 200
    shown = _shown(page.text)
    # By time: what was written now first (bob last of all), then the trail dated 2024.
    assert "bob" in shown[0] and "bob" in shown[1]
    assert shown[2:5] == [
        f"Account alice (#{trail}) created, linked to discord 111",
        "root signed in to the console",
        "Account root (#1) created",
    ]
    assert shown[5:] == [
        "case for account 12",
        "operator added a hook",
        "api key spent",
        "rooted gave coins",
        "root banned alice",
    ]
    assert "2024-05-01 09:00:00 UTC" in page.text
    assert "Show all" not in page.text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "account:console:root"}, ["root banned alice"]),  # exact: not "rooted"
        ({"actor": "account:console:root*"}, ["rooted gave coins", "root banned alice"]),
        ({"actor": "api_key:"}, ["case for account 12", "api key spent"]),
        ({"action": "coins."}, ["api key spent", "rooted gave coins"]),
        ({"action": "webhook.added"}, ["operator added a hook"]),
        ({"action": "Coins."}, []),  # case counts, on both databases
        ({"subject": "account:12"}, ["case for account 12"]),  # not account:1234
        ({"subject": "account:1*"}, ["case for account 12", "api key spent"]),
        ({"subject": "webhook:3"}, ["operator added a hook"]),
        (
            {"since": "2024-05-02"},
            ["case for account 12", "operator added a hook", "api key spent"],
        ),
        ({"until": "2024-05-01"}, ["rooted gave coins", "root banned alice"]),  # the whole day
        ({"until": "2024-05-01T09:30"}, ["root banned alice"]),
        ({"since": "2024-05-03T09:00", "until": "2024-05-03T09:04"}, ["operator added a hook"]),
        ({"since": "2024-05-03 09:05:00", "until": "2024-05-03T09:05:00"}, ["case for account 12"]),
        ({"actor": "api_key:shop", "action": "coins.", "until": "2024-05-02"}, ["api key spent"]),
        ({"action": "nothing.like.this"}, []),
        ({"actor": "50%_"}, []),  # LIKE's wildcards are plain characters here
        ({"action": "\ud7ff*"}, []),  # the next character would be a surrogate
        ({"action": "\U0010ffff*"}, []),  # the last character there is
    ],
)
async def test_each_filter_narrows_the_rows(
    admin: httpx.AsyncClient, trail: int, params: dict[str, str], expected: list[str]
) -> None:
    # Only the trail's year: the rows written now (alice made, root signed in) stay out.
    year = {"since": "2024-01-01", "until": "2024-12-31"}
    page = await admin.get("/audit", params={**year, **params})
    assert page.status_code == 200, page.text
    assert _shown(page.text) == expected
    for name, value in params.items():
        assert f'name="{name}" value="{value}"' in page.text  # the form keeps its values
    if not expected:
        assert "No entry matches these filters" in page.text


async def test_a_subject_of_digits_is_an_account_id(admin: httpx.AsyncClient, trail: int) -> None:
    page = await admin.get("/audit", params={"subject": str(trail)})
    assert _shown(page.text) == [
        f"Account alice (#{trail}) created, linked to discord 111",
        "rooted gave coins",
        "root banned alice",
    ]
    assert f'href="/accounts/{trail}"' in page.text


async def test_the_console_users_own_actions_are_found_by_actor(
    admin: httpx.AsyncClient,
) -> None:
    page = await admin.get("/audit", params={"actor": "account:console:root"})
    assert _shown(page.text) == ["root signed in to the console"]


async def test_120_rows_page_by_50(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    await _write(
        runtime,
        *(
            _row(
                f"entry {number:03}", START + timedelta(seconds=number), "system:bulk", "bulk.made"
            )
            for number in range(120)
        ),
    )
    pages = []
    for number, count in ((1, 50), (2, 50), (3, 20)):
        page = await admin.get("/audit", params={"action": "bulk.", "page": str(number)})
        assert page.status_code == 200
        shown = _shown(page.text)
        assert len(shown) == count
        pages.append((page.text, shown))
    assert pages[0][1][0] == "entry 119" and pages[0][1][-1] == "entry 070"
    assert pages[1][1][0] == "entry 069" and pages[2][1][-1] == "entry 000"
    assert 'href="/audit?action=bulk.&amp;page=2"' in pages[0][0]
    assert 'rel="prev"' not in pages[0][0]
    assert 'href="/audit?action=bulk.&amp;page=3"' in pages[1][0]
    assert 'href="/audit?action=bulk."' in pages[1][0]  # back to the first page
    assert 'rel="next"' not in pages[2][0]
    beyond = await admin.get("/audit", params={"action": "bulk.", "page": "4"})
    assert _shown(beyond.text) == [] and "on this page" in beyond.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "“since” must be a date or time"),
        ({"until": "2024-13-01"}, "“until” must be a date or time"),
        ({"since": "2024-05-01T25:00"}, "“since” must be a date or time"),
        ({"until": "9999-12-31"}, "“until” must be a date or time"),
        ({"since": "2024-05-02", "until": "2024-05-01"}, "“until” must be after “since”"),
        ({"actor": "a" * 201}, "“actor” is longer than 200 characters"),
        ({"action": "coins.\x00"}, "must not contain NUL"),
        ({"page": "0"}, "The page number must be a whole number"),
        ({"page": "two"}, "The page number must be a whole number"),
    ],
)
async def test_a_bad_filter_is_a_400_with_its_message_and_no_rows(
    admin: httpx.AsyncClient, trail: int, params: dict[str, str], message: str
) -> None:
    page = await admin.get("/audit", params=params)
    assert page.status_code == 400
    error = re.search(r'<p class="error" role="alert" id="audit-error">([^<]*)</p>', page.text)
    assert error and message in error.group(1), page.text
    assert _shown(page.text) == [] and "<table" not in page.text
    if "since" in params:
        assert f'name="since" value="{params["since"]}"' in page.text


async def test_a_moderator_cannot_open_the_audit(moderator: httpx.AsyncClient) -> None:
    answer = await moderator.get("/audit", params={"actor": "account:console:mod"})
    assert answer.status_code == 403
    assert "Your role does not open this page" in answer.text
    assert "signed in to the console" not in answer.text
