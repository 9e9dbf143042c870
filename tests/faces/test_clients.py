"""Who the client is: the socket peer, unless a trusted proxy says otherwise."""

from __future__ import annotations

from guildhall.faces.common.clients import client_address, parse_networks, request_scheme

TRUSTED = parse_networks(["127.0.0.1/32", "10.0.0.0/8"])


def _scope(peer: str, scheme: str = "http", **headers: str) -> dict:
    return {
        "type": "http",
        "scheme": scheme,
        "client": (peer, 40000),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def test_a_trusted_proxy_names_the_client_and_the_scheme() -> None:
    scope = _scope("127.0.0.1", x_forwarded_for="203.0.113.5, 10.1.2.3", x_forwarded_proto="https")
    assert client_address(scope, TRUSTED) == "203.0.113.5"  # the first untrusted hop from the right
    assert request_scheme(scope, TRUSTED) == "https"


def test_anyone_else_is_taken_at_the_socket() -> None:
    scope = _scope("198.51.100.9", x_forwarded_for="1.2.3.4", x_forwarded_proto="https")
    assert client_address(scope, TRUSTED) == "198.51.100.9"
    assert request_scheme(scope, TRUSTED) == "http"
    assert client_address(scope, ()) == "198.51.100.9"
    assert request_scheme(_scope("127.0.0.1", x_forwarded_proto="https"), ()) == "http"


def test_garbage_in_the_headers_falls_back_to_the_peer() -> None:
    assert client_address(_scope("127.0.0.1", x_forwarded_for="not an ip"), TRUSTED) == "127.0.0.1"
    assert request_scheme(_scope("127.0.0.1", x_forwarded_proto="gopher"), TRUSTED) == "http"
    assert request_scheme(_scope("127.0.0.1", scheme="https"), TRUSTED) == "https"
