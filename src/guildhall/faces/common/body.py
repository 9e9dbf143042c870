"""Reading a JSON request body without letting garbage through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request

MAX_BODY_BYTES = 1_000_000
MAX_JSON_DEPTH = 32
"""How deeply arrays and objects may nest in a body. The documents need a few
levels; a much deeper value could be stored, then fail to be written out when
read back (orjson stops at 255 levels, and a list adds its own), breaking that
list for every client."""


class Unreadable(Enum):
    """Why a body has no JSON value: it was empty, not JSON, or nested too deeply."""

    ABSENT = "absent"
    MALFORMED = "malformed"
    TOO_DEEP = "too_deep"


ABSENT = Unreadable.ABSENT
MALFORMED = Unreadable.MALFORMED
TOO_DEEP = Unreadable.TOO_DEEP


class TooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_JSON_DEPTH`."""


def parse_json(raw: bytes | str) -> Any:
    """JSON as every face accepts it: ``orjson.JSONDecodeError`` when it is not JSON,
    :class:`TooDeep` when nested deeper than :data:`MAX_JSON_DEPTH` (both ValueErrors)."""
    value = orjson.loads(raw)
    if _nests_deeper(value, MAX_JSON_DEPTH):
        raise TooDeep(f"JSON may nest at most {MAX_JSON_DEPTH} levels deep")
    return value


def _nests_deeper(value: Any, limit: int) -> bool:
    if not isinstance(value, (dict, list)):
        return False
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                pending.append((child, depth + 1))
    return False


_PARSED = "guildhall.json"
_FORM = "guildhall.form"
MAX_FORM_BYTES = 16 * 1024 * 1024


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The parsed body, ABSENT when empty, MALFORMED when not JSON or over ``limit`` bytes,
    TOO_DEEP when nested deeper than :data:`MAX_JSON_DEPTH`.

    The body is read in chunks and abandoned past the limit, so a huge upload
    costs the server no more than ``limit`` bytes of memory. The result is
    kept on the request: the session dependency reads it before opening a
    write transaction, and the handler gets the same value.
    """
    if _PARSED not in request.scope:
        request.scope[_PARSED] = await _read(request, limit)
    return request.scope[_PARSED]


def json_object(
    body: Any, refuse: Callable[[str], Exception], *, subject: str = "The request body"
) -> dict[str, Any]:
    """A body read by :func:`read_json` that must be a JSON object; absent means ``{}``.

    Otherwise ``refuse(message)`` is raised: each face passes its own error, and
    ``subject`` the way its document words the body.
    """
    if body is MALFORMED:
        raise refuse(f"{subject} must be valid JSON")
    if body is TOO_DEEP:
        raise refuse(f"{subject} may nest objects and arrays at most {MAX_JSON_DEPTH} deep")
    if body is ABSENT:
        return {}
    if not isinstance(body, dict):
        raise refuse(f"{subject} must be a JSON object")
    return body


async def _whole_body(request: Request, limit: int) -> bytes | None:
    """The body in full, or None when it is over ``limit`` bytes or never arrived whole.

    A client that hangs up mid-body, or sends broken chunked encoding, makes
    Starlette raise ``ClientDisconnect``. It is answered as a malformed body: nobody
    hears the answer, the request changes nothing, and the log gets no traceback.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return None
    return b"".join(chunks)


async def _read(request: Request, limit: int) -> Any:
    raw = await _whole_body(request, limit)
    if raw is None:
        return MALFORMED
    if not raw.strip():
        return ABSENT
    try:
        return parse_json(raw)
    except TooDeep:
        return TOO_DEEP
    except orjson.JSONDecodeError:
        return MALFORMED


@dataclass(frozen=True, slots=True)
class Form:
    """A multipart body, read whole: text fields and file contents (temp files closed)."""

    fields: dict[str, str]
    files: dict[str, bytes]


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> Form | Unreadable:
    """A multipart body's fields and files, or MALFORMED when unparsable or over ``limit``.

    Read like :func:`read_json`: in chunks, abandoned past the limit, and kept
    on the request so it is read before a write transaction opens.
    """
    if _FORM not in request.scope:
        request.scope[_FORM] = await _read_form(request, limit)
    return request.scope[_FORM]


async def _read_form(request: Request, limit: int) -> Form | Unreadable:
    raw = await _whole_body(request, limit)
    if raw is None:
        return MALFORMED
    # Starlette parses from the cached body, so the limit above holds for files too.
    request._body = raw
    try:
        parsed = await request.form(max_files=4, max_fields=20, max_part_size=limit)
    except (HTTPException, MultiPartException):
        return MALFORMED
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    try:
        for name, value in parsed.multi_items():
            if isinstance(value, UploadFile):
                files[name] = await value.read()
            else:
                fields[name] = value
    finally:
        await parsed.close()
    return Form(fields, files)


async def read_body(request: Request) -> None:
    """Read a write request's body (JSON or multipart) before its transaction opens."""
    if is_multipart(request):
        await read_form(request)
    else:
        await read_json(request)
