"""Who is calling the Rustmail face: a panel session (cookie) or an API key.

Panel routes take the session cookie only, and check one permission on every
request (super admins from config hold them all; others hold what was granted
to them or to one of their roles, read afresh each time). External routes
take ``X-API-Key`` only: a ``rustmail_`` key (or a Guildhall key) whose
permissions include the one the route needs. The key's last use is stamped only
when its request succeeds (``faces/common/keys``): a refused one, for its body
too, must not make a key look in use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from guildhall.core.access import panel
from guildhall.core.access import service as access
from guildhall.core.actor import Actor
from guildhall.core.community import service as community
from guildhall.faces.common.keys import note_used
from guildhall.faces.common.session import runtime_of
from guildhall.faces.rustmail.errors import RustmailError, forbidden, unauthorized
from guildhall.runtime import Runtime

SESSION_COOKIE = "rustmail_session"
LOGIN_COOKIE = "rustmail_login"
PUBLIC = Actor("anonymous", "Rustmail panel visitor")


@dataclass(frozen=True, slots=True)
class PanelCaller:
    user: panel.PanelUser
    super_admin: bool
    permissions: frozenset[str]

    @property
    def actor(self) -> Actor:
        return Actor("account", f"panel user {self.user.discord_id}", self.user.account_id)


async def panel_caller(request: Request, session: AsyncSession) -> PanelCaller:
    token = request.cookies.get(SESSION_COOKIE)
    user = await panel.session_user(session, token) if token else None
    if user is None:
        raise unauthorized()
    return await permissions_of(runtime_of(request), session, user)


async def permissions_of(
    runtime: Runtime, session: AsyncSession, user: panel.PanelUser
) -> PanelCaller:
    settings = runtime.settings.faces.rustmail
    roles = await community.roles_of(session, user.discord_id)
    super_admin = user.discord_id in settings.super_admin_users or bool(
        set(roles) & set(settings.super_admin_roles)
    )
    held = (
        frozenset(panel.PERMISSIONS)
        if super_admin
        else frozenset(await panel.held(session, user.discord_id, roles))
    )
    return PanelCaller(user, super_admin, held)


Authenticator = Callable[[Request, AsyncSession], Awaitable[Actor]]


def needs(permission: str | None) -> Authenticator:
    """A panel authenticator: a logged-in user holding ``permission`` (None: any user)."""

    async def check(request: Request, session: AsyncSession) -> Actor:
        caller = await panel_caller(request, session)
        if permission is not None and permission not in caller.permissions:
            raise forbidden(permission)
        request.state.panel = caller
        return caller.actor

    return check


def api_key(permission: str) -> Authenticator:
    """An external-API authenticator: a valid key that holds ``permission``."""

    async def check(request: Request, session: AsyncSession) -> Actor:
        token = request.headers.get("x-api-key", "").strip()
        if not token:
            raise RustmailError(401, "UNAUTHORIZED", "Missing API key")
        principal = await access.authenticate(session, token)
        if principal is None:
            raise RustmailError(401, "UNAUTHORIZED", "Invalid API key")
        if not principal.allows(permission):
            raise RustmailError(403, "FORBIDDEN", f"This API key lacks {permission}")
        note_used(request, principal)
        return principal.actor

    return check


async def public(_request: Request, _session: AsyncSession) -> Actor:
    return PUBLIC
