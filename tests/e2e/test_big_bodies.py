"""Big bodies against a served process: a stranger's costs nothing, an upload streams to
disk, and 40 at once raise the server's peak memory by less than 100 MB.

The hostile review's 40 unauthenticated 15 MB multipart POSTs to Heliactyl's
``/api/v3/ban`` took the process from 745 MB to 1.8 GB. The peak is the kernel's own
(``VmHWM`` in ``/proc/<pid>/status``), reset after a warm-up so the start-up's peak
does not hide anything. SQLite only: no database work is involved.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.process import Served, free_port, serve, write_config

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status"
)

MB = 1024 * 1024
BODY = 15 * MB
CLIENTS = 40
PEAK_BUDGET_KB = 100 * 1024
CHUNK = b"\0" * (256 * 1024)
BOUNDARY = "guildhallboundary"
AURORA_KEY = "aurora-key-of-the-test-0123456789"


def peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def reset_peak(pid: int) -> None:
    """Start the peak again from the current resident size (Linux 4.0 and later)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str]
    body: bytes
    sent: int


def _read_answer(sock: socket.socket) -> tuple[int | None, dict[str, str], bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
    except (ConnectionResetError, TimeoutError):
        pass
    if not data:
        return None, {}, b""
    return int(lines[0].split()[1]), headers, body


def push(
    port: int, path: str, headers: dict[str, str], prefix: bytes, size: int, suffix: bytes = b""
) -> Answer:
    """POST ``prefix``, then zeros up to ``size`` bytes in all, then ``suffix``, the way
    a client streams a file; chunked when ``headers`` declare no Content-Length."""
    chunked = "Content-Length" not in headers
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:

        def send(data: bytes) -> None:
            nonlocal sent
            sock.sendall(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            sent += len(data)

        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            send(prefix)
            while sent < size - len(suffix):
                send(CHUNK[: size - len(suffix) - sent])
            if suffix:
                send(suffix)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped listening: what it answered is still to read
        status, answer_headers, body = _read_answer(sock)
    return Answer(status, answer_headers, body, sent)


def multipart(port: int, path: str, headers: dict[str, str], file_size: int) -> Answer:
    """A multipart body: ``data`` (an item as JSON), then an ``image`` of ``file_size``
    bytes that starts like a PNG and is zeros after."""
    item = json.dumps({"name": "Big", "type": "T", "rarity": "C"})
    prefix = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="data"\r\n\r\n{item}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; '
        'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode() + b"\x89PNG\r\n\x1a\n"
    suffix = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = len(prefix) + file_size - 8 + len(suffix)
    content = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(size),
    }
    return push(port, path, headers | content, prefix, size, suffix)


def at_once(send: Callable[[int], Answer]) -> list[Answer]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(send, range(CLIENTS)))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def run(name: str, **faces: dict[str, object]) -> Served:
        directory = tmp_path / name
        directory.mkdir()
        sections = {
            face: {"host": "127.0.0.1", "port": free_port()} | v for face, v in faces.items()
        }
        served = serve(write_config(directory, "sqlite", **sections), "--demo")
        started.append(served)
        return served

    yield run
    for served in started:
        served.stop()
        served.output()


def port_of(served: Served, face: str) -> int:
    return int(served.url(face).rsplit(":", 1)[1])


def test_forty_big_bodies_at_once_cost_the_server_under_100_mb(
    start: Callable[..., Served],
) -> None:
    served = start("open", heliactyl={}, aurora={})
    pid = served.process.pid
    heliactyl, aurora = port_of(served, "heliactyl"), port_of(served, "aurora")
    key = {"Authorization": f"Bearer {served.demo_key}"}
    json_type = {"Content-Type": "application/json"}

    def stranger(i: int, size: int = BODY) -> Answer:
        headers = {} if i % 2 else {"Authorization": "Bearer not-a-key"}
        return multipart(heliactyl, "/api/v3/ban", headers, size)

    def big_json(i: int, size: int = BODY) -> Answer:
        declared = {"Content-Length": str(size)} if i % 2 else {}  # else chunked
        return push(heliactyl, "/api/v3/setcoins", key | json_type | declared, b'{"id":"', size)

    def upload(i: int, size: int = BODY) -> Answer:
        path = "/api/items"
        # Half over the 15 MB cap (refused as it passes), half under it (not an image).
        return multipart(aurora, path, {}, size + MB // 2 if i % 2 else size - MB // 2)

    for send in (stranger, big_json, upload):  # warm-up: every code path once, small
        send(0, 64 * 1024)
        send(1, 64 * 1024)
    reset_peak(pid)
    baseline = peak_kb(pid)

    strangers = at_once(stranger)
    jsons = at_once(big_json)
    uploads = at_once(upload)
    grown = peak_kb(pid) - baseline
    assert grown < PEAK_BUDGET_KB, f"peak grew by {grown // 1024} MB"
    assert served.process.poll() is None

    for answer in strangers:
        # Heliactyl: a missing key is a 401, a wrong one a 403; then the connection closes.
        assert answer.status in (401, 403), answer
        assert answer.headers["connection"] == "close"
        assert answer.sent < BODY
    for answer in jsons:
        # Heliactyl answers every error after authentication with HTTP 200.
        assert answer.status == 200, answer
        assert json.loads(answer.body) == {"status": "body must be an object"}
        assert answer.headers["connection"] == "close"
    for i, answer in enumerate(uploads):
        assert answer.status == 400, answer
        details = json.loads(answer.body)["details"]
        assert ("15 MB" if i % 2 else "not a readable") in details


def test_a_keyed_aurora_refuses_strangers_uploads_unread(start: Callable[..., Served]) -> None:
    """With ``api_key`` set, an upload without it is a 401 before any of it is read."""
    served = start("keyed", aurora={"api_key": AURORA_KEY})
    pid, aurora = served.process.pid, port_of(served, "aurora")

    def stranger(_i: int, size: int = BODY) -> Answer:
        return multipart(aurora, "/api/items", {"X-API-Key": "wrong"}, size)

    stranger(0, 64 * 1024)
    reset_peak(pid)
    baseline = peak_kb(pid)
    answers = at_once(stranger)
    grown = peak_kb(pid) - baseline
    assert grown < PEAK_BUDGET_KB, f"peak grew by {grown // 1024} MB"
    for answer in answers:
        assert answer.status == 401, answer
        assert json.loads(answer.body)["error"] == "Unauthorized"
        assert answer.headers["connection"] == "close"
        assert answer.sent < BODY
    keyed = multipart(aurora, "/api/items", {"X-API-Key": AURORA_KEY}, 1024)
    assert keyed.status == 400 and "not a readable" in json.loads(keyed.body)["details"]
