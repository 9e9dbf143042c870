"""Background work never turns into a client's error, and is waited for on close."""

from __future__ import annotations

import asyncio
import logging

import pytest

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
