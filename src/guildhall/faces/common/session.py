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
from guildhall.faces.common.body import read_body
from guildhall.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Authenticator = Callable[[Request, AsyncSession], Awaitable[Actor]]
Handler = Callable[[Request, AsyncSession, Actor], Awaitable[Response]]


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


@asynccontextmanager
async def request_transaction(
    request: Request, write: bool | None = None
) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed at the end of the block, or rolled back.

    ``write`` defaults to the method: safe methods read, the others write.
    """
    if write is None:
        write = request.method not in SAFE_METHODS
    if request.method not in SAFE_METHODS:
        await read_body(request)
    async with runtime_of(request).database.unit_of_work(write=write) as session:
        yield session


def _named(
    route: Callable[[Request], Awaitable[Response]], handler: Callable[..., object]
) -> Callable[[Request], Awaitable[Response]]:
    # Not functools.wraps: FastAPI reads the signature through __wrapped__,
    # and a route's only parameter is the request.
    route.__name__ = handler.__name__
    route.__doc__ = handler.__doc__
    return route


def endpoint(
    handler: Handler, authenticate: Authenticator, *, write: bool | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A route running ``handler`` in the request's transaction, for an authenticated caller.

    ``write=False`` gives a POST that changes nothing (a login) a read transaction.
    """

    async def route(request: Request) -> Response:
        async with request_transaction(request, write) as session:
            caller = await authenticate(request, session)
            return await handler(request, session, caller)

    return _named(route, handler)


ActionHandler = Callable[[Request, Actor], Awaitable[Response]]


def action_endpoint(
    handler: ActionHandler, authenticate: Authenticator
) -> Callable[[Request], Awaitable[Response]]:
    """A route whose work opens its own units of work (a long action, such as powering
    a server, that must not hold a transaction while it waits); the caller is
    authenticated in a short read transaction first."""

    async def route(request: Request) -> Response:
        await read_body(request)
        async with runtime_of(request).database.unit_of_work(write=False) as session:
            caller = await authenticate(request, session)
        return await handler(request, caller)

    return _named(route, handler)
