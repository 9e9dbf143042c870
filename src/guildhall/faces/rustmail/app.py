"""Routes of the Rustmail face: panel login, bot control, tickets, keys, permissions.

Panel routes authenticate by session cookie and check one permission each
(``auth.needs``); external routes take an API key (``auth.api_key``).

The login callback holds no transaction while the OAuth provider answers (a
slow provider would otherwise hold SQLite's write lock, or a pooled
PostgreSQL connection, for as long as it takes): it consumes the login state
in one short unit of work, asks the provider (within
``[faces.rustmail.oauth] timeout_seconds``), then opens the session in a new
one. A state is consumed even when the provider then refuses or fails: like
the provider's code, it is good for one try.

A banned account (a ban in force on its Guildhall account, from Heliactyl's
``/api/v3/ban``) cannot log in: the OAuth callback answers 403 ``FORBIDDEN``
(the document's status for a refused caller; SkyPANEL refuses a banned login
the same way) and opens no session. The ban itself ended the sessions it had,
so their cookies get the unauthenticated answer (401, from
``/api/panel/check`` too).

``GET /api/bot/config``: the document says sensitive fields (token, secrets)
are not returned. They are returned masked (``"********"``, or "" when unset),
never decrypted: the value is not returned, and a panel that sends back what it
read keeps them (the mask means "unchanged"). They are stored sealed
(``core/support/service.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from guildhall.config import RustmailFaceSettings
from guildhall.connectors.discord.connection import LEASE
from guildhall.connectors.oauth.provider import OAuthProvider, ProviderError
from guildhall.core.access import panel
from guildhall.core.access import service as access
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.actor import Actor
from guildhall.core.community import service as community
from guildhall.core.errors import Invalid, is_digits
from guildhall.core.moderation import service as moderation
from guildhall.core.support import service as support
from guildhall.faces.common import clients, ratelimit
from guildhall.faces.common.app import face_app
from guildhall.faces.common.body import read_json
from guildhall.faces.common.origin import SameOriginGuard, origin_of
from guildhall.faces.common.paths import local_path
from guildhall.faces.common.responses import JSON
from guildhall.faces.common.session import action_endpoint, endpoint, runtime_of
from guildhall.faces.rustmail import errors, wire
from guildhall.faces.rustmail.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    api_key,
    needs,
    panel_caller,
    public,
)
from guildhall.faces.rustmail.errors import RustmailError, bad_request
from guildhall.runtime import Runtime

T = TypeVar("T")

KEY_PREFIX = "rustmail_"
LOGIN_ACTOR = Actor("system", "Rustmail panel login")
SUCCESS = {"success": True}


def _settings(request: Request) -> RustmailFaceSettings:
    return runtime_of(request).settings.faces.rustmail


def _provider(request: Request) -> OAuthProvider:
    return OAuthProvider.configured_by(_settings(request).oauth)


def _scheme(request: Request) -> str:
    trusted = clients.parse_networks(runtime_of(request).settings.trusted_proxies)
    return clients.request_scheme(request.scope, trusted)


def _cookie(response: Response, request: Request, name: str, value: str, seconds: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        httponly=True,
        samesite="lax",
        secure=_scheme(request) == "https",
        path="/",
    )


# ---- login -----------------------------------------------------------------


async def login(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    settings = _settings(request)
    browser = secrets.token_urlsafe(32)
    state = await panel.begin_login(
        session,
        browser,
        # The panel sends ``redirect``; Guildhall's own links sent ``next``.
        local_path(request.query_params.get("redirect") or request.query_params.get("next")),
        timedelta(seconds=settings.login_ttl_seconds),
    )
    response = RedirectResponse(_provider(request).authorization_url(state), status_code=302)
    _cookie(response, request, LOGIN_COOKIE, browser, settings.login_ttl_seconds)
    return response


async def callback(request: Request, _caller: Actor) -> Response:
    """Three steps, none across another: consume the state, ask the provider, open the session."""
    state = request.query_params.get("state", "")
    code = request.query_params.get("code", "")
    browser = request.cookies.get(LOGIN_COOKIE, "")
    if not state or not browser:
        raise bad_request("Missing login state")
    database = runtime_of(request).database
    async with database.unit_of_work() as session:
        try:
            next_path = await panel.finish_login(session, state, browser)
        except Invalid:
            raise bad_request("Invalid or reused login state") from None
        if not code:
            raise bad_request("Missing authorization code")
    try:
        person = await _provider(request).identify(code)
    except ProviderError as exc:
        raise RustmailError(400, "OAUTH_ERROR", f"Login failed: {exc}") from None
    settings = _settings(request)
    async with database.unit_of_work() as session:
        account = await accounts.ensure_for_identity(
            session, Provider.DISCORD, person.id, person.username, LOGIN_ACTOR
        )
        if await moderation.active_ban(session, account.id) is not None:
            # As SkyPANEL answers a banned account's login; the document's 403 wording.
            raise RustmailError(403, "FORBIDDEN", "This account is banned")
        token = await panel.open_session(
            session,
            account.id,
            person.id,
            person.avatar,
            timedelta(seconds=settings.session_ttl_seconds),
        )
    response = RedirectResponse(wire.landing(settings.panel_url, next_path), status_code=302)
    _cookie(response, request, SESSION_COOKIE, token, settings.session_ttl_seconds)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


async def logout(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await panel.close_session(session, token)
    response = RedirectResponse(wire.landing(_settings(request).panel_url, "/"), status_code=302)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def panel_home(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    """Where login and logout land when no ``panel_url`` names the real panel."""
    try:
        caller = await panel_caller(request, session)
    except RustmailError:
        return HTMLResponse(wire.panel_home(None, request.url.path), headers=wire.HOME_HEADERS)
    account = await accounts.view(session, caller.user.account_id)
    page = wire.panel_home((account.username, caller.user.discord_id), request.url.path)
    return HTMLResponse(page, headers=wire.HOME_HEADERS)


# ---- bot ---------------------------------------------------------------------


async def bot_status(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    connected = runtime_of(request).discord is not None
    state = await support.status(session, gateway=LEASE if connected else None)
    body: dict[str, object] = {
        "online": state.online,
        "uptime": state.uptime,
        "presence": state.presence,
        "guild_count": state.guild_count,
        "ticket_count": state.ticket_count,
    }
    if connected:
        body["offline_reason"] = state.reason  # beyond the document: why it is offline
    return JSON(body)


async def _bot_change(request: Request, change: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Commit a change of the bot's stored state, then have the Discord connection
    (when there is one) follow it at once rather than on its next round."""
    runtime = runtime_of(request)
    async with runtime.database.unit_of_work() as session:
        outcome = await change(session)
    runtime.wake_discord()
    return outcome


async def bot_start(request: Request, caller: Actor) -> Response:
    started = await _bot_change(request, lambda session: support.start(session, caller))
    return JSON(
        {"success": True, "message": "Bot started" if started else "Bot is already running"}
    )


async def bot_stop(request: Request, caller: Actor) -> Response:
    stopped = await _bot_change(request, lambda session: support.stop(session, caller))
    return JSON(
        {"success": True, "message": "Bot stopped" if stopped else "Bot is already stopped"}
    )


async def bot_restart(request: Request, caller: Actor) -> Response:
    await _bot_change(request, lambda session: support.restart(session, caller))
    return JSON({"success": True, "message": "Bot restarted"})


async def bot_presence(request: Request, caller: Actor) -> Response:
    status = wire.json_object(await read_json(request)).get("status")
    if not isinstance(status, str):
        raise bad_request("status must be a string")
    await _bot_change(request, lambda session: support.set_presence(session, status, caller))
    return JSON(SUCCESS)


async def get_config(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON(await support.config(session))


async def put_config(request: Request, session: AsyncSession, caller: Actor) -> Response:
    sealer = runtime_of(request).secrets.sealer(support.SEAL_PURPOSE)
    update = wire.json_object(await read_json(request))
    await support.update_config(session, update, caller, sealer)
    return JSON(SUCCESS)


async def list_tickets(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    params = request.query_params
    status = params.get("status") or "open"
    if status not in wire.STATUSES:
        raise bad_request("status must be open, closed or all")
    limit, offset = params.get("limit") or "50", params.get("offset") or "0"
    if not (is_digits(limit, 9) and is_digits(offset, 9)):
        raise bad_request("limit and offset must be whole numbers")
    rows, total = await support.tickets(
        session, wire.STATUSES[status], min(int(limit), 200), int(offset)
    )
    return JSON({"tickets": [wire.ticket(row) for row in rows], "total": total})


# ---- external API --------------------------------------------------------


async def external_create(request: Request, caller: Actor) -> Response:
    """With Discord connected the ticket's channel is made there first (no unit of work
    open meanwhile) and its real id returned; without, it is allocated locally."""
    discord_id = wire.json_object(await read_json(request)).get("discord_id")
    if not is_digits(discord_id, 32):
        raise bad_request("discord_id must be a Discord user id (a string of digits)")
    runtime = runtime_of(request)
    if runtime.modmail is not None:
        opened = await runtime.modmail.open_for_api(discord_id, caller)
    else:
        async with runtime.database.unit_of_work() as session:
            opened = await support.open_ticket_for_member(session, discord_id, caller)
    return JSON({"success": True, "ticket_id": opened.public_id, "channel_id": opened.channel_id})


# ---- API keys ----------------------------------------------------------------


async def list_keys(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    keys = await access.list_keys(session, prefix=KEY_PREFIX)
    return JSON({"keys": [wire.api_key(key) for key in keys]})


async def create_key(request: Request, session: AsyncSession, caller: Actor) -> Response:
    name, permissions, expires = wire.new_key_request(wire.json_object(await read_json(request)))
    key, plaintext = await access.create(
        session,
        name=name,
        scopes=permissions,
        actor=caller,
        expires_at=expires,
        prefix=KEY_PREFIX,
        token=secrets.token_hex(32),
    )
    return JSON({"id": key.id, "key": plaintext, "name": key.name})


async def _own_key(session: AsyncSession, key_id: str) -> int:
    if not is_digits(key_id):
        raise RustmailError(404, "NOT_FOUND", "API key not found")
    keys = {key.id for key in await access.list_keys(session, prefix=KEY_PREFIX)}
    if int(key_id) not in keys:
        raise RustmailError(404, "NOT_FOUND", "API key not found")
    return int(key_id)


async def revoke_key(request: Request, session: AsyncSession, caller: Actor) -> Response:
    await access.revoke(session, await _own_key(session, request.path_params["id"]), caller)
    return JSON(SUCCESS)


async def delete_key(request: Request, session: AsyncSession, caller: Actor) -> Response:
    await access.delete(session, await _own_key(session, request.path_params["id"]), caller)
    return JSON(SUCCESS)


# ---- administration ------------------------------------------------------------


async def members(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    found = await community.guild_members(session)
    return JSON(
        {"members": [{"id": m.id, "username": m.username, "avatar": m.avatar} for m in found]}
    )


async def roles(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    found = await community.directory(session, "role")
    return JSON(
        {
            "roles": [
                {"id": r.key, "name": r.name, "color": wire.role_color(r.detail)} for r in found
            ]
        }
    )


async def list_grants(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON({"permissions": [wire.grant(row) for row in await panel.grants(session)]})


async def add_grant(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    fields = [body.get(name) for name in ("subject_type", "subject_id", "permission")]
    texts = [value for value in fields if isinstance(value, str) and value]
    if len(texts) != len(fields):
        raise bad_request("subject_type, subject_id and permission are required")
    subject_type, subject_id, permission = texts
    grant_id = await panel.grant(
        session,
        subject_type,
        subject_id,
        permission,
        granted_by=request.state.panel.user.discord_id,
        actor=caller,
    )
    return JSON({"success": True, "id": grant_id})


async def remove_grant(request: Request, session: AsyncSession, caller: Actor) -> Response:
    grant_id = request.path_params["id"]
    if not is_digits(grant_id):
        raise RustmailError(404, "NOT_FOUND", "Permission grant not found")
    await panel.revoke(session, int(grant_id), caller)
    return JSON(SUCCESS)


# ---- the logged-in user --------------------------------------------------------


async def avatar(request: Request, _session: AsyncSession, _caller: Actor) -> Response:
    user = request.state.panel.user
    return JSON({"avatar_url": wire.avatar_url(user.discord_id, user.avatar)})


async def my_permissions(request: Request, _session: AsyncSession, _caller: Actor) -> Response:
    caller = request.state.panel
    return JSON({"is_super_admin": caller.super_admin, "permissions": sorted(caller.permissions)})


async def panel_check(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    caller = await panel_caller(request, session)  # 401 without a session, as the original
    if "view_panel" not in caller.permissions:
        raise errors.forbidden("view_panel")
    return JSON({"authenticated": True, "user_id": caller.user.discord_id})


def _groups(_method: str, path: str) -> tuple[str, ...]:
    """Logins count in ``auth`` too: each one writes a login state."""
    return ("default", "auth") if path.startswith("/api/auth/") else ("default",)


def create_app(runtime: Runtime) -> FastAPI:
    app = face_app(runtime, "rustmail", "Guildhall: Rustmail API")
    errors.install(app)
    get, post, put, delete = ["GET"], ["POST"], ["PUT"], ["DELETE"]
    routes = [
        ("/api/auth/login", login, get, public, True),
        ("/api/auth/logout", logout, get, public, True),
        ("/api/bot/status", bot_status, get, needs("view_panel"), None),
        ("/api/bot/config", get_config, get, needs("manage_config"), None),
        ("/api/bot/config", put_config, put, needs("manage_config"), None),
        ("/api/bot/tickets", list_tickets, get, needs("view_tickets"), None),
        ("/api/apikeys", list_keys, get, needs("manage_api_keys"), None),
        ("/api/apikeys", create_key, post, needs("manage_api_keys"), None),
        ("/api/apikeys/{id}/revoke", revoke_key, post, needs("manage_api_keys"), None),
        ("/api/apikeys/{id}", delete_key, delete, needs("manage_api_keys"), None),
        ("/api/admin/members", members, get, needs("manage_permissions"), None),
        ("/api/admin/roles", roles, get, needs("manage_permissions"), None),
        ("/api/admin/permissions", list_grants, get, needs("manage_permissions"), None),
        ("/api/admin/permissions", add_grant, post, needs("manage_permissions"), None),
        ("/api/admin/permissions/{id}", remove_grant, delete, needs("manage_permissions"), None),
        ("/api/user/avatar", avatar, get, needs(None), None),
        ("/api/user/permissions", my_permissions, get, needs(None), None),
        ("/api/panel/check", panel_check, get, public, None),
        ("/", panel_home, get, public, None),
        ("/panel", panel_home, get, public, None),
        ("/panel/{page:path}", panel_home, get, public, None),
    ]
    for path, handler, methods, check, write in routes:
        app.add_route(path, endpoint(handler, check, write=write), methods=methods)
    # Their own units of work, none open while the OAuth provider or Discord answers.
    actions = [
        ("/api/auth/callback", callback, get, public),
        ("/api/bot/start", bot_start, post, needs("manage_bot")),
        ("/api/bot/stop", bot_stop, post, needs("manage_bot")),
        ("/api/bot/restart", bot_restart, post, needs("manage_bot")),
        ("/api/bot/presence", bot_presence, post, needs("manage_bot")),
        ("/api/externals/tickets/create", external_create, post, api_key("write:tickets")),
    ]
    for path, action, methods, check in actions:
        app.add_route(path, action_endpoint(action, check), methods=methods)
    trusted = clients.parse_networks(runtime.settings.trusted_proxies)
    app.add_middleware(
        SameOriginGuard,
        refuse=errors.cross_site,
        scheme_of=lambda scope: clients.request_scheme(scope, trusted),
        # The panel's public address, when a proxy in front changes the Host.
        also=frozenset({origin_of(runtime.settings.faces.rustmail.oauth.redirect_url)}),
    )
    ratelimit.install(app, runtime, "rustmail", errors.too_many, _groups)
    return app
