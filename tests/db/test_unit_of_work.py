"""The unit of work: fair queueing for connections, on both databases."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from guildhall.db.engine import Database


async def test_writers_are_served_first_come_first_served(database_url: str) -> None:
    """A request arriving as a connection frees up waits behind those already waiting."""
    database = Database(database_url, pool_size=1)
    order: list[str] = []
    release = asyncio.Event()

    async def take(name: str) -> None:
        async with database.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
            order.append(name)

    async def hold_then_ask_again() -> None:
        async with database.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
            order.append("A")
            await release.wait()
        await take("D")  # asks the moment it let go, before B and C have woken

    try:
        holder = asyncio.create_task(hold_then_ask_again())
        await asyncio.sleep(0.05)
        waiters = [asyncio.create_task(take(name)) for name in "BC"]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, *waiters), 10)
    finally:
        await database.dispose()
    assert order == ["A", "B", "C", "D"]
