from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.process import Served, free_port, serve, write_config


@pytest.fixture
def served_heliactyl(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``guildhall serve --demo`` with the Heliactyl face on a free port."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        config = write_config(
            tmp_path, database_url, heliactyl={"host": "127.0.0.1", "port": free_port()}
        )
        served = serve(config, "--demo", *args)
        started.append(served)
        return served

    yield start
    for served in started:
        # SIGTERM first: with --workers, the parent stops its workers, which a SIGKILL
        # would leave running with the output pipes open.
        with contextlib.suppress(subprocess.TimeoutExpired):
            served.stop()
        served.output()  # its readers finish, closing the pipes
