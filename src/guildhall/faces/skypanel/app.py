"""Routes of the SkyPANEL API face.

Every response, success or error, is the document's envelope; the API
version comes from the Accept header (``VersionGate``). Power actions run
outside the request's transaction (``action_endpoint``): a graceful
shutdown may take seconds, and no transaction waits on it. So does a profile
update, whose password is verified before its write transaction opens.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from guildhall.core.accounts import passwords
from guildhall.core.accounts import service as accounts
from guildhall.core.actor import Actor
from guildhall.core.billing import service as billing
from guildhall.faces.common import ratelimit
from guildhall.faces.common.app import face_app
from guildhall.faces.common.body import read_json
from guildhall.faces.common.responses import JSON
from guildhall.faces.common.session import action_endpoint, endpoint, runtime_of
from guildhall.faces.skypanel import auth, errors, wire
from guildhall.faces.skypanel.errors import SkyError
from guildhall.runtime import Runtime


def _account_id(caller: Actor) -> int:
    assert caller.account_id is not None
    return caller.account_id


async def login(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    email, password = wire.login_request(await read_json(request))
    found = await passwords.login(session, email, password)
    if found is None:
        raise errors.unauthorized("Invalid email or password")
    await auth.refuse_banned(session, found.account_id)
    account = await accounts.view(session, found.account_id)
    token = auth.issue(runtime_of(request), found)
    return JSON(wire.ok({"token": token, "user": wire.login_user(account)}))


async def me(_request: Request, session: AsyncSession, caller: Actor) -> Response:
    return JSON(wire.ok(wire.profile(await accounts.view(session, _account_id(caller)))))


async def update_me(request: Request, caller: Actor) -> Response:
    """The password is checked before the write begins (``passwords.check_change``):
    a guess must not hold the database's write lock while Argon2 runs."""
    change = wire.ProfileChange(await read_json(request))
    account_id = _account_id(caller)
    runtime = runtime_of(request)
    checked = None
    if change.new_password is not None:
        assert change.current_password is not None  # ProfileChange requires it then
        checked = await passwords.check_change(
            runtime.database, account_id, change.current_password, change.new_password
        )
    async with runtime.database.unit_of_work() as session:
        await passwords.rename(
            session, account_id, caller, first_name=change.first_name, last_name=change.last_name
        )
        data = {}
        if checked is not None:
            renewed = await passwords.change(session, checked, caller)
            data["token"] = auth.issue(runtime, renewed)
        profile = wire.profile(await accounts.view(session, account_id))
    return JSON(wire.ok({**profile, **data}))


async def list_servers(request: Request, session: AsyncSession, caller: Actor) -> Response:
    found = await runtime_of(request).hosting.list_for(session, _account_id(caller))
    return JSON(wire.ok([wire.server(view) for view in found]))


async def get_server(request: Request, session: AsyncSession, caller: Actor) -> Response:
    hosting = runtime_of(request).hosting
    view = await hosting.get(session, request.path_params["id"], _account_id(caller))
    return JSON(wire.ok(wire.server(view)))


async def power(request: Request, caller: Actor) -> Response:
    action = wire.power_action(await read_json(request))
    hosting = runtime_of(request).hosting
    view = await hosting.power(request.path_params["id"], action, caller, _account_id(caller))
    return JSON(wire.ok(wire.server(view)))


async def list_invoices(_request: Request, session: AsyncSession, caller: Actor) -> Response:
    found = await billing.list_for(session, _account_id(caller))
    return JSON(wire.ok([wire.invoice(view) for view in found]))


class VersionGate:
    """Answers 406, in the envelope, when the Accept header asks for no version we serve."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            accept = next(
                (value.decode("latin-1") for name, value in scope["headers"] if name == b"accept"),
                None,
            )
            if wire.accepted_version(accept) is None:
                refusal = errors.render(
                    SkyError(
                        406,
                        "NOT_ACCEPTABLE",
                        "This API version is not available; "
                        "send Accept: application/vnd.skypanel.v1+json",
                        {"accept": accept},
                    )
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _groups(method: str, path: str) -> tuple[str, ...]:
    """Every route counts in ``default``; login routes also in ``auth``, and so does a
    profile update, which may carry a password guess (``currentPassword``)."""
    if path.startswith("/api/auth/") or (method == "PUT" and path == "/api/users/me"):
        return ("default", "auth")
    return ("default",)


def create_app(runtime: Runtime) -> FastAPI:
    app = face_app(runtime, "skypanel", "Guildhall: SkyPANEL API", express_paths=True)
    errors.install(app)
    app.add_route("/api/auth/login", endpoint(login, auth.public, write=False), methods=["POST"])
    app.add_route("/api/users/me", endpoint(me, auth.authenticate), methods=["GET"])
    app.add_route("/api/users/me", action_endpoint(update_me, auth.authenticate), methods=["PUT"])
    app.add_route("/api/servers", endpoint(list_servers, auth.authenticate), methods=["GET"])
    app.add_route("/api/servers/{id}", endpoint(get_server, auth.authenticate), methods=["GET"])
    app.add_route(
        "/api/servers/{id}/power", action_endpoint(power, auth.authenticate), methods=["POST"]
    )
    app.add_route(
        "/api/billing/invoices", endpoint(list_invoices, auth.authenticate), methods=["GET"]
    )
    app.add_middleware(VersionGate)
    ratelimit.install(app, runtime, "skypanel", errors.too_many, _groups)
    return app
