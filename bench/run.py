"""End-to-end HTTP benchmark of Guildhall's Heliactyl face against a bare FastAPI ceiling.

One run sets up a throw-away Guildhall instance through its CLI (config, migrations, a user,
an API key), starts it next to ``bench.ceiling``, drives each scenario for a fixed duration at
N concurrent keep-alive connections and prints req/s, p50/p99 latency, errors and the ratio to
the ceiling, then verifies that every successful ``addcoins`` landed in the database.
``--matrix`` sets up four such instances (SQLite and PostgreSQL, one worker and two) before
any load and runs each scenario on all four back to back, so that the figures it compares
come from the same few seconds of a machine whose speed drifts.

The load comes from wrk (``bench/wrk.py``): on a 2-core machine the load generator shares the
cores with the server and PostgreSQL, and wrk spends far less CPU per request than a Python
client. Its Lua script checks every response's body and counts what it sent, which the ledger
check needs. A small HTTP client on asyncio streams remains for the one-off requests around
the load (the balance before and after).

Only 127.0.0.1 is contacted and every wait is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wrk

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
DISCORD_ID = "100000000000000001"
PANEL_DISCORD_ID = "100000000000000002"  # the account whose userinfo comes from the panel
MEMBERS = 500  # Aurora members to list and sort
WARMUP_S = 2  # seconds of load before the first measured slice of each scenario
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CLI_TIMEOUT_S = 120.0
PSQL_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 10.0  # one-off requests and connects
PG_URL_BASE = f"postgresql+asyncpg://postgres@{HOST}:5432"
# The application key the panel peer (tests/peers/pterodactyl, its API_KEY) accepts.
PANEL_KEY = "ptla_Gh7kQ2mX9vLp4RtZ8wYc1NbJ5sFd3HqA6eUo0iKxTgV"


class BenchError(Exception):
    """A setup step failed; the message says which, and the run exits 1."""


# --------------------------------------------------------------------------- HTTP client


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; just enough protocol for our own JSON servers."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Wrap an open stream pair; use :meth:`open` to connect."""
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        """Connect to 127.0.0.1:port with Nagle off, so small requests are not delayed."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port), timeout=IO_TIMEOUT_S
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes, bool]:
        """Send pre-encoded request bytes; return (status, body, connection still usable).

        Kept to one write and two reads in the common case, because this runs per request
        on the same cores as the server being measured.
        """
        self.writer.write(raw)
        reader = self.reader
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        keep_alive = b"\r\nconnection: close" not in lower
        idx = lower.find(b"\r\ncontent-length:")
        if idx >= 0:
            end = lower.index(b"\r\n", idx + 2)
            body = await reader.readexactly(int(lower[idx + 17 : end]))
        elif b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._read_chunked()
        elif status in (204, 304) or status < 200:
            body = b""
        else:
            body = await reader.read()  # delimited by close
            keep_alive = False
        return status, body, keep_alive

    async def _read_chunked(self) -> bytes:
        """Read a chunked body; our servers send Content-Length, this is only a fallback."""
        parts: list[bytes] = []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # skip trailers
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])

    def close(self) -> None:
        """Close without waiting; the peer is local and the loop may already be ending."""
        with contextlib.suppress(Exception):
            self.writer.close()


def build_request(
    method: str, path: str, port: int, key: str | None = None, body: bytes | None = None
) -> bytes:
    """Encode a request once; wrk sends these bytes as they are."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept: application/json"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


_OK_PREFIXES = (b'{"status":"success"', b'{"status":true')


def status_ok(body: bytes) -> bool:
    """Tell whether the JSON body reports success (Heliactyl says "success", /api says true).

    A prefix test settles the usual compact body without parsing, keeping per-request client
    CPU low; anything else gets a real JSON parse, so the check never passes a failure.
    """
    if body.startswith(_OK_PREFIXES):
        return True
    try:
        data = json.loads(body)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    status = data.get("status")
    return status is True or status == "success"


async def fetch(port: int, raw: bytes) -> tuple[int, bytes]:
    """Make one request on a fresh connection, for setup and verification."""
    conn = await HttpConnection.open(port)
    try:
        status, body, _ = await asyncio.wait_for(conn.request(raw), timeout=IO_TIMEOUT_S)
    finally:
        conn.close()
    return status, body


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """Ask the kernel for an unused loopback port (tiny race before the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Server:
    """A server subprocess plus the files its output goes to (pipes could fill and block it)."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path
    files: list[TextIO]

    def output(self) -> str:
        """Return collected stdout and stderr, for diagnosing a failed start."""
        for fh in self.files:
            with contextlib.suppress(Exception):
                fh.flush()
        out = self.stdout_path.read_text(errors="replace")
        err = self.stderr_path.read_text(errors="replace")
        return f"--- {self.name} stdout ---\n{out}--- {self.name} stderr ---\n{err}"


def start_server(
    name: str, cmd: list[str], port: int, logdir: Path, env: dict[str, str] | None = None
) -> Server:
    """Start a server in its own process group so we can reap its workers as well."""
    out_path, err_path = logdir / f"{name}.stdout", logdir / f"{name}.stderr"
    out_fh, err_fh = out_path.open("w"), err_path.open("w")
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out_fh,
        stderr=err_fh,
        start_new_session=True,
    )
    return Server(name, proc, port, out_path, err_path, [out_fh, err_fh])


def wait_ready(server: Server) -> None:
    """Wait until the port accepts connections; fail fast if the process dies."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.name} exited with code {server.proc.returncode} during startup\n"
                + server.output()
            )
        try:
            with socket.create_connection((HOST, server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(
        f"{server.name} did not accept connections on port {server.port} "
        f"within {STARTUP_TIMEOUT_S:.0f} s\n" + server.output()
    )


def stop_server(server: Server) -> None:
    """SIGTERM, wait up to 10 s, then SIGKILL the whole process group (incl. workers)."""
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(
                f"{server.name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it",
                file=sys.stderr,
            )
    # The group id is the leader's pid; sweep anything of ours still in it (e.g. orphan workers).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)
    for fh in server.files:
        fh.close()


def guildhall_cmd() -> list[str]:
    """Prefer the venv's ``guildhall`` script; fall back to ``python -m guildhall``."""
    script = Path(sys.executable).parent / "guildhall"
    if script.exists():
        return [str(script)]
    found = shutil.which("guildhall")
    return [found] if found else [sys.executable, "-m", "guildhall"]


def run_cli(args: list[str], env: dict[str, str]) -> str:
    """Run a guildhall CLI command and return the last stdout line (ids and keys come there)."""
    cmd = [*guildhall_cmd(), *args]
    try:
        res = subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`guildhall {' '.join(args)}` timed out after {CLI_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise BenchError(f"cannot run {cmd}: {exc}") from exc
    if res.returncode != 0:
        raise BenchError(
            f"`guildhall {' '.join(args)}` failed with code {res.returncode}\n"
            f"--- stdout ---\n{res.stdout}--- stderr ---\n{res.stderr}"
        )
    lines = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    if not lines:
        raise BenchError(f"`guildhall {' '.join(args)}` printed nothing on stdout")
    return lines[-1]


def psql(sql: str, database: str = "postgres") -> None:
    """Run one statement as the local postgres superuser (bounded, loopback only)."""
    try:
        res = subprocess.run(
            [
                "psql",
                "-h",
                HOST,
                "-U",
                "postgres",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PSQL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"psql failed for {sql!r}: {exc}") from exc
    if res.returncode != 0:
        raise BenchError(f"psql failed for {sql!r}:\n{res.stderr}")


def toml_str(value: str) -> str:
    """Quote a TOML basic string (JSON escaping is a valid subset for paths and URLs)."""
    return json.dumps(value)


def write_config(
    tmp: Path, port: int, aurora_port: int, panel_port: int, database_url: str | None
) -> Path:
    """Write the throw-away guildhall.toml the CLI and server read via GUILDHALL_CONFIG.

    The Pterodactyl panel is the test tree's peer on ``panel_port``: with a panel
    configured, userinfo of an account with game servers serves the panel's user object.
    """
    lines = [f"data_dir = {toml_str(str(tmp / 'var'))}"]
    if database_url is not None:
        lines.append(f"database_url = {toml_str(database_url)}")
    lines += [
        "",
        "[pterodactyl]",
        f"url = {toml_str(f'http://{HOST}:{panel_port}')}",
        f"api_key = {toml_str(PANEL_KEY)}",
        "location_ids = [1]",
        "[pterodactyl.eggs.paper]",
        "egg_id = 1",
    ]
    for face, face_port in (("heliactyl", port), ("aurora", aurora_port)):
        lines += ["", f"[faces.{face}]", f"host = {toml_str(HOST)}", f"port = {face_port}"]
        # One address sends everything here: lift the per-address limit out of the way.
        lines += [f"[faces.{face}.rate_limits.default]", "requests = 10000000", "per_seconds = 1"]
    lines.append("")
    path = tmp / "guildhall.toml"
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------- reporting


@dataclasses.dataclass
class Row:
    """One printed line of the result table."""

    name: str
    rps: float
    p50: float
    p99: float
    errors: int


def print_table(rows: list[Row]) -> None:
    """Print req/s, latency, errors and the ratio to the ceiling, one line per scenario."""
    ceiling = next((r.rps for r in rows if r.name == "ceiling"), 0.0)
    print(
        f"{'scenario':<14} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>8} "
        f"{'vs ceiling':>11}"
    )
    for r in rows:
        ratio = f"{100.0 * r.rps / ceiling:.1f}%" if ceiling > 0 else "n/a"
        print(f"{r.name:<16} {r.rps:>10.1f} {r.p50:>8.2f} {r.p99:>8.2f} {r.errors:>8d} {ratio:>11}")


def summarize(name: str, counts: wrk.Counts) -> Row:
    """Turn what wrk counted into a table row (req/s counts successful responses only)."""
    return Row(
        name,
        counts.measured_ok / counts.measured_s if counts.measured_s else 0.0,
        counts.percentile_ms(50),
        counts.percentile_ms(99),
        counts.errors,
    )


def find_coins(data: object) -> float | None:
    """Locate the coins balance in a userinfo response (top level first, then nested)."""
    if isinstance(data, dict):
        value = data.get("coins")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        for child in data.values():
            found = find_coins(child)
            if found is not None:
                return found
    return None


def _num(value: float) -> str:
    """Print balances exactly (``:g`` would round large counts to 6 digits)."""
    return str(int(value)) if value.is_integer() else repr(value)


async def read_coins(port: int, raw_userinfo: bytes) -> float:
    """Fetch userinfo once and return the coin balance, failing loudly if it is absent."""
    status, body = await fetch(port, raw_userinfo)
    if status != 200 or not status_ok(body):
        raise BenchError(f"userinfo failed: HTTP {status}: {body[:500]!r}")
    coins = find_coins(json.loads(body))
    if coins is None:
        raise BenchError(f"no coins field in userinfo: {body[:500]!r}")
    return coins


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; defaults match the documented targets (10 s, 50 conns)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds the duration is split into (see run_rounds)",
    )
    ap.add_argument("--connections", type=int, default=50, help="concurrent connections")
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--workers", type=int, default=1, help="guildhall serve --workers")
    ap.add_argument(
        "--spread",
        type=int,
        default=10_000,
        help="accounts addcoins spread moves coins among and userinfo spread reads",
    )
    ap.add_argument(
        "--matrix",
        action="store_true",
        help="every scenario on SQLite and PostgreSQL with 1 and 2 workers, then a summary",
    )
    ap.add_argument(
        "--only-ceiling",
        action="store_true",
        help="benchmark only the bare FastAPI app (no Guildhall needed)",
    )
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.connections <= 0 or args.workers <= 0 or args.rounds <= 0:
        ap.error("--duration, --connections, --workers and --rounds must be positive")
    return args


@dataclasses.dataclass
class Scenario:
    """One request driven against one server, and how its success is recognised."""

    name: str
    port: int
    raws: Sequence[bytes]
    check: str = "status"  # a key of wrk.CHECKS
    counts: wrk.Counts = dataclasses.field(default_factory=wrk.Counts)


def run_rounds(groups: list[list[Scenario]], args: argparse.Namespace) -> None:
    """Run every group of scenarios ``--rounds`` times, interleaved, for ``--duration`` in all.

    The machine's speed drifts (on the 2-core VM the ceiling alone measured
    3300 to 4900 req/s in consecutive 5 s runs); interleaving lets each
    scenario, the ceiling included, sample the same slow and fast spells, so
    the ratios are steadier than one long run each would give. A group is one
    scenario on each Guildhall of the run (``--matrix``: SQLite and PostgreSQL,
    one worker and two), run back to back, so the figures compared with each
    other come from the same few seconds; the group runs in the opposite order
    in every other round, so none always follows another's leftovers. wrk
    counts in whole seconds, so each slice lasts ``--duration / --rounds``
    rounded, at least 1 s. The first round starts each scenario with a warm-up
    that is not measured; later rounds need none (the server is warm, and wrk
    opens its connections before it starts the clock).
    """
    slice_s = max(1, round(args.duration / args.rounds))
    for round_number in range(args.rounds):
        for group in groups:
            for item in group if round_number % 2 == 0 else reversed(group):
                warmup = WARMUP_S if round_number == 0 else 0
                print(
                    f"round {round_number + 1}/{args.rounds}: {item.name} on port {item.port} "
                    f"for {slice_s} s" + (f" (+{warmup} s warm-up)" if warmup else "") + "...",
                    file=sys.stderr,
                    flush=True,
                )
                for seconds, measured in ((warmup, False), (slice_s, True)):
                    if seconds:
                        wrk.run(
                            item.port,
                            item.raws,
                            item.check,
                            connections=args.connections,
                            seconds=seconds,
                            first=item.counts.issued,  # spread: go on where the last run stopped
                            counts=item.counts,
                            measured=measured,
                        )


SEED_MEMBERS = """
import asyncio, sys
from guildhall.config import load_settings
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.actor import Actor
from guildhall.core.economy import service as economy
from guildhall.runtime import Runtime

async def main(count, prefix):
    runtime = Runtime(load_settings())
    actor = Actor("operator", "bench")
    try:
        async with runtime.database.unit_of_work() as session:
            for n in range(count):
                discord = f"{prefix}{n:017d}"
                account = await accounts.create(
                    session, username=f"member{prefix}{n}", identities={Provider.DISCORD: discord},
                    actor=actor,
                )
                ref = accounts.AccountRef(account.id, account.username, discord)
                await economy.adjust(session, ref, 1 + n * 7 % 1000, actor=actor)
    finally:
        await runtime.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""

LEDGER_TOTALS = """
import asyncio
from sqlalchemy import text
from guildhall.config import load_settings
from guildhall.db import backup
from guildhall.runtime import Runtime

async def main():
    runtime = Runtime(load_settings())
    try:
        async with runtime.database.read_engine.connect() as connection:
            summed = text("SELECT COALESCE(SUM(amount), 0) FROM balances")
            total = (await connection.execute(summed)).scalar_one()
            wrong = await connection.run_sync(backup.unbalanced)
        print(total, len(wrong))
    finally:
        await runtime.close()

asyncio.run(main())
"""


def spread_id(n: int) -> str:
    """The Discord id of the n-th spread account (addcoins spread pays them, userinfo spread
    reads them)."""
    return f"3{n:017d}"


def addcoins_request(discord_id: str, port: int, key: str) -> bytes:
    body = json.dumps({"id": discord_id, "coins": 1}, separators=(",", ":")).encode()
    return build_request("POST", "/api/v3/addcoins", port, key, body)


def run_snippet(code: str, args: list[str], env: dict[str, str], what: str) -> str:
    """Run a Python snippet against the bench installation (its core, through
    GUILDHALL_CONFIG); its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"{what} failed:\n{result.stderr}")
    return result.stdout


def ledger_totals(env: dict[str, str]) -> tuple[int, int]:
    """Every balance summed, and how many balances differ from their ledger."""
    total, wrong = run_snippet(LEDGER_TOTALS, [], env, "reading the ledger").split()
    return int(total), int(wrong)


PGBENCH_SCRIPT = """\\set id {pick}
BEGIN;
UPDATE balances SET amount = amount + 1 WHERE account_id = :id AND currency = 'coins';
INSERT INTO ledger_entries (account_id, currency, type, amount, balance_after, actor, reason,
  created_at) VALUES (:id, 'coins', 'ADMIN_ADJUSTMENT', 1, 0, 'pgbench', '', now());
END;
"""


def database_limits(
    database_url: str, hot_account: int, args: argparse.Namespace
) -> tuple[float, float]:
    """pgbench's rate for addcoins' transaction (update a balance, insert a ledger row,
    commit) on one hot account and spread over the spread accounts: the database's own
    limit on this machine, beside Guildhall's figure."""
    name = database_url.rsplit("/", 1)[1]
    rates = []
    for pick in (
        str(hot_account),
        f"random({hot_account + 2 + MEMBERS}, {hot_account + 1 + MEMBERS + args.spread})",
    ):
        script = Path(tempfile.mkstemp(suffix=".sql")[1])
        script.write_text(PGBENCH_SCRIPT.format(pick=pick))
        try:
            result = subprocess.run(
                [
                    "pgbench",
                    "-n",
                    "-h",
                    HOST,
                    "-U",
                    "postgres",
                    "-c",
                    str(args.connections),
                    "-j",
                    "2",
                    "-T",
                    str(max(1, int(args.duration / 2))),
                    "-f",
                    str(script),
                    name,
                ],
                capture_output=True,
                text=True,
                timeout=args.duration + 120,
                check=False,
            )
        finally:
            script.unlink()
        found = [line for line in result.stdout.splitlines() if line.startswith("tps =")]
        if result.returncode != 0 or not found:
            raise BenchError(f"pgbench failed:\n{result.stderr}")
        rates.append(float(found[0].split()[2]))
    return rates[0], rates[1]


def seed_members(count: int, env: dict[str, str], prefix: str = "2") -> None:
    """Accounts with balances: Aurora's user list sorts them (prefix 2); addcoins spread
    moves coins among them (prefix 3)."""
    run_snippet(SEED_MEMBERS, [str(count), prefix], env, "seeding members")


def clean_environment() -> dict[str, str]:
    """This process's environment without GUILDHALL_* variables, which would override the
    run's own config file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GUILDHALL_")}


def start_ceiling(tmp: Path, env: dict[str, str]) -> Server:
    """The bare FastAPI app, one process on the same stack as Guildhall."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--host", HOST),
        *("--port", str(port), "--no-access-log", "--loop", "uvloop", "--http", "httptools"),
        *("--log-level", "warning"),
    ]
    return start_server("ceiling", command, port, tmp, env)


@dataclasses.dataclass
class Instance:
    """One Guildhall set up for the run (a database and a worker count) and its scenarios."""

    database: str
    workers: int
    env: dict[str, str]
    db_name: str | None
    account: int
    userinfo: bytes  # the benchmarked account's userinfo request, to read its balance
    port: int
    scenarios: list[Scenario]  # the ceiling first, then Guildhall's
    addcoins: Scenario
    spread: Scenario
    coins_before: float = 0.0
    total_before: int = 0

    @property
    def label(self) -> str:
        return f"{self.database}, {self.workers} worker(s)"


def set_up(
    args: argparse.Namespace,
    database: str,
    workers: int,
    tmp: Path,
    servers: list[Server],
    drops: list[str],
    ceiling: Server,
) -> Instance:
    """A Guildhall of its own (database, panel peer, account, key, server) in ``tmp``."""
    tmp.mkdir()
    env = clean_environment()
    database_url: str | None = None
    db_name: str | None = None
    if database == "postgresql":
        db_name = f"guildhall_bench_{os.getpid()}_{secrets.token_hex(4)}"
        psql(f'CREATE DATABASE "{db_name}"')
        drops.append(db_name)
        database_url = f"{PG_URL_BASE}/{db_name}"
    gh_port, aurora_port, panel_port = free_port(), free_port(), free_port()
    panel = start_server(
        "pterodactyl",
        [sys.executable, "-m", "tests.peers.pterodactyl", str(panel_port)],
        panel_port,
        tmp,
        env,
    )
    servers.append(panel)
    env["GUILDHALL_CONFIG"] = str(write_config(tmp, gh_port, aurora_port, panel_port, database_url))
    run_cli(["migrate"], env)
    account = run_cli(["users", "create", "--username", "bench", "--discord", DISCORD_ID], env)
    wait_ready(panel)
    run_cli(
        [
            *("users", "create", "--username", "gamer", "--discord", PANEL_DISCORD_ID),
            *("--email", "gamer@example.com"),
        ],
        env,
    )
    run_cli(
        [
            *("servers", "create", "--owner", "gamer", "--name", "bench", "--egg", "paper"),
            *("--ram", "1024", "--disk", "1024", "--cpu", "50"),
        ],
        env,
    )
    seed_members(MEMBERS, env)
    seed_members(args.spread, env, prefix="3")
    if db_name is not None:
        # The statistics autovacuum (on by default) gathers within a minute of
        # the seeding; this machine's server has it off, and without them
        # PostgreSQL joins Aurora's 10,000 members row by row (138 req/s
        # instead of 250: bench/README.md).
        psql("ANALYZE", db_name)
    key = run_cli(["keys", "create", "--name", "bench", "--scope", "heliactyl"], env)
    print(f"guildhall: account {account}, {database}, {workers} worker(s)", file=sys.stderr)
    command = [*guildhall_cmd(), "serve", "--face", "heliactyl", "--face", "aurora"]
    gh = start_server("guildhall", [*command, "--workers", str(workers)], gh_port, tmp, env)
    servers.append(gh)
    wait_ready(gh)

    # Same headers everywhere so header parsing costs the ceiling what it costs Guildhall.
    userinfo = build_request("GET", f"/api/v3/userinfo?id={DISCORD_ID}", gh_port, key)
    addcoins = Scenario("addcoins", gh_port, [addcoins_request(DISCORD_ID, gh_port, key)])
    spread = Scenario(
        "addcoins spread",
        gh_port,
        [addcoins_request(spread_id(n), gh_port, key) for n in range(args.spread)],
    )
    scenarios = [
        Scenario("ceiling", ceiling.port, [build_request("GET", "/api", ceiling.port, key)]),
        Scenario("GET /api", gh_port, [build_request("GET", "/api", gh_port, key)]),
        Scenario("userinfo", gh_port, [userinfo]),
        Scenario(
            "userinfo panel",
            gh_port,
            [build_request("GET", f"/api/v3/userinfo?id={PANEL_DISCORD_ID}", gh_port, key)],
            "panel_user",
        ),
        # Each request for another account: what no two requests share.
        Scenario(
            "userinfo spread",
            gh_port,
            [
                build_request("GET", f"/api/v3/userinfo?id={spread_id(n)}", gh_port, key)
                for n in range(args.spread)
            ],
        ),
        addcoins,
        spread,
        Scenario(
            "aurora users",
            aurora_port,
            [build_request("GET", "/api/users?limit=50", aurora_port, key)],
            "json_object",
        ),
        Scenario(
            "aurora user",
            aurora_port,
            [build_request("GET", f"/api/users/{DISCORD_ID}", aurora_port, key)],
            "json_object",
        ),
    ]
    return Instance(
        *(database, workers, env, db_name, int(account), userinfo, gh_port),
        *(scenarios, addcoins, spread),
    )


def report(instance: Instance, args: argparse.Namespace) -> tuple[int, list[Row]]:
    """Print the instance's table, its ledger check and, on PostgreSQL, the database's own
    limit; returns the exit code (1 on a ledger mismatch) and the rows."""
    after = asyncio.run(read_coins(instance.port, instance.userinfo))
    rows = [summarize(item.name, item.counts) for item in instance.scenarios]
    print(f"=== {instance.label} ===", flush=True)
    print_table(rows)
    total_after, unbalanced = ledger_totals(instance.env)
    # Every successful addcoins must have landed, and nothing beyond what was sent: wrk
    # abandons the requests in flight when its time is up, whose outcome it never learns.
    moved = total_after - instance.total_before
    mine = after - instance.coins_before
    addcoins, spread = instance.addcoins, instance.spread
    landed_ok = all(
        item.counts.ok <= landed <= item.counts.ok + item.counts.unanswered
        for item, landed in ((addcoins, mine), (spread, moved - mine))
    )
    ledger_verdict = "OK" if landed_ok and unbalanced == 0 else "MISMATCH"
    print(
        f"ledger check: {ledger_verdict}: all balances grew by {moved}, the benchmarked "
        f"account's by {_num(mine)}; successful addcoins (incl. warm-up) "
        f"{addcoins.counts.ok} on it and {spread.counts.ok} spread, unanswered when wrk "
        f"stopped {addcoins.counts.unanswered} and {spread.counts.unanswered}; balances "
        f"unlike their ledger: {unbalanced}"
    )
    if instance.db_name is not None:
        limits = database_limits(f"{PG_URL_BASE}/{instance.db_name}", instance.account, args)
        hot = next(r.rps for r in rows if r.name == "addcoins")
        wide = next(r.rps for r in rows if r.name == "addcoins spread")
        print(
            f"database limit (pgbench, the same transaction, {args.connections} clients): "
            f"hot {limits[0]:.0f} tps, spread {limits[1]:.0f} tps; Guildhall addcoins "
            f"{100 * hot / limits[0]:.0f}% of hot, addcoins spread {100 * wide / limits[1]:.0f}% "
            "of spread"
        )
    return (0 if ledger_verdict == "OK" else 1), rows


def bench(
    args: argparse.Namespace,
    combinations: Sequence[tuple[str, int]],
    tmp: Path,
    servers: list[Server],
    drops: list[str],
) -> tuple[int, dict[tuple[str, int], list[Row]]]:
    """Set up one Guildhall per (database, workers), run their scenarios interleaved and
    print each one's results; returns the exit code and the rows of each."""
    ceiling = start_ceiling(tmp, clean_environment())
    servers.append(ceiling)
    if args.only_ceiling:
        wait_ready(ceiling)
        # An Authorization header as Guildhall's scenarios send, so parsing costs the same.
        raw = build_request("GET", "/api", ceiling.port, "none")
        alone = Scenario("ceiling", ceiling.port, [raw])
        run_rounds([[alone]], args)
        only = [summarize("ceiling", alone.counts)]
        print_table(only)
        return 0, {}
    instances = [
        set_up(args, database, workers, tmp / f"{database}-{workers}", servers, drops, ceiling)
        for database, workers in combinations
    ]
    wait_ready(ceiling)
    for instance in instances:
        instance.coins_before = asyncio.run(read_coins(instance.port, instance.userinfo))
        instance.total_before = ledger_totals(instance.env)[0]
    # Each scenario runs on every instance back to back, so that all of them sample the
    # same spell of the machine (each run waits for the requests it abandoned: wrk.py).
    groups = zip(*(instance.scenarios for instance in instances), strict=True)
    run_rounds([list(group) for group in groups], args)
    exit_code, results = 0, {}
    for instance in instances:
        code, rows = report(instance, args)
        exit_code = exit_code or code
        results[(instance.database, instance.workers)] = rows
    return exit_code, results


MATRIX = (("sqlite", 1), ("sqlite", 2), ("postgresql", 1), ("postgresql", 2))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark: one database and worker count, or with --matrix all of them."""
    args = parse_args(argv)
    combinations = MATRIX if args.matrix else ((args.database, args.workers),)
    exit_code, results = run_once(args, combinations)
    if args.matrix and results:
        print_matrix(results)
    return exit_code


def print_matrix(results: dict[tuple[str, int], list[Row]]) -> None:
    """req/s of each scenario in each combination, and what a second worker gives."""
    names = [row.name for row in next(iter(results.values()))]
    heads = [f"{db[:6]} x{workers}" for db, workers in results]
    print(
        f"{'scenario':<16}" + "".join(f"{head:>14}" for head in heads) + "   2w/1w sqlite  2w/1w pg"
    )
    for name in names:
        rates = {
            key: next((r.rps for r in rows if r.name == name), 0.0) for key, rows in results.items()
        }
        line = f"{name:<16}" + "".join(f"{rate:>14.0f}" for rate in rates.values())
        for db in ("sqlite", "postgresql"):
            one, two = rates.get((db, 1), 0.0), rates.get((db, 2), 0.0)
            line += f"{two / one:>13.2f}x" if one else f"{'n/a':>14}"
        print(line)


def run_once(
    args: argparse.Namespace, combinations: Sequence[tuple[str, int]]
) -> tuple[int, dict[tuple[str, int], list[Row]]]:
    """One run; always cleans up servers, databases and the temp dir."""
    servers: list[Server] = []
    drops: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="guildhall-bench-"))
    try:
        return bench(args, combinations, tmp, servers, drops)
    except (BenchError, wrk.WrkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1, {}
    finally:
        for server in reversed(servers):
            stop_server(server)
        for db_name in drops:
            try:
                psql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            except BenchError as exc:
                print(f"warning: could not drop database {db_name}: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
