"""The economy pages: items and their images, classes, quests, the settings editor.

Each change is checked where a user would look: the console's own pages, the
database, the audit trail (actor ``account:console:root``) and the Aurora face,
which reads the same core.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from guildhall.core.community import service as community
from guildhall.core.community.models import BotSettings, GuildClass, Quest
from guildhall.core.items import service as items
from guildhall.core.items.models import Item, ItemImage
from guildhall.events.models import AuditEntry
from guildhall.faces.aurora.app import create_app as aurora_app
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.console.conftest import form_token, post_form

ROOT = "account:console:root"


@pytest.fixture
async def aurora(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The Aurora face in-process, as it runs by default (no key, on loopback)."""
    transport = httpx.ASGITransport(app=aurora_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def picture(kind: str = "PNG", colour: str = "red", size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=kind)
    return buffer.getvalue()


@dataclass(frozen=True)
class Counts:
    items: int
    images: int
    classes: int
    quests: int
    settings: int
    audit: int


async def counts(runtime: Runtime) -> Counts:
    async with runtime.database.unit_of_work(write=False) as session:

        async def count(model: type) -> int:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

        return Counts(
            *[
                await count(model)
                for model in (Item, ItemImage, GuildClass, Quest, BotSettings, AuditEntry)
            ]
        )


async def audit_actions(runtime: Runtime, actor: str) -> list[str]:
    """What ``actor`` did, oldest first, beside signing in."""
    async with runtime.database.unit_of_work(write=False) as session:
        return list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.actor == actor, AuditEntry.action.not_like("console.%"))
                .order_by(AuditEntry.id)
            )
        )


POTION = {
    "name": "Health Potion",
    "type": "CONSUMABLE",
    "rarity": "R",
    "price": "150",
    "description": "Restores HP",
}


async def send_item(
    client: httpx.AsyncClient,
    fields: dict[str, str],
    image: tuple[str, bytes, str] | None = None,
    *,
    action: str = "/economy/items",
) -> httpx.Response:
    """The new-item (or replace-image) form, sent as a browser sends it: multipart, with
    an empty file part when no file was chosen."""
    page = await client.get("/economy/items")
    assert page.status_code == 200, page.text
    files = {"image": image or ("", b"", "application/octet-stream")}
    return await client.post(action, data={"csrf": form_token(page.text), **fields}, files=files)


async def item_id(runtime: Runtime, name: str) -> int:
    async with runtime.database.unit_of_work(write=False) as session:
        found = await session.scalar(select(Item.id).where(Item.name == name))
        assert found is not None
        return found


# ---- items ----------------------------------------------------------------


async def test_an_item_is_created_with_its_image_shown_and_served(
    admin: httpx.AsyncClient, runtime: Runtime, aurora: httpx.AsyncClient
) -> None:
    png = picture()
    answer = await send_item(admin, POTION, ("potion.png", png, "image/png"))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/economy/items"
    number = await item_id(runtime, "Health Potion")

    listing = await admin.get("/economy/items")
    assert f"Health Potion (#{number}) created." in listing.text
    assert "Health Potion" in listing.text and "CONSUMABLE" in listing.text
    assert f'<img class="item" src="/economy/items/{number}/image"' in listing.text
    assert 'data-preview="item-preview"' in listing.text and 'id="item-preview"' in listing.text

    served = await admin.get(f"/economy/items/{number}/image")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == png
    assert served.headers["content-security-policy"] == "default-src 'none'"
    again = await admin.get(
        f"/economy/items/{number}/image", headers={"If-None-Match": served.headers["etag"]}
    )
    assert again.status_code == 304

    seen = (await aurora.get(f"/api/items/{number}")).json()
    assert seen["price"] == "150" and seen["rarity"] == "R"
    assert seen["imageUrl"] == f"/assets/items/{number}.png"
    assert (await aurora.get(seen["imageUrl"])).content == png
    assert await audit_actions(runtime, ROOT) == ["item.created"]


async def test_an_item_without_an_image_shows_none(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    answer = await send_item(admin, {**POTION, "name": "Plain Sword", "price": ""})
    assert answer.status_code == 303, answer.text
    number = await item_id(runtime, "Plain Sword")
    listing = await admin.get("/economy/items")
    assert "Plain Sword" in listing.text
    assert f"/economy/items/{number}/image" in listing.text  # the replace form's action
    assert f'src="/economy/items/{number}/image"' not in listing.text
    assert (await admin.get(f"/economy/items/{number}/image")).status_code == 404
    assert (await counts(runtime)).images == 0


async def test_a_non_image_is_refused_in_place_and_changes_nothing(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    before = await counts(runtime)
    answer = await send_item(admin, POTION, ("potion.png", b"not an image at all", "image/png"))
    assert answer.status_code == 400
    assert "not a readable PNG, JPEG, WebP or GIF" in answer.text
    assert 'class="field-error"' in answer.text
    assert 'value="Health Potion"' in answer.text  # what was typed is kept
    assert await counts(runtime) == before


async def test_an_image_too_big_is_refused_and_changes_nothing(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    before = await counts(runtime)
    huge = io.BytesIO()
    Image.new("1", (8000, 5001)).save(huge, format="PNG")  # 40,008,000 pixels
    answer = await send_item(admin, POTION, ("huge.png", huge.getvalue(), "image/png"))
    assert answer.status_code == 400
    assert "more than 40 million pixels" in answer.text
    assert 'value="Health Potion"' in answer.text
    heavy = b"\x89PNG" + b"\0" * items.MAX_IMAGE_BYTES
    answer = await send_item(admin, POTION, ("heavy.png", heavy, "image/png"))
    assert answer.status_code == 400
    assert "too large" in answer.text
    assert await counts(runtime) == before


async def test_an_image_is_replaced_and_a_bad_one_is_refused_in_place(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = picture("PNG", "red")
    await send_item(admin, POTION, ("potion.png", first, "image/png"))
    number = await item_id(runtime, "Health Potion")
    action = f"/economy/items/{number}/image"

    before = await counts(runtime)
    refused = await send_item(
        admin, {"page": "1"}, ("x.gif", b"GIF89a broken", "image/gif"), action=action
    )
    assert refused.status_code == 400
    assert "not a readable PNG, JPEG, WebP or GIF" in refused.text
    assert await counts(runtime) == before
    assert (await admin.get(action)).content == first

    empty = await send_item(admin, {"page": "1"}, None, action=action)
    assert empty.status_code == 400 and "Choose an image file" in empty.text

    jpeg = picture("JPEG", "blue")
    answer = await send_item(admin, {"page": "1"}, ("new.jpg", jpeg, "image/jpeg"), action=action)
    assert answer.status_code == 303, answer.text
    served = await admin.get(action)
    assert served.headers["content-type"] == "image/jpeg"
    assert served.content == jpeg
    assert (await counts(runtime)).images == 1
    assert await audit_actions(runtime, ROOT) == ["item.created", "item.updated"]

    missing = await send_item(
        admin, {}, ("new.jpg", jpeg, "image/jpeg"), action="/economy/items/999999/image"
    )
    assert missing.status_code == 404


async def test_an_item_is_deleted(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    await send_item(admin, POTION, ("potion.png", picture(), "image/png"))
    number = await item_id(runtime, "Health Potion")
    answer = await post_form(admin, "/economy/items", f"/economy/items/{number}/delete", {})
    assert answer.status_code == 303
    listing = await admin.get("/economy/items")
    assert f"Health Potion (#{number}) deleted." in listing.text
    assert "No items yet." in listing.text
    after = await counts(runtime)
    assert (after.items, after.images) == (0, 0)
    assert await audit_actions(runtime, ROOT) == ["item.created", "item.deleted"]
    again = await post_form(admin, "/economy/items", f"/economy/items/{number}/delete", {})
    assert again.status_code == 404
    for bad in ("abc", "1e3", "-1", "9" * 40):
        assert (await admin.get(f"/economy/items/{bad}/image")).status_code == 404
        answer = await post_form(admin, "/economy/items", f"/economy/items/{bad}/delete", {})
        assert answer.status_code == 404


async def test_a_duplicate_or_bad_item_is_refused_in_place(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await send_item(admin, POTION)
    before = await counts(runtime)
    duplicate = await send_item(admin, {**POTION, "name": "health potion"})
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.text
    for change, message in (
        ({"name": ""}, "Name is required."),
        ({"price": "-5"}, "Price must be a whole number"),
        ({"rarity": "X"}, "rarity must be one of C, R, SR, SSR"),
        ({"name": "x" * 101}, "Name must be at most 100 characters."),
        ({"description": "bad\x00text"}, "must not contain NUL"),
    ):
        answer = await send_item(admin, {**POTION, **change})
        assert answer.status_code == 400, change
        assert message in answer.text, change
    assert await counts(runtime) == before


async def test_items_page_and_search_in_the_database(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.unit_of_work() as session:
        for n in range(51):
            await items.create(
                session,
                items.ItemFields(name=f"Gem {n:02d}", type="GEM", rarity="C", price=n),
                TEST_ACTOR,
            )
    first = await admin.get("/economy/items")
    assert "Gem 49" in first.text and "Gem 50" not in first.text
    assert 'href="/economy/items?page=2"' in first.text
    second = await admin.get("/economy/items", params={"page": "2"})
    assert "Gem 50" in second.text and "Gem 49" not in second.text
    assert 'href="/economy/items?page=1"' in second.text
    found = await admin.get("/economy/items", params={"q": "Gem 50"})
    assert "Gem 50" in found.text and "Gem 49" not in found.text
    for bad in ("0", "x", "99999999"):
        assert (await admin.get("/economy/items", params={"page": bad})).status_code == 400


async def test_a_form_without_its_token_changes_nothing(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    before = await counts(runtime)
    answer = await admin.post(
        "/economy/items", data=POTION, files={"image": ("p.png", picture(), "image/png")}
    )
    assert answer.status_code == 403
    for action, fields in (
        ("/economy/classes", {"name": "Warrior"}),
        ("/economy/quests", {"name": "Chat", "trigger_event": "message"}),
        ("/economy/settings", {"document": '{"prefix": "?"}'}),
    ):
        answer = await admin.post(action, data={**fields, "csrf": "0" * 64})
        assert answer.status_code == 403, action
    assert await counts(runtime) == before


async def test_a_moderator_may_not_open_the_economy(
    moderator: httpx.AsyncClient, runtime: Runtime
) -> None:
    for path in (
        "/economy",
        "/economy/items",
        "/economy/classes",
        "/economy/quests",
        "/economy/settings",
    ):
        answer = await moderator.get(path)
        assert answer.status_code == 403, path
    token = form_token((await moderator.get("/moderation")).text)
    before = await counts(runtime)
    answer = await moderator.post("/economy/classes", data={"csrf": token, "name": "Warrior"})
    assert answer.status_code == 403
    assert await counts(runtime) == before


async def test_the_overview_links_every_page(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/economy")
    assert page.status_code == 200
    for href in ("/economy/items", "/economy/classes", "/economy/quests", "/economy/settings"):
        assert f'href="{href}"' in page.text


# ---- classes and quests ---------------------------------------------------


async def test_classes_are_created_and_deleted(
    admin: httpx.AsyncClient, runtime: Runtime, aurora: httpx.AsyncClient
) -> None:
    answer = await post_form(
        admin,
        "/economy/classes",
        "/economy/classes",
        {"name": "Warrior", "id": "warrior", "balance": "500", "role_id": "1234"},
    )
    assert answer.status_code == 303, answer.text
    page = await admin.get("/economy/classes")
    assert "Class Warrior (warrior) created." in page.text
    assert "Warrior" in page.text and "500" in page.text
    assert (await aurora.get("/api/classes")).json()["classes"] == [
        {"id": "warrior", "name": "Warrior", "balance": "500", "roleId": "1234"}
    ]

    before = await counts(runtime)
    duplicate = await post_form(admin, "/economy/classes", "/economy/classes", {"name": "warrior"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.text
    bad_id = await post_form(
        admin, "/economy/classes", "/economy/classes", {"name": "Mage", "id": "no spaces"}
    )
    assert bad_id.status_code == 400
    assert "the id must be 1 to 32 letters" in bad_id.text
    assert 'value="Mage"' in bad_id.text
    assert await counts(runtime) == before

    answer = await post_form(admin, "/economy/classes", "/economy/classes/warrior/delete", {})
    assert answer.status_code == 303
    assert (await aurora.get("/api/classes")).json()["classes"] == []
    assert await audit_actions(runtime, ROOT) == ["class.created", "class.deleted"]
    gone = await post_form(admin, "/economy/classes", "/economy/classes/warrior/delete", {})
    assert gone.status_code == 404


async def test_quests_are_created_and_deleted(
    admin: httpx.AsyncClient, runtime: Runtime, aurora: httpx.AsyncClient
) -> None:
    answer = await post_form(
        admin,
        "/economy/quests",
        "/economy/quests",
        {
            "name": "Chatterbox",
            "description": "Send 100 messages",
            "trigger_event": "message",
            "target": "100",
            "xp_reward": "50",
            "balance_reward": "25",
        },
    )
    assert answer.status_code == 303, answer.text
    page = await admin.get("/economy/quests")
    assert "Chatterbox" in page.text and "Send 100 messages" in page.text
    quests = (await aurora.get("/api/quests")).json()["data"]
    assert [(q["name"], q["requirements"], q["rewards"]) for q in quests] == [
        ("Chatterbox", {"target": 100}, {"xp": 50, "balance": 25})
    ]

    before = await counts(runtime)
    for fields, message in (
        ({"name": "No trigger"}, "Trigger event is required."),
        ({"name": "Zero", "trigger_event": "message", "target": "0"}, "Target must be"),
    ):
        refused = await post_form(admin, "/economy/quests", "/economy/quests", fields)
        assert refused.status_code == 400
        assert message in refused.text
        assert f'value="{fields["name"]}"' in refused.text
    assert await counts(runtime) == before

    number = quests[0]["id"]
    answer = await post_form(admin, "/economy/quests", f"/economy/quests/{number}/delete", {})
    assert answer.status_code == 303
    assert (await aurora.get("/api/quests")).json()["data"] == []
    assert await audit_actions(runtime, ROOT) == ["quest.created", "quest.deleted"]
    assert (
        await post_form(admin, "/economy/quests", "/economy/quests/abc/delete", {})
    ).status_code == 404


# ---- settings -------------------------------------------------------------


def textarea(page: str) -> str:
    """The settings editor's text, as the browser shows it."""
    found = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S)
    assert found, page
    return html.unescape(found.group(1))


async def test_the_settings_editor_saves_valid_json(
    admin: httpx.AsyncClient, runtime: Runtime, aurora: httpx.AsyncClient
) -> None:
    page = await admin.get("/economy/settings")
    document = json.loads(textarea(page.text))
    assert document["prefix"] == "!"
    document["prefix"] = "?"
    document["economy"]["dailyReward"] = 250
    document["welcome"] = {"text": "<b>hi</b>"}
    answer = await admin.post(
        "/economy/settings",
        data={"csrf": form_token(page.text), "document": json.dumps(document, indent=2)},
    )
    assert answer.status_code == 303, answer.text
    seen = (await aurora.get("/api/settings")).json()
    assert seen["prefix"] == "?" and seen["economy"]["dailyReward"] == 250
    assert seen["welcome"] == {"text": "<b>hi</b>"}
    shown = await admin.get("/economy/settings")
    assert "Settings saved." in shown.text
    assert "&lt;b&gt;hi&lt;/b&gt;" in shown.text  # escaped, never markup
    assert json.loads(textarea(shown.text)) == seen
    assert await audit_actions(runtime, ROOT) == ["settings.updated"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prefix": "?",', "The document is not valid JSON"),
        ("", "The document is not valid JSON"),
        ('["a list"]', "settings must be an object"),
        ('{"prefix": 5}', "prefix must be a string"),
        ('{"economy": {"dailyReward": "lots"}}', "economy.dailyReward must be a int"),
        ("[" * 40 + "]" * 40, "nest"),
        ('{"big": "' + "x" * 70_000 + '"}', "the settings may take at most 64 KB"),
    ],
)
async def test_the_settings_editor_shows_errors_in_place_and_saves_nothing(
    admin: httpx.AsyncClient,
    runtime: Runtime,
    aurora: httpx.AsyncClient,
    text: str,
    message: str,
) -> None:
    stored = (await aurora.get("/api/settings")).json()
    before = await counts(runtime)
    page = await admin.get("/economy/settings")
    answer = await admin.post(
        "/economy/settings", data={"csrf": form_token(page.text), "document": text}
    )
    assert answer.status_code == 400
    assert message in answer.text
    assert 'class="field-error"' in answer.text
    assert textarea(answer.text) == text  # the text as submitted, to fix
    assert await counts(runtime) == before
    assert (await aurora.get("/api/settings")).json() == stored
    async with runtime.database.unit_of_work(write=False) as session:
        assert await community.settings(session) == stored
