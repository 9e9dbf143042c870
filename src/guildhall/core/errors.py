"""Expected failures of the core.

Each carries a machine-readable ``code`` so every face can map it to its own
documented error format in one place (``faces/<name>/errors.py``), and a
sentence a person can read.
"""

from __future__ import annotations

from typing import TypeGuard


class CoreError(Exception):
    """Base of every expected failure; never a bug."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class NotFound(CoreError):
    code = "not_found"


class Conflict(CoreError):
    code = "conflict"


class Invalid(CoreError):
    code = "invalid"


class Forbidden(CoreError):
    code = "forbidden"


class Unavailable(CoreError):
    """An outside platform (Discord, a panel) failed or did not answer: try again later."""

    code = "unavailable"


class LimitExceeded(CoreError):
    """A value would leave its allowed range (a balance below zero, say)."""

    code = "limit_exceeded"


def is_digits(value: object, max_length: int = 18) -> TypeGuard[str]:
    """A non-empty string of ASCII digits no longer than ``max_length``.

    ``str.isdigit`` alone also accepts "²" and other digits ``int`` refuses.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value.isascii()
        and value.isdigit()
    )
