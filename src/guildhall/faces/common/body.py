"""Reading a request body without letting garbage, or a stranger's upload, through.

Every face reads a write request's body only after its caller is authenticated
(``faces/common/session.endpoint``), and then only as much as the route takes:

- JSON routes take at most :data:`MAX_BODY_BYTES`. A body that declares a larger
  ``Content-Length`` is refused without reading a byte of it; one that does not
  declare it (chunked) is read in chunks and abandoned past the limit.
- Only routes that take uploads (Aurora's item image routes) accept
  ``multipart/form-data``, and they stream it: each file goes to a temporary
  file (in memory up to :data:`SPOOL_BYTES`, on disk beyond) and the reading
  stops as soon as a file passes the route's cap (:data:`TOO_LARGE`), so an
  upload costs memory for one chunk and one spool, never its whole size.
- Any other route refuses a multipart body without reading it, as a body that
  is not JSON (:data:`MALFORMED`): each face's documented answer to a bad body
  (400 in Aurora, LD7, Rustmail and SkyPANEL; HTTP 200 with the route's status
  string in Heliactyl, whose every error after authentication is a 200). Not
  415: no document lists it, and their clients read the face's own error body.

A body left unread is not drained: the face app answers with
``Connection: close`` (``faces/common/app.py``), so the client cannot go on
pushing it.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from tempfile import SpooledTemporaryFile
from typing import Any

import orjson
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

MAX_BODY_BYTES = 1_000_000
MAX_JSON_DEPTH = 32
"""How deeply arrays and objects may nest in a body. The documents need a few
levels; a much deeper value could be stored, then fail to be written out when
read back (orjson stops at 255 levels, and a list adds its own), breaking that
list for every client."""
MAX_FORM_FILES = 4
MAX_FORM_FIELDS = 20
MAX_FORM_TEXT_BYTES = MAX_BODY_BYTES
"""The text fields of a multipart body together (Aurora's ``data``: the item as JSON)."""
MAX_PART_HEADER_BYTES = 8 * 1024
MAX_FORM_OVERHEAD_BYTES = 64 * 1024
"""What a multipart body may carry beyond one file and its text fields (boundaries,
part headers), so a body over its route's file cap is refused before any part is."""
SPOOL_BYTES = 256 * 1024
"""How much of an uploaded file stays in memory before it moves to a temporary file
on disk: an icon fits, and 40 uploads at once hold 10 MB at most."""


class Unreadable(Enum):
    """Why a body has no value: it was empty, not JSON (or not one this route takes),
    nested too deeply, or carried a file over the route's cap."""

    ABSENT = "absent"
    MALFORMED = "malformed"
    TOO_DEEP = "too_deep"
    TOO_LARGE = "too_large"


ABSENT = Unreadable.ABSENT
MALFORMED = Unreadable.MALFORMED
TOO_DEEP = Unreadable.TOO_DEEP
TOO_LARGE = Unreadable.TOO_LARGE


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


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def declares_more_than(request: Request, limit: int) -> bool:
    """Whether the body's ``Content-Length`` says it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    return declared.isascii() and declared.isdigit() and int(declared) > limit


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
    if body is MALFORMED or body is TOO_LARGE:
        raise refuse(f"{subject} must be valid JSON")
    if body is TOO_DEEP:
        raise refuse(f"{subject} may nest objects and arrays at most {MAX_JSON_DEPTH} deep")
    if body is ABSENT:
        return {}
    if not isinstance(body, dict):
        raise refuse(f"{subject} must be a JSON object")
    return body


async def whole_body(request: Request, limit: int) -> bytes | None:
    """The body in full, or None when it is over ``limit`` bytes or never arrived whole.

    A client that hangs up mid-body, or sends broken chunked encoding, makes
    Starlette raise ``ClientDisconnect``. It is answered as a malformed body: nobody
    hears the answer, the request changes nothing, and the log gets no traceback.
    """
    if declares_more_than(request, limit):
        return None
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
    raw = await whole_body(request, limit)
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
class Upload:
    """One file of a multipart body, at position 0 of its temporary file."""

    file: SpooledTemporaryFile[bytes]
    size: int
    filename: str


@dataclass(frozen=True, slots=True)
class Form:
    """A multipart body: its text fields, and its files spooled to temporary files
    (closed when the request ends, by ``session.endpoint``)."""

    fields: dict[str, str]
    files: dict[str, Upload]

    def close(self) -> None:
        for upload in self.files.values():
            upload.file.close()


async def read_form(request: Request, file_limit: int) -> Form | Unreadable:
    """A multipart body's fields and files; TOO_LARGE as soon as a file passes
    ``file_limit`` bytes, or the body the size of one such file and its text fields
    (:data:`MAX_FORM_OVERHEAD_BYTES` aside); MALFORMED when unparsable, cut short,
    or over the limits on fields (:data:`MAX_FORM_FIELDS`, :data:`MAX_FORM_TEXT_BYTES`)
    or files (:data:`MAX_FORM_FILES`).

    Kept on the request like :func:`read_json`, so it is read before a write
    transaction opens.
    """
    if _FORM not in request.scope:
        request.scope[_FORM] = await _FormReader(file_limit).read(request)
    form: Form | Unreadable = request.scope[_FORM]
    return form


def close_form(request: Request) -> None:
    """Close the temporary files of the request's multipart body, if it had one."""
    form = request.scope.get(_FORM)
    if isinstance(form, Form):
        form.close()


class _Refused(Exception):
    def __init__(self, why: Unreadable) -> None:
        self.why = why


class _FormReader:
    """python-multipart's streaming parser, fed chunk by chunk from the request.

    Its callbacks collect text fields in memory (capped) and note file bytes;
    each chunk's file bytes are then written to the part's spool, in a thread
    once the spool has moved to disk, so the event loop never waits on a disk.
    """

    def __init__(self, file_limit: int) -> None:
        self.file_limit = file_limit
        self.body_limit = file_limit + MAX_FORM_TEXT_BYTES + MAX_FORM_OVERHEAD_BYTES
        self.fields: dict[str, str] = {}
        self.files: dict[str, Upload] = {}
        self.spools: list[SpooledTemporaryFile[bytes]] = []
        self.text_bytes = 0
        self.charset = "utf-8"
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._filename: str | None = None
        self._text = bytearray()
        self._spool: SpooledTemporaryFile[bytes] | None = None
        self._size = 0
        self._text_parts = 0
        self._pending: list[tuple[SpooledTemporaryFile[bytes], bytes, bool]] = []

    async def read(self, request: Request) -> Form | Unreadable:
        _, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            return MALFORMED
        charset = params.get(b"charset", b"utf-8").decode("latin-1")
        try:
            self.charset = codecs.lookup(charset).name
        except LookupError:
            self.charset = "latin-1"
        try:
            parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value_part,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                },
            )
            if declares_more_than(request, self.body_limit):
                raise _Refused(TOO_LARGE)
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > self.body_limit:
                    raise _Refused(TOO_LARGE)
                parser.write(chunk)
                await self._flush()
            parser.finalize()
            await self._flush()
        except _Refused as refused:
            return self._abandon(refused.why)
        except (FormParserError, ClientDisconnect, UnicodeDecodeError):
            return self._abandon(MALFORMED)
        except BaseException:
            self._abandon(MALFORMED)
            raise
        for upload in self.files.values():
            upload.file.seek(0)
        return Form(self.fields, self.files)

    def _abandon(self, why: Unreadable) -> Unreadable:
        for spool in self.spools:
            spool.close()
        return why

    async def _flush(self) -> None:
        """Write the file bytes the last chunk carried to their spools."""
        for spool, data, on_disk in self._pending:
            if spool.closed:  # replaced by a later file of the same name
                continue
            if on_disk:
                await asyncio.to_thread(spool.write, data)
            else:
                spool.write(data)
        self._pending.clear()

    def _part_begin(self) -> None:
        self._disposition = b""
        self._text = bytearray()
        self._spool = None
        self._size = 0

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        if len(self._header_name) > MAX_PART_HEADER_BYTES:
            raise _Refused(MALFORMED)

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > MAX_PART_HEADER_BYTES:
            raise _Refused(MALFORMED)

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _Refused(MALFORMED)
        self._name = options[b"name"].decode(self.charset)
        if b"filename" in options:
            if len(self.spools) >= MAX_FORM_FILES:
                raise _Refused(MALFORMED)
            self._filename = options[b"filename"].decode(self.charset)
            # Closed by Form.close when the request ends, or by _abandon.
            self._spool = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
            self.spools.append(self._spool)
        else:
            self._text_parts += 1
            if self._text_parts > MAX_FORM_FIELDS:
                raise _Refused(MALFORMED)
            self._filename = None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._spool is None:
            self.text_bytes += end - start
            if self.text_bytes > MAX_FORM_TEXT_BYTES:
                raise _Refused(MALFORMED)
            self._text += data[start:end]
            return
        self._size += end - start
        if self._size > self.file_limit:
            raise _Refused(TOO_LARGE)
        self._pending.append((self._spool, data[start:end], self._size > SPOOL_BYTES))

    def _part_end(self) -> None:
        if self._spool is None:
            self.fields[self._name] = self._text.decode(self.charset)
            return
        if self._name in self.files:  # a repeated name: the last one counts
            self.files[self._name].file.close()
        self.files[self._name] = Upload(self._spool, self._size, self._filename or "")


async def read_body(request: Request, file_limit: int | None = None) -> None:
    """Read a write request's body before its transaction opens: JSON, or a multipart
    body streamed to temporary files on a route that takes uploads (``file_limit``,
    the largest file it takes); a multipart body anywhere else is MALFORMED, unread."""
    if not is_multipart(request):
        await read_json(request)
    elif file_limit is None:
        request.scope[_PARSED] = MALFORMED
    else:
        await read_form(request, file_limit)
