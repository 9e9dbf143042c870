"""The FastAPI application every face starts from."""

from __future__ import annotations

from fastapi import FastAPI

from guildhall.runtime import Runtime


def face_app(runtime: Runtime, title: str) -> FastAPI:
    """An app with the runtime on ``app.state`` (``session.runtime_of`` reads it) and no
    generated API docs: each face's contract is its seed document, not an OpenAPI page.

    No trailing-slash redirects: the documents' paths have none, and a redirect is
    an empty 307 pointing at whatever Host the client sent, where a client expects
    the face's own 404 (its unknown-route answer, in its error format)."""
    app = FastAPI(
        title=title, docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False
    )
    app.state.runtime = runtime
    return app
