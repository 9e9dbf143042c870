"""Routes of the Heliactyl API v3 face.

Each handler runs in the request's unit of work with its authenticated
caller (``faces/common/session.endpoint``: one transaction, committed when
the handler returns), reads its fields in Heliactyl's order, calls the core
and renders the documented body. Core errors become documented ``status`` strings in ``errors.py``.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.accounts import service as accounts
from guildhall.core.actor import Actor
from guildhall.core.economy import service as economy
from guildhall.core.moderation import service as moderation
from guildhall.core.plans import service as plans
from guildhall.events import audit
from guildhall.faces.common import ratelimit
from guildhall.faces.common.app import face_app
from guildhall.faces.common.body import read_json
from guildhall.faces.common.responses import JSON
from guildhall.faces.common.session import endpoint, runtime_of
from guildhall.faces.heliactyl import errors, wire
from guildhall.faces.heliactyl.auth import authenticate
from guildhall.runtime import Runtime

SUCCESS = {"status": "success"}


async def api_status(_request: Request, _session: AsyncSession, _caller: Actor) -> Response:
    return JSON(wire.API_STATUS)


async def userinfo(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    user_id = wire.query_id(request.query_params.getlist("id"))
    account = await accounts.view_by_identity(session, user_id)
    runtime = runtime_of(request)
    plan = await plans.get(session, account.id, runtime.catalogue)
    coins = await economy.balance_of(session, account.id)
    servers = await runtime.hosting.summaries(session, account.id)
    return JSON(wire.userinfo(user_id, account, plan, coins, servers))


async def setcoins(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "body must be an object")
    user_id = wire.require_id(body)
    account = await accounts.require_by_identity(session, user_id)
    coins = wire.require_coins(body)
    await economy.set_balance(session, account, coins, actor=caller)
    return JSON(SUCCESS)


async def addcoins(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "body must be an object")
    user_id = wire.require_id(body)
    account = await accounts.require_by_identity(session, user_id)
    coins = wire.require_coins(body)
    await economy.adjust(session, account, coins, actor=caller)
    return JSON(SUCCESS)


async def setplan(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "missing body")
    user_id = wire.require_id(body, status="missing id")
    account = await accounts.require_by_identity(session, user_id)
    package = wire.optional_package(body)
    await plans.set_package(session, account, package, runtime_of(request).catalogue, caller)
    return JSON(SUCCESS)


async def setresources(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "missing body")
    user_id = wire.require_id(body, status="missing id")
    account = await accounts.require_by_identity(session, user_id)
    await plans.set_extra(session, account, wire.resource_changes(body), caller)
    return JSON(SUCCESS)


async def ban(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "body must be an object")
    user_id = wire.require_id(body)
    account = await accounts.require_by_identity(session, user_id)
    await moderation.ban(
        session,
        account,
        actor=caller,
        reason=wire.optional_reason(body),
        expires_at=wire.parse_expiration(body.get("expiration")),
    )
    return JSON({"status": "success", "message": "User banned successfully"})


async def unban(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "body must be an object")
    user_id = wire.require_id(body)
    account = await accounts.require_by_identity(session, user_id)
    await moderation.unban(session, account, actor=caller)
    return JSON({"status": "success", "message": "User unbanned successfully"})


async def userinteractions(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    user_id = wire.query_id(request.query_params.getlist("id"))
    account = await accounts.require_by_identity(session, user_id)
    limit = wire.parse_limit(request.query_params.getlist("limit"))
    records = await audit.for_account(session, account.id, limit)
    return JSON(wire.interactions(user_id, limit, records))


async def _set_bypass(
    request: Request, session: AsyncSession, caller: Actor, enabled: bool
) -> None:
    body = wire.require_object(await read_json(request), "missing body")
    user_id = wire.require_id(body, status="missing id")
    account = await accounts.require_by_identity(session, user_id)
    await plans.set_renewal_bypass(session, account, enabled, caller)


async def give_renewalbypass(request: Request, session: AsyncSession, caller: Actor) -> Response:
    await _set_bypass(request, session, caller, True)
    return JSON({"status": "success", "message": "Renewal bypass granted successfully."})


async def remove_renewalbypass(request: Request, session: AsyncSession, caller: Actor) -> Response:
    await _set_bypass(request, session, caller, False)
    return JSON({"status": "success", "message": "Renewal bypass removed successfully."})


def create_app(runtime: Runtime) -> FastAPI:
    app = face_app(runtime, "Guildhall: Heliactyl API v3")
    errors.install(app)
    get, post = ["GET"], ["POST"]
    routes = [
        ("/api", api_status, get),
        ("/api/v3/userinfo", userinfo, get),
        ("/api/v3/setcoins", setcoins, post),
        ("/api/v3/addcoins", addcoins, post),
        ("/api/v3/setplan", setplan, post),
        ("/api/v3/setresources", setresources, post),
        ("/api/v3/ban", ban, post),
        ("/api/v3/unban", unban, post),
        ("/api/v3/userinteractions", userinteractions, get),
        ("/api/v3/give_renewalbypass", give_renewalbypass, post),
        ("/api/v3/remove_renewalbypass", remove_renewalbypass, post),
    ]
    for path, handler, methods in routes:
        app.add_route(path, endpoint(handler, authenticate), methods=methods)
    ratelimit.install(app, runtime, "heliactyl", errors.too_many)
    return app
