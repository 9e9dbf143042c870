"""A hosted server inherits none of Guildhall's descriptors (issue 15, item 1).

A SkyPANEL server started through the API used to inherit every listening
socket (and uvloop's own copies of stdio), so after Ctrl-C the next
``guildhall serve`` found its ports taken. Here a server is started, its open
descriptors are read from ``/proc``, Guildhall is interrupted and started
again on the same ports, and the server is still stopped through the API.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import httpx
import pytest

from guildhall.faces import FACES
from tests.process import free_port, guildhall, last_line, processes_in, serve, write_config

pytestmark = pytest.mark.e2e


def _descriptors(pid: int) -> dict[int, str]:
    """What each open descriptor of ``pid`` points at."""
    directory = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{directory}/{fd}") for fd in os.listdir(directory)}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_hosted_server_keeps_no_port_after_guildhall_stops(
    database_url: str, tmp_path: Path, workers: int
) -> None:
    ports = {name: {"port": free_port()} for name in FACES}
    config = write_config(tmp_path, database_url, **ports)
    if not database_url.startswith("sqlite"):
        guildhall(config, "migrate")
    account_id = last_line(
        guildhall(
            config,
            *("users", "create", "--username", "john", "--email", "user@example.com"),
            *("--password", "-"),
            input_text="yourpassword\n",
        ).stdout
    )
    server_id = last_line(
        guildhall(
            config, "servers", "create", "--owner", account_id, "--name", "VPS", "--plan", "Basic"
        ).stdout
    )
    workdir = (tmp_path / "var" / "servers" / server_id).resolve()

    def panel(served_url: str) -> httpx.Client:
        client = httpx.Client(base_url=served_url, timeout=15)
        login = client.post(
            "/api/auth/login", json={"email": "user@example.com", "password": "yourpassword"}
        ).json()
        client.headers["Authorization"] = f"Bearer {login['data']['token']}"
        return client

    def power(client: httpx.Client, action: str) -> str:
        answer = client.post(f"/api/servers/{server_id}/power", json={"action": action})
        return answer.json()["data"]["status"]

    served = serve(config, "--workers", str(workers))
    try:
        with contextlib.closing(panel(served.url("skypanel"))) as client:
            # Started and stopped by the same Guildhall: reaped, nothing left.
            assert power(client, "start") == "running"
            assert power(client, "stop") == "stopped"
            assert processes_in(workdir) == []
            assert power(client, "start") == "running"
        [pid] = processes_in(workdir)
        descriptors = _descriptors(pid)
        assert sorted(descriptors) == [0, 1, 2], descriptors
        assert descriptors[0] == "/dev/null"
        assert descriptors[1] == descriptors[2] == str(workdir / "console.log")
    finally:
        assert served.stop(signal.SIGINT) == 0
        served.output()

    assert processes_in(workdir) == [pid]  # a hosted server outlives Guildhall
    again = serve(config, "--workers", str(workers))  # the same ports are free again
    try:
        for name in FACES:
            answer = httpx.get(f"{again.url(name)}/no-such-route", timeout=15)
            assert answer.status_code in (401, 403, 404), (name, answer.status_code)
        with contextlib.closing(panel(again.url("skypanel"))) as client:
            # Started by the earlier Guildhall: watched through /proc, stopped all the same.
            assert power(client, "stop") == "stopped"
        assert processes_in(workdir) == []
    finally:
        again.stop(signal.SIGTERM)
        again.output()
