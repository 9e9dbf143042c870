"""``/economy``: items with their images, classes, quests and the bot's settings document.

Every change goes through the services Aurora's routes call (``core/items``,
``core/community``), so the audit rows and events are the API's own, naming the
console user. Decisions where the issue is silent:

- A form the core refuses is shown again with what was typed and the reason next to
  its field (400, or 409 for a name already taken). The core call runs in a
  savepoint, so a refusal leaves nothing of it behind, even where the service had
  already written part of its work (the settings row it makes before checking caps).
- An item's image is checked as Aurora checks one (Pillow must decode it as PNG,
  JPEG, WebP or GIF; at most 15 MB and 40 million pixels) before anything is
  written. An upload over 15 MB is refused while the form is read, before the
  page runs, so it gets the console's error page (400) rather than the form.
- An image is served from ``/economy/items/{id}/image`` with its stored type, as
  content that runs nothing (``default-src 'none'``), revalidated by its ETag.
- Lists page in the database, 50 to a page, reading one row more than they show
  rather than counting the table (the overview shows the counts); items can also be
  searched by name or description (``?q=``), as Aurora's ``search`` does.
- Saving the settings merges the submitted document into the stored one, as Aurora's
  ``POST /api/settings`` does: a key removed from the text is kept as it is (a key
  of the operator's own can be set to ``null``), and a known key keeps its type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from guildhall.core.access.console import Area
from guildhall.core.community import service as community
from guildhall.core.community.models import Quest
from guildhall.core.errors import CoreError, Invalid, NotFound, is_digits
from guildhall.core.items import service as items
from guildhall.core.items.models import Item
from guildhall.faces.common.body import TooDeep, parse_json
from guildhall.faces.console import forms
from guildhall.faces.console.auth import Visit, screen
from guildhall.faces.console.errors import status_of
from guildhall.faces.console.forms import FORM, Pager
from guildhall.faces.console.render import SECURITY_HEADERS, back_to, page

MAX_BIG = community.MAX_BIG
ITEM_FIELDS = ("name", "type", "rarity", "price", "description", "image")
CLASS_FIELDS = ("name", "id", "balance", "role_id")
QUEST_FIELDS = (
    "name",
    "description",
    "trigger_event",
    "target",
    "xp_reward",
    "balance_reward",
)
MAX_SEARCH = 100


# ---- reading forms ---------------------------------------------------------


def amount(visit: Visit, name: str, label: str, *, minimum: int = 0) -> int | None:
    """A whole number field (None when left empty), within what the core stores."""
    raw = visit.text(name)
    if not raw:
        return None
    if not is_digits(raw, 15) or not minimum <= int(raw) <= MAX_BIG:
        raise Invalid(f"{label} must be a whole number from {minimum} to {MAX_BIG}.", field=name)
    return int(raw)


# ---- overview -------------------------------------------------------------


async def overview(session: AsyncSession, visit: Visit) -> Response:
    return page(
        visit,
        "economy.html",
        title="Economy",
        figures={
            "Items": await items.item_count(session),
            "Classes": await community.class_count(session),
            "Quests": await community.quest_count(session),
        },
        maintenance=await community.maintenance(session),
    )


# ---- items ----------------------------------------------------------------


async def _items_page(
    session: AsyncSession,
    visit: Visit,
    *,
    number: int | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    row_errors: dict[int, str] | None = None,
) -> Response:
    search = forms.text(visit.request.query_params, "q", "The search", MAX_SEARCH)
    if number is None:
        number = forms.page_number(visit)
    rows, has_next = await forms.read_page(
        number,
        lambda limit, offset: items.search_page(
            session, text=search or None, item_type=None, rarity=None, limit=limit, offset=offset
        ),
    )
    errors = dict(errors or {})
    row_errors = dict(row_errors or {})
    shown = {row.id for row in rows}
    for item_id in [key for key in row_errors if key not in shown]:
        errors[FORM] = f"Item #{item_id}: {row_errors.pop(item_id)}"
    return page(
        visit,
        "economy_items.html",
        status=status,
        title="Items",
        items=rows,
        images=await items.image_names(session, [row.id for row in rows]),
        pager=Pager.of(visit, number, has_next, path="/economy/items", params={"q": search}),
        search=search,
        rarities=items.RARITIES,
        errors=errors,
        values=values or {"rarity": items.RARITIES[0]},
        row_errors=row_errors,
        max_megabytes=items.MAX_IMAGE_BYTES // (1024 * 1024),
    )


async def list_items(session: AsyncSession, visit: Visit) -> Response:
    return await _items_page(session, visit)


async def _upload(visit: Visit, *, required: bool) -> items.CheckedImage | None:
    """The form's image, checked as Aurora checks one; None when no file was chosen
    (a browser sends an empty part with no file name for an empty file input)."""
    upload = visit.files.files.get("image") if visit.files is not None else None
    if upload is None or (upload.size == 0 and not upload.filename):
        if required:
            raise Invalid("Choose an image file to upload.", field="image")
        return None
    # Decoding is CPU work: off the event loop, as in Aurora.
    return await asyncio.to_thread(items.check_image, upload.file)


async def create_item(session: AsyncSession, visit: Visit) -> Response:
    async def create() -> Item:
        form = visit.form
        fields = items.ItemFields(
            name=forms.text(form, "name", "Name", 100, required=True),
            type=forms.text(form, "type", "Type", 32, required=True),
            rarity=forms.text(form, "rarity", "Rarity", 3, required=True),
            price=amount(visit, "price", "Price"),
            description=forms.text(form, "description", "Description", 2000),
        )
        image = await _upload(visit, required=False)
        return await items.create(session, fields, visit.staff.actor, image)

    row = await forms.attempt(session, create)
    if isinstance(row, CoreError):
        return await _items_page(
            session,
            visit,
            number=1,
            status=status_of(row),
            errors=forms.placed(row, ITEM_FIELDS),
            values=forms.form_values(visit),
        )
    return back_to(visit, "/economy/items", f"Item {row.name} (#{row.id}) created.")


async def replace_image(session: AsyncSession, visit: Visit) -> Response:
    item_id = forms.path_id(visit, "item_id", "item")
    await items.get(session, item_id)  # an item there is not: 404, not the form
    try:
        number = forms.parse_page(visit.text("page"))
    except Invalid:
        number = 1

    async def replace() -> Item:
        image = await _upload(visit, required=True)
        assert image is not None
        return await items.set_image(session, item_id, image, visit.staff.actor)

    row = await forms.attempt(session, replace)
    if isinstance(row, CoreError):
        return await _items_page(
            session, visit, number=number, status=status_of(row), row_errors={item_id: row.message}
        )
    return back_to(
        visit, f"/economy/items?page={number}", f"The image of {row.name} (#{row.id}) replaced."
    )


async def delete_item(session: AsyncSession, visit: Visit) -> Response:
    item_id = forms.path_id(visit, "item_id", "item")
    row = await items.get(session, item_id)
    name = row.name
    await items.delete_item(session, item_id, visit.staff.actor)
    return back_to(visit, "/economy/items", f"Item {name} (#{item_id}) deleted.")


async def item_image(session: AsyncSession, visit: Visit) -> Response:
    """The stored bytes with their stored type; the same image Aurora serves."""
    item_id = forms.path_id(visit, "item_id", "item")
    names = await items.image_names(session, [item_id])
    if item_id not in names:
        raise NotFound(f"Item #{item_id} has no image.")
    found = await items.image(session, names[item_id])
    etag = f'"{found.etag}"'
    headers = {
        **SECURITY_HEADERS,
        # Someone's upload: opened directly it runs and loads nothing.
        "Content-Security-Policy": "default-src 'none'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-cache",
        "ETag": etag,
        "Content-Disposition": f'inline; filename="{found.filename}"',
    }
    if etag in visit.request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.content_type, headers=headers)


# ---- classes --------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """A list page of the economy with its creation form: classes, quests."""

    template: str
    title: str
    path: str
    rows_name: str
    read: Callable[[AsyncSession, int, int], Awaitable[Sequence[object]]]
    blank: Mapping[str, str] = field(default_factory=dict)
    """The creation form's values before anything is typed."""


CLASSES = Listing(
    "economy_classes.html",
    "Classes",
    "/economy/classes",
    "classes",
    lambda session, limit, offset: community.class_page(session, limit=limit, offset=offset),
)
QUESTS = Listing(
    "economy_quests.html",
    "Quests",
    "/economy/quests",
    "quests",
    lambda session, limit, offset: community.quest_page(session, limit=limit, offset=offset),
    blank={"target": "1"},
)


async def _listing_page(
    session: AsyncSession,
    visit: Visit,
    listing: Listing,
    *,
    refused: CoreError | None = None,
    fields: Sequence[str] = (),
) -> Response:
    """The list (its first page after a refused form) and the creation form: empty, or
    as it was sent, with the refusal next to its field."""
    number = 1 if refused is not None else forms.page_number(visit)
    rows, has_next = await forms.read_page(
        number, lambda limit, offset: listing.read(session, limit, offset)
    )
    return page(
        visit,
        listing.template,
        status=status_of(refused) if refused is not None else 200,
        title=listing.title,
        pager=Pager.of(visit, number, has_next, path=listing.path),
        errors=forms.placed(refused, fields) if refused is not None else {},
        values=forms.form_values(visit) if refused is not None else dict(listing.blank),
        **{listing.rows_name: rows},
    )


async def list_classes(session: AsyncSession, visit: Visit) -> Response:
    return await _listing_page(session, visit, CLASSES)


async def create_class(session: AsyncSession, visit: Visit) -> Response:
    async def create() -> community.ClassView:
        form = visit.form
        return await community.create_class(
            session,
            visit.staff.actor,
            name=forms.text(form, "name", "Name", 100, required=True),
            balance=amount(visit, "balance", "Treasury") or 0,
            role_id=forms.text(form, "role_id", "Role id", 32) or None,
            class_id=forms.text(form, "id", "Id", 32) or None,
        )

    view = await forms.attempt(session, create)
    if isinstance(view, CoreError):
        return await _listing_page(session, visit, CLASSES, refused=view, fields=CLASS_FIELDS)
    return back_to(visit, "/economy/classes", f"Class {view.name} ({view.id}) created.")


async def delete_class(session: AsyncSession, visit: Visit) -> Response:
    class_id = visit.request.path_params["class_id"]
    await community.delete_class(session, class_id, visit.staff.actor)
    return back_to(visit, "/economy/classes", f"Class {class_id} deleted.")


# ---- quests ---------------------------------------------------------------


async def list_quests(session: AsyncSession, visit: Visit) -> Response:
    return await _listing_page(session, visit, QUESTS)


async def create_quest(session: AsyncSession, visit: Visit) -> Response:
    async def create() -> Quest:
        form = visit.form
        fields = community.QuestFields(
            name=forms.text(form, "name", "Name", 100, required=True),
            description=forms.text(form, "description", "Description", 2000),
            trigger_event=forms.text(form, "trigger_event", "Trigger event", 64, required=True),
            target=amount(visit, "target", "Target", minimum=1),
            xp_reward=amount(visit, "xp_reward", "XP reward"),
            balance_reward=amount(visit, "balance_reward", "Coin reward"),
        )
        return await community.create_quest(session, fields, visit.staff.actor)

    row = await forms.attempt(session, create)
    if isinstance(row, CoreError):
        return await _listing_page(session, visit, QUESTS, refused=row, fields=QUEST_FIELDS)
    return back_to(visit, "/economy/quests", f"Quest {row.name} (#{row.id}) created.")


async def delete_quest(session: AsyncSession, visit: Visit) -> Response:
    quest_id = forms.path_id(visit, "quest_id", "quest")
    await community.delete_quest(session, quest_id, visit.staff.actor)
    return back_to(visit, "/economy/quests", f"Quest #{quest_id} deleted.")


# ---- settings -------------------------------------------------------------


def _settings_page(
    visit: Visit, text: str, *, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    return page(
        visit,
        "economy_settings.html",
        status=status,
        title="Settings",
        text=text,
        errors=errors or {},
        max_kilobytes=community.MAX_DOCUMENT_BYTES // 1024,
    )


async def settings_editor(session: AsyncSession, visit: Visit) -> Response:
    document = await community.settings(session)
    return _settings_page(visit, orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


async def save_settings(session: AsyncSession, visit: Visit) -> Response:
    text = visit.form.get("document", "")

    async def save() -> None:
        try:
            update = parse_json(text)
        except TooDeep as exc:
            raise Invalid(f"The document: {exc}.", field="document") from None
        except ValueError as exc:
            raise Invalid(f"The document is not valid JSON: {exc}.", field="document") from None
        await community.merge_settings(session, update, visit.staff.actor)

    refused = await forms.attempt(session, save)
    if isinstance(refused, CoreError):
        # The whole form is the document: whatever part of it the core names.
        errors = {"document": refused.message}
        return _settings_page(visit, text, status=status_of(refused), errors=errors)
    return back_to(visit, "/economy/settings", "Settings saved.")


ROUTES: list[BaseRoute] = [
    Route("/economy", screen(Area.ECONOMY, overview), methods=["GET"]),
    Route("/economy/items", screen(Area.ECONOMY, list_items), methods=["GET"]),
    Route(
        "/economy/items",
        screen(Area.ECONOMY, create_item, uploads=items.MAX_IMAGE_BYTES),
        methods=["POST"],
    ),
    Route("/economy/items/{item_id}/image", screen(Area.ECONOMY, item_image), methods=["GET"]),
    Route(
        "/economy/items/{item_id}/image",
        screen(Area.ECONOMY, replace_image, uploads=items.MAX_IMAGE_BYTES),
        methods=["POST"],
    ),
    Route("/economy/items/{item_id}/delete", screen(Area.ECONOMY, delete_item), methods=["POST"]),
    Route("/economy/classes", screen(Area.ECONOMY, list_classes), methods=["GET"]),
    Route("/economy/classes", screen(Area.ECONOMY, create_class), methods=["POST"]),
    Route(
        "/economy/classes/{class_id}/delete", screen(Area.ECONOMY, delete_class), methods=["POST"]
    ),
    Route("/economy/quests", screen(Area.ECONOMY, list_quests), methods=["GET"]),
    Route("/economy/quests", screen(Area.ECONOMY, create_quest), methods=["POST"]),
    Route(
        "/economy/quests/{quest_id}/delete", screen(Area.ECONOMY, delete_quest), methods=["POST"]
    ),
    Route("/economy/settings", screen(Area.ECONOMY, settings_editor), methods=["GET"]),
    Route("/economy/settings", screen(Area.ECONOMY, save_settings), methods=["POST"]),
]
