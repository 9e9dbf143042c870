"""The console with many accounts: the accounts list and one account's page.

One run makes a throw-away installation (SQLite, or PostgreSQL with ``--database
postgresql``), fills it with ``--accounts`` accounts (100,000 by default; each with a
Discord identity, written in bulk), makes an administrator, starts
``guildhall serve --face console``, signs in once as a browser would (the sign-in form,
its CSRF token, the session cookie), then drives at ``--connections`` (10) keep-alive
connections, for ``--duration`` seconds each:

| scenario        | request                                                   |
|-----------------|-----------------------------------------------------------|
| `accounts list` | `GET /accounts` (the first page, newest first)            |
| `accounts search` | `GET /accounts?q=<a Discord id>` (one match)            |
| `accounts page 9` | `GET /accounts?page=9`                                  |
| `account`       | `GET /accounts/<id>` of accounts spread over the table   |

It prints req/s, p50 and p99 per scenario and exits 1 when a p99 is 100 ms or more (the
issue's target) or any request failed. It reuses ``bench/run.py``'s load generator.

    python bench/console.py                       # SQLite, 100,000 accounts
    python bench/console.py --database postgresql
    python bench/console.py --workers 2
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from bench import wrk
from bench.run import (
    HOST,
    PG_URL_BASE,
    WARMUP_S,
    BenchError,
    Server,
    free_port,
    guildhall_cmd,
    psql,
    run_cli,
    run_snippet,
    start_server,
    stop_server,
    toml_str,
    wait_ready,
)

P99_TARGET_MS = 100.0
ADMIN_PASSWORD = "bench console password"

SEED_ACCOUNTS = """
import asyncio, sys
from datetime import datetime, timezone
from uuid import uuid4
from sqlalchemy import insert
from guildhall.config import load_settings
from guildhall.core.accounts.models import Account, Identity
from guildhall.runtime import Runtime

async def main(count):
    runtime = Runtime(load_settings())
    now = datetime.now(timezone.utc)
    batch = 5000
    try:
        for start in range(0, count, batch):
            async with runtime.database.unit_of_work() as session:
                rows = [
                    {"uuid": str(uuid4()), "username": f"member{n}",
                     "email": f"member{n}@example.com", "first_name": "", "last_name": "",
                     "role": "user", "token_version": 0,
                     "created_at": now, "updated_at": now}
                    for n in range(start, min(start + batch, count))
                ]
                ids = list(await session.scalars(insert(Account).returning(Account.id), rows))
                await session.execute(insert(Identity), [
                    {"account_id": account_id, "provider": "discord",
                     "subject": f"4{n:017d}", "created_at": now}
                    for n, account_id in zip(range(start, start + len(ids)), ids)
                ])
        print("seeded", count)
    finally:
        await runtime.close()

asyncio.run(main(int(sys.argv[1])))
"""


def psql_on(database: str, sql: str) -> None:
    """One statement on the bench's own database (``psql`` runs on ``postgres``)."""
    result = subprocess.run(
        ["psql", "-h", HOST, "-U", "postgres", "-X", "-q", "-d", database, "-c", sql],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"psql {sql!r} failed:\n{result.stderr}")


def write_config(tmp: Path, port: int, database_url: str | None) -> Path:
    lines = [f"data_dir = {toml_str(str(tmp / 'var'))}"]
    if database_url is not None:
        lines.append(f"database_url = {toml_str(database_url)}")
    lines += ["", "[console]", f"host = {toml_str(HOST)}", f"port = {port}"]
    lines += ["[console.rate_limits.default]", "requests = 10000000", "per_seconds = 1"]
    path = tmp / "guildhall.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sign_in(port: int) -> str:
    """The session cookie, got through the sign-in form as a browser gets it."""
    base = f"http://{HOST}:{port}"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
        form = browser.get("/sign-in")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text)
        if token is None:
            raise BenchError(f"no sign-in form at {base}/sign-in")
        answer = browser.post(
            "/sign-in",
            data={"csrf": token.group(1), "login": "benchadmin", "password": ADMIN_PASSWORD},
        )
        if answer.status_code != 303 or "gh_console" not in browser.cookies:
            raise BenchError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")
        return str(browser.cookies["gh_console"])


def page_request(path: str, port: int, cookie: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Accept: text/html",
        f"Cookie: gh_console={cookie}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--workers", type=int, default=1, help="guildhall serve --workers")
    return ap.parse_args(argv)


def bench(args: argparse.Namespace, tmp: Path, servers: list[Server], drops: list[str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUILDHALL_")}
    port = free_port()
    database_url = None
    if args.database == "postgresql":
        name = f"guildhall_bench_console_{secrets.token_hex(4)}"
        psql(f'CREATE DATABASE "{name}"')
        drops.append(name)
        database_url = f"{PG_URL_BASE}/{name}"
    env["GUILDHALL_CONFIG"] = str(write_config(tmp, port, database_url))
    run_cli(["migrate"], env)
    print(f"seeding {args.accounts:,} accounts ...", flush=True)
    run_snippet(SEED_ACCOUNTS, [str(args.accounts)], env, "seeding accounts")
    if database_url is not None:
        # As autovacuum would soon after: the planner's statistics know the new rows.
        psql_on(drops[-1], "ANALYZE")
    run_cli(
        [
            "users",
            "create",
            "--username",
            "benchadmin",
            "--password",
            ADMIN_PASSWORD,
            "--role",
            "admin",
        ],
        env,
    )
    server = start_server(
        "console",
        [*guildhall_cmd(), "serve", "--face", "console", "--workers", str(args.workers)],
        port,
        tmp,
        env,
    )
    servers.append(server)
    wait_ready(server)
    cookie = sign_in(port)
    middle = args.accounts // 2
    account_ids = [str(1 + (n * 7919) % args.accounts) for n in range(200)]
    scenarios = [
        ("accounts list", [page_request("/accounts", port, cookie)]),
        (
            "accounts search",
            [page_request("/accounts?q=" + urllib.parse.quote(f"4{middle:017d}"), port, cookie)],
        ),
        ("accounts page 9", [page_request("/accounts?page=9", port, cookie)]),
        ("account", [page_request(f"/accounts/{n}", port, cookie) for n in account_ids]),
    ]
    failed = False
    print(f"{'scenario':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    seconds = max(1, round(args.duration))  # wrk counts in whole seconds
    for name, raws in scenarios:
        counts = wrk.Counts()
        for length, measured in ((WARMUP_S, False), (seconds, True)):
            wrk.run(
                port,
                raws,
                "html",
                connections=args.connections,
                seconds=length,
                first=0,
                counts=counts,
                measured=measured,
            )
        p99 = counts.percentile_ms(99)
        rate = counts.measured_ok / counts.measured_s
        print(
            f"{name:<16} {rate:>8.0f} {counts.percentile_ms(50):>8.1f} {p99:>8.1f} "
            f"{counts.errors:>7}"
        )
        failed |= counts.errors > 0 or not p99 < P99_TARGET_MS
    print(f"p99 target: under {P99_TARGET_MS:.0f} ms: {'MISSED' if failed else 'met'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers: list[Server] = []
    drops: list[str] = []
    with tempfile.TemporaryDirectory(prefix="guildhall-bench-console-") as tmp:
        try:
            return bench(args, Path(tmp), servers, drops)
        except (BenchError, wrk.WrkError) as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            for server in servers:
                stop_server(server)
            for name in drops:
                psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
