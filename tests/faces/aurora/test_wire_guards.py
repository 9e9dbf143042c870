"""Inputs the OpenAPI fuzzing found or checks: answered as documented, never a 500.

PostgreSQL takes no NUL in a text parameter: a NUL in a path or query value
reached a query and failed there (500) until the face answered it itself. An
image's answer is checked against what ``openapi.yaml`` says of it, since the
fuzzer cannot make a real image.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from guildhall.faces.common import openapi
from guildhall.runtime import Runtime
from tests.faces.aurora.conftest import POTION, counts, error, image_bytes


@pytest.mark.parametrize(
    "path",
    [
        "/api/users/%00",
        "/api/users/1%002",
        "/api/users/%00/inventory",
        "/api/moderation/%00",
        "/assets/items/%00",
        "/assets/items/1.png%00",
    ],
)
async def test_a_nul_in_a_path_is_404(aurora: httpx.AsyncClient, path: str) -> None:
    error(await aurora.get(path), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/api/users?search=%00",
        "/api/items?search=a%00",
        "/api/items?type=%00",
        "/api/items?rarity=%00",
        "/api/moderation?userId=%00",
        "/api/moderation?moderatorId=%00",
    ],
)
async def test_a_nul_in_a_filter_is_400(aurora: httpx.AsyncClient, path: str) -> None:
    assert "without NUL" in error(await aurora.get(path), 400)


async def test_a_nul_in_a_transactions_user_filter_is_nobody(aurora: httpx.AsyncClient) -> None:
    answer = await aurora.get("/api/transactions", params={"userId": "\x00"})
    assert answer.json() == {"transactions": [], "total": 0}


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_a_class_path_with_a_nul_is_404(
    aurora: httpx.AsyncClient, runtime: Runtime, method: str
) -> None:
    before = await counts(runtime)
    body = {"name": "Mage"} if method == "PUT" else None
    error(await aurora.request(method, "/api/classes/%00", json=body), 404)
    assert await counts(runtime) == before


async def test_a_setting_named_with_a_nul_is_refused(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    before = await counts(runtime)
    assert "NUL" in error(await aurora.post("/api/settings", json={"a\x00b": 1}), 400)
    assert await counts(runtime) == before
    assert "a\x00b" not in (await aurora.get("/api/settings")).json()
    # Deeper keys are data, kept as sent.
    nested = await aurora.post("/api/settings", json={"mine": {"a\x00b": 1}})
    assert nested.json()["settings"]["mine"] == {"a\x00b": 1}


@pytest.mark.parametrize("class_id", ["", "a/b", "..", "a b", "x" * 33, "é"])
async def test_a_class_id_is_a_path_segment(
    aurora: httpx.AsyncClient, runtime: Runtime, class_id: str
) -> None:
    """A class made under an id its own path cannot name could never be changed or deleted."""
    before = await counts(runtime)
    answer = await aurora.post("/api/classes", json={"name": "Mage", "id": class_id})
    assert "id must be" in error(answer, 400)
    assert (await aurora.get("/api/classes")).json()["classes"] == []
    assert await counts(runtime) == before


async def test_a_chosen_class_id_can_be_updated_and_deleted(aurora: httpx.AsyncClient) -> None:
    made = await aurora.post("/api/classes", json={"name": "Mage", "id": "mage_2-b"})
    assert made.status_code == 201
    assert made.json()["class"]["id"] == "mage_2-b"
    renamed = await aurora.put("/api/classes/mage_2-b", json={"name": "Archmage"})
    assert renamed.json()["class"]["name"] == "Archmage"
    assert (await aurora.delete("/api/classes/mage_2-b")).status_code == 204


@pytest.mark.parametrize("name", ["", "   "])
async def test_a_class_cannot_be_renamed_to_nothing(aurora: httpx.AsyncClient, name: str) -> None:
    made = await aurora.post("/api/classes", json={"name": "Mage", "id": "2"})
    assert made.status_code == 201
    assert "blank" in error(await aurora.put("/api/classes/2", json={"name": name}), 400)
    assert (await aurora.get("/api/classes")).json()["classes"][0]["name"] == "Mage"


def _documented(path: str, status: str) -> dict[str, Any]:
    document = openapi.document("aurora")
    response: dict[str, Any] = document["paths"][path]["get"]["responses"][status]
    return response


def _check_headers(response: httpx.Response, documented: dict[str, Any]) -> None:
    document = openapi.document("aurora")
    for name, header in documented["headers"].items():
        if "$ref" in header:
            header = document["components"]["headers"][header["$ref"].rsplit("/", 1)[1]]
        value = response.headers.get(name)
        if value is None:
            assert not header.get("required"), f"{name} is missing"
            continue
        schema = header["schema"]
        if schema.get("type") == "integer":
            assert value.isdigit() and int(value) >= schema.get("minimum", 0), (name, value)
        if "const" in schema:
            assert value == schema["const"], (name, value)
        if "pattern" in schema:
            assert re.search(schema["pattern"], value), (name, value)


async def test_an_image_is_served_as_the_document_says(aurora: httpx.AsyncClient) -> None:
    files = {"image": ("potion.png", image_bytes("PNG"), "image/png")}
    made = await aurora.post("/api/items", data={"data": json.dumps(POTION)}, files=files)
    assert made.status_code == 201
    url = made.json()["item"]["iconUrl"]
    assert re.fullmatch(r"/assets/items/[0-9]+\.png", url)

    served = await aurora.get(url)
    assert served.status_code == 200
    assert (
        served.headers["content-type"] in _documented("/assets/items/{filename}", "200")["content"]
    )
    _check_headers(served, _documented("/assets/items/{filename}", "200"))

    again = await aurora.get(url, headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    _check_headers(again, _documented("/assets/items/{filename}", "304"))


async def test_transactions_filter_by_the_type_as_stored(aurora: httpx.AsyncClient) -> None:
    """Types are filtered by the value a transaction shows (``renewal``), not the enum name."""
    assert (await aurora.get("/api/transactions", params={"type": "renewal"})).status_code == 200
    refused = await aurora.get("/api/transactions", params={"type": "RENEWAL"})
    assert refused.status_code == 400
    assert "renewal" in refused.json()["details"]
