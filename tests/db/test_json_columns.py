"""JSON columns read back exactly what was written, on SQLite's fast reader too."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from guildhall.db.engine import Database
from guildhall.events import outbox


async def test_json_written_by_the_json_module_reads_back(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """orjson reads standard JSON; NaN, which json.dumps writes, still reads back."""
    path = tmp_path / "guildhall.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.unit_of_work() as session:
            await outbox.emit(session, "user.updated", {"ratio": float("nan"), "names": ["é"]})
            await outbox.emit(session, "user.updated", {"ratio": 0.5, "names": []})
        async with database.unit_of_work(write=False) as session:
            newest, oldest = await outbox.recent(session)
    finally:
        await database.dispose()
    assert math.isnan(oldest["data"]["ratio"]) and oldest["data"]["names"] == ["é"]
    assert newest["data"] == {"ratio": 0.5, "names": []}


async def test_values_orjson_would_change_are_written_by_the_json_module(
    database_url: str,
) -> None:
    """Integers beyond 64 bits, integer keys and infinities read back as the json module
    keeps them (orjson refuses the first two and writes the last as null); a payload with
    a real null keeps it."""
    database = Database(database_url)
    payload = {"big": 2**70, 7: "seven", "none": None, "nested": [1.5, None]}
    try:
        async with database.unit_of_work() as session:
            await outbox.emit(session, "user.updated", payload)
            await outbox.emit(session, "user.updated", {"plain": "é", "n": 1})
        async with database.unit_of_work(write=False) as session:
            plain, stored = await outbox.recent(session)
    finally:
        await database.dispose()
    assert stored["data"] == {"big": 2**70, "7": "seven", "none": None, "nested": [1.5, None]}
    assert plain["data"] == {"plain": "é", "n": 1}


async def test_infinity_reads_back_on_sqlite(sqlite_template: Path, tmp_path: Path) -> None:
    """An infinity is kept as the json module writes it (PostgreSQL refuses it as JSON)."""
    path = tmp_path / "guildhall.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.unit_of_work() as session:
            await outbox.emit(session, "user.updated", {"limit": float("inf")})
        async with database.unit_of_work(write=False) as session:
            (stored,) = await outbox.recent(session)
    finally:
        await database.dispose()
    assert stored["data"]["limit"] == math.inf
