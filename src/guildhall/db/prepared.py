"""Hot statements, compiled once and run on the unit of work's own driver connection.

SQLAlchemy spends about 150 µs of Python on every execution (execution
context, result objects, greenlet hand-offs) where SQLite itself needs about
5 µs; an addcoins request runs four statements. :class:`Prepared` keeps
SQLAlchemy for what it is good at (building the statement, compiling it for
the dialect, the column types' conversions) and runs the compiled SQL
directly on the driver connection of the session's unit of work (see
``engine.py``), inside the same transaction: the sqlite3 connection on
SQLite, the asyncpg connection on PostgreSQL (whose own statement cache then
prepares it once per connection). On a session no unit of work made, it is an
ordinary ``session.execute``. :meth:`Prepared.later` runs an INSERT whose row
the change does not read back, on PostgreSQL together with others, and
:meth:`Prepared.alone` a statement that is a whole change by itself, on
PostgreSQL without BEGIN or COMMIT (``held.py``).

Errors are the driver's own (``sqlite3.IntegrityError``,
``asyncpg.UniqueViolationError``), not SQLAlchemy's wrappers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable, Insert
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from guildhall.db import held, sqlite_inline
from guildhall.db.engine import DRIVER_KEY
from guildhall.db.sql import dialect_of

Row = tuple[Any, ...]
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]
    binds: Mapping[str, Callable[[Any], Any]]
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]  # result columns to process

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name in self.names:
            value = params[name] if name in params else self.constants[name]
            process = self.binds.get(name)
            values.append(process(value) if process is not None and value is not None else value)
        return values

    def convert(self, row: Sequence[Any]) -> Row:
        values = list(row)
        for index, process in self.converted:
            values[index] = process(values[index])
        return tuple(values)


class Prepared:
    """One statement with named ``bindparam`` parameters, ready to run many times.

    Use it inside a unit of work (one transaction); the session must not be
    committed and reused in between.
    """

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[bool, tuple[str, ...]], _Compiled] = {}

    def _compile(self, session: AsyncSession, keys: tuple[str, ...], sqlite: bool) -> _Compiled:
        dialect = dialect_of(session)
        assert isinstance(self.statement, ClauseElement)  # every statement is one
        compiled = self.statement.compile(dialect=dialect, column_keys=sorted(keys))
        assert isinstance(compiled, SQLCompiler)
        results: tuple[Processor, ...] = tuple(
            column.type._cached_result_processor(dialect, None)
            for column in compiled._result_columns
        )
        found = _Compiled(
            sql=compiled.string,
            names=tuple(compiled.positiontup or ()),
            # Literals in the statement (BETWEEN 0 AND 999...) are parameters too.
            constants={
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if name not in keys
            },
            # A Sequence of processors is only for a tuple-typed parameter, which none
            # of these statements has.
            binds=dict(cast("Mapping[str, Callable[[Any], Any]]", compiled._bind_processors)),
            converted=tuple((index, process) for index, process in enumerate(results) if process),
        )
        self._compiled[(sqlite, keys)] = found
        return found

    async def all(self, session: AsyncSession, params: Mapping[str, Any]) -> list[Row]:
        """Run in the session's transaction; the rows (none for a plain write)."""
        orm = session.sync_session
        driver = orm.info.get(DRIVER_KEY)
        # Only a session the ORM has begun can hold pending changes or a
        # begin_nested() part; in the usual unit of work it has not.
        if orm.in_transaction():
            # As session.execute would, ORM changes go first.
            if orm.new or orm.dirty or orm.deleted:
                await session.flush()
            if driver is not None and orm.in_nested_transaction():
                # SQLAlchemy emits a begin_nested() SAVEPOINT only when the session
                # first needs its connection: make it do so, so this runs inside it.
                await session.connection()
        if driver is None:
            result = await session.execute(self.statement, dict(params))
            # An ORM-built select answers with rows and has no ``returns_rows``.
            returns_rows = getattr(result, "returns_rows", True)
            return [tuple(row) for row in result] if returns_rows else []
        sqlite = type(driver) is sqlite_inline.Connection
        compiled = self._compiled_for(session, params, sqlite)
        if sqlite:
            rows: list[Any] = driver.run(compiled.sql, compiled.arguments(params))
            if not compiled.converted:
                return rows  # sqlite3 rows are tuples already
        else:  # asyncpg, whose rows are Records
            await held.flush(orm.info, driver)
            rows = await driver.fetch(compiled.sql, *compiled.arguments(params))
        return [compiled.convert(row) for row in rows]

    async def alone(self, session: AsyncSession, params: Mapping[str, Any]) -> list[Row]:
        """Run as the unit of work's whole change: on PostgreSQL, when nothing ran in it
        yet, without BEGIN or COMMIT, as one statement is atomic by itself (``held.py``);
        elsewhere (SQLite, a unit of work already begun, a read unit of work, which has
        no transaction on PostgreSQL) as :meth:`all`.

        So on PostgreSQL nothing that fails after it can take it back: a caller runs it
        last, and returns.

        Rows in the answer mean it changed something and committed it: nothing more
        may run in the unit of work (``held.AlreadyCommitted``). No rows must mean it
        changed nothing (an UPDATE ... RETURNING that matched no row, with everything
        else it writes taken from that RETURNING); the unit of work goes on as if it
        had not run."""
        orm = session.sync_session
        driver = orm.info.get(DRIVER_KEY)
        if (
            driver is None
            or type(driver) is sqlite_inline.Connection
            or not orm.info.get(held.BEGIN_DUE)
            or orm.info.get(held.KEY)
            or orm.in_transaction()
        ):
            return await self.all(session, params)
        compiled = self._compiled_for(session, params, sqlite=False)
        rows = await driver.fetch(compiled.sql, *compiled.arguments(params))
        if rows:
            del orm.info[held.BEGIN_DUE]
            orm.info[held.DONE] = True
        return [compiled.convert(row) for row in rows]

    async def later(self, session: AsyncSession, params: Mapping[str, Any]) -> None:
        """Run this INSERT in the session's transaction, where nothing reads its row
        back before the next statement: on PostgreSQL with that statement or with
        COMMIT, as one round trip (``held.py``); elsewhere at once.

        So on PostgreSQL an INSERT that fails (a foreign key, a value too long) fails
        the statement it travels with, or the COMMIT: the unit of work fails as a
        whole either way, and nothing of it is saved."""
        orm = session.sync_session
        driver = orm.info.get(DRIVER_KEY)
        if driver is None or type(driver) is sqlite_inline.Connection or orm.in_transaction():
            await self.all(session, params)  # no round trip to save, or the ORM's turn
            return
        if not isinstance(self.statement, Insert):
            raise TypeError("Prepared.later() runs INSERT statements only")
        table = self.statement.table
        compiled = self._compiled_for(session, params, sqlite=False)
        holding: held.Held = orm.info.setdefault(held.KEY, [])
        if held.DONE in orm.info or any(name == table.name for name, _sql, _ in holding):
            await held.flush(orm.info, driver)  # or refuse: the change is committed
        holding.append((table.name, compiled.sql, compiled.arguments(params)))

    def _compiled_for(
        self, session: AsyncSession, params: Mapping[str, Any], sqlite: bool
    ) -> _Compiled:
        # Keyed by the driver's kind and the parameters' names as given: callers
        # pass the same names in the same order, and a tuple hashes fastest.
        keys = tuple(params)
        return self._compiled.get((sqlite, keys)) or self._compile(session, keys, sqlite)

    async def first(self, session: AsyncSession, params: Mapping[str, Any]) -> Row | None:
        rows = await self.all(session, params)
        return rows[0] if rows else None

    async def scalar(self, session: AsyncSession, params: Mapping[str, Any]) -> Any:
        rows = await self.all(session, params)
        return rows[0][0] if rows else None
