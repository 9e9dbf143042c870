"""What ``guildhall serve`` writes to its log: each face named, one line per request
when asked (``log_access = true``), and nothing it must keep secret."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from guildhall.faces import FACES
from tests.process import free_port, serve, write_config

pytestmark = pytest.mark.e2e


def test_each_face_logs_one_start_and_one_stop_line_with_its_name(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)
    served = serve(config)
    for face in FACES:  # every face answers: its server has started
        assert httpx.get(served.url(face) + "/nowhere").status_code in (401, 403, 404)
    assert served.stop() == 0
    log = served.output()
    for face in FACES:
        assert log.count(f"{face} face listening on http://127.0.0.1:") == 1, log
        assert log.count(f"{face} face stopped") == 1, log
    # uvicorn's anonymous lines, five times over, are gone.
    assert "Started server process" not in log
    assert "Shutting down" not in log


def test_the_access_log_names_the_face_and_leaves_the_query_out(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        database_url,
        top={"log_access": True},
        heliactyl={"port": port, "api_code": "a-static-key"},
    )
    served = serve(config)
    try:
        base = f"http://127.0.0.1:{port}"
        ok = httpx.get(f"{base}/api", headers={"Authorization": "Bearer a-static-key"})
        assert ok.status_code == 200
        missing = httpx.get(f"{base}/api/v3/userinfo", params={"id": "secret-looking-123"})
        assert missing.status_code == 401
    finally:
        assert served.stop() == 0
    log = served.output()
    assert 'heliactyl 127.0.0.1 "GET /api" 200 ' in log, log
    assert 'heliactyl 127.0.0.1 "GET /api/v3/userinfo" 401 ' in log, log
    assert "secret-looking-123" not in log
    assert "a-static-key" not in log


def test_without_log_access_requests_are_not_logged(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, database_url, heliactyl={"port": port})
    served = serve(config)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/api").status_code == 401
    finally:
        assert served.stop() == 0
    assert '"GET /api"' not in served.output()
