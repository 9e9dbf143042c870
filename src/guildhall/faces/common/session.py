"""The request's unit of work, as a FastAPI dependency shared by every face.

One request, one transaction: the session opens before authentication and
commits when the handler returns (``scope="function"``: before the response
is sent, so a client never sees success for a change that then fails to
commit). An exception rolls it back. Safe methods get a read transaction,
which SQLite runs beside the writer.

A write request's body is read before its transaction opens: on SQLite the
write transaction holds the database's one write lock, and a client that
sends its body slowly must not hold it meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from guildhall.faces.common.body import read_json
from guildhall.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    write = request.method not in SAFE_METHODS
    if write:
        await read_json(request)
    async with runtime_of(request).database.unit_of_work(write=write) as session:
        yield session


Session = Annotated[AsyncSession, Depends(request_session, scope="function")]
