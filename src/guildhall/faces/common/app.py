"""The FastAPI application every face starts from."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guildhall.faces.common import openapi
from guildhall.faces.common.access_log import AccessLog
from guildhall.faces.common.clients import parse_networks
from guildhall.faces.common.cors import CorsPolicy
from guildhall.runtime import Runtime

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 ")):
            return True
    return False


class CloseUnreadBodies:
    """Answers ``Connection: close`` to a request whose body the app left unread (a
    stranger's, one over the limit, a multipart body on a JSON route, a rate-limited
    one), so the client cannot keep pushing it: the server would otherwise read the
    rest to find the next request on the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        read = False

        async def receive_noting_the_end() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                read = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not read:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive_noting_the_end, send_closing)


class ExpressPaths:
    """Routes a path with one trailing slash as the path without it, as Express does.

    Express (Heliactyl, LD7 and SkyPANEL run on it) routes non-strictly:
    ``/api/userinfo/?id=1`` is ``/api/userinfo``, and real clients send it.
    Only one slash goes (``/api/userinfo//`` stays unknown, as in Express), and
    the request is served in place, never redirected. It wraps the whole app,
    so the rate limiter counts the path its route has.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            # Express matches the path as sent: an encoded slash (%2F) is not one.
            raw: bytes = scope.get("raw_path") or path.encode()
            if len(raw) > 1 and raw.endswith(b"/") and not raw.endswith(b"//"):
                scope = dict(scope, path=path[:-1], raw_path=raw[:-1])
        await self.app(scope, receive, send)


class FaceApp(FastAPI):
    """A face's app. Outside everything (rate limits and guards included), so they
    see those answers too (a 429, an origin guard's 403): :class:`CloseUnreadBodies`,
    the origins it lets call it (``cors_origins``), :class:`ExpressPaths`, and
    the access log (``log_access``)."""

    face: str = ""
    express_paths: bool = False
    cors_origins: tuple[str, ...] = ()
    access_log: bool = False

    def build_middleware_stack(self) -> ASGIApp:
        stack: ASGIApp = CloseUnreadBodies(super().build_middleware_stack())
        if self.cors_origins:
            stack = CorsPolicy(stack, self.cors_origins)
        if self.express_paths:
            stack = ExpressPaths(stack)
        if self.access_log:
            trusted = parse_networks(self.state.runtime.settings.trusted_proxies)
            stack = AccessLog(stack, self.face, trusted)
        return stack


def face_app(runtime: Runtime, face: str, title: str, *, express_paths: bool = False) -> FastAPI:
    """An app with the runtime on ``app.state`` (``session.runtime_of`` reads it) and no
    generated API docs: each face keeps its OpenAPI document by hand, served only when
    ``serve_openapi`` says so (``faces/common/openapi.py``).

    No trailing-slash redirects: a redirect is an empty 307 pointing at whatever
    Host the client sent. A face whose original runs on Express
    (``express_paths``) serves a path with one trailing slash as the path
    without it; the others answer their own 404 (their unknown-route answer,
    in their error format), as the originals do. Pages of the origins listed in
    the face's ``cors_origins`` may call it from a browser (``faces/common/cors.py``).

    FastAPI's OpenTelemetry hooks are off: Guildhall configures no exporter, and
    asking the global providers whether one exists cost about 12 µs per request
    (a twentieth of a userinfo request) for nothing."""
    app = FaceApp(
        title=title,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        telemetry=NO_TELEMETRY,
    )
    app.face = face
    app.express_paths = express_paths
    app.access_log = runtime.settings.log_access
    app.cors_origins = tuple(getattr(runtime.settings.faces, face).allowed_origins)
    app.state.runtime = runtime
    if getattr(runtime.settings.faces, face).serve_openapi:
        openapi.install(app, face)
    return app
