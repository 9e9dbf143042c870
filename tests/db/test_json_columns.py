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


async def test_integers_beyond_64_bits_read_back_exactly(database_url: str) -> None:
    """orjson would read them as floats, which would drop their last digits."""
    database = Database(database_url)
    big = 2**70 + 1
    try:
        async with database.unit_of_work() as session:
            await outbox.emit(session, "user.updated", {"big": big, "id": "100000000000000001"})
        async with database.unit_of_work(write=False) as session:
            (stored,) = await outbox.recent(session)
    finally:
        await database.dispose()
    assert stored["data"] == {"big": big, "id": "100000000000000001"}
    assert type(stored["data"]["big"]) is int
