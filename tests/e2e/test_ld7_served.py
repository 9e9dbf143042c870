"""The LD7 document's own examples, and a restart in the middle of a session's
life, against a real ``guildhall serve``.

Only the base URL and the key change, as a client moving to Guildhall would
change them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI
from tests.process import Served, free_port, guildhall, serve, write_config

pytestmark = pytest.mark.e2e

KEY = "ld7-e2e-key-0123456789abcdef0123456789"
PAIRING_CODE = r"[A-HJKMNP-Z2-9]{4}-[A-HJKMNP-Z2-9]{4}"

# "Example 1: Create a new bot with cURL", then examples 4, 5 and 6, verbatim.
CURL_EXAMPLES = r"""
curl -X POST http://your-server:8000/api/sessions \
  -H "Content-Type: application/json" \
  -H "X-API-Key: your_api_key_here" \
  -d '{
    "userId": "bot_1234567890",
    "phoneNumber": "1234567890"
  }'

curl http://your-server:8000/api/sessions

curl -X POST http://your-server:8000/api/sessions/bot_1234567890/stop \
  -H "X-API-Key: your_api_key_here"

curl -X DELETE http://your-server:8000/api/sessions/bot_1234567890 \
  -H "X-API-Key: your_api_key_here"
"""

# "Example 2: Create a new bot with JavaScript/Node.js", verbatim.
NODE_EXAMPLE = """
const axios = require('axios');

async function createBot() {
  try {
    const response = await axios.post('http://your-server:8000/api/sessions', {
      userId: 'bot_1234567890',
      phoneNumber: '1234567890'
    }, {
      headers: {
        'Content-Type': 'application/json',
        'X-API-Key': 'your_api_key_here'
      }
    });

    console.log('Pairing Code:', response.data.pairingCode);
    console.log('Enter this code in WhatsApp');
  } catch (error) {
    console.error('Error:', error.response.data);
  }
}

createBot();
"""

# "Example 3: Create a new bot with Python", verbatim.
PYTHON_EXAMPLE = """
import requests

def create_bot():
    url = 'http://your-server:8000/api/sessions'
    headers = {
        'Content-Type': 'application/json',
        'X-API-Key': 'your_api_key_here'
    }
    data = {
        'userId': 'bot_1234567890',
        'phoneNumber': '1234567890'
    }

    response = requests.post(url, json=data, headers=headers)
    result = response.json()

    if result['success']:
        print(f"Pairing Code: {result['pairingCode']}")
        print("Enter this code in WhatsApp")
    else:
        print(f"Error: {result['message']}")

create_bot()
"""


def _adapt(text: str, served: Served) -> str:
    return text.replace("http://your-server:8000", served.url("ld7")).replace(
        "your_api_key_here", KEY
    )


@pytest.fixture
def served_ld7(database_url: str, tmp_path: Path) -> Iterator[Served]:
    config = write_config(
        tmp_path, database_url, ld7={"port": free_port(), "api_key": KEY}, heliactyl={"port": 0}
    )
    served = serve(config, "--face", "ld7")
    yield served
    if served.process.poll() is None:
        served.stop()
    served.output()


@pytest.fixture(scope="session")
def axios(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """axios from the npm registry, for the document's Node.js example."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        if IN_CI:
            pytest.fail("Node.js and npm are needed for the LD7 Node.js example", pytrace=False)
        pytest.skip("Node.js and npm are not installed")
    prefix = tmp_path_factory.mktemp("node")
    result = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "axios@1", "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        message = f"npm install axios failed: {result.stderr.strip()[-500:]}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return prefix / "node_modules"


def _curl(command: str) -> dict:
    result = subprocess.run(
        ["sh", "-c", command.replace("curl ", "curl -sS ", 1)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(result.stdout)


def _stop(served: Served) -> None:
    assert served.stop() == 0, served.output()
    served.output()


def test_the_documented_curl_examples(served_ld7: Served) -> None:
    commands = [c.strip() for c in _adapt(CURL_EXAMPLES, served_ld7).split("\n\n") if c.strip()]
    created, listed, stopped, deleted = (_curl(command) for command in commands)
    assert created["success"] is True
    assert created["message"] == "Session created. Use the pairing code to connect."
    assert re.fullmatch(PAIRING_CODE, created["pairingCode"])
    assert listed["count"] == 1
    assert listed["sessions"][0]["userId"] == "bot_1234567890"
    assert stopped == {"success": True, "message": "Session bot_1234567890 stopped"}
    assert deleted == {"success": True, "message": "Session bot_1234567890 deleted"}


def test_the_documented_python_example(served_ld7: Served) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _adapt(PYTHON_EXAMPLE, served_ld7)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert re.fullmatch(f"Pairing Code: {PAIRING_CODE}", lines[0])
    assert lines[1] == "Enter this code in WhatsApp"
    # Run again: the document's own error branch, with its message.
    again = subprocess.run(
        [sys.executable, "-c", _adapt(PYTHON_EXAMPLE, served_ld7)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert again.stdout.strip() == (
        "Error: Session already exists for this user. Delete it first or use a different userId."
    )


def test_the_documented_node_example(served_ld7: Served, axios: Path) -> None:
    result = subprocess.run(
        ["node", "-e", _adapt(NODE_EXAMPLE, served_ld7)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(axios)},
        check=True,
    )
    lines = result.stdout.splitlines()
    assert re.fullmatch(f"Pairing Code: {PAIRING_CODE}", lines[0])
    assert lines[1] == "Enter this code in WhatsApp"


def test_a_restart_brings_online_sessions_back_and_leaves_stopped_ones(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, database_url, ld7={"port": port, "api_key": KEY})
    first = serve(config, "--face", "ld7")
    try:
        base = first.url("ld7")
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}) as client:
            codes = {}
            for handle in ("bot_online", "bot_stopped"):
                created = client.post(
                    "/api/sessions", json={"userId": handle, "phoneNumber": "1234567890"}
                )
                codes[handle] = created.json()["pairingCode"]
            # The operator stands in for the phone; a mistyped code first.
            wrong_code = "AAAA-AAAA" if codes["bot_online"] != "AAAA-AAAA" else "BBBB-BBBB"
            wrong = guildhall(config, "sessions", "pair", "bot_online", wrong_code, check=False)
            assert wrong.returncode == 1
            assert (
                wrong.stderr.strip() == "Error: The pairing code for session bot_online is wrong."
            )
            for handle, code in codes.items():
                paired = guildhall(config, "sessions", "pair", handle, code)
                assert f"session {handle} paired; it is online" in paired.stdout
            assert client.post("/api/sessions/bot_stopped/stop").json()["success"] is True
            before = {h: client.get(f"/api/sessions/{h}").json() for h in codes}
            assert before["bot_online"]["status"] == "online"
    finally:
        _stop(first)

    second = serve(config, "--face", "ld7")
    try:
        with httpx.Client(base_url=second.url("ld7")) as client:
            # Sessions reconnect in the background, after the listeners are up.
            deadline = time.monotonic() + 10
            while True:
                online = client.get("/api/sessions/bot_online").json()
                reconnected = online["lastConnectedAt"] > before["bot_online"]["lastConnectedAt"]
                if reconnected or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert reconnected, online
            assert (online["status"], online["state"]) == ("online", "online")
            stopped = client.get("/api/sessions/bot_stopped").json()
            assert stopped == before["bot_stopped"]
            assert client.get("/api/stats").json() == {
                "success": True,
                "activeSessions": 1,
                "totalUsers": 2,
            }
    finally:
        _stop(second)
