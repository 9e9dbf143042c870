"""Text the core takes from any face: the rules that hold whichever face it came through.

PostgreSQL cannot store a NUL character in text, nor even compare one (the
query fails). So no stored key holds one: a lookup by a key with a NUL
finds nothing, without asking the database (:func:`storable`); and a name
or key to be stored with one is refused as invalid (:func:`require_storable`),
on SQLite as on PostgreSQL, so both databases answer alike.
"""

from __future__ import annotations

from guildhall.core.errors import Invalid

NUL = "\x00"


def storable(value: str) -> bool:
    """Whether ``value`` can be stored, and so whether any stored key could equal it."""
    return NUL not in value


def require_storable(value: str, what: str, *, field: str | None = None) -> str:
    """``value``, or Invalid naming ``what`` when it holds a NUL."""
    if NUL in value:
        raise Invalid(f"{what} must not contain NUL", code="nul_in_text", field=field)
    return value
