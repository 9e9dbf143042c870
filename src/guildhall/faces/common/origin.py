"""Which web pages a face obeys.

A browser sends a cross-site POST or opens a WebSocket without asking, and
names the page it comes from in ``Origin``; API clients send none. Two guards:

- :class:`LocalOriginGuard`, for a face without a key (LD7 or Aurora on
  loopback), which would otherwise obey any page the operator happens to
  open. A request whose ``Origin`` is not a loopback page is refused. So is
  one whose ``Host`` is not a loopback name: a page on an attacker's domain
  that re-resolves it to 127.0.0.1 (DNS rebinding) sends its requests as
  same-origin, without ``Origin``, but with its own domain as ``Host``.
- :class:`SameOriginGuard`, for a panel whose users sign in with a cookie
  (Rustmail): a request that changes something is refused when ``Origin``
  names another site. ``SameSite=Lax`` alone lets a page on the same host's
  other port, or on a sibling subdomain, send the cookie.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from guildhall.config import is_loopback_host
from guildhall.faces.common.session import SAFE_METHODS


def _names_loopback(url: str) -> bool:
    """Whether a URL's host is this machine. Garbage is not: an unclosed ``[`` or
    a bracketed name that is no address (``urlsplit`` raises), credentials before
    the host (``http://evil.example@127.0.0.1``), and two values folded into one
    header with a comma."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return False
    # "@", a comma (two values folded into one header) or a space: no browser's.
    if any(mark in parts.netloc for mark in "@, \t"):
        return False
    return is_loopback_host(hostname or "")


def is_local_origin(origin: str) -> bool:
    return _names_loopback(origin)


def is_local_host(host: str) -> bool:
    """A ``Host`` header (``name[:port]``) naming this machine."""
    return _names_loopback(f"//{host}")


def _all_local(values: list[str], is_local: Callable[[str], bool]) -> bool:
    """At most one header, naming this machine: a repeated one is refused rather than
    trusting whichever copy some proxy on the way would read."""
    return len(values) <= 1 and all(is_local(value) for value in values)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as a browser writes it in ``Origin``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class LocalOriginGuard:
    """``also``: pages the operator named in ``cors_origins``, obeyed as local ones."""

    def __init__(
        self, app: ASGIApp, *, refuse: Callable[[], Response], also: Collection[str] = ()
    ) -> None:
        self.app = app
        self.refuse = refuse
        self.also = frozenset(origin.rstrip("/").lower() for origin in also)

    def _obeyed(self, origin: str) -> bool:
        return origin.lower() in self.also or is_local_origin(origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = Headers(scope=scope)
            if not (
                _all_local(headers.getlist("origin"), self._obeyed)
                and _all_local(headers.getlist("host"), is_local_host)
            ):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await self.refuse()(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SameOriginGuard:
    """Refuses a change requested from another site's page.

    Allowed: no ``Origin`` (an API client), the request's own origin (its
    scheme, from ``scheme_of``, and its ``Host``), and ``also`` (the panel's
    public address when a proxy stands in front).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        refuse: Callable[[], Response],
        scheme_of: Callable[[Scope], str],
        also: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.refuse = refuse
        self.scheme_of = scheme_of
        self.also = also

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None:
                own = f"{self.scheme_of(scope)}://{headers.get('host', '')}".lower()
                if origin.lower() not in (own, *self.also):
                    await self.refuse()(scope, receive, send)
                    return
        await self.app(scope, receive, send)
