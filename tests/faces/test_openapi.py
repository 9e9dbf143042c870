"""Each face's OpenAPI document: valid, in step with its routes, served only when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from guildhall.config import load_settings
from guildhall.faces import FACES
from guildhall.faces.common import openapi
from guildhall.runtime import Runtime

FACE_NAMES = sorted(FACES)


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., FastAPI]:
    """A face's app on an unused data directory; the database is never opened."""

    def make(face: str, **face_settings: object) -> FastAPI:
        settings = load_settings(None, data_dir=str(tmp_path), faces={face: face_settings})
        return FACES[face](Runtime(settings))

    return make


@pytest.mark.parametrize("face", FACE_NAMES)
def test_every_route_is_described_and_every_description_is_routed(
    face: str, make_app: Callable[..., FastAPI]
) -> None:
    undescribed, unrouted = openapi.drift(make_app(face), openapi.document(face))
    assert not undescribed, f"{face} routes without a description: {sorted(undescribed)}"
    assert not unrouted, f"{face} describes operations it does not route: {sorted(unrouted)}"


@pytest.mark.parametrize("face", FACE_NAMES)
def test_the_document_is_valid_openapi_3_1_with_every_answer_described(face: str) -> None:
    document = openapi.document(face)
    validate(document)
    assert document["openapi"] == "3.1.0"
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in openapi.HTTP_METHODS:
                continue
            where = f"{method.upper()} {path}"
            operation_ids.append(operation.get("operationId"))
            assert operation.get("summary"), f"{where} has no summary"
            assert "security" in operation or "security" in document, f"{where}: no security"
            statuses = set(operation["responses"])
            assert any(s.startswith("2") or s.startswith("3") for s in statuses), where
            assert "429" in statuses, f"{where} does not describe its rate limit answer"
    assert None not in operation_ids
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"


@pytest.mark.parametrize("face", FACE_NAMES)
@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
async def test_no_documentation_is_served_by_default(
    face: str, path: str, make_app: Callable[..., FastAPI]
) -> None:
    """The originals serve neither path; a face must not answer one they lack."""
    transport = httpx.ASGITransport(app=make_app(face))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert "swagger" not in response.text.lower()
    assert "openapi" not in response.text.replace(path, "")  # Aurora's 404 names the path


@pytest.mark.parametrize("face", FACE_NAMES)
async def test_the_document_and_its_page_are_served_when_asked(
    face: str, make_app: Callable[..., FastAPI]
) -> None:
    app = make_app(face, serve_openapi=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        served = await client.get("/openapi.json")
        page = await client.get("/docs")
        script = await client.get("/docs/assets/swagger-ui-bundle.js")
        style = await client.get("/docs/assets/swagger-ui.css")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.json() == openapi.document(face)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    # Everything the page loads comes from this installation.
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text.replace("https://fastapi.tiangolo.com", "")

    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in script.content
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    # The documentation's own paths are not operations of the face.
    assert openapi.drift(app, openapi.document(face)) == (set(), set())


def _openapi_command(face: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "guildhall", "openapi", face]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_cli_prints_a_faces_document() -> None:
    result = _openapi_command("aurora")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == openapi.document("aurora")


def test_the_cli_names_the_faces_for_an_unknown_one() -> None:
    result = _openapi_command("heliactly")
    assert result.returncode == 1
    assert "there is no face 'heliactly'" in result.stderr
    assert "heliactyl" in result.stderr
    assert result.stdout == ""
