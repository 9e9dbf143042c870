"""Background work never turns into a client's error, and is waited for on close."""

from __future__ import annotations

import asyncio
import logging

import pytest

from guildhall.config import Settings
from guildhall.runtime import Runtime


async def test_background_failures_are_logged_not_raised(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    done: list[str] = []

    async def fails() -> None:
        raise RuntimeError("stamp went wrong")

    async def succeeds() -> None:
        await asyncio.sleep(0.01)
        done.append("ok")

    with caplog.at_level(logging.WARNING, logger="guildhall.runtime"):
        runtime.spawn(fails())
        runtime.spawn(succeeds())
        await runtime.drain()
    assert done == ["ok"]
    assert "background work failed: stamp went wrong" in caplog.text


async def test_a_worker_of_several_takes_its_share_of_the_pool_for_writes(
    settings: Settings,
) -> None:
    """``serve --workers 4`` with ``database_pool_size = 10``: each process opens at most
    3 write transactions at once (``Database.writers``)."""
    settings = settings.model_copy(update={"database_pool_size": 10})
    for workers, writers in ((1, 10), (2, 5), (4, 3)):
        runtime = Runtime(settings, workers=workers)
        try:
            assert runtime.database.writers == writers
        finally:
            await runtime.close()
