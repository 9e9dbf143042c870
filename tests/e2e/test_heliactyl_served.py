"""The Heliactyl document's own examples, run against a real ``guildhall serve``.

Only the base URL and the key change, as a client moving to Guildhall would
change them.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.process import Served

pytestmark = pytest.mark.e2e

# "Complete User Management Workflow", verbatim.
CURL_WORKFLOW = r"""
# 1. Check API status
curl -H "Authorization: Bearer YOUR_API_KEY" \
  http://your-domain.com/api

# 2. Get user information (includes renewal bypass status)
curl -H "Authorization: Bearer YOUR_API_KEY" \
  "http://your-domain.com/api/v3/userinfo?id=123456789"

# 3. Check if user has renewal bypass (look for renewalBypass field in response)
# If renewalBypass is true, user has bypass
# If renewalBypass is false, user requires server renewals

# 4. Give renewal bypass to user
curl -X POST \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"id":"123456789"}' \
  http://your-domain.com/api/v3/give_renewalbypass

# 5. Remove renewal bypass from user
curl -X POST \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"id":"123456789"}' \
  http://your-domain.com/api/v3/remove_renewalbypass

# 6. Set user to premium package
curl -X POST \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"id":"123456789","package":"2"}' \
  http://your-domain.com/api/v3/setplan

# 7. Add extra resources
curl -X POST \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"id":"123456789","ram":2048,"disk":10240,"servers":2}' \
  http://your-domain.com/api/v3/setresources

# 8. Give coins as reward
curl -X POST \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"id":"123456789","coins":500}' \
  http://your-domain.com/api/v3/addcoins

# 9. Check user's recent activity
curl -H "Authorization: Bearer YOUR_API_KEY" \
  "http://your-domain.com/api/v3/userinteractions?id=123456789&limit=20"
"""

# "Python Example", verbatim.
PYTHON_EXAMPLE = """
import requests

API_KEY = "your-api-key-here"
BASE_URL = "http://your-domain.com/api"
HEADERS = {
    "Authorization": f"Bearer {API_KEY}",
    "Content-Type": "application/json"
}

# Get user info
response = requests.get(
    f"{BASE_URL}/v3/userinfo",
    headers=HEADERS,
    params={"id": "123456789"}
)
user_data = response.json()
print(f"User coins: {user_data['coins']}")
print(f"Has renewal bypass: {user_data.get('renewalBypass', False)}")

# Add coins
response = requests.post(
    f"{BASE_URL}/v3/addcoins",
    headers=HEADERS,
    json={"id": "123456789", "coins": 100}
)
print(response.json())

# Give renewal bypass
response = requests.post(
    f"{BASE_URL}/v3/give_renewalbypass",
    headers=HEADERS,
    json={"id": "123456789"}
)
print(f"Bypass granted: {response.json()}")

# Remove renewal bypass
response = requests.post(
    f"{BASE_URL}/v3/remove_renewalbypass",
    headers=HEADERS,
    json={"id": "123456789"}
)
print(f"Bypass removed: {response.json()}")

# Get user interactions
response = requests.get(
    f"{BASE_URL}/v3/userinteractions",
    headers=HEADERS,
    params={"id": "123456789", "limit": 10}
)
interactions = response.json()
print(f"Found {interactions['count']} interactions")
for interaction in interactions['interactions']:
    print(f"[{interaction['timestamp']}] {interaction['action']}")
"""


def _curl_commands(script: str, base: str, key: str) -> list[list[str]]:
    text = script.replace("YOUR_API_KEY", key).replace("http://your-domain.com", base)
    joined = text.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.startswith("curl")]


def test_the_curl_workflow_works_as_written(served_heliactyl: Callable[..., Served]) -> None:
    served = served_heliactyl()
    commands = _curl_commands(CURL_WORKFLOW, served.url("heliactyl"), served.demo_key)
    assert len(commands) == 8
    bodies = []
    for command in commands:
        result = subprocess.run([*command, "-sS"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        bodies.append(json.loads(result.stdout))
    assert bodies[0] == {
        "status": True,
        "version": "3.2.1-beta.1",
        "platform_codename": "Avalanche 2",
    }
    assert all(body["status"] == "success" for body in bodies[1:]), bodies
    assert bodies[1]["coins"] == 1500
    activity = bodies[-1]
    assert activity["limit"] == 20
    assert "added 500 coins" in activity["interactions"][0]["action"]
    info = httpx.get(
        f"{served.url('heliactyl')}/api/v3/userinfo",
        params={"id": "123456789"},
        headers={"Authorization": f"Bearer {served.demo_key}"},
    ).json()
    assert info["package"]["name"] == "2"
    assert info["extra"] == {"ram": 2048, "disk": 10240, "cpu": 50, "servers": 2}
    assert info["coins"] == 2000
    assert info["renewalBypass"] is False


def test_the_python_example_works_as_written(
    served_heliactyl: Callable[..., Served], tmp_path: Path
) -> None:
    served = served_heliactyl()
    script = PYTHON_EXAMPLE.replace("your-api-key-here", served.demo_key).replace(
        "http://your-domain.com", served.url("heliactyl")
    )
    path = tmp_path / "example.py"
    path.write_text(script)
    demo_rows = httpx.get(
        served.url("heliactyl") + "/api/v3/userinteractions",
        params={"id": "123456789", "limit": 100},
        headers={"Authorization": f"Bearer {served.demo_key}"},
    ).json()["count"]
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "User coins: 1500"
    assert lines[1] == "Has renewal bypass: True"
    assert lines[2] == "{'status': 'success'}"
    assert lines[3] == (
        "Bypass granted: {'status': 'success', 'message': 'Renewal bypass granted successfully.'}"
    )
    assert lines[4] == (
        "Bypass removed: {'status': 'success', 'message': 'Renewal bypass removed successfully.'}"
    )
    # The demo's rows and the 3 changes above, at most the example's limit of 10.
    assert lines[5] == f"Found {min(demo_rows + 3, 10)} interactions"
    assert "removed renewal bypass" in lines[6]


async def _addcoins_many(
    base: str,
    key: str,
    requests: int,
    connections: int,
    user_id: str = "123456789",
    results: list[int | str] | None = None,
) -> list[int | str]:
    """Send ``requests`` addcoins +1 from ``connections`` clients, one connection each.

    Each result is 200 for a documented success, -1 for another answer, or the
    name of the transport error when no answer came.
    """
    headers = {"Authorization": f"Bearer {key}"}
    results = [] if results is None else results

    async def client_loop(count: int) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=60
        ) as client:
            for _ in range(count):
                try:
                    response = await client.post(
                        "/api/v3/addcoins", json={"id": user_id, "coins": 1}
                    )
                except httpx.TransportError as exc:
                    results.append(type(exc).__name__)
                    continue
                ok = response.json() == {"status": "success"}
                results.append(response.status_code if ok else -1)

    share, extra = divmod(requests, connections)
    await asyncio.gather(
        *(client_loop(share + (1 if i < extra else 0)) for i in range(connections))
    )
    return results


async def _coins_and_ledger(served: Served) -> tuple[int, int]:
    from guildhall.config import load_settings
    from guildhall.core.economy import service as economy
    from guildhall.runtime import Runtime

    runtime = Runtime(load_settings(served.config))
    try:
        async with runtime.database.unit_of_work(write=False) as session:
            from guildhall.core.accounts import service as accounts

            account = await accounts.require_by_identity(session, "123456789")
            return (
                await economy.balance_of(session, account.id),
                await economy.ledger_sum(session, account.id),
            )
    finally:
        await runtime.close()


@pytest.mark.parametrize("workers", [1, 2])
async def test_1000_concurrent_addcoins_lose_nothing(
    served_heliactyl: Callable[..., Served], workers: int
) -> None:
    served = served_heliactyl("--workers", str(workers))
    results = await _addcoins_many(served.url("heliactyl"), served.demo_key, 1000, 100)
    assert results.count(200) == 1000, {r for r in results if r != 200}
    assert await _coins_and_ledger(served) == (1500 + 1000, 1500 + 1000)
    assert served.stop() == 0


async def test_sigterm_lets_in_flight_requests_finish(
    served_heliactyl: Callable[..., Served],
) -> None:
    served = served_heliactyl()
    results: list[int | str] = []
    load = asyncio.create_task(
        _addcoins_many(served.url("heliactyl"), served.demo_key, 2000, 50, results=results)
    )
    async with asyncio.timeout(30):
        while results.count(200) < 50:  # well under way
            await asyncio.sleep(0.01)
    served.process.send_signal(signal.SIGTERM)
    await load
    exit_code = await asyncio.to_thread(served.process.wait, 30)
    assert exit_code == 0, served.output()
    succeeded = results.count(200)
    assert succeeded > 0, sorted(set(map(str, results)))
    # Every answered request is in the balance, and nothing else is.
    assert await _coins_and_ledger(served) == (1500 + succeeded, 1500 + succeeded)


async def test_a_slow_body_does_not_hold_up_other_writers(
    served_heliactyl: Callable[..., Served],
) -> None:
    served = served_heliactyl()
    host, port = served.url("heliactyl").removeprefix("http://").split(":")
    body = b'{"id": "123456789", "coins": 1}'
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v3/addcoins HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {served.demo_key}\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:5]
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the slow request is in, its body unfinished
    async with asyncio.timeout(3):  # would wait for the slow body if it held the write lock
        results = await _addcoins_many(served.url("heliactyl"), served.demo_key, 5, 1)
    assert results == [200] * 5
    writer.write(body[5:])
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()
    assert await _coins_and_ledger(served) == (1506, 1506)
