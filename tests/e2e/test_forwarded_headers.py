"""A served process believes no forwarded header from an untrusted peer (uvicorn's own
proxy-header handling is off): spoofing X-Forwarded-For does not dodge a rate limit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.process import free_port, serve, write_config

pytestmark = pytest.mark.e2e


def test_spoofed_forwarded_for_does_not_dodge_the_limit(database_url: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        database_url,
        tables={"faces.aurora.rate_limits.default": {"requests": 2, "per_seconds": 86400}},
        aurora={"port": free_port()},
    )
    served = serve(config, "--face", "aurora")
    try:
        statuses = [
            httpx.get(
                served.url("aurora") + "/api/health",
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(3)
        ]
    finally:
        served.stop()
        served.output()
    assert statuses == [200, 200, 429]
