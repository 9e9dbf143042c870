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

This is a plain wrapper rather than FastAPI dependencies, and faces register
it with ``app.add_route`` (a plain Starlette route) rather than
``add_api_route``: a handler takes the request and nothing else, and
FastAPI's parameter solving and dependencies cost more per request here than
the SQL of most routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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


def _named(
    route: Callable[[Request], Awaitable[Response]], handler: Callable[..., object]
) -> Callable[[Request], Awaitable[Response]]:
    # Not functools.wraps: the route's only parameter is the request, and
    # __wrapped__ would point signature readers at the handler's.
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
        changes = request.method not in SAFE_METHODS
        if changes:
            await read_body(request)
        database = runtime_of(request).database
        async with database.unit_of_work(write=changes if write is None else write) as session:
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
