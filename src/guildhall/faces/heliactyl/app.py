"""Routes of the Heliactyl face: API v3, and the unversioned API its public clients call.

Each handler runs in the request's unit of work with its authenticated
caller (``faces/common/session.endpoint``: one transaction, committed when
the handler returns), reads its fields in Heliactyl's order, calls the core
and renders the documented body; addcoins opens its own (``_addcoins``).
Core errors become documented ``status`` strings in ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.accounts import service as accounts
from guildhall.core.actor import Actor
from guildhall.core.economy import service as economy
from guildhall.core.hosting import summary
from guildhall.core.moderation import service as moderation
from guildhall.core.plans import service as plans
from guildhall.db.engine import Database
from guildhall.events import audit
from guildhall.faces.common import ratelimit
from guildhall.faces.common.app import face_app
from guildhall.faces.common.body import read_json
from guildhall.faces.common.responses import JSON
from guildhall.faces.common.session import action_endpoint, endpoint, runtime_of
from guildhall.faces.heliactyl import errors, wire
from guildhall.faces.heliactyl.auth import authenticate
from guildhall.runtime import Runtime

SUCCESS = {"status": "success"}


async def api_status(_request: Request, _session: AsyncSession, _caller: Actor) -> Response:
    return JSON(wire.API_STATUS)


async def userinfo(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    user_id = wire.query_id(request.query_params.getlist("id"))
    summary = await _user_summary(request, session, user_id)
    return JSON(wire.userinfo(user_id, summary))


async def legacy_userinfo(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    user_id = wire.query_id(request.query_params.getlist("id"))
    return JSON(wire.legacy_userinfo(await _user_summary(request, session, user_id)))


async def _user_summary(request: Request, session: AsyncSession, user_id: str) -> wire.Summary:
    """The account, its plan and coins, and the Pterodactyl user to show: the panel's own
    (as last refreshed) when a panel is configured and has one, else built from the account."""
    runtime = runtime_of(request)
    found = await summary.summary_by_identity(
        session,
        user_id,
        catalogue=runtime.catalogue,
        hosting=runtime.hosting,
        with_panel_user=runtime.games is not None,
    )
    panel_user = found.panel_user
    if panel_user is None:
        panel_user = wire.pterodactyl_user(found.account, found.servers)
    return wire.Summary(found.plan, found.coins, panel_user)


async def setcoins(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "body must be an object")
    return await _setcoins(session, caller, body)


async def legacy_setcoins(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_legacy_object(await read_json(request), "body must be an object")
    return await _setcoins(session, caller, body)


async def _setcoins(session: AsyncSession, caller: Actor, body: dict[str, Any]) -> Response:
    user_id = wire.require_id(body)
    account = await accounts.require_by_identity(session, user_id)
    coins = wire.require_coins(body)
    await economy.set_balance(session, account, coins, actor=caller)
    return JSON(SUCCESS)


async def addcoins(request: Request, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "body must be an object")
    return await _addcoins(runtime_of(request).database, caller, body, zero_allowed=False)


async def legacy_addcoins(request: Request, caller: Actor) -> Response:
    body = wire.require_legacy_object(await read_json(request), "body must be an object")
    return await _addcoins(runtime_of(request).database, caller, body, zero_allowed=True)


async def _addcoins(
    database: Database, caller: Actor, body: dict[str, Any], *, zero_allowed: bool
) -> Response:
    """Its own units of work (``action_endpoint``): a bot paying one account on every
    message sends many at once, and the core runs those together, waiting without
    holding a connection (``economy.adjust_by_identity_committed``)."""
    user_id = wire.require_id(body)
    try:
        coins = wire.require_coins(body)
    except errors.StatusError:
        async with database.unit_of_work(write=False) as session:
            await accounts.require_by_identity(session, user_id)  # an unknown user is said first
        raise
    if coins or not zero_allowed:
        await economy.adjust_by_identity_committed(database, user_id, coins, actor=caller)
    else:
        async with database.unit_of_work(write=False) as session:
            await accounts.require_by_identity(session, user_id)
    return JSON(SUCCESS)


async def setplan(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "missing body")
    await _setplan(request, session, caller, body, wire.optional_package(body))
    return JSON(SUCCESS)


async def legacy_setplan(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_legacy_object(await read_json(request), "missing body")
    await _setplan(request, session, caller, body, wire.legacy_package(body))
    return JSON(SUCCESS)


async def _setplan(
    request: Request,
    session: AsyncSession,
    caller: Actor,
    body: dict[str, Any],
    package: str | None,
) -> None:
    user_id = wire.require_id(body, status="missing id")
    account = await accounts.require_by_identity(session, user_id)
    await plans.set_package(session, account, package, runtime_of(request).catalogue, caller)


async def setresources(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_object(await read_json(request), "missing body")
    return await _setresources(session, caller, body, wire.resource_changes)


async def legacy_setresources(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.require_legacy_object(await read_json(request), "missing body")
    return await _setresources(session, caller, body, wire.legacy_resource_changes)


async def _setresources(
    session: AsyncSession,
    caller: Actor,
    body: dict[str, Any],
    changes_of: Callable[[dict[str, Any]], dict[str, int]],
) -> Response:
    user_id = wire.require_id(body, status="missing id")
    account = await accounts.require_by_identity(session, user_id)
    await plans.set_extra(session, account, changes_of(body), caller)
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
    app = face_app(runtime, "heliactyl", "Guildhall: Heliactyl API", express_paths=True)
    errors.install(app)
    get, post = ["GET"], ["POST"]
    routes = [
        ("/api", api_status, get),
        ("/api/v3/userinfo", userinfo, get),
        ("/api/v3/setcoins", setcoins, post),
        ("/api/v3/setplan", setplan, post),
        ("/api/v3/setresources", setresources, post),
        ("/api/v3/ban", ban, post),
        ("/api/v3/unban", unban, post),
        ("/api/v3/userinteractions", userinteractions, get),
        ("/api/v3/give_renewalbypass", give_renewalbypass, post),
        ("/api/v3/remove_renewalbypass", remove_renewalbypass, post),
        # The unversioned API of Heliactyl before v3 (wire.py lists its differences).
        ("/api/userinfo", legacy_userinfo, get),
        ("/api/setcoins", legacy_setcoins, post),
        ("/api/setplan", legacy_setplan, post),
        ("/api/setresources", legacy_setresources, post),
    ]
    for path, handler, methods in routes:
        app.add_route(path, endpoint(handler, authenticate), methods=methods)
    for path, action in (("/api/v3/addcoins", addcoins), ("/api/addcoins", legacy_addcoins)):
        app.add_route(path, action_endpoint(action, authenticate), methods=post)
    ratelimit.install(app, runtime, "heliactyl", errors.too_many)
    return app
