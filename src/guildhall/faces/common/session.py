"""One transaction per request, shared by every face.

:func:`endpoint` turns a face's handler ``(request, session, caller)`` into
a route: it opens the request's unit of work, authenticates the caller in
it, runs the handler, and commits when the handler returns, before the
response is sent (so a client never sees success for a change that then
fails to commit). An exception rolls everything back and reaches the face's
error handlers (a change that ran alone, ``Prepared.alone``, is the handler's
last statement and committed already). Safe methods get a read transaction, which SQLite runs
beside the writer.

A request with a body is authenticated first, in a short read unit of work,
and only then is its body read (``faces/common/body.py``): a stranger's body
costs nothing, however large, and is answered without being read. The body
is read before the handler's transaction opens: on SQLite the write
transaction holds the database's one write lock, and a client that sends its
body slowly must not hold it meanwhile. The handler then runs in its own unit
of work with the caller found; a request without a body (GET, HEAD, OPTIONS)
is authenticated and handled in one.

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
from guildhall.faces.common.body import close_form, read_body
from guildhall.faces.common.keys import stamp_used
from guildhall.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Authenticator = Callable[[Request, AsyncSession], Awaitable[Actor]]
Handler = Callable[[Request, AsyncSession, Actor], Awaitable[Response]]


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _named(
    route: Callable[[Request], Awaitable[Response]], handler: Callable[..., object]
) -> Callable[[Request], Awaitable[Response]]:
    # Not functools.wraps: the route's only parameter is the request, and
    # __wrapped__ would point signature readers at the handler's.
    route.__name__ = handler.__name__
    route.__doc__ = handler.__doc__
    return route


async def _authenticated_body(
    request: Request, authenticate: Authenticator, file_limit: int | None
) -> Actor:
    """The caller, found in a short read unit of work; then the body, read."""
    async with runtime_of(request).database.unit_of_work(write=False) as session:
        caller = await authenticate(request, session)
    await read_body(request, file_limit)
    return caller


def endpoint(
    handler: Handler,
    authenticate: Authenticator,
    *,
    write: bool | None = None,
    uploads: int | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """A route running ``handler`` in the request's transaction, for an authenticated caller.

    ``write=False`` gives a POST that changes nothing (a login) a read transaction.
    ``uploads`` lets the route take multipart bodies, with files of at most that
    many bytes; without it a multipart body is refused unread.
    """

    async def route(request: Request) -> Response:
        database = runtime_of(request).database
        if request.method in SAFE_METHODS:
            async with database.unit_of_work(write=bool(write)) as session:
                caller = await authenticate(request, session)
                response = await handler(request, session, caller)
            return _succeeded(request, response)
        try:
            caller = await _authenticated_body(request, authenticate, uploads)
            async with database.unit_of_work(write=write is not False) as session:
                response = await handler(request, session, caller)
            return _succeeded(request, response)
        finally:
            close_form(request)

    return _named(route, handler)


def _succeeded(request: Request, response: Response) -> Response:
    """The handler's answer, committed: a success stamps the key that asked for it."""
    if response.status_code < 400:
        stamp_used(runtime_of(request), request)
    return response


ActionHandler = Callable[[Request, Actor], Awaitable[Response]]


def action_endpoint(
    handler: ActionHandler, authenticate: Authenticator
) -> Callable[[Request], Awaitable[Response]]:
    """A route whose work opens its own units of work (a long action, such as powering
    a server, that must not hold a transaction while it waits); the caller is
    authenticated in a short read transaction first, then the body is read."""

    async def route(request: Request) -> Response:
        caller = await _authenticated_body(request, authenticate, None)
        return _succeeded(request, await handler(request, caller))

    return _named(route, handler)
