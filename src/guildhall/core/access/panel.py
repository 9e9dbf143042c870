"""Panel logins: OAuth states, browser sessions and the permissions staff hold.

A session cookie carries 256 random bits; only their SHA-256 is stored, with
an expiry. A login ``state`` is single-use and tied to the browser that
started the login (a second random value in a cookie, also stored hashed).
Provider tokens are used once, to read who logged in, and never stored.

Permissions are granted to a user or to a role; a member holds a role's
permissions through the guild directory. Every check reads the grants again,
so a revoked grant counts from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Boolean,
    CompoundSelect,
    ForeignKey,
    Select,
    String,
    UniqueConstraint,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from guildhall.core.access.models import ConsoleSession
from guildhall.core.actor import Actor
from guildhall.core.errors import Conflict, Invalid, NotFound, is_digits
from guildhall.db.base import NEVER_REUSED, Base, BigIntId, UTCDateTime, utcnow
from guildhall.db.sql import flush_unless_duplicate, rowcount
from guildhall.events import audit

PERMISSIONS = (
    "view_panel",
    "view_tickets",
    "manage_tickets",
    "manage_bot",
    "manage_config",
    "manage_api_keys",
    "manage_permissions",
)
SUBJECT_TYPES = ("user", "role")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginState(Base):
    __tablename__ = "panel_login_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    next_path: Mapped[str] = mapped_column(String(500), default="/")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class PanelSession(Base):
    __tablename__ = "panel_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    discord_id: Mapped[str] = mapped_column(String(32))
    avatar: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PanelPermission(Base):
    __tablename__ = "panel_permissions"
    __table_args__ = (
        UniqueConstraint("subject_type", "subject_id", "permission", name="uq_panel_permissions"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(String(32))
    permission: Mapped[str] = mapped_column(String(32))
    granted_by: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---- login states ----------------------------------------------------------


async def begin_login(
    session: AsyncSession, browser_token: str, next_path: str, ttl: timedelta
) -> str:
    state = secrets.token_urlsafe(32)
    session.add(
        LoginState(
            state_hash=digest(state),
            browser_hash=digest(browser_token),
            next_path=next_path,
            expires_at=utcnow() + ttl,
            used=False,
        )
    )
    await session.flush()
    return state


async def finish_login(session: AsyncSession, state: str, browser_token: str) -> str:
    """Consume the state (once); the panel path to return to. Invalid if missing,
    reused, expired or started by another browser."""
    row = await session.get(LoginState, digest(state), with_for_update=True)
    if (
        row is None
        or row.used
        or row.expires_at <= utcnow()
        or not hmac.compare_digest(row.browser_hash, digest(browser_token))
    ):
        raise Invalid("the login state is missing, used, expired or foreign", code="bad_state")
    claimed = await session.execute(
        update(LoginState)
        .where(LoginState.state_hash == row.state_hash, LoginState.used.is_(False))
        .values(used=True)
        .execution_options(synchronize_session=False)
    )
    if not rowcount(claimed):
        raise Invalid("the login state was already used", code="bad_state")
    return row.next_path


# ---- sessions --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PanelUser:
    account_id: int
    discord_id: str
    avatar: str | None


async def open_session(
    session: AsyncSession,
    account_id: int,
    discord_id: str,
    avatar: str | None,
    ttl: timedelta,
) -> str:
    """A new session; the cookie value, returned this once."""
    token = secrets.token_urlsafe(32)
    session.add(
        PanelSession(
            id_hash=digest(token),
            account_id=account_id,
            discord_id=discord_id,
            avatar=avatar,
            created_at=utcnow(),
            expires_at=utcnow() + ttl,
        )
    )
    await session.flush()
    return token


async def session_user(session: AsyncSession, token: str) -> PanelUser | None:
    row = await session.get(PanelSession, digest(token))
    if row is None or row.expires_at <= utcnow():
        return None
    return PanelUser(row.account_id, row.discord_id, row.avatar)


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(PanelSession).where(PanelSession.id_hash == digest(token)))


async def end_sessions(session: AsyncSession, account_id: int) -> int:
    """End every browser session of an account (it was banned), in Rustmail's panel and in
    the web console; how many there were."""
    ended = 0
    for model in (PanelSession, ConsoleSession):
        result = await session.execute(delete(model).where(model.account_id == account_id))
        ended += rowcount(result) or 0
    return ended


# ---- permissions -----------------------------------------------------------


async def grants(session: AsyncSession) -> list[PanelPermission]:
    return list(await session.scalars(select(PanelPermission).order_by(PanelPermission.id)))


async def grant(
    session: AsyncSession,
    subject_type: str,
    subject_id: str,
    permission: str,
    granted_by: str,
    actor: Actor,
) -> int:
    if subject_type not in SUBJECT_TYPES:
        raise Invalid("subject_type must be user or role", field="subject_type")
    if permission not in PERMISSIONS:
        raise Invalid(f"permission must be one of {', '.join(PERMISSIONS)}", field="permission")
    if not is_digits(subject_id, 32):
        raise Invalid("subject_id must be a Discord id", field="subject_id")
    row = PanelPermission(
        subject_type=subject_type,
        subject_id=subject_id,
        permission=permission,
        granted_by=granted_by,
        granted_at=utcnow(),
    )
    session.add(row)
    if not await flush_unless_duplicate(session):
        raise Conflict(f"that {subject_type} already has {permission}")
    await audit.record(
        session,
        actor,
        "permission.granted",
        f"{actor.name} granted {permission} to {subject_type} {subject_id}",
        target=f"permission:{row.id}",
    )
    return row.id


async def revoke(session: AsyncSession, grant_id: int, actor: Actor) -> None:
    row = await session.get(PanelPermission, grant_id)
    if row is None:
        raise NotFound(f"permission grant {grant_id} does not exist", code="grant_not_found")
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "permission.revoked",
        f"{actor.name} revoked {row.permission} from {row.subject_type} {row.subject_id}",
        target=f"permission:{grant_id}",
    )


async def held(session: AsyncSession, discord_id: str, role_ids: list[str]) -> set[str]:
    """The permissions a user holds directly or through one of their roles."""
    direct = select(PanelPermission.permission).where(
        (PanelPermission.subject_type == "user") & (PanelPermission.subject_id == discord_id)
    )
    query: Select[str] | CompoundSelect[str] = direct
    if role_ids:
        query = direct.union(
            select(PanelPermission.permission).where(
                (PanelPermission.subject_type == "role")
                & (PanelPermission.subject_id.in_(role_ids))
            )
        )
    return set(await session.scalars(query))


async def purge_expired(session: AsyncSession) -> int:
    """Drop login states and browser sessions (the panel's and the console's) past their
    expiry; how many went."""
    now = utcnow()
    went = 0
    for model in (LoginState, PanelSession, ConsoleSession):
        result = await session.execute(delete(model).where(model.expires_at <= now))
        went += rowcount(result) or 0
    return went
