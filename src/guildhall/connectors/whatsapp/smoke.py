"""``scripts/whatsapp-smoke PHONE``: link a real phone through Guildhall's own session
service and send it one message, by hand.

It runs the path an operator's LD7 client takes (create, the phone links,
online, send) on a throwaway installation in a temporary directory, with the
``whatsapp`` connector and nothing faked, and prints each step with how long
it took, so a run can be reported in the README's "Linking real WhatsApp
numbers". The linked device is logged out at the end, so the phone's list of
linked devices is left as it was.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from guildhall.config import ConfigError, load_settings
from guildhall.core.actor import Actor
from guildhall.core.errors import CoreError
from guildhall.core.sessions.connector import ConnectorError
from guildhall.core.sessions.models import State
from guildhall.runtime import Runtime

OPERATOR = Actor("operator", "whatsapp-smoke")
HANDLE = "smoke"
LINK_WAIT_SECONDS = 180


def _say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {text}", flush=True)


async def smoke(phone: str, data_dir: Path) -> int:
    settings = load_settings(
        None,
        data_dir=str(data_dir),
        sessions={"connector": "whatsapp", "connector_timeout_seconds": 30},
    )
    runtime = Runtime(settings)
    started = time.monotonic()
    try:
        await runtime.prepare()
        service = runtime.sessions
        _created, pairing = await service.create(HANDLE, phone, OPERATOR)
        _say(started, f"pairing code for {phone}: {pairing.code}")
        print(
            "On the phone: WhatsApp > Linked devices > Link a device > "
            "Link with phone number instead, then type the code.",
            flush=True,
        )
        deadline = time.monotonic() + LINK_WAIT_SECONDS
        while True:
            async with runtime.database.unit_of_work(write=False) as session:
                view = await service.get(session, HANDLE)
            if view.state is State.ONLINE:
                break
            if time.monotonic() > deadline or view.state is State.FAILED:
                _say(started, f"not linked: {view.state.value} {view.failure_reason or ''}")
                return 1
            await asyncio.sleep(1)
        _say(started, "linked: the session is online")
        message_id = await service.send_text(
            HANDLE, phone, "Guildhall smoke test: this number is linked.", OPERATOR
        )
        _say(started, f"sent one message to {phone} (id {message_id})")
        await service.logout(HANDLE, OPERATOR)
        _say(started, "logged the device out again")
        return 0
    finally:
        await runtime.close()


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: scripts/whatsapp-smoke PHONE  (digits with country code)", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix="guildhall-whatsapp-smoke-") as data_dir:
        try:
            raise SystemExit(asyncio.run(smoke(sys.argv[1], Path(data_dir))))
        except (ConnectorError, ConfigError, CoreError) as exc:
            print(f"whatsapp-smoke: {exc}", file=sys.stderr)
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()
