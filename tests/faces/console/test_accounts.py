"""The accounts pages: search by any identity, one account's page, and its changes (ban,
coins, API keys) made through the same core services as the API faces."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from guildhall.core.access.models import ApiKey
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.economy import service as economy
from guildhall.core.economy.models import Balance, LedgerEntry
from guildhall.core.moderation import service as moderation
from guildhall.core.moderation.models import Ban
from guildhall.core.support import service as support
from guildhall.db.base import utcnow
from guildhall.events.models import AuditEntry, OutboxEvent
from guildhall.faces.console.auth import SESSION_COOKIE, ConsoleKeys
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account, make_key
from tests.faces.console.conftest import form_token, post_form

CONSOLE_ACTOR = "account:console:root"
ALICE_DISCORD = "80351110224678912"


def _listed(page: str) -> list[int]:
    """The account ids a search page lists, in order."""
    return [int(found) for found in re.findall(r'<td><a href="/accounts/(\d+)">#', page)]


async def _counts(runtime: Runtime) -> dict[str, int]:
    """Rows of everything an account page's forms could change."""
    async with runtime.database.unit_of_work(write=False) as session:
        return {
            model.__tablename__: int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (AuditEntry, OutboxEvent, LedgerEntry, Balance, Ban, ApiKey)
        }


async def _audit(runtime: Runtime, action: str) -> list[tuple[str, int | None]]:
    async with runtime.database.unit_of_work(write=False) as session:
        rows = await session.execute(
            select(AuditEntry.actor, AuditEntry.target_account_id)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
        return [(actor, target) for actor, target in rows]


async def _balance(runtime: Runtime, account_id: int) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return await economy.balance_of(session, account_id)


async def _alice(runtime: Runtime) -> accounts.AccountRef:
    return await make_account(
        runtime, "alice", discord=ALICE_DISCORD, email="Alice.Smith@Example.com"
    )


async def test_search_finds_an_account_by_any_identity(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await _alice(runtime)
    bob = await make_account(runtime, "bob", github="octobob")
    async with runtime.database.unit_of_work(write=False) as session:
        alice_uuid = (await accounts.view(session, alice.id)).uuid

    for q in (
        "ali",
        "ALI",
        "alice",
        "Alice.Smith@Example.com",
        "alice.smith@example.COM",
        ALICE_DISCORD,
        str(alice.id),
        alice_uuid,
    ):
        page = await admin.get("/accounts", params={"q": q})
        assert page.status_code == 200, q
        assert _listed(page.text) == [alice.id], q
    for q in ("bo", "octobob", str(bob.id)):
        assert _listed((await admin.get("/accounts", params={"q": q})).text) == [bob.id], q

    page = await admin.get("/accounts", params={"q": ALICE_DISCORD})
    assert f'href="/accounts/{alice.id}"' in page.text
    assert "alice" in page.text and ALICE_DISCORD in page.text


async def test_a_search_that_finds_nothing_says_so(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _alice(runtime)
    for q in ("nobody", "lice", "%", "a%", "_lice", "999999", "nobody@example.com"):
        page = await admin.get("/accounts", params={"q": q})
        assert page.status_code == 200, q
        assert _listed(page.text) == [], q
        assert "No account matches" in page.text
    for q in ("a\x00b", "x" * 400):
        page = await admin.get("/accounts", params={"q": q})
        assert page.status_code == 400
        assert 'class="field-error"' in page.text
        assert _listed(page.text) == []


async def test_the_list_pages_fifty_at_a_time(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    async with runtime.database.unit_of_work() as session:
        for number in range(60):
            await accounts.create(session, username=f"member-{number:02d}", actor=TEST_ACTOR)
    first = await admin.get("/accounts", params={"q": "member-"})
    ids = _listed(first.text)
    assert len(ids) == 50
    assert ids == sorted(ids)  # usernames found by their start come in their order
    assert "member-00" in first.text and "member-49" in first.text
    assert "member-50" not in first.text
    assert 'rel="next" href="/accounts?q=member-&amp;page=2"' in first.text
    assert 'rel="prev"' not in first.text
    second = await admin.get("/accounts", params={"q": "member-", "page": "2"})
    assert len(_listed(second.text)) == 10
    assert set(_listed(second.text)).isdisjoint(ids)
    assert 'rel="next"' not in second.text
    assert 'rel="prev" href="/accounts?q=member-"' in second.text
    # Without a search, every account (the 60 and root), newest first.
    assert len(_listed((await admin.get("/accounts")).text)) == 50
    assert len(_listed((await admin.get("/accounts", params={"page": "2"})).text)) == 11
    assert _listed((await admin.get("/accounts", params={"page": "3"})).text) == []
    for bad in ("0", "-1", "two", "99999999999"):
        assert (await admin.get("/accounts", params={"page": bad})).status_code == 400


async def test_the_account_page_shows_everything_about_one_person(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await _alice(runtime)
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, alice, 75, actor=TEST_ACTOR, reason="quest prize")
        await economy.adjust(session, alice, -25, actor=TEST_ACTOR, reason="shop")
        await moderation.ban(
            session,
            alice,
            actor=TEST_ACTOR,
            reason="spam in general",
            expires_at=utcnow() + timedelta(days=2),
        )
        await runtime.hosting.create(session, alice, "Survival world", "Basic", TEST_ACTOR)
        ticket = await support.open_ticket(session, alice, "alice", TEST_ACTOR)
    page = await admin.get(f"/accounts/{alice.id}")
    assert page.status_code == 200
    text = page.text
    assert "Alice.Smith@Example.com" in text
    assert ALICE_DISCORD in text and Provider.DISCORD.value in text
    assert '<b class="balance">50</b>' in text
    assert "quest prize" in text and "shop" in text and "+75" in text and "-25" in text
    assert "2 entries" in text
    assert "spam in general" in text and 'class="state banned"' in text
    assert "Survival world" in text
    assert ticket.public_id in text
    assert f"Package “{runtime.catalogue.default}”" in text
    assert "user.banned" in text and "coins.changed" in text  # the audit rows
    assert f'action="/accounts/{alice.id}/unban"' in text and "data-confirm" in text

    for missing in ("/accounts/999999", "/accounts/abc", "/accounts/1e3"):
        answer = await admin.get(missing)
        assert answer.status_code == 404, missing
    assert (
        await admin.get(f"/accounts/{alice.id}", params={"ledger_page": "x"})
    ).status_code == 400


async def test_the_ledger_pages(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    alice = await _alice(runtime)
    async with runtime.database.unit_of_work() as session:
        for number in range(1, 56):
            await economy.adjust(session, alice, number, actor=TEST_ACTOR, reason=f"r{number}")
    first = await admin.get(f"/accounts/{alice.id}")
    assert ">r55<" in first.text and ">r6<" in first.text and ">r5<" not in first.text
    assert f'href="/accounts/{alice.id}?ledger_page=2#coins"' in first.text
    second = await admin.get(f"/accounts/{alice.id}", params={"ledger_page": "2"})
    assert ">r5<" in second.text and ">r1<" in second.text and ">r6<" not in second.text


async def test_ban_and_unban_through_the_core_as_heliactyl_does(
    admin: httpx.AsyncClient, heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await _alice(runtime)
    key = await make_key(runtime, "heliactyl")
    headers = {"Authorization": f"Bearer {key}"}
    path = f"/accounts/{alice.id}"

    answer = await post_form(admin, path, f"{path}/ban", {"reason": "raiding", "hours": "24"})
    assert answer.status_code == 303
    assert answer.headers["location"] == path
    async with runtime.database.unit_of_work(write=False) as session:
        ban = await moderation.active_ban(session, alice.id)
    assert ban is not None and ban.reason == "raiding"
    assert ban.expires_at is not None
    assert timedelta(hours=23, minutes=59) < ban.expires_at - utcnow() <= timedelta(hours=24)
    assert await _audit(runtime, "user.banned") == [(CONSOLE_ACTOR, alice.id)]
    shown = await admin.get(path)
    assert "is banned for 24 hours" in shown.text  # the notice
    assert "raiding" in shown.text and 'class="state banned"' in shown.text
    told = await heliactyl.get(
        "/api/v3/userinteractions", params={"id": ALICE_DISCORD}, headers=headers
    )
    assert "console:root banned user alice" in told.json()["interactions"][0]["action"]

    answer = await post_form(admin, path, f"{path}/unban", {})
    assert answer.status_code == 303
    async with runtime.database.unit_of_work(write=False) as session:
        assert await moderation.active_ban(session, alice.id) is None
        events = list(await session.scalars(select(OutboxEvent.event).order_by(OutboxEvent.id)))
    assert await _audit(runtime, "user.unbanned") == [(CONSOLE_ACTOR, alice.id)]
    assert events[-2:] == ["user.banned", "user.unbanned"]
    told = await heliactyl.get(
        "/api/v3/userinteractions", params={"id": ALICE_DISCORD}, headers=headers
    )
    assert "console:root unbanned user alice" in told.json()["interactions"][0]["action"]
    assert 'class="state active"' in (await admin.get(path)).text

    # A permanent ban: empty expiry.
    await post_form(admin, path, f"{path}/ban", {"reason": "", "hours": ""})
    async with runtime.database.unit_of_work(write=False) as session:
        ban = await moderation.active_ban(session, alice.id)
    assert ban is not None and ban.expires_at is None and ban.reason == moderation.DEFAULT_REASON
    # Unbanning again after unbanning changes nothing.
    await post_form(admin, path, f"{path}/unban", {})
    before = await _counts(runtime)
    answer = await post_form(admin, path, f"{path}/unban", {})
    assert answer.status_code == 303
    assert await _counts(runtime) == before


async def test_coins_change_through_the_ledger(
    admin: httpx.AsyncClient, heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await _alice(runtime)
    key = await make_key(runtime, "heliactyl")
    path = f"/accounts/{alice.id}"
    answer = await post_form(admin, path, f"{path}/coins", {"amount": "150", "reason": "event"})
    assert answer.status_code == 303
    answer = await post_form(admin, path, f"{path}/coins", {"amount": "-50", "reason": ""})
    assert answer.status_code == 303
    assert await _balance(runtime, alice.id) == 100
    async with runtime.database.unit_of_work(write=False) as session:
        rows = list(
            await session.execute(
                select(LedgerEntry.amount, LedgerEntry.actor, LedgerEntry.reason).order_by(
                    LedgerEntry.id
                )
            )
        )
    assert [tuple(row) for row in rows] == [(150, CONSOLE_ACTOR, "event"), (-50, CONSOLE_ACTOR, "")]
    assert await _audit(runtime, "coins.changed") == [(CONSOLE_ACTOR, alice.id)] * 2
    info = await heliactyl.get(
        "/api/v3/userinfo", params={"id": ALICE_DISCORD}, headers={"Authorization": f"Bearer {key}"}
    )
    assert info.json()["coins"] == 100
    page = await admin.get(path)
    assert "balance is now 100" in page.text
    assert '<b class="balance">100</b>' in page.text


async def test_a_key_made_on_the_page_shows_its_secret_once_and_works_until_revoked(
    admin: httpx.AsyncClient, heliactyl: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await _alice(runtime)
    path = f"/accounts/{alice.id}"
    made = await post_form(
        admin, path, f"{path}/keys", {"name": "dashboard", "scopes": "heliactyl"}
    )
    assert made.status_code == 200
    found = re.search(r'<p class="secret">([^<]+)</p>', made.text)
    assert found
    secret = found.group(1)
    assert secret.startswith("gh_")
    headers = {"Authorization": f"Bearer {secret}"}
    info = await heliactyl.get("/api/v3/userinfo", params={"id": ALICE_DISCORD}, headers=headers)
    assert info.status_code == 200 and info.json()["status"] == "success"
    assert await _audit(runtime, "api_key.created") == [(CONSOLE_ACTOR, None)]

    again = await admin.get(path)
    assert secret not in again.text and 'class="secret"' not in again.text
    assert "dashboard" in again.text
    key_id = re.search(rf'action="{path}/keys/(\d+)/revoke"', again.text)
    assert key_id
    revoked = await admin.post(
        f"{path}/keys/{key_id.group(1)}/revoke", data={"csrf": form_token(again.text)}
    )
    assert revoked.status_code == 303
    refused = await heliactyl.get("/api/v3/userinfo", params={"id": ALICE_DISCORD}, headers=headers)
    assert refused.status_code == 403
    assert await _audit(runtime, "api_key.revoked") == [(CONSOLE_ACTOR, None)]
    after = await admin.get(path)
    assert "revoked" in after.text and secret not in after.text
    missing = await post_form(admin, path, f"{path}/keys/999999/revoke", {})
    assert missing.status_code == 404
    assert (await post_form(admin, path, f"{path}/keys/x/revoke", {})).status_code == 404


async def test_bad_input_changes_nothing(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    alice = await _alice(runtime)
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, alice, 10, actor=TEST_ACTOR)
    path = f"/accounts/{alice.id}"
    before = await _counts(runtime)
    refusals = [
        ("coins", {"amount": "ten", "reason": ""}, 400),
        ("coins", {"amount": "1.5", "reason": ""}, 400),
        ("coins", {"amount": "", "reason": ""}, 400),
        ("coins", {"amount": "0", "reason": ""}, 400),
        ("coins", {"amount": "-11", "reason": ""}, 400),
        ("coins", {"amount": "99999999999999999", "reason": ""}, 400),
        ("coins", {"amount": "5", "reason": "bad\x00reason"}, 400),
        ("coins", {"amount": "5", "reason": "r" * 501}, 400),
        ("ban", {"reason": "bad\x00reason", "hours": ""}, 400),
        ("ban", {"reason": "spam", "hours": "soon"}, 400),
        ("ban", {"reason": "spam", "hours": "0"}, 400),
        ("ban", {"reason": "spam", "hours": "-3"}, 400),
        ("ban", {"reason": "r" * 501, "hours": ""}, 400),
        ("keys", {"name": "bad\x00name", "scopes": "heliactyl"}, 400),
        ("keys", {"name": "", "scopes": "heliactyl"}, 400),
        ("keys", {"name": "dashboard", "scopes": "everything"}, 400),
        ("keys", {"name": "dashboard", "scopes": ""}, 400),
    ]
    for form, fields, status in refusals:
        answer = await post_form(admin, path, f"{path}/{form}", fields)
        assert answer.status_code == status, (form, fields, answer.text[:300])
        assert 'class="field-error"' in answer.text, (form, fields)
        assert 'class="secret"' not in answer.text
    assert (
        "must be a whole number"
        in (await post_form(admin, path, f"{path}/coins", {"amount": "ten"})).text
    )
    for unknown in ("/accounts/999999", "/accounts/abc"):
        for form, fields in (
            ("coins", {"amount": "5"}),
            ("ban", {"reason": "x"}),
            ("unban", {}),
            ("keys", {"name": "k", "scopes": "heliactyl"}),
        ):
            answer = await post_form(admin, path, f"{unknown}/{form}", fields)
            assert answer.status_code == 404, (unknown, form)
    assert await _counts(runtime) == before
    assert await _balance(runtime, alice.id) == 10


async def test_a_form_without_its_token_changes_nothing(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await _alice(runtime)
    path = f"/accounts/{alice.id}"
    await admin.get(path)
    before = await _counts(runtime)
    for form, fields in (
        ("coins", {"amount": "5", "reason": ""}),
        ("ban", {"reason": "x", "hours": ""}),
        ("unban", {}),
        ("keys", {"name": "k", "scopes": "heliactyl"}),
    ):
        answer = await admin.post(f"{path}/{form}", data=fields)
        assert answer.status_code == 403, form
        wrong = await admin.post(f"{path}/{form}", data={**fields, "csrf": "0" * 64})
        assert wrong.status_code == 403, form
    assert await _counts(runtime) == before


async def test_a_moderator_may_not_open_accounts(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await _alice(runtime)
    path = f"/accounts/{alice.id}"
    assert (await moderator.get("/accounts")).status_code == 403
    assert (await moderator.get(path)).status_code == 403
    # The token the moderator's own pages carry (their session's), so only the role refuses.
    token = ConsoleKeys.of(runtime).csrf_for(moderator.cookies[SESSION_COOKIE])
    before = await _counts(runtime)
    for form, fields in (
        ("coins", {"amount": "5", "reason": ""}),
        ("ban", {"reason": "x", "hours": ""}),
        ("keys", {"name": "k", "scopes": "heliactyl"}),
    ):
        answer = await moderator.post(f"{path}/{form}", data={**fields, "csrf": token})
        assert answer.status_code == 403, form
    assert await _counts(runtime) == before
