"""Signing in and out, the session cookie, CSRF on every form, and what each role opens."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select, update

from guildhall.core.access.models import ConsoleSession
from guildhall.core.accounts import passwords
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Role
from guildhall.core.moderation import service as moderation
from guildhall.events.models import AuditEntry
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account
from tests.faces.console.conftest import (
    STAFF_PASSWORD,
    form_token,
    make_staff,
    post_form,
    sign_in,
)


async def _sessions(runtime: Runtime) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(ConsoleSession)) or 0)


async def test_a_stranger_is_sent_to_sign_in(console: httpx.AsyncClient) -> None:
    answer = await console.get("/accounts?q=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Faccounts%3Fq%3Dx"


async def test_an_admin_signs_in_with_a_hardened_cookie(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "root", Role.ADMIN)
    answer = await sign_in(console, "root@example.com", STAFF_PASSWORD)
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("gh_console="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; behind TLS it is Secure
    overview = await console.get("/")
    assert overview.status_code == 200
    assert "root" in overview.text and "Overview" in overview.text
    csp = overview.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert overview.headers["x-frame-options"] == "DENY"
    async with runtime.database.unit_of_work(write=False) as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "console.sign_in" in actions


async def test_behind_tls_the_cookie_is_secure(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "root", Role.ADMIN)
    console.base_url = httpx.URL("https://console.test")
    answer = await sign_in(console, "root", STAFF_PASSWORD)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("gh_console="))
    assert "Secure" in cookie


async def test_wrong_passwords_and_plain_users_do_not_get_in(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "root", Role.ADMIN)
    wrong = await sign_in(console, "root", "not the password")
    assert wrong.status_code == 401
    assert "do not open the console" in wrong.text
    async with runtime.database.unit_of_work() as session:
        from guildhall.core.accounts import service as accounts
        from tests.conftest import TEST_ACTOR

        await accounts.create(
            session, username="player", password=STAFF_PASSWORD, role=Role.USER, actor=TEST_ACTOR
        )
    player = await sign_in(console, "player", STAFF_PASSWORD)
    assert player.status_code == 401
    assert await _sessions(runtime) == 0
    assert (await console.get("/")).status_code == 303


async def test_sign_in_without_its_token_is_refused(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "root", Role.ADMIN)
    await console.get("/sign-in")
    answer = await console.post(
        "/sign-in", data={"login": "root", "password": STAFF_PASSWORD, "csrf": "0" * 64}
    )
    assert answer.status_code == 403
    assert await _sessions(runtime) == 0


async def test_a_form_without_its_token_changes_nothing(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    answer = await admin.post("/sign-out", data={})
    assert answer.status_code == 403
    assert await _sessions(runtime) == 1
    assert (await admin.get("/")).status_code == 200


async def test_a_post_from_another_site_is_refused(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/")
    answer = await admin.post(
        "/sign-out",
        data={"csrf": form_token(page.text)},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert (await admin.get("/")).status_code == 200


async def test_signing_out_ends_the_session(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    answer = await post_form(admin, "/", "/sign-out", {})
    assert answer.status_code == 303
    assert await _sessions(runtime) == 0
    assert (await admin.get("/")).status_code == 303


async def test_a_lost_role_ends_the_session(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    async with runtime.database.unit_of_work() as session:
        await session.execute(
            update(Account).where(Account.username == "root").values(role=Role.USER.value)
        )
    assert (await admin.get("/")).status_code == 303
    async with runtime.database.unit_of_work() as session:
        await session.execute(
            update(Account).where(Account.username == "root").values(role=Role.ADMIN.value)
        )
    assert (await admin.get("/")).status_code == 200


async def test_a_password_change_ends_the_session(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.unit_of_work(write=False) as session:
        account_id = await session.scalar(select(Account.id).where(Account.username == "root"))
    assert account_id is not None
    checked = await passwords.check_change(
        runtime.database, account_id, STAFF_PASSWORD, "a brand new password"
    )
    async with runtime.database.unit_of_work() as session:
        await passwords.change(session, checked, TEST_ACTOR)
    assert (await admin.get("/")).status_code == 303
    assert (await sign_in(admin, "root", STAFF_PASSWORD)).status_code == 401
    assert (await sign_in(admin, "root", "a brand new password")).status_code == 303


async def test_a_ban_ends_the_session_and_bars_signing_in(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.unit_of_work() as session:
        root = await accounts.resolve(session, "root")
        await moderation.ban(session, root, actor=TEST_ACTOR, reason="gone rogue")
    assert (await admin.get("/")).status_code == 303
    assert await _sessions(runtime) == 0
    assert (await sign_in(admin, "root", STAFF_PASSWORD)).status_code == 401
    assert await _sessions(runtime) == 0


async def test_a_moderator_opens_only_moderation_tickets_and_sessions(
    moderator: httpx.AsyncClient,
) -> None:
    home = await moderator.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/moderation"
    for path in ("/accounts", "/economy", "/servers", "/webhooks", "/audit", "/feed"):
        answer = await moderator.get(path)
        assert answer.status_code == 403, path
        assert "Your role does not open this page" in answer.text
    page = await moderator.get("/moderation")
    assert page.status_code == 200
    assert 'href="/accounts"' not in page.text
    refused = await moderator.get("/audit")  # signing out works from an error page too
    answer = await moderator.post("/sign-out", data={"csrf": form_token(refused.text)})
    assert answer.status_code == 303
    assert (await moderator.get("/moderation")).status_code == 303


async def test_a_moderator_lands_on_their_first_page(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "mod", Role.MODERATOR)
    answer = await sign_in(console, "mod", STAFF_PASSWORD)
    assert answer.headers["location"] == "/moderation"


async def test_sign_in_goes_back_only_to_console_pages(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "root", Role.ADMIN)
    for target, expected in (
        ("/audit?actor=x", "/audit?actor=x"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/" + "a" * 600, "/"),
        ("/\x00", "/"),
        ("/\t/evil", "/"),
    ):
        console.cookies.clear()
        page = await console.get("/sign-in", params={"next": target})
        answer = await console.post(
            "/sign-in",
            data={
                "csrf": form_token(page.text),
                "login": "root",
                "password": STAFF_PASSWORD,
                "next": target,
            },
        )
        assert answer.headers["location"] == expected, target


async def test_the_overview_counts_and_feeds_events(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    from guildhall.core.economy import service as economy
    from tests.conftest import TEST_ACTOR

    page = await admin.get("/")
    assert page.status_code == 200
    last = (await admin.get("/feed")).json()["last"]
    account = await make_account(runtime, "player", discord="4242")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, account, 75, actor=TEST_ACTOR, reason="prize")
    fed = (await admin.get("/feed", params={"after": str(last)})).json()
    assert [e["event"] for e in fed["events"]][-1] == "coins.changed"
    assert fed["events"][-1]["data"]["amount"] == "75"
    assert fed["last"] > last
    page = await admin.get("/")
    newest = page.text.split('id="feed"', 1)[1].split("</li>", 1)[0]
    assert "coins.changed" in newest and '"amount": "75"' in newest
    figures = dict(
        (label, value) for value, label in re.findall(r"<b>([\d,]+)</b><span>([^<]+)<", page.text)
    )
    assert figures["Accounts"] == "2"  # root and player
    assert figures["Coins in circulation"] == "75"
    unread = (await admin.get("/feed", params={"after": "garbage"})).json()
    assert unread == {"events": [], "last": fed["last"]}


async def test_the_feed_misses_no_event_when_many_arrive_between_two_looks(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    from guildhall.core.economy import service as economy

    last = (await admin.get("/feed")).json()["last"]
    account = await make_account(runtime, "player", discord="4242")
    async with runtime.database.unit_of_work() as session:
        for amount in range(1, 121):
            await economy.adjust(session, account, amount, actor=TEST_ACTOR, reason="drip")
    seen: list[str] = []
    while True:
        fed = (await admin.get("/feed", params={"after": str(last)})).json()
        if not fed["events"]:
            break
        seen += [e["data"]["amount"] for e in fed["events"] if e["event"] == "coins.changed"]
        last = fed["last"]
    assert seen == [str(amount) for amount in range(1, 121)]


async def test_a_refused_sign_in_keeps_the_name_and_where_to_go(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "root", Role.ADMIN)
    page = await console.get("/sign-in", params={"next": "/audit"})
    answer = await console.post(
        "/sign-in",
        data={"csrf": form_token(page.text), "login": "root", "password": "no", "next": "/audit"},
    )
    assert answer.status_code == 401
    assert 'name="login" autocomplete="username" value="root"' in answer.text
    assert 'name="next" value="/audit"' in answer.text
    assert "no" not in answer.text.split('name="password"')[1][:60]


async def test_sign_in_attempts_are_rate_limited(
    console: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_staff(runtime, "root", Role.ADMIN)
    page = await console.get("/sign-in")
    token = form_token(page.text)
    codes = []
    for _ in range(11):
        answer = await console.post(
            "/sign-in", data={"csrf": token, "login": "root", "password": "guess"}
        )
        codes.append(answer.status_code)
    assert codes == [401] * 10 + [429]
    assert "Retry-After" in answer.headers
    # Even the right password waits for the window to pass.
    answer = await console.post(
        "/sign-in", data={"csrf": token, "login": "root", "password": STAFF_PASSWORD}
    )
    assert answer.status_code == 429
    assert await _sessions(runtime) == 0


async def test_garbage_sent_to_sign_out_changes_nothing(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    answer = await admin.post(
        "/sign-out",
        content=b"csrf=\xff\xfe" + b"x" * 300_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    assert await _sessions(runtime) == 1
