"""Drive one scenario with wrk, the C load generator, and read back what it counted.

wrk costs far less CPU per request than any Python client, which matters on a 2-core machine
where the load generator shares the cores with the server and PostgreSQL. A Lua script makes
it do what the benchmark needs beyond req/s:

- it sends the scenario's pre-encoded requests in turn (one request for most scenarios, one per
  account for addcoins spread and userinfo spread), starting at a different place on each run;
- it checks every response the way the scenario says (a Heliactyl error is an HTTP 200 whose
  JSON ``status`` is an error string, which wrk alone would count as a success);
- it counts the requests it issued and the successes, so the ledger check can bound what the
  server applied: wrk abandons the requests in flight when its time is up (at most one per
  connection), and those may or may not have landed (the run then waits as long as its
  slowest response took, so they finish before the next run);
- it prints the latency distribution as per-mille quantiles, so rounds can be merged.

wrk measures latency for every response, successful or not; the scenarios expect no errors,
and the table's error column says when there were some.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

QUANTILES = 1000  # points of each run's latency distribution wrk prints
SETTLE_LIMIT_S = 10.0  # the longest wait for abandoned requests (wrk's --timeout)
MARKER = "guildhall-bench"

# How each scenario recognises a success, as a Lua function of the response body.
CHECKS = {
    # Heliactyl says "success", Guildhall's GET /api says true.
    "status": """function(body)
  return body:find('^{"status":"success"') ~= nil or body:find('^{"status":true') ~= nil
end""",
    # A userinfo whose user is the panel's own: it has the panel's external_id.
    "panel_user": """function(body)
  return body:find('^{"status":"success"') ~= nil and body:find('"external_id":"[^"]') ~= nil
end""",
    # Aurora answers a resource or a list as a JSON object; an error object has "error".
    "json_object": """function(body)
  return body:sub(1, 1) == "{" and body:find('^{"error"') == nil
end""",
    # A whole page of the console.
    "html": """function(body)
  return body:find("</html>%s*$") ~= nil
end""",
}

SCRIPT = """
local requests, count, turn = {}, 0, 0
issued, ok, bad = 0, 0, 0
local is_ok = %(check)s

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local start = 1
  while start <= #data do
    local stop = data:find("\\0", start, true)
    requests[#requests + 1] = data:sub(start, stop - 1)
    start = stop + 1
  end
  count = #requests
  turn = tonumber(args[2])
end

function request()
  issued = issued + 1
  turn = turn + 1
  return requests[turn %% count + 1]
end

function response(status, headers, body)
  if status == 200 and is_ok(body) then ok = ok + 1 else bad = bad + 1 end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local issued_all, ok_all, bad_all = 0, 0, 0
  for _, thread in ipairs(threads) do
    issued_all = issued_all + thread:get("issued")
    ok_all = ok_all + thread:get("ok")
    bad_all = bad_all + thread:get("bad")
  end
  local errors = summary.errors
  io.write(string.format("%(marker)s %%d %%d %%d %%d %%d %%d\\n", summary.duration, issued_all,
    ok_all, bad_all, errors.connect + errors.read + errors.write + errors.timeout, latency.max))
  local points = {}
  for i = 1, %(quantiles)d do
    points[i] = string.format("%%d", latency:percentile((i - 0.5) * 100 / %(quantiles)d))
  end
  io.write("%(marker)s-latency ", table.concat(points, " "), "\\n")
end
"""


class WrkError(Exception):
    """wrk is missing, failed, or printed nothing the script should have."""


@dataclasses.dataclass
class Counts:
    """What the runs of one scenario counted; only measured runs carry latencies."""

    issued: int = 0  # requests wrk generated, warm-up included
    ok: int = 0  # successful responses, warm-up included (for the ledger check)
    failed: int = 0  # other responses, warm-up included
    measured_ok: int = 0
    measured_s: float = 0.0
    errors: int = 0  # failed responses and socket errors in measured runs
    # (latency in µs, weight): each measured run's quantiles, weighted by its responses
    latencies: list[tuple[int, float]] = dataclasses.field(default_factory=list)

    @property
    def unanswered(self) -> int:
        """Requests abandoned in flight when a run ended: their outcome is unknown."""
        return self.issued - self.ok - self.failed

    def percentile_ms(self, pct: float) -> float:
        """Nearest-rank percentile of the merged distribution, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        total = sum(weight for _, weight in ordered)
        wanted = pct / 100.0 * total
        seen = 0.0
        for value, weight in ordered:
            seen += weight
            if seen >= wanted:
                return value / 1000.0
        return ordered[-1][0] / 1000.0


def require() -> str:
    """The wrk executable, or a one-sentence error saying how to get it."""
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("the benchmark drives load with wrk: install it (apt-get install wrk)")
    return found


def run(
    port: int,
    raws: Sequence[bytes],
    check: str,
    *,
    connections: int,
    seconds: int,
    first: int,
    counts: Counts,
    measured: bool,
    host: str = "127.0.0.1",
) -> None:
    """Drive ``raws`` at ``host:port`` for ``seconds`` (wrk's unit is the whole second) on
    ``connections`` keep-alive connections, adding what wrk counted to ``counts``."""
    wrk = require()
    with tempfile.TemporaryDirectory(prefix="guildhall-wrk-") as folder:
        script, data = Path(folder) / "scenario.lua", Path(folder) / "requests"
        script.write_text(
            SCRIPT % {"check": CHECKS[check], "marker": MARKER, "quantiles": QUANTILES}
        )
        if any(b"\0" in raw for raw in raws):
            raise WrkError("a request holds a NUL byte, which separates requests for the script")
        data.write_bytes(b"".join(raw + b"\0" for raw in raws))
        command = [
            *(wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"),
            *("-s", str(script), f"http://{host}:{port}", "--", str(data), str(first)),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=seconds + 60, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise WrkError(f"wrk did not finish within {seconds + 60} s") from exc
    lines = {line.split(" ", 1)[0]: line.split()[1:] for line in result.stdout.splitlines()}
    if result.returncode != 0 or MARKER not in lines:
        raise WrkError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    duration_us, issued, ok, bad, socket_errors, slowest_us = (int(v) for v in lines[MARKER])
    if issued > ok + bad:
        # Requests abandoned in flight still run in the server: let them finish (they were
        # sent at most the slowest response's time ago) before the next run starts.
        time.sleep(min(slowest_us / 1e6, SETTLE_LIMIT_S))
    counts.issued += issued
    counts.ok += ok
    counts.failed += bad
    if not measured:
        return
    counts.measured_ok += ok
    counts.measured_s += duration_us / 1e6
    counts.errors += bad + socket_errors
    points = [int(v) for v in lines[f"{MARKER}-latency"]]
    weight = (ok + bad) / len(points)
    counts.latencies.extend((value, weight) for value in points)
