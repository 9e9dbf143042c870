"""The one declarative base every model uses.

Naming conventions give every constraint a stable name, so Alembic
migrations read the same on SQLite and PostgreSQL. Times are stored
timezone-aware; SQLite keeps them as text and :class:`UTCDateTime` makes
sure they come back as aware UTC datetimes on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Table, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.type_api import _BindProcessorType, _ResultProcessorType

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

NEVER_REUSED: dict[str, object] = {"sqlite_autoincrement": True}
"""``__table_args__`` of a table whose ids leave the database (on a wire, in a token,
in a webhook consumer's bookkeeping) and whose rows can be deleted. Without
AUTOINCREMENT SQLite hands the highest deleted id to the next row, so a token or
a client holding the old id would reach the new row; PostgreSQL's sequences never
go back. Migration 0009 rebuilt the existing tables."""


def utcnow() -> datetime:
    """Now, as an aware UTC datetime: the only clock the core reads."""
    return datetime.now(UTC)


_SQLITE_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
    return value.astimezone(UTC)


def _sqlite_text(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite ``DATETIME`` stores, in UTC, in its own format,
    filled from a tuple: its processor fills the format from a dict, about 3 µs a
    value where this takes one, and every write stores one or more."""
    utc = _as_utc(value)
    if utc is None:
        return None
    return _SQLITE_FORMAT % (
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond,
    )


def _from_sqlite_text(value: str | None) -> datetime | None:
    """The aware UTC moment of a stored text, read in one C call: about 0.2 µs where
    SQLAlchemy's parser followed by ``replace(tzinfo=UTC)`` takes 1.2, and a page of
    members reads two a row. Text written by another tool is read the slow way: with
    an offset of its own it is converted to UTC, and a date alone (which the fast
    call misreads, taking the appended offset for a time) is its midnight in UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value + "+00:00")
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is not None:
        return moment
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always aware UTC going in and coming out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _as_utc(value)

    def bind_processor(self, dialect: Dialect) -> _BindProcessorType[datetime] | None:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> _ResultProcessorType[datetime] | None:
        if dialect.name == "sqlite":
            return _from_sqlite_text
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Every model here declares a ``__tablename__``, so it is mapped to a Table
        # (DeclarativeBase says only FromClause, which also covers mapping a SELECT).
        __table__: ClassVar[Table]


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
