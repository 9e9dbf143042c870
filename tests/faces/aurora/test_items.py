"""Items, their images (PNG, JPEG, WebP, GIF by content, at most 15 MB) and assets."""

from __future__ import annotations

import io
import json
import struct

import httpx
import pytest
from PIL import Image

from guildhall.core.items.service import MAX_IMAGE_BYTES
from guildhall.runtime import Runtime
from tests.faces.aurora.conftest import POTION, counts, error, image_bytes

KINDS = [
    ("PNG", "image/png", "png"),
    ("JPEG", "image/jpeg", "jpg"),
    ("WEBP", "image/webp", "webp"),
    ("GIF", "image/gif", "gif"),
]


async def test_create_read_update_delete(aurora: httpx.AsyncClient) -> None:
    created = await aurora.post("/api/items", json=POTION)
    assert created.status_code == 201
    item = created.json()["item"]
    assert created.json()["success"] is True
    assert item == {"id": item["id"], **POTION}
    assert (await aurora.get(f"/api/items/{item['id']}")).json() == item
    updated = await aurora.put(f"/api/items/{item['id']}", json={"price": "150"})
    assert updated.json()["item"]["price"] == "150"
    assert updated.json()["item"]["name"] == "Health Potion"
    listed = (await aurora.get("/api/items")).json()
    assert (listed["total"], [i["id"] for i in listed["items"]]) == (1, [item["id"]])
    assert (await aurora.delete(f"/api/items/{item['id']}")).status_code == 204
    error(await aurora.get(f"/api/items/{item['id']}"), 404)


async def test_a_duplicate_name_is_409(aurora: httpx.AsyncClient, runtime: Runtime) -> None:
    await aurora.post("/api/items", json=POTION)
    before = await counts(runtime)
    assert "already exists" in error(
        await aurora.post("/api/items", json={**POTION, "name": "health potion"}), 409
    )
    assert await counts(runtime) == before


@pytest.mark.parametrize(
    "change",
    [
        {"rarity": "UR"},
        {"price": "1.5"},
        {"price": -1},
        {"name": ""},
        {"usageData": "x"},
        {"type": None, "name": "x"},
    ],
)
async def test_bad_items_are_400(aurora: httpx.AsyncClient, runtime: Runtime, change: dict) -> None:
    before = await counts(runtime)
    body = {k: v for k, v in {**POTION, **change}.items() if v is not None}
    error(await aurora.post("/api/items", json=body), 400)
    assert await counts(runtime) == before


async def test_filters(aurora: httpx.AsyncClient) -> None:
    await aurora.post("/api/items", json=POTION)
    await aurora.post(
        "/api/items",
        json={
            **POTION,
            "name": "Dragon Blade",
            "description": "Sharp",
            "type": "WEAPON",
            "rarity": "SSR",
        },
    )

    async def names(**params: str) -> list[str]:
        body = (await aurora.get("/api/items", params=params)).json()
        return [i["name"] for i in body["items"]]

    assert await names(search="hp") == ["Health Potion"]
    assert await names(type="WEAPON") == ["Dragon Blade"]
    assert await names(rarity="SSR") == ["Dragon Blade"]
    assert await names(limit="1", offset="1") == ["Dragon Blade"]


@pytest.mark.parametrize(("kind", "content_type", "extension"), KINDS)
async def test_multipart_create_stores_and_serves_the_image(
    aurora: httpx.AsyncClient, kind: str, content_type: str, extension: str
) -> None:
    data = image_bytes(kind)
    created = await aurora.post(
        "/api/items",
        data={"data": json.dumps(POTION)},
        files={"image": ("whatever.bin", data, "application/octet-stream")},
    )
    assert created.status_code == 201, created.text
    item = created.json()["item"]
    assert item["iconUrl"] == item["imageUrl"] == f"/assets/items/{item['id']}.{extension}"
    served = await aurora.get(item["imageUrl"])
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == content_type
    assert served.headers["cache-control"] == "public, max-age=86400"
    # Opened directly, an uploaded image runs and loads nothing, under its stored name.
    assert served.headers["content-security-policy"] == "default-src 'none'"
    assert served.headers["content-disposition"] == (f'inline; filename="{item["id"]}.{extension}"')
    etag = served.headers["etag"]
    again = await aurora.get(item["imageUrl"], headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")


async def test_icon_upload_replaces_the_image(aurora: httpx.AsyncClient) -> None:
    item = (await aurora.post("/api/items", json=POTION)).json()["item"]
    first = await aurora.post(
        f"/api/items/{item['id']}/icon", files={"image": ("a.png", image_bytes("PNG"), "image/png")}
    )
    assert first.json()["item"]["iconUrl"] == f"/assets/items/{item['id']}.png"
    old_etag = (await aurora.get(f"/assets/items/{item['id']}.png")).headers["etag"]
    second = await aurora.post(
        f"/api/items/{item['id']}/icon",
        files={"image": ("b.gif", image_bytes("GIF", (16, 16)), "image/gif")},
    )
    assert second.json()["item"]["iconUrl"] == f"/assets/items/{item['id']}.gif"
    assert (await aurora.get(f"/assets/items/{item['id']}.png")).status_code == 404
    assert (await aurora.get(f"/assets/items/{item['id']}.gif")).headers["etag"] != old_etag
    await aurora.delete(f"/api/items/{item['id']}")
    assert (await aurora.get(f"/assets/items/{item['id']}.gif")).status_code == 404


async def test_a_multi_picture_jpeg_is_stored_as_a_jpeg(aurora: httpx.AsyncClient) -> None:
    """Phones and 3D cameras write JPEGs with several pictures, which Pillow opens as
    "MPO": a JPEG to every browser, so it is kept and served as one."""
    buffer = io.BytesIO()
    first, second = (Image.new("RGB", (8, 8), colour) for colour in ("red", "blue"))
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    item = (await aurora.post("/api/items", json=POTION)).json()["item"]
    response = await aurora.post(
        f"/api/items/{item['id']}/icon", files={"image": ("pair.jpg", buffer.getvalue())}
    )
    assert response.status_code == 200, response.text
    served = await aurora.get(f"/assets/items/{item['id']}.jpg")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"


def _dds_of_unknown_pixel_format() -> bytes:
    """A DirectDraw Surface header whose pixel format flags Pillow has no decoder for:
    opening it raised Pillow's "unknown pixel format flags" error, once a 500."""
    header = bytearray(128)
    header[0:4] = b"DDS "
    struct.pack_into("<IIII", header, 4, 124, 0x100F, 16, 16)  # size, flags, height, width
    struct.pack_into("<II", header, 76, 32, 0x4000)  # pixel format: size, flags
    return bytes(header) + bytes(256)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.png", b"this is text, renamed .png"),
        ("cut.png", image_bytes("PNG", (64, 64))[:60]),
        ("empty.png", b""),
        ("picture.bmp", image_bytes("BMP")),
        ("picture.tiff", image_bytes("TIFF")),
        ("texture.png", _dds_of_unknown_pixel_format()),
    ],
)
async def test_fake_or_broken_images_are_refused_and_nothing_is_stored(
    aurora: httpx.AsyncClient, runtime: Runtime, name: str, data: bytes
) -> None:
    item = (await aurora.post("/api/items", json=POTION)).json()["item"]
    before = await counts(runtime)
    response = await aurora.post(
        f"/api/items/{item['id']}/icon", files={"image": (name, data, "image/png")}
    )
    assert "image" in error(response, 400).lower()
    created = await aurora.post(
        "/api/items",
        data={"data": json.dumps({**POTION, "name": "Another"})},
        files={"image": (name, data, "image/png")},
    )
    error(created, 400)
    assert await counts(runtime) == before


async def test_an_image_over_15_mb_is_refused(aurora: httpx.AsyncClient, runtime: Runtime) -> None:
    item = (await aurora.post("/api/items", json=POTION)).json()["item"]
    png = image_bytes("PNG")
    oversized = png + b"\0" * (MAX_IMAGE_BYTES + 1 - len(png))
    assert len(oversized) == 15 * 1024 * 1024 + 1
    before = await counts(runtime)
    response = await aurora.post(
        f"/api/items/{item['id']}/icon", files={"image": ("big.png", oversized, "image/png")}
    )
    assert "15 MB" in error(response, 400)
    assert await counts(runtime) == before


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "..%2F..%2Fsecret.key", "1.png%00.txt", "x.png", "1.exe", "9.png"]
)
async def test_unknown_or_traversal_asset_names_are_404(
    aurora: httpx.AsyncClient, name: str
) -> None:
    assert (await aurora.get(f"/assets/items/{name}")).status_code == 404


async def test_malformed_multipart_is_400(aurora: httpx.AsyncClient) -> None:
    response = await aurora.post(
        "/api/items",
        content=b"--x\r\nnot really multipart",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    error(response, 400)
    bad_json = await aurora.post(
        "/api/items", data={"data": "{not json"}, files={"image": ("a.png", b"x", "image/png")}
    )
    assert "valid JSON" in error(bad_json, 400)
