"""With ``--workers``, every worker serves its share of a client's keep-alive connections
(``server.worker_sockets``): a bot or panel that opens a pool of connections at once must not
land on one process while the other idles. And a port another server already listens on is
still refused, whatever the worker count."""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from guildhall import server
from tests.process import Served, guildhall, write_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not server.SHARE_PORTS, reason="needs SO_REUSEPORT (Linux, the BSDs)"),
]

CONNECTIONS = 40


def _workers_of(pid: int) -> list[int]:
    """The worker processes ``serve`` started (not multiprocessing's resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
                command = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status and b"spawn_main" in command:
                found.append(int(entry))
    return found


def _established_on(port: int) -> set[str]:
    """Socket inodes of the connections accepted on ``port`` (the server's side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED
                inodes.add(fields[9])
    return inodes


def _connections_by_process(pids: list[int], port: int) -> Counter[int]:
    accepted = _established_on(port)
    held: Counter[int] = Counter()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in accepted:
                held[pid] += 1
    return held


async def _open_and_ask(host: str, port: int, key: str) -> tuple[asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /api HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return writer, head


async def test_two_workers_each_serve_part_of_a_burst_of_keep_alive_connections(
    served_heliactyl: Callable[..., Served],
) -> None:
    served = served_heliactyl("--workers", "2")
    host, port = served.url("heliactyl").removeprefix("http://").split(":")
    # A client pool opening its connections at once, each kept alive after its answer.
    opened = await asyncio.gather(
        *(_open_and_ask(host, int(port), served.demo_key) for _ in range(CONNECTIONS))
    )
    try:
        assert all(head.startswith(b"HTTP/1.1 200") for _, head in opened)
        workers = _workers_of(served.process.pid)
        assert len(workers) == 2, workers
        held = _connections_by_process(workers, int(port))
        assert sum(held.values()) == CONNECTIONS, held
        # Spread by the kernel's hash: both get a fair part (fewer than 8 of 40 for one
        # worker has a chance of about 1 in 24,000).
        assert min(held[pid] for pid in workers) >= 8, held
    finally:
        for writer, _ in opened:
            writer.close()
    assert served.stop() == 0


def test_serve_with_workers_refuses_a_port_in_use(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that shares
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, database_url, heliactyl={"port": port})
        result = guildhall(config, "serve", "--workers", "2", check=False)
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 (heliactyl face) is already in use." in result.stderr
    assert "Traceback" not in result.stderr
