"""Rendering console pages: Jinja2 templates, the security headers, notices.

Every page is rendered through :func:`page`, which adds what the layout needs (who
is signed in, the CSRF token, the areas they may open, a pending notice) and the
headers that keep the console to itself: a strict CSP, no framing, no caching.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from guildhall.core.access.console import Area

if TYPE_CHECKING:
    from guildhall.faces.console.auth import Visit

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTICE_COOKIE = "gh_console_notice"
NOTICE_SECONDS = 60

NAVIGATION = (
    (Area.OVERVIEW, "/", "Overview"),
    (Area.ACCOUNTS, "/accounts", "Accounts"),
    (Area.ECONOMY, "/economy", "Economy"),
    (Area.MODERATION, "/moderation", "Moderation"),
    (Area.SERVERS, "/servers", "Servers"),
    (Area.TICKETS, "/tickets", "Tickets"),
    (Area.SESSIONS, "/sessions", "Bot sessions"),
    (Area.WEBHOOKS, "/webhooks", "Webhooks"),
    (Area.AUDIT, "/audit", "Audit"),
)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _number(value: int | None) -> str:
    return f"{value or 0:,}"


templates = jinja2.Environment(
    loader=jinja2.PackageLoader("guildhall.faces.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    # The templates ship inside the package: no need to look at their files on every page.
    auto_reload=False,
)
templates.filters["when"] = _when
templates.filters["number"] = _number


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def set_notice(response: Response, key: bytes, message: str, *, secure: bool) -> None:
    """A one-line notice shown once, on the next page this browser opens."""
    encoded = base64.urlsafe_b64encode(message[:300].encode()).decode()
    response.set_cookie(
        NOTICE_COOKIE,
        f"{encoded}.{_sign(key, encoded)}",
        max_age=NOTICE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def _take_notice(request: Request, key: bytes) -> str | None:
    raw = request.cookies.get(NOTICE_COOKIE, "")
    encoded, _, signature = raw.partition(".")
    if not encoded or not hmac.compare_digest(signature, _sign(key, encoded)):
        return None
    try:
        return base64.urlsafe_b64decode(encoded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def page(
    visit: Visit, template: str, *, status: int = 200, title: str = "", **context: Any
) -> HTMLResponse:
    """A page of the console, laid out for the staff member who asked for it."""
    notice = _take_notice(visit.request, visit.keys.notice)
    body = templates.get_template(template).render(
        staff=visit.staff,
        csrf=visit.csrf,
        navigation=[item for item in NAVIGATION if visit.staff.may_use(item[0])],
        area=visit.area.value,
        notice=notice,
        title=title,
        **context,
    )
    response = html(body, status)
    if notice is not None or NOTICE_COOKIE in visit.request.cookies:
        response.delete_cookie(NOTICE_COOKIE, httponly=True, samesite="strict")
    return response


def back_to(visit: Visit, path: str, notice: str | None = None) -> Response:
    """After a change: the browser goes (303, as a GET) to ``path``, with a notice."""
    response = RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)
    if notice:
        set_notice(response, visit.keys.notice, notice, secure=visit.secure)
    return response
