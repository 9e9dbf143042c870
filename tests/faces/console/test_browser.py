"""The console in a real browser, against ``guildhall serve --demo`` run as a real process.

What an operator does and sees: sign in, the overview, a coin change made through the
Heliactyl API arriving in the live feed, a form sent without its CSRF token refused,
a moderator kept out of an admin page; and the area pages' main actions.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.faces.console.browser import chromium_path, screenshot_path
from tests.peers.oauth.provider import running_provider
from tests.process import Served, free_port, guildhall, last_line, serve, write_config

pytestmark = pytest.mark.e2e

MODERATOR_PASSWORD = "moderator password 1"


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """``guildhall serve --demo``: the console and the Heliactyl face on free ports."""
    config = write_config(
        tmp_path,
        database_url,
        heliactyl={"port": free_port()},
        tables={"console": {"port": free_port()}},
    )
    process = serve(config, "--demo")
    yield process
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.stop()
    process.output()


@pytest.fixture
async def browser() -> AsyncIterator[BrowserContext]:
    """A fresh browser profile; at the end, no page of it broke the console's
    Content-Security-Policy (an inline script or style would, and would not work)."""
    executable = chromium_path()
    complaints: list[str] = []
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        context = await launched.new_context(viewport={"width": 1280, "height": 860})
        context.on("console", lambda message: complaints.append(message.text))
        yield context
        await context.close()
        await launched.close()
    assert not [text for text in complaints if "Content Security Policy" in text], complaints


def demo_admin_password(served: Served) -> str:
    for line in served.banner:
        if line.startswith("Demo console sign-in"):
            return line.rsplit(" ", 1)[-1]
    raise AssertionError(f"no console sign-in in {served.banner}")


async def signed_in(browser: BrowserContext, served: Served, login: str, password: str) -> Page:
    page = await browser.new_page()
    await page.goto(served.url("console") + "/")
    await expect(page).to_have_url(re.compile(r"/sign-in"))
    await page.get_by_label("Username or email").fill(login)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


async def as_admin(browser: BrowserContext, served: Served) -> Page:
    return await signed_in(browser, served, "admin", demo_admin_password(served))


async def test_sign_in_and_see_the_overview(browser: BrowserContext, served: Served) -> None:
    page = await as_admin(browser, served)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.locator(".figure", has_text="Coins in circulation")).to_contain_text("1,750")
    await expect(page.locator("svg.chart rect").first).to_be_attached()
    await page.screenshot(path=screenshot_path("overview"), full_page=True)


async def test_a_wrong_password_is_refused(browser: BrowserContext, served: Served) -> None:
    page = await browser.new_page()
    await page.goto(served.url("console") + "/sign-in")
    await page.get_by_label("Username or email").fill("admin")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("do not open the console")
    await page.goto(served.url("console") + "/")
    await expect(page).to_have_url(re.compile(r"/sign-in"))


async def test_a_coin_change_through_the_api_appears_in_the_live_feed(
    browser: BrowserContext, served: Served
) -> None:
    page = await as_admin(browser, served)
    feed = page.locator("#feed")
    await expect(feed).to_be_visible()
    async with httpx.AsyncClient(base_url=served.base_url("heliactyl")) as api:
        answer = await api.post(
            "/addcoins",
            headers={"Authorization": f"Bearer {served.demo_key}"},
            json={"id": "123456789", "coins": 4321},
        )
    assert answer.json()["status"] == "success", answer.text
    arrived = feed.locator("li.new", has_text="coins.changed")
    await expect(arrived).to_contain_text('"amount":"4321"', timeout=10_000)
    await page.screenshot(path=screenshot_path("live-feed"))


async def test_a_form_without_its_csrf_token_is_refused(
    browser: BrowserContext, served: Served
) -> None:
    page = await as_admin(browser, served)
    # The sign-out form, its token taken out as a forged form would lack it.
    await page.locator("form.who input[name=csrf]").evaluate("input => input.remove()")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("alert")).to_contain_text("not sent from a page of this console")
    await page.goto(served.url("console") + "/")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()  # still signed in


async def test_a_moderator_is_refused_an_admin_page(
    browser: BrowserContext, served: Served
) -> None:
    made = guildhall(
        served.config,
        "users",
        "create",
        "--username",
        "mod",
        "--password",
        "-",
        "--role",
        "moderator",
        input_text=MODERATOR_PASSWORD + "\n",
    )
    assert last_line(made.stdout).isdigit()
    page = await signed_in(browser, served, "mod", MODERATOR_PASSWORD)
    await expect(page.get_by_role("link", name="Accounts")).to_have_count(0)
    answer = await page.goto(served.url("console") + "/accounts")
    assert answer is not None and answer.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("Your role does not open this page")
    moderation = await page.goto(served.url("console") + "/moderation")
    assert moderation is not None and moderation.status == 200


async def _account_page(page: Page, served: Served, discord_id: str) -> None:
    await page.goto(served.url("console") + f"/accounts?q={discord_id}")
    await page.locator("table a", has_text=re.compile(r"\S")).first.click()
    await expect(page.get_by_role("heading", name="Ban")).to_be_visible()


async def test_ban_and_unban_an_account(browser: BrowserContext, served: Served) -> None:
    page = await as_admin(browser, served)
    page.on("dialog", lambda dialog: dialog.accept())  # the forms' "are you sure?"
    await _account_page(page, served, "123456789")
    ban = page.locator("#ban")
    await ban.get_by_label("Reason").fill("spamming the market")
    await ban.get_by_label("Expires after").fill("24")
    await ban.get_by_role("button", name="Ban").click()
    await expect(page.locator(".notice")).to_be_visible()
    await expect(ban.locator(".ban-state")).to_contain_text("Banned")
    await expect(ban.locator(".ban-reason")).to_have_text("spamming the market")
    await page.screenshot(path=screenshot_path("account"), full_page=True)
    async with httpx.AsyncClient(base_url=served.base_url("heliactyl")) as api:
        # The ban is the APIs' ban: Heliactyl's ban list names the user.
        banned = await api.get(
            "/v3/userinteractions",
            params={"id": "123456789"},
            headers={"Authorization": f"Bearer {served.demo_key}"},
        )
    assert "spamming the market" in banned.text
    await ban.get_by_role("button", name="Unban").click()
    await expect(ban.locator(".ban-state")).to_contain_text("Not banned")


async def test_create_a_key_see_its_secret_once_and_revoke_it(
    browser: BrowserContext, served: Served
) -> None:
    page = await as_admin(browser, served)
    page.on("dialog", lambda dialog: dialog.accept())
    await _account_page(page, served, "123456789")
    account_page = page.url
    keys = page.locator("#keys")
    await keys.get_by_label("Name").fill("dashboard bot")
    await keys.get_by_label("Scopes").fill("heliactyl")
    await keys.get_by_role("button", name="Create key").click()
    secret = (await page.locator(".secret").inner_text()).strip()
    assert secret.startswith("gh_")

    async def userinfo() -> httpx.Response:
        async with httpx.AsyncClient(base_url=served.base_url("heliactyl")) as api:
            return await api.get(
                "/v3/userinfo",
                params={"id": "123456789"},
                headers={"Authorization": f"Bearer {secret}"},
            )

    assert (await userinfo()).json()["status"] == "success"
    await page.goto(account_page)  # the page again (a reload would send the form again)
    await expect(page.locator(".secret")).to_have_count(0)  # shown once, never again
    row = keys.locator("tr", has_text="dashboard bot")
    await row.get_by_role("button", name="Revoke").click()
    await expect(keys.locator("tr", has_text="dashboard bot")).to_contain_text("revoked")
    assert (await userinfo()).status_code == 403


async def test_upload_an_item_image_and_see_it(
    browser: BrowserContext, served: Served, tmp_path: Path
) -> None:
    from PIL import Image

    picture = tmp_path / "potion.png"
    Image.new("RGB", (48, 48), (200, 30, 60)).save(picture)
    page = await as_admin(browser, served)
    await page.goto(served.url("console") + "/economy/items")
    await page.get_by_label("Name", exact=True).fill("Health Potion")
    await page.get_by_label("Type").fill("CONSUMABLE")
    await page.get_by_label("Price").fill("50")
    await page.locator("input[name=image][data-preview=item-preview]").set_input_files(picture)
    await expect(page.locator("#item-preview")).to_be_visible()  # the preview, before sending
    await page.get_by_role("button", name="Create item").click()
    shown = page.get_by_role("img", name="Health Potion")
    await expect(shown).to_be_visible()
    width = await shown.evaluate("image => image.complete ? image.naturalWidth : 0")
    assert width == 48  # the browser loaded and decoded the stored image
    await page.screenshot(path=screenshot_path("items"), full_page=True)


async def test_power_a_server_on_and_see_its_state_change(
    browser: BrowserContext, served: Served
) -> None:
    page = await as_admin(browser, served)
    await page.goto(served.url("console") + "/servers")
    row = page.locator("tr", has_text="My VPS")
    await expect(row.locator(".state")).to_have_text("stopped")
    await row.get_by_role("button", name="Start").click()
    await expect(page.locator(".notice")).to_be_visible()
    row = page.locator("tr", has_text="My VPS")
    for _ in range(20):  # starting, then running, as the driver reports it
        if (await row.locator(".state").inner_text()).strip() == "running":
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(row.locator(".state")).to_have_text("running")
    await page.screenshot(path=screenshot_path("servers"), full_page=True)


async def test_sign_in_with_discord(
    browser: BrowserContext, database_url: str, tmp_path: Path
) -> None:
    """The whole trip in a real browser: to the provider and back, and the console's
    SameSite=Strict cookie sent on the first page after it."""
    async with running_provider() as provider:
        port = free_port()
        config = write_config(
            tmp_path,
            database_url,
            tables={
                "console": {"port": port},
                "console.oauth": provider.settings(
                    f"http://127.0.0.1:{port}/sign-in/discord/callback"
                ),
            },
        )
        guildhall(
            config,
            "users",
            "create",
            "--username",
            "dee",
            "--role",
            "moderator",
            "--discord",
            str(provider.person["id"]),
        )
        served = serve(config)
        try:
            page = await browser.new_page()
            await page.goto(served.url("console") + "/tickets")
            await page.get_by_role("link", name="Sign in with Discord").click()
            await expect(page).to_have_url(served.url("console") + "/tickets")
            await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            await expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                served.stop()
            served.output()
