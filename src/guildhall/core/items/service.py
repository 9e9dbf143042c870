"""Items, their images and inventories.

An image is accepted only if Pillow decodes its bytes as PNG, JPEG, WebP or
GIF (the name and the declared type are ignored) and it is at most 15 MB;
it is stored in the database, so every server process serves it and it
survives restarts. Its file name is ``<item id>.<format>``, its ETag a hash
of its bytes.

Inventory quantities change by single conditional statements: adding is an
upsert that adds, removing subtracts only while enough is held, and a row
that reaches zero is deleted in the same transaction.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from typing import IO, Any

from PIL import Image
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.items.models import InventoryEntry, Item, ItemImage
from guildhall.db.base import utcnow
from guildhall.db.sql import KEEP_ROW, dialect_of, flush_unless_duplicate, rowcount
from guildhall.events import audit, outbox
from guildhall.events.announce import announce

MAX_IMAGE_BYTES = 15 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # an icon needs far fewer; decoding more is a memory bomb
MAX_QUANTITY = 999_999_999_999_999
RARITIES = ("C", "R", "SR", "SSR")
IMAGE_FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
}
_PILLOW_FORMATS = tuple(IMAGE_FORMATS)
_STORED_AS = {**IMAGE_FORMATS, "MPO": IMAGE_FORMATS["JPEG"]}
"""What Pillow calls what it opened: a JPEG with several pictures (from phones and
3D cameras) opens as MPO, and is a JPEG to every browser."""
ASSET_PREFIX = "/assets/items/"
FILENAME = re.compile(r"[0-9]{1,18}\.(png|jpg|webp|gif)")


@dataclass(frozen=True, slots=True)
class CheckedImage:
    data: bytes
    extension: str
    content_type: str


def check_image(source: IO[bytes]) -> CheckedImage:
    """The image if the file's bytes really are a PNG, JPEG, WebP or GIF of at most 15 MB.

    It decodes the whole first frame: CPU work, so callers run it in a thread.
    The file (an upload spooled to disk, say) is read into memory only once it
    has passed: bytes that are not an image cost no more than their header.
    Pillow is asked for those four formats only, so it never runs the decoder of
    another one on untrusted bytes. Any exception from decoding refuses the image:
    Pillow's decoders raise more kinds than the common ones (a crafted DDS header
    raises an "unimplemented pixel format" error, a TIFF tag of the wrong type a TypeError).
    """
    size = source.seek(0, io.SEEK_END)
    if size > MAX_IMAGE_BYTES:
        raise Invalid("the image is larger than 15 MB", code="image_too_large", field="image")
    if not size:
        raise Invalid("the image is empty", code="image_invalid", field="image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source.seek(0)
            with Image.open(source, formats=_PILLOW_FORMATS) as probe:
                kind = probe.format
                width, height = probe.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise Invalid(
                        "the image has more than 40 million pixels",
                        code="image_too_large",
                        field="image",
                    )
                probe.verify()  # structure and checksums
            source.seek(0)
            data = source.read()
            with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as full:
                full.load()  # every pixel decodes: a truncated file fails here
    except Invalid:
        raise
    except Exception:  # whatever a decoder raises on bytes it cannot read
        raise Invalid(
            "the image is not a readable PNG, JPEG, WebP or GIF",
            code="image_invalid",
            field="image",
        ) from None
    if kind not in _STORED_AS:  # a plugin Pillow substituted for one of the four
        raise Invalid(
            "the image must be PNG, JPEG, WebP or GIF", code="image_invalid", field="image"
        )
    extension, content_type = _STORED_AS[kind]
    return CheckedImage(data, extension, content_type)


@dataclass
class ItemFields:
    name: str | None = None
    description: str | None = None
    type: str | None = None
    rarity: str | None = None
    price: int | None = None
    icon_url: str | None = None
    image_url: str | None = None
    usage_data: dict[str, Any] | None = None


def _check_fields(fields: ItemFields) -> None:
    if fields.rarity is not None and fields.rarity not in RARITIES:
        raise Invalid(f"rarity must be one of {', '.join(RARITIES)}", field="rarity")
    if fields.name is not None and not 1 <= len(fields.name.strip()) <= 100:
        raise Invalid("name must be 1 to 100 characters", field="name")


async def _name_free(session: AsyncSession, name: str, except_id: int | None = None) -> None:
    query = select(Item.id).where(func.lower(Item.name) == name.strip().lower())
    if except_id is not None:
        query = query.where(Item.id != except_id)
    if await session.scalar(query) is not None:
        raise Conflict(f"an item named {name!r} already exists", code="duplicate_name")


async def get(session: AsyncSession, item_id: int, *, lock: bool | dict[str, bool] = False) -> Item:
    """The item; ``lock`` is passed to ``with_for_update`` (True, or ``KEEP_ROW``)."""
    item = await session.get(Item, item_id, with_for_update=lock)
    if item is None:
        raise NotFound(f"item {item_id} does not exist", code="item_not_found")
    return item


def _search_query(text: str | None, item_type: str | None, rarity: str | None) -> Select[Item]:
    query = select(Item)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(Item.name.ilike(pattern, escape="\\"), Item.description.ilike(pattern, escape="\\"))
        )
    if item_type:
        query = query.where(Item.type == item_type)
    if rarity:
        query = query.where(Item.rarity == rarity)
    return query


async def search(
    session: AsyncSession,
    *,
    text: str | None,
    item_type: str | None,
    rarity: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Item], int]:
    """``limit`` matching items from ``offset``, by id, and how many match in all."""
    query = _search_query(text, item_type, rarity)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await search_page(
        session, text=text, item_type=item_type, rarity=rarity, limit=limit, offset=offset
    )
    return rows, total


async def search_page(
    session: AsyncSession,
    *,
    text: str | None,
    item_type: str | None,
    rarity: str | None,
    limit: int,
    offset: int,
) -> list[Item]:
    """``limit`` matching items from ``offset``, by id, without counting them all (a list
    that reads one row more to know whether another page follows)."""
    query = _search_query(text, item_type, rarity)
    return list(await session.scalars(query.order_by(Item.id).limit(limit).offset(offset)))


async def item_count(session: AsyncSession) -> int:
    """How many items there are."""
    return await session.scalar(select(func.count()).select_from(Item)) or 0


async def create(
    session: AsyncSession, fields: ItemFields, actor: Actor, image: CheckedImage | None = None
) -> Item:
    if not fields.name or not fields.type or not fields.rarity:
        raise Invalid("name, type and rarity are required", field="name")
    _check_fields(fields)
    await _name_free(session, fields.name)
    item = Item(
        name=fields.name.strip(),
        description=fields.description or "",
        type=fields.type,
        rarity=fields.rarity,
        price=fields.price or 0,
        icon_url=fields.icon_url,
        image_url=fields.image_url,
        usage_data=fields.usage_data or {},
    )
    session.add(item)
    if not await flush_unless_duplicate(session):
        raise Conflict(f"an item named {fields.name!r} already exists", code="duplicate_name")
    if image is not None:
        await _store_image(session, item, image)
    await announce(
        session,
        actor,
        "item.created",
        f"{actor.name} created item {item.name} (#{item.id})",
        {"id": item.id, "name": item.name},
        target=f"item:{item.id}",
    )
    return item


async def update_item(
    session: AsyncSession, item_id: int, fields: ItemFields, actor: Actor
) -> Item:
    item = await get(session, item_id, lock=True)
    _check_fields(fields)
    if fields.name is not None:
        await _name_free(session, fields.name, except_id=item_id)
    for name in (
        "name",
        "description",
        "type",
        "rarity",
        "price",
        "icon_url",
        "image_url",
        "usage_data",
    ):
        value = getattr(fields, name)
        if value is not None:
            setattr(item, name, value.strip() if name == "name" else value)
    item.updated_at = utcnow()
    if not await flush_unless_duplicate(session):
        raise Conflict(f"an item named {fields.name!r} already exists", code="duplicate_name")
    await announce(
        session,
        actor,
        "item.updated",
        f"{actor.name} updated item {item.name} (#{item.id})",
        {"id": item.id, "name": item.name},
        target=f"item:{item.id}",
    )
    return item


async def _store_image(session: AsyncSession, item: Item, image: CheckedImage) -> None:
    await session.execute(delete(ItemImage).where(ItemImage.item_id == item.id))
    filename = f"{item.id}.{image.extension}"
    session.add(
        ItemImage(
            filename=filename,
            item_id=item.id,
            content_type=image.content_type,
            etag=hashlib.sha256(image.data).hexdigest()[:32],
            size=len(image.data),
            data=image.data,
        )
    )
    item.icon_url = item.image_url = ASSET_PREFIX + filename
    item.updated_at = utcnow()
    await session.flush()


async def set_image(session: AsyncSession, item_id: int, image: CheckedImage, actor: Actor) -> Item:
    item = await get(session, item_id, lock=True)
    await _store_image(session, item, image)
    await announce(
        session,
        actor,
        "item.updated",
        f"{actor.name} replaced the image of item {item.name}",
        {"id": item.id, "name": item.name},
        target=f"item:{item.id}",
    )
    return item


async def delete_item(session: AsyncSession, item_id: int, actor: Actor) -> None:
    """Delete the item, its image and every inventory row holding it."""
    item = await get(session, item_id, lock=True)
    await session.execute(delete(ItemImage).where(ItemImage.item_id == item_id))
    await session.execute(delete(InventoryEntry).where(InventoryEntry.item_id == item_id))
    await session.delete(item)
    await session.flush()
    await announce(
        session,
        actor,
        "item.deleted",
        f"{actor.name} deleted item {item.name} (#{item_id})",
        {"id": item_id},
        target=f"item:{item_id}",
    )


async def image(session: AsyncSession, filename: str) -> ItemImage:
    """A stored image by file name; anything that is not one of ours is simply not found."""
    if not FILENAME.fullmatch(filename):
        raise NotFound("no such image", code="image_not_found")
    found = await session.get(ItemImage, filename)
    if found is None:
        raise NotFound("no such image", code="image_not_found")
    return found


async def image_names(session: AsyncSession, item_ids: list[int]) -> dict[int, str]:
    rows = await session.execute(
        select(ItemImage.item_id, ItemImage.filename).where(ItemImage.item_id.in_(item_ids))
    )
    return {item_id: filename for item_id, filename in rows}


# ---- inventory -----------------------------------------------------------


async def inventory(session: AsyncSession, account_id: int) -> list[tuple[InventoryEntry, Item]]:
    rows = await session.execute(
        select(InventoryEntry, Item)
        .join(Item, Item.id == InventoryEntry.item_id)
        .where(InventoryEntry.account_id == account_id)
        .order_by(InventoryEntry.item_id)
    )
    return [(entry, item) for entry, item in rows]


def _upsert(dialect: str, values: dict[str, Any]) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(InventoryEntry).values(**values)
    return statement.on_conflict_do_update(
        index_elements=["account_id", "item_id"],
        set_={
            "quantity": InventoryEntry.quantity + statement.excluded.quantity,
            "updated_at": statement.excluded.updated_at,
        },
        where=InventoryEntry.quantity + statement.excluded.quantity <= MAX_QUANTITY,
    ).returning(InventoryEntry.quantity)


async def add(
    session: AsyncSession, owner: AccountRef, item_id: int, quantity: int, actor: Actor
) -> int:
    """Add to what the owner holds; the new quantity."""
    if not 1 <= quantity <= MAX_QUANTITY:
        raise Invalid("quantity must be a positive whole number", field="quantity")
    item = await get(session, item_id, lock=KEEP_ROW)  # not deleted before the upsert
    dialect = dialect_of(session).name
    values = {
        "account_id": owner.id,
        "item_id": item_id,
        "quantity": quantity,
        "updated_at": utcnow(),
    }
    held: int | None = await session.scalar(_upsert(dialect, values))
    if held is None:
        raise Invalid("that would hold more than the maximum quantity", field="quantity")
    await audit.record(
        session,
        actor,
        "inventory.added",
        f"{actor.name} gave {quantity} x {item.name} to {owner.describe()} (now {held})",
        target_account_id=owner.id,
        target=f"item:{item_id}",
    )
    await outbox.emit(
        session,
        "inventory.changed",
        {"userId": owner.subject, "itemId": item_id, "quantity": str(held)},
    )
    return held


async def remove(
    session: AsyncSession, owner: AccountRef, item_id: int, amount: int, actor: Actor
) -> int:
    """Take ``amount`` away; refused (nothing changed) if fewer are held. The quantity left."""
    if not 1 <= amount <= MAX_QUANTITY:
        raise Invalid("amount must be a positive whole number", field="amount")
    item = await get(session, item_id)
    mine = (InventoryEntry.account_id == owner.id) & (InventoryEntry.item_id == item_id)
    # Taking all of it deletes the row; taking less subtracts. Each is one
    # conditional statement, so two concurrent removals cannot both succeed
    # on the same units.
    emptied = await session.execute(
        delete(InventoryEntry)
        .where(mine, InventoryEntry.quantity == amount)
        .execution_options(synchronize_session=False)
    )
    left: int | None = 0
    if not rowcount(emptied):
        left = await session.scalar(
            update(InventoryEntry)
            .where(mine, InventoryEntry.quantity > amount)
            .values(quantity=InventoryEntry.quantity - amount, updated_at=utcnow())
            .returning(InventoryEntry.quantity)
            .execution_options(synchronize_session=False)
        )
    if left is None:
        held = await session.scalar(select(InventoryEntry.quantity).where(mine))
        raise Invalid(
            f"{owner.describe()} holds {held or 0} of item {item_id}, not {amount}",
            code="not_enough_items",
            field="amount",
        )
    await audit.record(
        session,
        actor,
        "inventory.removed",
        f"{actor.name} took {amount} x {item.name} from {owner.describe()} (now {left})",
        target_account_id=owner.id,
        target=f"item:{item_id}",
    )
    await outbox.emit(
        session,
        "inventory.changed",
        {"userId": owner.subject, "itemId": item_id, "quantity": str(left)},
    )
    return left
