"""Each face's OpenAPI 3.1 document, and the pages that serve it.

A face's routes are plain Starlette routes (``faces/common/session.py`` says why),
so FastAPI cannot generate a document from them. Each face keeps its document by
hand beside its code (``faces/<face>/openapi.yaml``), written from its seed
document and from what the face answers. :func:`drift` compares it with the
routes the app really has, and a test fails on any difference, so a route
cannot exist without a description nor a description without a route.

What the documents leave out: ``HEAD`` (Starlette answers it for every ``GET``)
and WebSocket routes (Aurora's ``/ws``), which OpenAPI cannot describe; the
document's ``info.description`` names them instead.

Serving is off by default (``[faces.X] serve_openapi``): the originals serve no
such paths, and a face must not answer a path its original lacks. When on,
``/openapi.json`` is the document and ``/docs`` a Swagger UI page whose script
and style come from this installation (the ``fastapi-offline`` package ships
them), never from a CDN.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from guildhall.faces.common.responses import JSON

DOCUMENT_FILE = "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "trace")
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
OWN_PATHS = frozenset({"/openapi.json", "/docs", *(f"/docs/assets/{name}" for name in DOCS_ASSETS)})
"""The documentation's own paths, which the document does not describe."""
_CONVERTER = re.compile(r"{(\w+):\w+}")

Operation = tuple[str, str]
"""An HTTP method (upper case) and a path template as OpenAPI writes it."""


@cache
def _loaded(face: str) -> dict[str, Any]:
    text = resources.files(f"guildhall.faces.{face}").joinpath(DOCUMENT_FILE).read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def document(face: str) -> dict[str, Any]:
    """The face's OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_loaded(face))


def served_operations(app: FastAPI) -> set[Operation]:
    """The HTTP operations the app routes, without ``HEAD`` and the documentation's own."""
    found: set[Operation] = set()
    for route in app.routes:
        if not isinstance(route, Route) or route.path in OWN_PATHS:
            continue
        path = _CONVERTER.sub(r"{\1}", route.path)
        found |= {(method, path) for method in route.methods or () if method != "HEAD"}
    return found


def described_operations(described: dict[str, Any]) -> set[Operation]:
    """The operations an OpenAPI document describes."""
    return {
        (method.upper(), path)
        for path, item in described.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    }


def drift(app: FastAPI, described: dict[str, Any]) -> tuple[set[Operation], set[Operation]]:
    """(routes without a description, descriptions without a route)."""
    served, documented = served_operations(app), described_operations(described)
    return served - documented, documented - served


def _assets() -> Path:
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def install(app: FastAPI, face: str) -> None:
    """Serve the face's document at ``/openapi.json`` and Swagger UI at ``/docs``."""
    body = document(face)
    title = body.get("info", {}).get("title", face)

    async def openapi_json(_request: Request) -> Response:
        return JSON(body)

    async def docs_page(_request: Request) -> Response:
        page: HTMLResponse = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=title,
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )
        return page

    app.add_route("/openapi.json", openapi_json, methods=["GET"])
    app.add_route("/docs", docs_page, methods=["GET"])
    for name, media_type in DOCS_ASSETS.items():
        app.add_route(f"/docs/assets/{name}", _asset(name, media_type), methods=["GET"])


def _asset(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(_request: Request) -> Response:
        return FileResponse(_assets() / name, media_type=media_type)

    return serve
