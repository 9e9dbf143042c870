"""The FastAPI application every face starts from."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class FaceApp(FastAPI):
    """FastAPI with :class:`CloseUnreadBodies` outside every middleware, so it sees
    their answers too (a rate limit's 429, an origin guard's 403)."""

    def build_middleware_stack(self) -> ASGIApp:
        return CloseUnreadBodies(super().build_middleware_stack())


def face_app(runtime: Runtime, title: str) -> FastAPI:
    """An app with the runtime on ``app.state`` (``session.runtime_of`` reads it) and no
    generated API docs: each face's contract is its seed document, not an OpenAPI page.

    No trailing-slash redirects: the documents' paths have none, and a redirect is
    an empty 307 pointing at whatever Host the client sent, where a client expects
    the face's own 404 (its unknown-route answer, in its error format).

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
    app.state.runtime = runtime
    return app
