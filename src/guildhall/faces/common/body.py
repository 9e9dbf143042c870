"""Reading a JSON request body without letting garbage through."""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson
from starlette.requests import Request

MAX_BODY_BYTES = 1_000_000


class Unreadable(Enum):
    """Why a body has no JSON value: it was empty, or it was not JSON we accept."""

    ABSENT = "absent"
    MALFORMED = "malformed"


ABSENT = Unreadable.ABSENT
MALFORMED = Unreadable.MALFORMED


_PARSED = "guildhall.json"


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The parsed body, ABSENT when empty, MALFORMED when not JSON or over ``limit`` bytes.

    The body is read in chunks and abandoned past the limit, so a huge upload
    costs the server no more than ``limit`` bytes of memory. The result is
    kept on the request: the session dependency reads it before opening a
    write transaction, and the handler gets the same value.
    """
    if _PARSED not in request.scope:
        request.scope[_PARSED] = await _read(request, limit)
    return request.scope[_PARSED]


async def _read(request: Request, limit: int) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return MALFORMED
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return ABSENT
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return MALFORMED
