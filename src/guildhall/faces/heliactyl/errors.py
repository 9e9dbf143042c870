"""Every Heliactyl error, in one place.

Heliactyl answers every error after authentication with HTTP 200 and a
``status`` string (its clients read ``status``; its axios examples would
throw on a 4xx). Only authentication uses real status codes: 401 without a
header, 403 for a wrong key or a disabled API.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.errors import CoreError
from guildhall.faces.common.ratelimit import headers_for
from guildhall.faces.common.responses import JSON
from guildhall.ratelimit import Verdict


class StatusError(Exception):
    """A documented failure: HTTP 200 with ``{"status": <status>}``."""

    def __init__(self, status: str, message: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.message = message


class AuthError(Exception):
    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message


# Core error codes, and resource fields for range errors, to documented statuses.
_BY_CODE = {
    "account_not_found": "invalid id",
    "package_not_found": "invalid package",
    "balance_out_of_range": "too small or big coins",
    "zero_amount": "cant do that mate",
    "no_resources": "missing variables",
    "expiry_in_past": "expiration must be in the future",
}
RESOURCE_STATUS = {
    "ram": "ram size",
    "disk": "disk size",
    "cpu": "cpu size",
    "servers": "server size",
}
"""A resource's status for any bad value: wrong type (wire.py) or out of range (core)."""


def status_for(error: CoreError) -> StatusError:
    if error.code == "out_of_range" and error.field in RESOURCE_STATUS:
        return StatusError(RESOURCE_STATUS[error.field])
    if error.code in _BY_CODE:
        return StatusError(_BY_CODE[error.code])
    return StatusError("error", error.message)


def render(error: StatusError) -> Response:
    body: dict[str, str] = {"status": error.status}
    if error.message:
        body["message"] = error.message
    return JSON(body)


async def _on_status(_request: Request, error: Exception) -> Response:
    assert isinstance(error, StatusError)
    return render(error)


async def _on_core(_request: Request, error: Exception) -> Response:
    assert isinstance(error, CoreError)
    return render(status_for(error))


async def _on_auth(_request: Request, error: Exception) -> Response:
    assert isinstance(error, AuthError)
    return JSON({"status": "error", "message": error.message}, status_code=error.http_status)


async def _on_http(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = "Not found" if error.status_code == 404 else str(error.detail)
    return JSON(
        {"status": "error", "message": message},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _on_unexpected(_request: Request, _error: Exception) -> Response:
    return JSON({"status": "error", "message": "Internal error"}, status_code=500)


def too_many(verdict: Verdict) -> Response:
    """Rate-limited: a real 429 (it comes before authentication, like the 401 and 403)."""
    return JSON(
        {"status": "error", "message": "Too many requests"},
        status_code=429,
        headers=headers_for(verdict),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(StatusError, _on_status)
    app.add_exception_handler(CoreError, _on_core)
    app.add_exception_handler(AuthError, _on_auth)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
