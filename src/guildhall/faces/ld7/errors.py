"""Every LD7 error, in one place: ``{"success": false, "message": ...}``.

LD7 documents the messages but not the status codes; Guildhall answers what
the original server does: 400 for bad input and for a session that already
exists, 401 for a missing or wrong key, 404 for an unknown session or route
(but stop, delete and logout of an unknown session are 200 ``success: true``,
see ``app._unknown_is_done``), 409 for a move the session's state does not
allow (or stored data this installation's secret cannot open), 502 when the
messaging platform fails.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.errors import Conflict, CoreError, Forbidden, NotFound
from guildhall.core.sessions.connector import ConnectorError
from guildhall.faces.common.ratelimit import headers_for
from guildhall.faces.common.responses import JSON
from guildhall.ratelimit import Verdict
from guildhall.secrets import UnsealError

UNAUTHORIZED = "Unauthorized: invalid or missing API key"
INVALID_USER_ID = "userId must be alphanumeric (a-z, 0-9, _, -)"
SESSION_EXISTS = "Session already exists for this user. Delete it first or use a different userId."
START_UNKNOWN = "Session not found. Create a new session first."  # the original's wording


class LD7Error(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def failure(status_code: int, message: str) -> Response:
    return JSON({"success": False, "message": message}, status_code=status_code)


# Core error codes whose LD7 wording the document gives.
_DOCUMENTED = {
    "invalid_handle": (400, INVALID_USER_ID),
    "session_exists": (400, SESSION_EXISTS),  # the original server's code
}
_STATUS_BY_KIND: tuple[tuple[type[CoreError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def from_core(error: CoreError) -> LD7Error:
    if error.code in _DOCUMENTED:
        return LD7Error(*_DOCUMENTED[error.code])
    status = next((code for kind, code in _STATUS_BY_KIND if isinstance(error, kind)), 400)
    return LD7Error(status, _sentence(error.message))


async def _on_ld7(_request: Request, error: Exception) -> Response:
    assert isinstance(error, LD7Error)
    return failure(error.status_code, error.message)


async def _on_core(_request: Request, error: Exception) -> Response:
    assert isinstance(error, CoreError)
    mapped = from_core(error)
    return failure(mapped.status_code, mapped.message)


async def _on_connector(_request: Request, error: Exception) -> Response:
    return failure(502, f"The messaging platform failed: {error}")


async def _on_unseal(request: Request, _error: Exception) -> Response:
    # Sealed with another installation's secret (or altered): nothing this request can fix.
    handle = request.path_params.get("user_id", "")
    return failure(
        409, f"The stored data of session {handle} cannot be opened with this installation's secret"
    )


async def _on_http(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    return JSON(
        {"success": False, "message": messages.get(error.status_code, str(error.detail))},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _on_unexpected(_request: Request, _error: Exception) -> Response:
    return failure(500, "Internal server error")


def cross_site() -> Response:
    return failure(403, "Requests from other sites need an API key on this server")


def too_many(verdict: Verdict) -> Response:
    return JSON(
        {
            "success": False,
            "message": f"Too many requests; try again in {verdict.reset_seconds} seconds",
        },
        status_code=429,
        headers=headers_for(verdict),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(LD7Error, _on_ld7)
    app.add_exception_handler(CoreError, _on_core)
    app.add_exception_handler(ConnectorError, _on_connector)
    app.add_exception_handler(UnsealError, _on_unseal)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
