"""The FastAPI application every face starts from."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Receive, Scope, Send

from guildhall.faces.common.access_log import AccessLog
from guildhall.faces.common.clients import parse_networks
from guildhall.faces.common.cors import CorsPolicy
from guildhall.runtime import Runtime

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


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
    """A face's app. Outside everything (rate limits and guards included): the
    origins it lets call it (``cors_origins``), :class:`ExpressPaths`, and the
    access log (``log_access``)."""

    face: str = ""
    express_paths: bool = False
    cors_origins: tuple[str, ...] = ()
    access_log: bool = False

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
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
    generated API docs: each face's contract is its seed document, not an OpenAPI page.

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
    return app
