"""Every answer says ``nosniff``, and a client that never finishes its request is
closed (issue 15, item 16), against a real ``guildhall serve`` over TCP.

The timeouts are configured short here (``[http]`` header 1 s, body 2 s); the
assertions leave a wide margin for a slow machine.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from guildhall.faces import FACES
from tests.process import Served, free_port, serve, write_config

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1
BODY_TIMEOUT = 2
CLOSED_WITHIN = 15  # seconds: far above either timeout, far below "never"


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    ports = {name: {"port": free_port()} for name in FACES}
    timeouts = {"header_timeout_seconds": HEADER_TIMEOUT, "body_timeout_seconds": BODY_TIMEOUT}
    config = write_config(tmp_path, database_url, tables={"http": timeouts}, **ports)
    running = serve(config, "--demo")
    yield running
    running.stop()
    running.output()


def _address(served: Served, face: str) -> tuple[str, int]:
    host, port = served.url(face).removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(CLOSED_WITHIN)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_every_response_of_every_face_says_nosniff(served: Served) -> None:
    bearer = {"Authorization": f"Bearer {served.demo_key}"}
    login = {"email": "user@example.com", "password": "yourpassword"}
    requests: dict[str, list[tuple[str, str, dict[str, object]]]] = {
        "heliactyl": [
            ("GET", "/api", {"headers": bearer}),
            ("GET", "/api/v3/userinfo", {}),  # no key: 401
            ("GET", "/no-such-route", {"headers": bearer}),
        ],
        "ld7": [
            ("GET", "/", {}),  # the dashboard page: once, not twice
            ("POST", "/api/sessions", {"content": b"{not json"}),
            ("GET", "/no-such-route", {}),
        ],
        "skypanel": [
            ("POST", "/api/auth/login", {"json": login}),
            ("POST", "/api/auth/login", {"json": {**login, "password": "wrong"}}),
            ("GET", "/no-such-route", {}),
        ],
        "aurora": [
            ("GET", "/api/health", {}),
            ("PUT", "/api/users/1", {"content": b"{not json"}),
            ("GET", "/no-such-route", {}),
        ],
        "rustmail": [
            ("GET", "/api/auth/login", {}),  # the redirect to the provider
            ("GET", "/api/bot/status", {}),  # no session: 401
            ("GET", "/no-such-route", {}),
        ],
    }
    for face, calls in requests.items():
        statuses = []
        with httpx.Client(base_url=served.url(face), timeout=15) as client:
            for method, path, options in calls:
                answer = client.request(method, path, **options)
                statuses.append(answer.status_code)
                assert answer.headers.get_list("x-content-type-options") == ["nosniff"], (
                    face,
                    path,
                    answer.status_code,
                )
        assert statuses[0] < 400 and 400 <= statuses[1] < 500 and statuses[2] == 404, (
            face,
            statuses,
        )
    # A WebSocket refused at its handshake (a foreign page's Origin) is an HTTP 403 too.
    handshake = {
        "Origin": "https://elsewhere.example",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    refused = httpx.get(served.url("aurora") + "/ws", headers=handshake, timeout=15)
    assert refused.status_code == 403
    assert refused.headers.get_list("x-content-type-options") == ["nosniff"]
    # A request uvicorn itself refuses as malformed says it too.
    with socket.create_connection(_address(served, "aurora")) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        answer, _ = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nx-content-type-options: nosniff\r\n" in answer.lower()


def test_half_a_request_line_is_closed_within_the_header_timeout(served: Served) -> None:
    for face in FACES:
        with socket.create_connection(_address(served, face)) as sock:
            sock.sendall(b"GET /api/heal")
            answer, waited = _until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), (face, answer)
        assert b"\r\nx-content-type-options: nosniff\r\n" in answer.lower()
        assert HEADER_TIMEOUT * 0.5 <= waited < CLOSED_WITHIN, (face, waited)


def test_a_head_sent_a_byte_at_a_time_is_closed_all_the_same(served: Served) -> None:
    """The deadline is for the whole head, not between two bytes of it (a slowloris)."""
    request = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 200
    with socket.create_connection(_address(served, "aurora")) as sock:
        started = time.monotonic()
        sent = 0
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        except OSError:
            pass  # closed by the server while we were still sending
        _answer, _ = _until_closed(sock)
    assert sent < len(request)
    assert time.monotonic() - started < CLOSED_WITHIN


def test_a_silent_connection_is_closed(served: Served) -> None:
    with socket.create_connection(_address(served, "heliactyl")) as sock:
        answer, waited = _until_closed(sock)
    assert answer == b""  # nothing was asked, nothing is answered
    assert waited < CLOSED_WITHIN


def test_a_body_that_stalls_is_answered_and_closed_within_the_body_timeout(
    served: Served,
) -> None:
    with socket.create_connection(_address(served, "skypanel")) as sock:
        sock.sendall(
            b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"email": "user@'
        )
        answer, waited = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert BODY_TIMEOUT * 0.5 <= waited < CLOSED_WITHIN
    # The process is fine afterwards.
    after = httpx.get(f"{served.url('skypanel')}/no-such-route", timeout=15)
    assert after.status_code == 404


def test_a_slow_body_that_keeps_moving_is_answered(served: Served) -> None:
    """The body timeout is the longest pause, not the whole upload's time."""
    body = b'{"email": "user@example.com", "password": "yourpassword"}'
    head = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    with socket.create_connection(_address(served, "skypanel")) as sock:
        sock.sendall(head)
        pieces = [body[i : i + 10] for i in range(0, len(body), 10)]
        for piece in pieces:  # six pauses of half the body timeout: longer than it in all
            time.sleep(BODY_TIMEOUT / 2)
            sock.sendall(piece)
        answer, _ = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]
    assert b'"success":true' in answer.replace(b" ", b"")


# struct tcp_info (linux/tcp.h): tcpi_data_segs_in, segments that carried data, is the
# u32 at byte 152 (Linux 4.6 and later).
DATA_SEGMENTS_IN = 152


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="TCP_INFO is Linux's")
def test_each_answer_reaches_the_client_in_one_segment(served: Served) -> None:
    """Head and body go out as one write: a client wakes once per answer, not twice."""
    answers = 5
    request = (
        f"GET /api HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {served.demo_key}\r\n\r\n"
    ).encode()
    with socket.create_connection(_address(served, "heliactyl")) as sock:
        sock.settimeout(CLOSED_WITHIN)
        for _ in range(answers):
            sock.sendall(request)
            received = b""
            while b"\r\n\r\n" not in received:
                received += _more(sock)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += _more(sock)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body.startswith(b'{"status":')
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, DATA_SEGMENTS_IN + 4)
    assert int.from_bytes(info[DATA_SEGMENTS_IN:], "little") == answers


def _more(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the server closed a keep-alive connection in the middle of an answer"
    return chunk
