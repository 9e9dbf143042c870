"""Who is on the other end of a request, and how they reached us.

The client address is the socket peer. Only when the peer is one of
``trusted_proxies`` are forwarded headers read: ``X-Forwarded-For`` from the
right, skipping the trusted hops, and ``X-Forwarded-Proto``. A header sent by
anyone else changes nothing. (uvicorn's own forwarded-header handling is off,
``server.py``, so this is the one place that decides.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The socket peer, or for a trusted proxy the first untrusted hop of X-Forwarded-For."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted or not _within(peer, trusted):
        return peer
    forwarded = Headers(scope=scope).get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


def request_scheme(scope: Scope, trusted: Sequence[Network]) -> str:
    """``https`` or ``http`` as the client used it: a trusted proxy's X-Forwarded-Proto wins."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if trusted and _within(peer, trusted):
        proto = Headers(scope=scope).get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            return proto
    return str(scope.get("scheme", "http"))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
