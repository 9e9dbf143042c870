"""One transaction per request, shared by every face.

:func:`endpoint` turns a face's handler ``(request, session, caller)`` into
a route: it opens the request's unit of work, authenticates the caller in
it, runs the handler, and commits when the handler returns, before the
response is sent (so a client never sees success for a change that then
fails to commit). An exception rolls everything back and reaches the face's
error handlers. Safe methods get a read transaction, which SQLite runs
beside the writer.

A write request's body is read before its transaction opens: on SQLite the
write transaction holds the database's one write lock, and a client that
sends its body slowly must not hold it meanwhile.

This is a plain wrapper rather than FastAPI dependencies: two dependencies
cost about 150 µs a request here, more than the SQL of most routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.actor import Actor
from guildhall.faces.common.body import read_json
from guildhall.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Authenticator = Callable[[Request, AsyncSession], Awaitable[Actor]]
Handler = Callable[[Request, AsyncSession, Actor], Awaitable[Response]]


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


@asynccontextmanager
async def request_transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed at the end of the block, or rolled back."""
    write = request.method not in SAFE_METHODS
    if write:
        await read_json(request)
    async with runtime_of(request).database.unit_of_work(write=write) as session:
        yield session


def endpoint(
    handler: Handler, authenticate: Authenticator
) -> Callable[[Request], Awaitable[Response]]:
    """A route running ``handler`` in the request's transaction, for an authenticated caller."""

    async def route(request: Request) -> Response:
        async with request_transaction(request) as session:
            caller = await authenticate(request, session)
            return await handler(request, session, caller)

    # Not functools.wraps: FastAPI reads the signature through __wrapped__,
    # and this route's only parameter is the request.
    route.__name__ = handler.__name__
    route.__doc__ = handler.__doc__
    return route
