"""``Authorization: Bearer <jwt>``: HS256 tokens this face issues at login.

Claims: ``sub`` (the account id), ``uid`` (the account's uuid), ``role``,
``iat``, ``exp`` (after ``token_ttl_seconds``), ``jti`` (a random token id)
and ``ver``, the account's token version, raised by every password change so
that earlier tokens stop working. Only HS256 is accepted (an ``alg: none`` or
RS256 token is refused), every claim is required, and a banned account is a
403.

``uid`` binds the token to one account for good: ids are not reused, but a
token must not name whichever account holds its ``sub`` later (an account
deleted and its id given again, as SQLite did before migration 0009). Tokens
issued before ``uid`` existed are refused like any invalid token: their users
log in again.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from guildhall.core.accounts import passwords
from guildhall.core.actor import Actor
from guildhall.core.errors import is_digits
from guildhall.core.moderation import service as moderation
from guildhall.db.base import utcnow
from guildhall.faces.common.session import runtime_of
from guildhall.faces.skypanel.errors import SkyError, unauthorized
from guildhall.runtime import Runtime

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "uid", "role", "iat", "exp", "jti", "ver"]
ANONYMOUS = Actor("anonymous", "SkyPANEL login")


def signing_key(runtime: Runtime) -> bytes:
    configured = runtime.settings.faces.skypanel.jwt_secret
    return configured.encode() if configured else runtime.secrets.derive("skypanel:jwt")


def issue(runtime: Runtime, account: passwords.Credentials) -> str:
    now = utcnow()
    ttl = timedelta(seconds=runtime.settings.faces.skypanel.token_ttl_seconds)
    claims: dict[str, Any] = {
        "sub": str(account.account_id),
        "uid": account.uuid,
        "role": account.role,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(16),
        "ver": account.token_version,
    }
    return jwt.encode(claims, signing_key(runtime), algorithm=ALGORITHM)


async def refuse_banned(session: AsyncSession, account_id: int) -> None:
    if await moderation.active_ban(session, account_id) is not None:
        raise SkyError(403, "FORBIDDEN", "This account is banned")


async def public(_request: Request, _session: AsyncSession) -> Actor:
    return ANONYMOUS


async def authenticate(request: Request, session: AsyncSession) -> Actor:
    """The account the token names, if the token is genuine, current and its account allowed."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Authentication required")
    runtime = runtime_of(request)
    try:
        claims = jwt.decode(
            token.strip(),
            signing_key(runtime),
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        raise unauthorized("Invalid or expired token") from None
    # Only tokens we signed get here, but a sub that is no account id of ours
    # (one too large for the database, say) is refused, not looked up.
    if not is_digits(claims["sub"]):
        raise unauthorized("Invalid or expired token")
    account_id = int(claims["sub"])
    account = await passwords.credentials(session, account_id)
    # ``type() is int``: False and 0.0 equal a version 0 in Python but are not ours.
    version = claims["ver"]
    if (
        account is None
        or type(version) is not int
        or account.token_version != version
        or claims["uid"] != account.uuid
    ):
        raise unauthorized("Invalid or expired token")
    await refuse_banned(session, account_id)
    return Actor("account", f"account #{account_id}", account_id)
