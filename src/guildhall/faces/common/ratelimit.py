"""One rate limiter for every face: per face, per route group, per client address.

(The counting is ``guildhall/ratelimit.py``; this is its HTTP side.)

Each face names its route groups (``default`` for every route, ``auth`` for
login routes...) and its limits come from ``[faces.<name>.rate_limits.<group>]``
with ``requests`` and ``per_seconds``. A request counts against every group
it belongs to; over any limit it gets 429 in the face's own error format,
with ``Retry-After`` and the ``RateLimit-*`` headers of the IETF draft.

Windows slide: no span of ``per_seconds`` ever holds more than ``requests``
allowed requests of one client and group, whenever it starts. They are
counted exactly, in this process without Redis, and in Redis (one atomic
script per group, shared by every process) when ``redis_url`` is set; while
Redis does not answer, in this process (never not at all). See
``guildhall/ratelimit.py``. ``RateLimit-Reset`` (and ``Retry-After`` on a
429) is the number of seconds until the oldest counted request leaves the
window, so a refused client may try again then.

The client address comes from ``faces/common/clients.py``: the socket peer,
or what a trusted proxy says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guildhall.faces.common.clients import Network, client_address, parse_networks
from guildhall.ratelimit import Limit, RateLimiter, Verdict

if TYPE_CHECKING:
    from guildhall.runtime import Runtime


Refusal = Callable[[Verdict], Response]
GroupsOf = Callable[[str, str], Sequence[str]]


def headers_for(verdict: Verdict) -> dict[str, str]:
    limit = verdict.limit
    headers = {
        "RateLimit-Limit": str(limit.requests),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": str(verdict.reset_seconds),
        "RateLimit-Policy": f"{limit.requests};w={limit.per_seconds}",
    }
    if not verdict.allowed:
        headers["Retry-After"] = str(verdict.reset_seconds)
    return headers


class RateLimitMiddleware:
    """Counts each HTTP request against its face's route groups before the app sees it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        face: str,
        limiter: RateLimiter,
        limits: dict[str, Limit],
        groups_of: GroupsOf,
        refuse: Refusal,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.app = app
        self.face = face
        self.limiter = limiter
        self.limits = limits
        self.groups_of = groups_of
        self.refuse = refuse
        self.trusted = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limits:
            await self.app(scope, receive, send)
            return
        client = client_address(scope, self.trusted)
        tightest: Verdict | None = None
        for group in self.groups_of(scope["method"], scope["path"]):
            limit = self.limits.get(group)
            if limit is None:
                continue
            verdict = await self.limiter.check(f"{self.face}:{group}:{client}", limit)
            if (
                tightest is None
                or not verdict.allowed
                or (tightest.allowed and verdict.remaining < tightest.remaining)
            ):
                tightest = verdict
            if not verdict.allowed:
                break
        if tightest is not None and not tightest.allowed:
            await self.refuse(tightest)(scope, receive, send)
            return
        if tightest is None:
            await self.app(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in headers_for(tightest).items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(
    app: Starlette,
    runtime: Runtime,
    face: str,
    refuse: Refusal,
    groups_of: GroupsOf = lambda _method, _path: ("default",),
) -> None:
    """Put the face's configured limits in front of ``app`` (first middleware to run)."""
    settings = runtime.settings
    limits = {
        group: Limit(rule.requests, rule.per_seconds)
        for group, rule in getattr(settings.faces, face).rate_limits.items()
    }
    app.add_middleware(
        RateLimitMiddleware,
        face=face,
        limiter=runtime.rate_limiter,
        limits=limits,
        groups_of=groups_of,
        refuse=refuse,
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )
