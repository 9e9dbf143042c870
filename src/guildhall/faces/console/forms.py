"""What every console page reads and answers the same way: page numbers and pagers, text
fields, ids in a path, and a refused change shown again in place.

Decisions, for every page alike:

- A list shows :data:`PAGE_SIZE` rows a page, asked for by ``?page=N`` (or another
  parameter where a page holds several lists) from 1 to :data:`MAX_PAGE`; anything else
  is refused as invalid (400), never a 500. A list reads one row more than it shows to
  know whether a next page exists (:func:`read_page`), so no page counts a whole table.
- A pager's links keep the query the page was opened with (its filters), with only the
  page number changed. Page 1 is the default, so its link leaves the number out, except
  when nothing else would be left: then it says ``?page=1`` rather than the bare path,
  which is the area's own link.
- A text field is trimmed; refused when required and empty, longer than its column, or
  holding a NUL (which neither database stores), by an Invalid that names the field.
- A numeric id in a path that is not one (letters, too many digits) names nothing there
  is: NotFound (404), as an id no row has.
- A refused change is shown again in place: the core call runs in a savepoint
  (:func:`attempt`), so nothing of it is kept, and its error is placed next to the
  field it names (:func:`placed`), else above the form (the :data:`FORM` key), with
  what was typed (:func:`form_values`). ``templates/macros.html`` renders both.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from guildhall.core.errors import CoreError, Invalid, NotFound, is_digits
from guildhall.core.text import NUL, require_storable
from guildhall.faces.console.auth import Visit

T = TypeVar("T")

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
FORM = "form"
"""The errors key of a message about a whole form rather than one of its fields."""


# ---- lists ---------------------------------------------------------------------------


def parse_page(raw: str, name: str = "page", label: str | None = None) -> int:
    """``raw`` as a page number (1 when empty); Invalid for anything but 1 to MAX_PAGE,
    naming it as ``label`` does (by default "The page number", with ``name`` when it is
    not ``page``)."""
    raw = raw.strip()
    if not raw:
        return 1
    if not is_digits(raw, len(str(MAX_PAGE))) or not 1 <= int(raw) <= MAX_PAGE:
        if label is None:
            label = "The page number" + ("" if name == "page" else f" ({name})")
        raise Invalid(f"{label} must be a whole number from 1 to {MAX_PAGE:,}.", field=name)
    return int(raw)


def page_number(visit: Visit, name: str = "page") -> int:
    """The page of a list the query asks for with ``?<name>=N``: 1 when absent."""
    return parse_page(visit.query(name), name)


async def read_page(
    number: int,
    fetch: Callable[[int, int], Awaitable[Sequence[T]]],
    size: int = PAGE_SIZE,
) -> tuple[list[T], bool]:
    """Page ``number`` of what ``fetch(limit, offset)`` lists, and whether a next page
    exists: it is asked for one row more than a page shows."""
    rows = await fetch(size + 1, (number - 1) * size)
    return list(rows[:size]), len(rows) > size


def _link(path: str, params: list[tuple[str, str]], name: str, number: int) -> str:
    kept = [(key, value) for key, value in params if key != name and value != ""]
    if number > 1 or not kept:
        kept.append((name, str(number)))
    return f"{path}?{urllib.parse.urlencode(kept)}"


@dataclass(frozen=True, slots=True)
class Pager:
    """Where page ``number`` of a list links to: the page before it and the one after
    it (None where there is none)."""

    number: int
    previous: str | None
    next: str | None

    @classmethod
    def of(
        cls,
        visit: Visit,
        number: int,
        has_next: bool,
        *,
        name: str = "page",
        path: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Pager:
        """The pager of a list on ``path`` (by default the page asked for), its links
        keeping ``params`` (by default the query the page was opened with) and changing
        only ``name``, the parameter that numbers its pages."""
        request = visit.request
        kept = list(params.items()) if params is not None else request.query_params.multi_items()
        where = path if path is not None else request.url.path
        return cls(
            number=number,
            previous=_link(where, kept, name, number - 1) if number > 1 else None,
            next=_link(where, kept, name, number + 1) if has_next else None,
        )


# ---- fields --------------------------------------------------------------------------


def text(
    values: Mapping[str, str],
    name: str,
    label: str,
    maximum: int,
    *,
    required: bool = False,
    too_long: str | None = None,
) -> str:
    """Field ``name`` of a form (or a query), trimmed; Invalid naming the field when it is
    required and empty, longer than ``maximum`` (``too_long`` says so where a page words
    it its own way) or holds a NUL. ``label`` names it in the messages: "The reason"."""
    value = values.get(name, "").strip()
    if required and not value:
        raise Invalid(f"{label} is required.", field=name)
    if len(value) > maximum:
        raise Invalid(too_long or f"{label} must be at most {maximum} characters.", field=name)
    return require_storable(value, label, field=name)


def id_of(raw: str, what: str, *, digits: int = 18, code: str | None = None) -> int:
    """``raw`` as the numeric id of a ``what``; NotFound when no row could have it."""
    if not is_digits(raw, digits):
        raise NotFound(f"There is no {what} {raw[:40]!r}.", code=code)
    return int(raw)


def path_id(
    source: Visit | Request,
    name: str,
    what: str,
    *,
    digits: int = 18,
    code: str | None = None,
) -> int:
    """The numeric id in the path's ``{name}`` part; NotFound (404) for anything else."""
    request = source.request if isinstance(source, Visit) else source
    return id_of(str(request.path_params.get(name, "")), what, digits=digits, code=code)


def path_key(
    source: Visit | Request, name: str, what: str, maximum: int, *, code: str | None = None
) -> str:
    """The text id (a public id, say) in the path's ``{name}`` part; NotFound when no row
    could have it (too long, or with a NUL), without asking the database."""
    request = source.request if isinstance(source, Visit) else source
    raw = str(request.path_params.get(name, ""))
    if len(raw) > maximum or NUL in raw:
        raise NotFound(f"There is no {what} {raw[:maximum].replace(NUL, '')!r}.", code=code)
    return raw


# ---- a refused change, in place ------------------------------------------------------


async def attempt(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T | CoreError:
    """What ``work`` returns, run in a savepoint; or the core error that refused it, with
    nothing of it kept (the rest of the request's unit of work goes on)."""
    try:
        async with session.begin_nested():
            return await work()
    except CoreError as error:
        return error


def placed(
    error: CoreError, fields: Sequence[str], aliases: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The error keyed by the form field it belongs to, else by :data:`FORM`.

    That is the field the core names, or the one ``aliases`` gives for the core's field
    or code where the form calls it otherwise (the core's ``event`` is the form's
    ``events``; ``account_not_found`` is about the ``owner``).
    """
    found = aliases or {}
    name = error.field or ""
    if name in found:
        name = found[name]
    elif error.code in found:
        name = found[error.code]
    return {name if name in fields else FORM: error.message}


def form_values(visit: Visit) -> dict[str, str]:
    """What the form sent, to fill it in again: never its CSRF token, and without NUL
    characters (which a page cannot show)."""
    return {name: value.replace(NUL, "") for name, value in visit.form.items() if name != "csrf"}
