"""Where webhooks may go: public addresses only, unless the operator allows private ones.

A webhook URL is chosen by whoever registers it, and Guildhall then POSTs to
it from inside the operator's network. So, unless ``[webhooks]
allow_private_targets = true``, a target must be a public (globally routable)
address: loopback, link-local, private, shared (CGNAT), unspecified,
multicast and reserved addresses are refused, also when written as an IPv6
address that carries one (IPv4-mapped, NAT64, 6to4, Teredo).

The rule is checked twice:

- at registration, when the host is such an address or resolves only to
  such addresses (a host that does not resolve yet is accepted: it is
  checked again at every delivery);
- at delivery, because DNS can change after registration: the host is
  resolved, non-public addresses are dropped, and the connection is made to
  an address that was checked (:class:`GuardedBackend`), so a DNS answer that
  changes between the check and the connect (rebinding) cannot slip through.
  The request keeps the URL's host name for ``Host`` and for TLS (SNI and
  certificate checks). A refused delivery is a failed attempt with the
  reason, retried with the usual backoff until ``give_up_after_seconds``
  (DNS may be put right meanwhile).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SETTING = "[webhooks] allow_private_targets = true"
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class TargetRefused(Exception):
    """The target is not a public address; the message says which and why, in one sentence."""


def kind_of(address: Address) -> str | None:
    """What makes the address non-public (``"a loopback"``...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped
        if inner is None and address in NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return kind_of(inner)
        for tunnelled in (address.sixtofour, address.teredo and address.teredo[1]):
            if tunnelled is not None and kind_of(tunnelled) is not None:
                return "a tunnelled non-public"
        if address.is_site_local:  # fec0::/10, deprecated but still routed privately
            return "a private"
    if address.is_unspecified:
        return "an unspecified"
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local"
    if address.is_multicast:
        return "a multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED:
        return "a shared (carrier-grade NAT)"
    if address.is_private:
        return "a private"
    if address.is_reserved or not address.is_global:
        return "a reserved"
    return None


def literal(host: str) -> Address | None:
    """The address a URL's host names literally (``[::1]`` too), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refusal(host: str, addresses: Iterable[Address]) -> str:
    found = sorted({str(a) for a in addresses})
    first = next(a for a in sorted(addresses, key=str) if kind_of(a) is not None)
    shown = host if literal(host) is not None else f"{host} ({', '.join(found)})"
    return (
        f"the webhook host {shown} is {kind_of(first)} address, and webhooks go only to "
        f"public addresses unless {SETTING}"
    )


async def resolve(host: str, port: int, seconds: float | None) -> list[Address]:
    """Every address ``host`` names (itself when it is one), looked up within ``seconds``."""
    if (address := literal(host)) is not None:
        return [address]
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(seconds):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # Drop an IPv6 zone ("fe80::1%eth0"): the address decides, the interface does not.
    return list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )


async def check_url(url: str, seconds: float) -> None:
    """Raise :class:`TargetRefused` when ``url``'s host is, or resolves only to, non-public
    addresses. A host that does not resolve passes (delivery checks it again)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await resolve(host, port, seconds)
    except (OSError, TimeoutError, ValueError, UnicodeError):
        return
    if addresses and all(kind_of(a) is not None for a in addresses):
        raise TargetRefused(refusal(host, addresses))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to public addresses.

    httpcore asks it for a TCP connection to the URL's host; it resolves the
    host itself, keeps the public addresses and connects to them in turn, by
    address. TLS is started afterwards by httpcore with the URL's host name.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port, timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        public = [a for a in addresses if kind_of(a) is None]
        if not public:
            raise httpcore.ConnectError("refused: " + refusal(host, addresses))
        failure: Exception | None = None
        for address in public:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not delivered over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, its connections made by :class:`GuardedBackend`.

    httpx takes no network backend, so the one of the pool it builds is
    wrapped; a pool of another kind (a proxy's) is refused rather than left
    unchecked.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        pool = self._pool
        if type(pool) is not httpcore.AsyncConnectionPool:
            raise TypeError(f"webhook targets cannot be checked through {type(pool).__name__}")
        pool._network_backend = GuardedBackend(pool._network_backend)
