"""The FastAPI application every face starts from."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from guildhall.runtime import Runtime

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def face_app(runtime: Runtime, title: str) -> FastAPI:
    """An app with the runtime on ``app.state`` (``session.runtime_of`` reads it) and no
    generated API docs: each face's contract is its seed document, not an OpenAPI page.

    No trailing-slash redirects: the documents' paths have none, and a redirect is
    an empty 307 pointing at whatever Host the client sent, where a client expects
    the face's own 404 (its unknown-route answer, in its error format).

    FastAPI's OpenTelemetry hooks are off: Guildhall configures no exporter, and
    asking the global providers whether one exists cost about 12 µs per request
    (a twentieth of a userinfo request) for nothing."""
    app = FastAPI(
        title=title,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        telemetry=NO_TELEMETRY,
    )
    app.state.runtime = runtime
    return app
