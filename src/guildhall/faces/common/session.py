"""The request's unit of work, as a FastAPI dependency shared by every face.

One request, one transaction: the session opens before authentication and
commits when the handler returns (``scope="function"``: before the response
is sent, so a client never sees success for a change that then fails to
commit). An exception rolls it back. Safe methods get a read transaction,
which SQLite runs beside the writer.

Work that must not share the request's transaction (stamping an API key's
last use while the request only reads) is queued with :func:`after_commit`
and runs once the transaction is over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from guildhall.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

AfterCommit = Callable[[Runtime], Awaitable[None]]


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def after_commit(request: Request, work: AfterCommit) -> None:
    """Run ``work`` after this request's transaction has committed."""
    pending: list[AfterCommit] = request.scope.setdefault("guildhall.after_commit", [])
    pending.append(work)


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime = runtime_of(request)
    write = request.method not in SAFE_METHODS
    async with runtime.database.unit_of_work(write=write) as session:
        yield session
    for work in request.scope.pop("guildhall.after_commit", ()):
        await work(runtime)


Session = Annotated[AsyncSession, Depends(request_session, scope="function")]
