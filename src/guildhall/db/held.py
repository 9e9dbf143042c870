"""What a PostgreSQL unit of work holds back, to send it with something else.

Each statement is a round trip whose cost to the serving process (asyncpg's
protocol, a wake-up of the event loop) is larger than the work PostgreSQL does
for it, and a hot row stays locked from its UPDATE until COMMIT's answer. So a
write unit of work holds back:

- **its BEGIN**, until its first statement (:func:`flush`). A unit of work that
  ran no statement (a request refused before it wrote) sends neither BEGIN nor
  COMMIT; one whose only statement is what it held sends that statement alone,
  which PostgreSQL runs atomically by itself.
- **the rows it never reads back**: its ledger row, its audit row, its event in
  the outbox. :meth:`Prepared.later <guildhall.db.prepared.Prepared.later>`
  holds such an INSERT, and the unit of work sends what it holds as one
  statement (``WITH held_0 AS (INSERT ...), held_1 AS (INSERT ...) INSERT
  ...``) before anything that could read it back: its next prepared statement,
  the ORM's first statement (``after_begin``), its COMMIT. addcoins went from
  seven round trips to five (bench/README.md), and then to one (below). A unit of
  work that fails drops what it held, with the rest of its transaction.

Two held rows of one table are never sent together: the parts of one WITH
statement run in no set order, and the outbox's ids must follow the order in
which the events happened.

A statement that is a whole change by itself (its rows and its records in one
WITH) can run as its unit of work's only statement, without BEGIN or COMMIT
(:meth:`Prepared.alone <guildhall.db.prepared.Prepared.alone>`): one round trip
where a transaction takes three, and no row lock held while the serving process
sends the next. Once it changed something the unit of work is over (``DONE``):
a later statement would not be atomic with it, so :func:`flush` refuses it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

KEY = "guildhall.held"
"""``session.info`` key of what the unit of work holds: (table, SQL, arguments) each."""
BEGIN_DUE = "guildhall.begin_due"
"""``session.info`` key: set while a write unit of work has not sent its BEGIN."""
DONE = "guildhall.done"
"""``session.info`` key: set once a statement ran alone and changed something."""
Held = list[tuple[str, str, list[Any]]]

_PARAMETER = re.compile(r"\$(\d+)")


class AlreadyCommitted(RuntimeError):
    """A statement was run in a unit of work whose change a statement run alone had
    already committed (a mistake in the code, not in a request)."""


async def flush(info: dict[str, Any], driver: Any) -> None:
    """Before a statement of the unit of work whose ``session.info`` is ``info``: its
    BEGIN if still due, then the INSERTs it holds."""
    if DONE in info:
        raise AlreadyCommitted(
            "this unit of work's change ran alone and is committed; nothing may follow it"
        )
    if info.pop(BEGIN_DUE, False):
        await driver.execute("BEGIN")
    holding: Held | None = info.get(KEY)
    if holding:
        await send(driver, holding)


async def send(driver: Any, held: Held) -> None:
    """Send what is held on ``driver`` (an asyncpg connection) as one statement."""
    statements = tuple(sql for _table, sql, _arguments in held)
    arguments = [value for _table, _sql, values in held for value in values]
    held.clear()
    await driver.execute(together(statements), *arguments)


@lru_cache(maxsize=128)
def together(statements: tuple[str, ...]) -> str:
    """PostgreSQL statements with positional parameters ($1, $2...) as one: all but the
    last as parts of a WITH clause, each one's parameters numbered after the previous."""
    if len(statements) == 1:
        return statements[0]
    if any("'" in sql or "$$" in sql for sql in statements):
        # Renumbering would reach into a literal; held INSERTs bind every value.
        raise ValueError("a held statement must bind its values, not spell them out")
    parts, offset = [], 0
    for sql in statements:
        parts.append(_renumbered(sql, offset))
        offset += max((int(number) for number in _PARAMETER.findall(sql)), default=0)
    *first, last = parts
    return "WITH " + ", ".join(f"held_{n} AS ({sql})" for n, sql in enumerate(first)) + " " + last


def _renumbered(sql: str, offset: int) -> str:
    return _PARAMETER.sub(lambda match: f"${int(match[1]) + offset}", sql)
