"""Whole-installation backup, restore, and the move from SQLite to PostgreSQL.

A backup is a tar archive (``manifest.json``, one ``tables/<name>.jsonl`` per
table, the files of ``data_dir`` the database points at under ``files/``, and
``secret.key`` when encrypted) sealed by ``archive.py``. Rows are JSON with
each column's value written for its type (times in ISO 8601, bytes in
base64), so a backup made on SQLite restores onto PostgreSQL and the other
way round; ``move`` is the same copy without the file.

- **A consistent snapshot while serving.** SQLite: the online backup API
  copies the database into a temporary file, which is then read. PostgreSQL:
  one REPEATABLE READ, READ ONLY transaction reads every table.
- **Atomic.** Written to a temporary file beside the target, then renamed: an
  interrupted backup leaves no file that looks complete.
- **Restore in one transaction.** The target is brought to the backup's
  schema revision, filled, migrated forward to the newest revision and
  checked (row counts against the manifest, every balance against its
  ledger) before the commit; any failure leaves it as it was.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

from alembic import command
from alembic.util.exc import CommandError
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    LargeBinary,
    Table,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from guildhall import __version__, filemodes
from guildhall.db import archive
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.db.migrate import DanglingRows, alembic_config, run_schema_work
from guildhall.db.models import metadata

BATCH = 500
SECRET_FILE = "secret.key"
FILE_DIRS = ("servers",)  # what in data_dir belongs to the installation, beside the database

Progress = Callable[[str, int], None]
"""Told each table's name and how many rows have gone so far (a terminal shows it)."""


class BackupError(Exception):
    """A backup, restore or move cannot go on; the message says why."""


@dataclass
class Manifest:
    revision: str
    counts: dict[str, int]
    checksums: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    has_secret: bool = False
    version: str = __version__

    def as_json(self) -> bytes:
        return json.dumps(self.__dict__, indent=2, sort_keys=True).encode()


def _tables() -> list[Table]:
    return list(metadata.sorted_tables)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _decoder(table: Table) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Turns a row read from JSON back into the column types' Python values."""
    parsers: dict[str, Callable[[str], Any]] = {}
    for column in table.columns:
        kind = getattr(column.type, "impl", column.type)  # a TypeDecorator's storage type
        if isinstance(kind, DateTime):
            parsers[column.name] = datetime.fromisoformat
        elif isinstance(kind, Date):
            parsers[column.name] = date.fromisoformat
        elif isinstance(kind, LargeBinary):
            parsers[column.name] = base64.b64decode

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        for name, parse in parsers.items():
            if row.get(name) is not None:
                row[name] = parse(row[name])
        return row

    return decode


# ---- reading the installation ------------------------------------------------------


def _revision_of(connection: Connection) -> str:
    revision: str = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    return revision


def _dump_tables(connection: Connection, into: Path, progress: Progress) -> Manifest:
    """Every table's rows as JSON lines in ``into/tables``; the manifest's counts."""
    (into / "tables").mkdir()
    counts: dict[str, int] = {}
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    for table in _tables():
        if table.name not in present:
            continue  # a table of a newer schema than this installation's
        # Only the columns this installation's schema has (it may be older than the code).
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        count = 0
        with (into / "tables" / f"{table.name}.jsonl").open("w", encoding="utf-8") as out:
            order = list(table.primary_key.columns) or list(table.columns)[:1]
            chosen = [column for column in table.columns if column.name in columns]
            result = connection.execution_options(yield_per=BATCH).execute(
                select(*chosen).order_by(*order)
            )
            for row in result.mappings():
                out.write(json.dumps({k: _encode(v) for k, v in row.items()}) + "\n")
                count += 1
                if count % BATCH == 0:
                    progress(table.name, count)
        counts[table.name] = count
        progress(table.name, count)
    return Manifest(revision=_revision_of(connection), counts=counts)


async def snapshot(database: Database, into: Path, progress: Progress) -> Manifest:
    """A consistent copy of every table, read while the installation serves."""
    await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
    if database.is_sqlite:
        path = make_url(database.url).database
        assert path
        copy = into / "snapshot.db"

        def online_backup() -> Manifest:
            with (
                contextlib.closing(sqlite3.connect(path)) as source,
                contextlib.closing(sqlite3.connect(copy)) as target,
            ):
                source.backup(target)
            engine = create_engine(f"sqlite:///{copy}")
            try:
                with engine.connect() as connection:
                    return _dump_tables(connection, into, progress)
            finally:
                engine.dispose()
                copy.unlink()

        return await asyncio.to_thread(online_backup)
    async with database.read_engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ")
        async with connection.begin():
            await connection.execute(text("SET TRANSACTION READ ONLY"))
            return await connection.run_sync(_dump_tables, into, progress)


# ---- the backup file ---------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(utcnow().timestamp())
    info.mode = 0o600
    tar.addfile(info, BytesIO(data))


async def write_backup(
    database: Database,
    data_dir: Path,
    target: Path,
    passphrase: bytes | None,
    progress: Progress,
) -> Manifest:
    """Back the installation up into ``target`` (atomically); its manifest.

    The files are packed and sealed in a worker thread: a scheduled backup runs
    inside a serving process, whose loop must not wait on the disk.
    """
    with tempfile.TemporaryDirectory(prefix="guildhall-backup-") as work_dir:
        work = Path(work_dir)
        manifest = await snapshot(database, work / "dump", progress)
        try:
            await asyncio.to_thread(_pack, work, manifest, data_dir, target, passphrase, progress)
        except OSError as exc:
            raise BackupError(f"the backup could not be written to {target}: {exc}") from None
    return manifest


def _pack(
    work: Path,
    manifest: Manifest,
    data_dir: Path,
    target: Path,
    passphrase: bytes | None,
    progress: Progress,
) -> None:
    target = target.absolute()
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    manifest.created_at = utcnow().isoformat()
    members: dict[str, Path] = {
        f"tables/{name}.jsonl": work / "dump" / "tables" / f"{name}.jsonl"
        for name in manifest.counts
    }
    for folder in FILE_DIRS:
        root = data_dir / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue  # a link may point anywhere; only the installation's own files go
            name = f"files/{path.relative_to(data_dir)}"
            # Copied first: a running server may write its files meanwhile, and what is
            # checksummed must be exactly what is archived.
            copy = work / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(path, copy)
            except OSError:
                continue  # gone between the listing and the copy
            members[name] = copy
    secret = data_dir / SECRET_FILE
    if passphrase and secret.is_file():
        members[SECRET_FILE] = secret
        manifest.has_secret = True
    manifest.checksums = {name: _sha256(path) for name, path in members.items()}
    body = work / "body.tar.gz"
    with tarfile.open(body, "w:gz") as tar:
        _add_bytes(tar, "manifest.json", manifest.as_json())
        for name, path in members.items():
            tar.add(path, arcname=name, recursive=False)
    progress("sealing", body.stat().st_size)
    descriptor, partial = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as out:
            archive.seal(body, out, passphrase)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


@contextlib.contextmanager
def opened(source: Path, passphrase: bytes | None) -> Iterator[tuple[Manifest, Path]]:
    """The backup checked whole and unpacked in a temporary folder, with its manifest."""
    if not source.is_file():
        raise BackupError(f"the backup {source} does not exist")
    with tempfile.TemporaryDirectory(prefix="guildhall-restore-") as work_dir:
        work = Path(work_dir)
        try:
            archive.open_body(source, passphrase, work / "body.tar.gz")
        except archive.ArchiveError as exc:
            raise BackupError(str(exc)) from None
        unpacked = work / "unpacked"
        try:
            with tarfile.open(work / "body.tar.gz", "r:gz") as tar:
                tar.extractall(unpacked, filter="data")
            found = json.loads((unpacked / "manifest.json").read_text())
            manifest = Manifest(**found)
        except (tarfile.TarError, OSError, ValueError, TypeError) as exc:
            raise BackupError(f"the backup {source} is corrupted: {exc}") from None
        for name, checksum in manifest.checksums.items():
            member = unpacked / name
            if not member.is_file() or _sha256(member) != checksum:
                raise BackupError(
                    f"the backup {source} is corrupted: {name} does not match its checksum"
                )
        yield manifest, unpacked


# ---- writing into an installation --------------------------------------------------


def _row_counts(connection: Connection) -> dict[str, int]:
    return {
        table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
        for table in _tables()
    }


def _is_empty(connection: Connection) -> bool:
    names = set(connection.dialect.get_table_names(connection))
    return all(
        connection.execute(select(func.count()).select_from(table)).scalar_one() == 0
        for table in _tables()
        if table.name in names
    )


def unbalanced(connection: Connection) -> list[str]:
    """Balances that differ from the sum of their ledger (none, in a sound installation)."""
    rows = connection.execute(
        text(
            "SELECT b.account_id, b.currency, b.amount, COALESCE(SUM(l.amount), 0) "
            "FROM balances b LEFT JOIN ledger_entries l "
            "ON l.account_id = b.account_id AND l.currency = b.currency "
            "GROUP BY b.account_id, b.currency, b.amount"
        )
    ).all()
    return [
        f"account #{account} {currency}: {amount} against a ledger of {ledger}"
        for account, currency, amount, ledger in rows
        if amount != ledger
    ]


def _fill(connection: Connection, manifest: Manifest, tables_dir: Path, progress: Progress) -> None:
    """Bring the (empty) schema to the backup's revision, insert, migrate forward, check."""
    config = alembic_config()
    config.attributes["connection"] = connection
    names = set(connection.dialect.get_table_names(connection))
    if "alembic_version" in names and _revision_of(connection) != manifest.revision:
        command.downgrade(config, "base")
    command.upgrade(config, manifest.revision)
    for table in _tables():
        path = tables_dir / f"{table.name}.jsonl"
        if not path.is_file():
            if manifest.counts.get(table.name):
                raise BackupError(f"the backup has no rows file for {table.name}")
            continue  # a table newer than the backup
        decode = _decoder(table)
        batch: list[dict[str, Any]] = []
        done = 0
        with path.open(encoding="utf-8") as rows:
            for line in rows:
                batch.append(decode(json.loads(line)))
                if len(batch) == BATCH:
                    _insert(connection, table, batch)
                    done += len(batch)
                    progress(table.name, done)
                    batch = []
        if batch:
            _insert(connection, table, batch)
            done += len(batch)
        progress(table.name, done)
    if connection.dialect.name == "postgresql":
        _move_sequences(connection)
    command.upgrade(config, "head")
    counts = _row_counts(connection)
    wrong = [
        f"{name} has {counts.get(name)} rows, the backup {expected}"
        for name, expected in manifest.counts.items()
        if counts.get(name) != expected
    ]
    if wrong:
        raise BackupError("the copy does not match the backup: " + "; ".join(wrong))
    if wrong_balances := unbalanced(connection):
        raise BackupError("balances do not match their ledger: " + "; ".join(wrong_balances[:5]))


def _insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` naming only their own columns: a backup from an older schema has
    fewer, and today's defaults for the others would name columns its schema lacks."""
    columns = [sa_column(name, table.c[name].type) for name in rows[0] if name in table.c]
    connection.execute(sa_table(table.name, *columns).insert(), rows)


def _move_sequences(connection: Connection) -> None:
    """Every id sequence past the copied ids, so new rows never take an old id."""
    for table in _tables():
        for column in table.primary_key.columns:
            if not column.autoincrement or column.type.python_type is not int:
                continue
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": column.name},
            ).scalar()
            if sequence is None:
                continue
            highest = connection.execute(select(func.max(column))).scalar()
            if highest is not None:
                connection.execute(
                    text("SELECT setval(:sequence, :value)"),
                    {"sequence": sequence, "value": highest},
                )


def _clear(connection: Connection) -> None:
    names = set(connection.dialect.get_table_names(connection))
    for table in reversed(_tables()):
        if table.name in names:
            connection.execute(table.delete())


async def fill(
    database: Database,
    manifest: Manifest,
    tables_dir: Path,
    progress: Progress,
    *,
    replace: bool = False,
) -> None:
    """Write a backup's rows into ``database`` in one transaction (see the module notes)."""

    def run(connection: Connection) -> None:
        if not _is_empty(connection):
            if not replace:
                raise BackupError(
                    "the target database is not empty (restore --replace replaces what it holds)"
                )
            _clear(connection)
        _fill(connection, manifest, tables_dir, progress)
        if connection.dialect.name == "postgresql":
            # The planner's statistics of the tables just filled: autovacuum gathers
            # them within a minute where it is on, never where it is off, and without
            # them PostgreSQL joins thousands of rows one by one (Aurora's member list:
            # 138 req/s instead of 250, bench/README.md).
            connection.exec_driver_sql("ANALYZE")

    try:
        await run_schema_work(database, run)
    except DanglingRows as exc:
        raise BackupError(f"the backup has rows that refer to nothing: {exc}") from None
    except CommandError as exc:  # a revision this version does not know: a newer backup
        raise BackupError(f"the backup's schema is not one this Guildhall knows ({exc})") from None
    except SQLAlchemyError as exc:
        # The driver's own error, where there is one (a DBAPIError's ``orig``).
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise BackupError(f"the backup could not be written into the database: {reason}") from None


def restore_files(unpacked: Path, data_dir: Path, manifest: Manifest) -> None:
    """Put the backup's files (and the installation secret) into ``data_dir``.

    Only files the manifest lists, under the folders a backup takes, and only to a
    place inside that folder: never through a link a hosted program may have made.
    """
    filemodes.private_directory(data_dir)
    for name in manifest.checksums:
        parts = Path(name).parts
        if len(parts) < 3 or parts[0] != "files" or parts[1] not in FILE_DIRS:
            continue
        folder = (data_dir / parts[1]).resolve()
        destination = data_dir.joinpath(*parts[1:])
        if not destination.parent.resolve().is_relative_to(folder) and destination.parent.exists():
            raise BackupError(f"{name} would be written outside {folder}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.parent.resolve().is_relative_to(folder):
            raise BackupError(f"{name} would be written outside {folder}")
        if destination.is_symlink():
            destination.unlink()
        shutil.copyfile(unpacked / name, destination)
    if manifest.has_secret:
        secret = data_dir / SECRET_FILE
        with contextlib.suppress(FileNotFoundError):
            secret.unlink()
        descriptor = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write((unpacked / SECRET_FILE).read_bytes())


async def has_rows(database: Database) -> bool:
    """Whether the installation holds anything (a fresh database has no tables at all)."""
    async with database.read_engine.connect() as connection:
        return not await connection.run_sync(_is_empty)


def replaced_path(data_dir: Path) -> Path:
    """Where ``restore --replace`` keeps what it replaces."""
    folder = data_dir / "backups"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"replaced-{utcnow().strftime('%Y%m%d-%H%M%S')}.ghbk"


SCHEDULED = "guildhall-*.ghbk"


async def scheduled(
    database: Database,
    data_dir: Path,
    directory: str,
    passphrase_file: str,
    every: timedelta,
    keep: int,
) -> Path | None:
    """Write a backup into ``directory`` (empty: data_dir/backups) if the newest there is
    ``every`` old; drop the oldest beyond ``keep``. The path written, or None."""
    folder = Path(directory) if directory else data_dir / "backups"

    def newest_age() -> timedelta | None:
        folder.expanduser().mkdir(mode=0o700, parents=True, exist_ok=True)
        found = sorted(folder.expanduser().glob(SCHEDULED))
        if not found:
            return None
        return utcnow() - datetime.fromtimestamp(found[-1].stat().st_mtime, UTC)

    def read_passphrase() -> bytes | None:
        if not passphrase_file:
            return None
        try:
            lines = Path(passphrase_file).expanduser().read_bytes().splitlines()
        except OSError as exc:
            raise BackupError(f"the passphrase file cannot be read: {exc}") from None
        if not lines or not lines[0].strip():
            raise BackupError(f"the passphrase file {passphrase_file} is empty")
        return lines[0]

    age = await asyncio.to_thread(newest_age)
    if age is not None and age < every:
        return None
    passphrase = await asyncio.to_thread(read_passphrase)
    target = folder.expanduser() / f"guildhall-{utcnow().strftime('%Y%m%d-%H%M%S-%f')}.ghbk"
    await write_backup(database, data_dir, target, passphrase, lambda _name, _count: None)

    def prune() -> None:
        for old in sorted(folder.expanduser().glob(SCHEDULED))[:-keep]:
            old.unlink(missing_ok=True)

    await asyncio.to_thread(prune)
    return target


async def move(source: Database, target: Database, progress: Progress) -> Manifest:
    """Copy every row of ``source`` into the empty ``target``; its manifest."""
    with tempfile.TemporaryDirectory(prefix="guildhall-move-") as work_dir:
        work = Path(work_dir)
        manifest = await snapshot(source, work, progress)
        await fill(target, manifest, work / "tables", progress)
    return manifest
