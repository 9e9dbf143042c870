"""SkyPANEL against a real ``guildhall serve``, set up with the operator's commands:
an account with a password, a server and invoices made on the command line, then
used over HTTP the way a panel client does."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.process import free_port, guildhall, last_line, processes_in, serve, write_config

pytestmark = pytest.mark.e2e


def test_operator_setup_then_login_power_and_billing(database_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, database_url, skypanel={"port": free_port()})
    if not database_url.startswith("sqlite"):
        guildhall(config, "migrate")
    created = guildhall(
        config,
        "users",
        "create",
        "--username",
        "john",
        "--email",
        "user@example.com",
        "--password",
        "-",
        input_text="yourpassword\n",
    )
    account_id = last_line(created.stdout)
    server_id = last_line(
        guildhall(
            config,
            "servers",
            "create",
            "--owner",
            account_id,
            "--name",
            "My VPS",
            "--plan",
            "Basic",
        ).stdout
    )
    assert server_id.startswith("server-")
    unknown_plan = guildhall(
        config,
        "servers",
        "create",
        "--owner",
        account_id,
        "--name",
        "x",
        "--plan",
        "Gold",
        check=False,
    )
    assert unknown_plan.returncode == 1 and "Plan 'Gold' does not exist" in unknown_plan.stderr
    invoice_id = last_line(
        guildhall(
            config,
            "invoices",
            "create",
            "--account",
            "john",
            "--amount",
            "9.99",
            "--due",
            "2099-02-01",
        ).stdout
    )
    assert invoice_id.startswith("inv_")
    assert "paid" in guildhall(config, "invoices", "pay", invoice_id).stdout
    twice = guildhall(config, "invoices", "pay", invoice_id, check=False)
    assert twice.returncode == 1
    assert f"Invoice {invoice_id} is already paid." in twice.stderr
    assert "Traceback" not in twice.stderr

    served = serve(config, "--face", "skypanel")
    try:
        with httpx.Client(base_url=served.url("skypanel")) as client:
            login = client.post(
                "/api/auth/login",
                json={"email": "user@example.com", "password": "yourpassword"},
                headers={"Accept": "application/vnd.skypanel.v1+json"},
            ).json()
            assert login["success"] is True
            client.headers["Authorization"] = f"Bearer {login['data']['token']}"
            started = client.post(f"/api/servers/{server_id}/power", json={"action": "start"})
            assert started.json()["data"]["status"] == "running"
            invoices = client.get("/api/billing/invoices").json()["data"]
            assert [(i["id"], i["amount"], i["status"]) for i in invoices] == [
                (invoice_id, 9.99, "paid")
            ]
    finally:
        served.stop(signal.SIGTERM)
        served.output()

    # A hosted server outlives a restart of the panel; deleting it ends its process.
    workdir = (tmp_path / "var" / "servers" / server_id).resolve()
    assert len(processes_in(workdir)) == 1
    deleted = guildhall(config, "servers", "delete", server_id)
    assert f"deleted server {server_id} (My VPS)" in deleted.stdout
    assert processes_in(workdir) == []


def test_without_redis_the_login_limit_holds_and_serve_says_so(
    database_url: str, tmp_path: Path
) -> None:
    """``redis_url`` points at a port that refuses connections: serve starts, says the
    limits are counted in the process, and the 11th wrong password a minute is refused
    (the right one too), with one log line for the outage."""
    config = write_config(
        tmp_path,
        database_url,
        top={"redis_url": f"redis://127.0.0.1:{free_port()}/0"},
        skypanel={"port": free_port()},
    )
    if not database_url.startswith("sqlite"):
        guildhall(config, "migrate")
    guildhall(
        config,
        *("users", "create", "--username", "john", "--email", "user@example.com"),
        *("--password", "-"),
        input_text="yourpassword\n",
    )
    running = serve(config, "--face", "skypanel")
    try:
        assert any(
            "Redis does not answer" in line
            and "rate limits are counted in this process until it does" in line
            for line in running.banner
        ), running.banner
        statuses = []
        with httpx.Client(base_url=running.url("skypanel"), timeout=30) as client:
            for password in ["wrong password"] * 12 + ["yourpassword"]:
                body = {"email": "user@example.com", "password": password}
                statuses.append(client.post("/api/auth/login", json=body).status_code)
    finally:
        running.stop()
    assert statuses == [401] * 10 + [429] * 3
    log = running.output().split("Press Ctrl-C to stop.", 1)[1]
    assert log.count("Redis does not answer") == 1, log
