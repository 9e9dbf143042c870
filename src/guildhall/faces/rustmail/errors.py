"""Every Rustmail error, in one place: ``{"error": "...", "code": "..."}``.

Status codes are the document's (400, 401, 403, 404, 500); a user who already
has an open ticket gets 409 ``TICKET_EXISTS``, as the issue asks, and a
rate-limited client 429. Unknown routes and wrong methods are 404.
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


class RustmailError(Exception):
    def __init__(self, status: int, code: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.code = code
        self.error = error


def render(error: RustmailError) -> Response:
    return JSON({"error": error.error, "code": error.code}, status_code=error.status)


def unauthorized() -> RustmailError:
    return RustmailError(401, "UNAUTHORIZED", "Authentication required")


def forbidden(permission: str) -> RustmailError:
    return RustmailError(403, "FORBIDDEN", f"Missing permission: {permission}")


def cross_site() -> Response:
    return render(RustmailError(403, "FORBIDDEN", "Requests from other sites are refused"))


def bad_request(message: str) -> RustmailError:
    return RustmailError(400, "BAD_REQUEST", message)


# Core error codes with the document's (or the issue's) status, code and wording.
_CODES = {
    "ticket_open": (409, "TICKET_EXISTS", None),
    "member_not_found": (404, "USER_NOT_FOUND", "User not found in community server"),
}


def from_core(error: CoreError) -> RustmailError:
    message = error.message[:1].upper() + error.message[1:]
    if error.code in _CODES:
        status, code, wording = _CODES[error.code]
        return RustmailError(status, code, wording or message)
    for kind, status, code in (
        (NotFound, 404, "NOT_FOUND"),
        (Forbidden, 403, "FORBIDDEN"),
        (Conflict, 409, "CONFLICT"),
        (Unavailable, 502, "BAD_GATEWAY"),
    ):
        if isinstance(error, kind):
            return RustmailError(status, code, message)
    return RustmailError(400, "BAD_REQUEST", message)


def too_many(verdict: Verdict) -> Response:
    response = render(RustmailError(429, "RATE_LIMITED", "Too many requests"))
    response.headers.update(headers_for(verdict))
    return response


async def _on_rustmail(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RustmailError)
    return render(error)


async def _on_core(_request: Request, error: Exception) -> Response:
    assert isinstance(error, CoreError)
    return render(from_core(error))


async def _on_http(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code in (404, 405):
        return render(RustmailError(404, "NOT_FOUND", "Not found"))
    return render(RustmailError(error.status_code, "ERROR", str(error.detail)))


async def _on_unexpected(_request: Request, _error: Exception) -> Response:
    return render(RustmailError(500, "INTERNAL_ERROR", "Internal server error"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(RustmailError, _on_rustmail)
    app.add_exception_handler(CoreError, _on_core)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
