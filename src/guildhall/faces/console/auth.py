"""Who is signed in, what they may open, and the CSRF check on every form.

:func:`screen` turns a page handler into a route: it finds the staff member from
the session cookie (else sends the browser to sign in), refuses an area their
role does not reach (403), reads a form's body and checks its CSRF token before
any change (403, nothing changed), then runs the handler in one unit of work.
:func:`screen_action` does the same for a handler that opens its own units of
work, because it calls a platform (a server's power, a bot session).
"""

from __future__ import annotations

import hmac
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from guildhall.core.access import console as staff_sessions
from guildhall.core.access.console import Area, StaffMember
from guildhall.core.errors import CoreError, Invalid
from guildhall.faces.common.body import Form, Unreadable, close_form, read_form, whole_body
from guildhall.faces.common.clients import parse_networks, request_scheme
from guildhall.faces.common.paths import local_path as local_path
from guildhall.faces.console.errors import refused, status_of
from guildhall.faces.console.keys import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    ConsoleKeys,
    keys_of,
)
from guildhall.faces.console.render import NAVIGATION
from guildhall.runtime import Runtime

MAX_FORM_BYTES = 256 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD"})
CSRF_REFUSED = (
    "This form was not sent from a page of this console (its security token is missing or "
    "stale). Open the page again and resend it."
)


@dataclass
class Visit:
    """One request of a signed-in staff member: what a page handler works with."""

    request: Request
    staff: StaffMember
    area: Area
    keys: ConsoleKeys
    csrf: str
    secure: bool
    form: dict[str, str] = field(default_factory=dict)
    files: Form | None = None

    def text(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def home_of(staff: StaffMember) -> str:
    """The first page of the navigation this staff member may open."""
    return next(path for area, path, _label in NAVIGATION if staff.may_use(area))


def is_secure(request: Request) -> bool:
    """Whether the browser reached us over TLS (directly, or as a trusted proxy says)."""
    trusted = parse_networks(runtime_of(request).settings.trusted_proxies)
    return request_scheme(request.scope, trusted) == "https"


async def read_fields(request: Request, uploads: int | None) -> tuple[dict[str, str], Form | None]:
    """A form's fields (and, where the route takes uploads, its files); Invalid if unreadable."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data" and uploads is not None:
        form = await read_form(request, uploads)
        if isinstance(form, Unreadable):
            raise Invalid("The upload could not be read: too large or malformed.")
        return dict(form.fields), form
    raw = await whole_body(request, MAX_FORM_BYTES)
    if raw is None:
        raise Invalid("The form is too large.")
    try:
        pairs = urllib.parse.parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200
        )
    except (UnicodeDecodeError, ValueError):
        raise Invalid("The form could not be read.") from None
    return {name: value for name, value in pairs}, None


def csrf_matches(expected: str, presented: str) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), presented.encode())


async def find_staff(request: Request) -> StaffMember | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    async with runtime_of(request).database.unit_of_work(write=False) as session:
        return await staff_sessions.signed_in(session, token)


def to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = urllib.parse.urlencode({"next": target}) if target != "/" else ""
    return RedirectResponse("/sign-in" + (f"?{query}" if query else ""), status_code=303)


PageHandler = Callable[[AsyncSession, Visit], Awaitable[Response]]
ActionHandler = Callable[[Visit], Awaitable[Response]]


async def _visit(request: Request, area: Area, uploads: int | None) -> Visit | Response:
    staff = await find_staff(request)
    if staff is None:
        return to_sign_in(request)
    if not staff.may_use(area):
        if request.method in SAFE_METHODS and request.url.path == "/":
            # Home is the first page the role opens (a moderator's is moderation).
            return RedirectResponse(home_of(staff), status_code=303)
        return refused(request, staff, 403, "Your role does not open this page.")
    keys = keys_of(request)
    visit = Visit(
        request=request,
        staff=staff,
        area=area,
        keys=keys,
        csrf=keys.csrf_for(request.cookies[SESSION_COOKIE]),
        secure=is_secure(request),
    )
    if request.method not in SAFE_METHODS:
        try:
            visit.form, visit.files = await read_fields(request, uploads)
        except CoreError as exc:
            return refused(request, staff, 400, exc.message)
        if not csrf_matches(visit.csrf, visit.form.get("csrf", "")):
            return refused(request, staff, 403, CSRF_REFUSED)
    return visit


def screen(
    area: Area,
    handler: PageHandler,
    *,
    uploads: int | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """A route for a page of ``area``: its handler runs in the request's one unit of work
    (a read one for GET), which commits before the answer is sent."""

    async def route(request: Request) -> Response:
        try:
            visit = await _visit(request, area, uploads)
            if isinstance(visit, Response):
                return visit
            write = request.method not in SAFE_METHODS
            try:
                async with runtime_of(request).database.unit_of_work(write=write) as session:
                    return await handler(session, visit)
            except CoreError as exc:
                return refused(request, visit.staff, status_of(exc), exc.message)
        finally:
            close_form(request)

    route.__name__ = handler.__name__
    return route


def screen_action(area: Area, handler: ActionHandler) -> Callable[[Request], Awaitable[Response]]:
    """A route whose handler opens its own units of work (it calls a platform)."""

    async def route(request: Request) -> Response:
        visit = await _visit(request, area, None)
        if isinstance(visit, Response):
            return visit
        try:
            return await handler(visit)
        except CoreError as exc:
            return refused(request, visit.staff, status_of(exc), exc.message)

    route.__name__ = handler.__name__
    return route


# ---- sign-in and sign-out --------------------------------------------------


def sign_in_secret(request: Request) -> tuple[str, bool]:
    """The browser's sign-in cookie value, and whether it must be set now."""
    current = request.cookies.get(SIGN_IN_COOKIE, "")
    if 20 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current, False
    return secrets.token_urlsafe(32), True


def set_session_cookie(response: Response, token: str, ttl: timedelta, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
