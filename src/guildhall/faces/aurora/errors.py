"""Every Aurora error, in one place: ``{"error": "...", "details": "..."}``.

400 for bad input, 404 for an unknown resource or route, 409 for a duplicate
name or a case cleared twice, 429 when rate-limited, 500 otherwise; a wrong
method is a 404 too (no route matches it), and a missing or wrong key a 401.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.errors import Conflict, CoreError, Forbidden, NotFound, Unavailable
from guildhall.faces.common.ratelimit import headers_for
from guildhall.faces.common.responses import JSON
from guildhall.ratelimit import Verdict


class AuroraError(Exception):
    def __init__(self, status: int, error: str, details: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details


def render(error: AuroraError) -> Response:
    body = {"error": error.error}
    if error.details:
        body["details"] = error.details
    return JSON(body, status_code=error.status)


def bad_request(details: str) -> AuroraError:
    return AuroraError(400, "Validation failed", details)


_BRIEF = {
    404: "Not found",
    409: "Conflict",
    403: "Forbidden",
    400: "Validation failed",
    502: "Bad gateway",
}


def from_core(error: CoreError) -> AuroraError:
    status = 400
    for kind, code in ((NotFound, 404), (Conflict, 409), (Forbidden, 403), (Unavailable, 502)):
        if isinstance(error, kind):
            status = code
            break
    details = error.message[:1].upper() + error.message[1:]
    return AuroraError(status, _BRIEF[status], details)


async def _on_aurora(_request: Request, error: Exception) -> Response:
    assert isinstance(error, AuroraError)
    return render(error)


async def _on_core(_request: Request, error: Exception) -> Response:
    assert isinstance(error, CoreError)
    return render(from_core(error))


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code in (404, 405):
        return render(
            AuroraError(404, "Not found", f"No route {request.method} {request.url.path}")
        )
    return render(AuroraError(error.status_code, str(error.detail)))


async def _on_unexpected(_request: Request, _error: Exception) -> Response:
    return render(AuroraError(500, "Internal server error"))


def cross_site() -> Response:
    return render(
        AuroraError(403, "Forbidden", "Requests from other sites need an API key on this server")
    )


def too_many(verdict: Verdict) -> Response:
    response = render(
        AuroraError(429, "Too many requests", f"Try again in {verdict.reset_seconds} seconds")
    )
    response.headers.update(headers_for(verdict))
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(AuroraError, _on_aurora)
    app.add_exception_handler(CoreError, _on_core)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
