"""Refusals and core errors as console pages, in one place.

A core error that a page does not show in place (next to its form) becomes an
error page with the status its class says; nothing it would have changed was
committed, as the unit of work rolled back.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.access.console import StaffMember
from guildhall.core.errors import (
    Conflict,
    CoreError,
    Forbidden,
    Invalid,
    LimitExceeded,
    NotFound,
    Unavailable,
)
from guildhall.faces.console.keys import csrf_of_session
from guildhall.faces.console.render import NAVIGATION, html, templates

STATUS_OF: dict[type[CoreError], int] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 400,
    LimitExceeded: 400,
    Forbidden: 403,
    Unavailable: 503,
}


def status_of(error: CoreError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 400


def refused(request: Request, staff: StaffMember | None, status: int, message: str) -> Response:
    """An error page: the layout (when someone is signed in), the status, one sentence."""
    body = templates.get_template("error.html").render(
        staff=staff,
        csrf=csrf_of_session(request) if staff else "",
        navigation=[item for item in NAVIGATION if staff and staff.may_use(item[0])],
        area="",
        notice=None,
        title=f"Error {status}",
        status=status,
        message=message,
    )
    return html(body, status)
