"""Every SkyPANEL error, in one place, in the documented envelope:

    {"success": false, "error": {"code": "NOT_FOUND", "message": "...", "details": {...}}}

Codes and statuses are the document's table (VALIDATION_ERROR 400,
UNAUTHORIZED 401, FORBIDDEN 403, NOT_FOUND 404, INTERNAL_ERROR 500), plus
NOT_ACCEPTABLE 406 for an Accept header asking for a version that does not
exist. Decisions where the document is silent:
- A wrong method on a known path is a 404 NOT_FOUND, as in the Express app
  SkyPANEL is (no route matches it).
- Validation errors list the fields in ``details``:
  ``[{"field": "email", "message": "..."}]``.
- A refused power action (starting a running server) is a 400
  VALIDATION_ERROR naming ``action``; a server that fails to start is a 500
  INTERNAL_ERROR that says why.
- On a hypervisor (libvirt, VirtFusion), which judges its own transitions, an
  action the machine's state does not allow is a 409 CONFLICT with the
  hypervisor's reason; a hypervisor that cannot be reached is a 502
  BAD_GATEWAY.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.errors import Conflict, CoreError, Forbidden, NotFound, Unavailable
from guildhall.faces.common.ratelimit import headers_for
from guildhall.faces.common.responses import JSON
from guildhall.ratelimit import Verdict


class SkyError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def unauthorized(message: str) -> SkyError:
    return SkyError(401, "UNAUTHORIZED", message)


def invalid(field: str, message: str) -> SkyError:
    return SkyError(
        400, "VALIDATION_ERROR", "Request validation failed", [{"field": field, "message": message}]
    )


def render(error: SkyError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return JSON({"success": False, "error": body}, status_code=error.status)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def from_core(error: CoreError, request: Request) -> SkyError:
    message = _sentence(error.message)
    if error.code == "wrong_password":
        return unauthorized("Current password is incorrect")
    if error.code == "power_failed":
        return SkyError(500, "INTERNAL_ERROR", message)
    if isinstance(error, NotFound):
        details = {"resource": error.field, "id": request.path_params.get("id")}
        return SkyError(404, "NOT_FOUND", message, details if error.field else None)
    if isinstance(error, Forbidden):
        return SkyError(403, "FORBIDDEN", message)
    if isinstance(error, Conflict) and error.code == "power_conflict":
        return SkyError(409, "CONFLICT", message, {"field": "action"})
    if isinstance(error, Unavailable):
        return SkyError(502, "BAD_GATEWAY", message)
    if error.field:
        return SkyError(
            400, "VALIDATION_ERROR", message, [{"field": error.field, "message": message}]
        )
    return SkyError(400, "VALIDATION_ERROR", message)


async def _on_sky(_request: Request, error: Exception) -> Response:
    assert isinstance(error, SkyError)
    return render(error)


async def _on_core(request: Request, error: Exception) -> Response:
    assert isinstance(error, CoreError)
    return render(from_core(error, request))


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code in (404, 405):
        return render(
            SkyError(404, "NOT_FOUND", f"Route {request.method} {request.url.path} not found")
        )
    return render(SkyError(error.status_code, "ERROR", str(error.detail)))


async def _on_unexpected(_request: Request, _error: Exception) -> Response:
    return render(SkyError(500, "INTERNAL_ERROR", "Internal server error"))


def too_many(verdict: Verdict) -> Response:
    response = render(
        SkyError(
            429,
            "RATE_LIMITED",
            "Too many requests",
            {"limit": verdict.limit.requests, "windowSeconds": verdict.limit.per_seconds},
        )
    )
    response.headers.update(headers_for(verdict))
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(SkyError, _on_sky)
    app.add_exception_handler(CoreError, _on_core)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
