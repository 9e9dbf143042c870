"""Console sign-ins: staff (admins and moderators) signed in to the web console.

A session cookie carries 256 random bits; only their SHA-256 is stored, with an
expiry and the account's ``token_version`` at sign-in, so a password change (or a
role taken away) ends every console session of that account from its next request.
What staff may do is decided by the role read again on every request, never by
what the cookie says.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.access.models import ConsoleSession
from guildhall.core.access.panel import digest
from guildhall.core.accounts.models import Account, Identity, Provider, Role
from guildhall.core.accounts.passwords import MAX_PASSWORD_LENGTH, verify
from guildhall.core.actor import Actor
from guildhall.core.moderation import service as moderation
from guildhall.core.text import storable
from guildhall.db.base import utcnow
from guildhall.db.sql import rowcount
from guildhall.events import audit

STAFF_ROLES = frozenset({Role.ADMIN.value, Role.MODERATOR.value})


class Area(StrEnum):
    """What a console page is about; a role reaches the areas it is given."""

    OVERVIEW = "overview"
    ACCOUNTS = "accounts"
    ECONOMY = "economy"
    MODERATION = "moderation"
    SERVERS = "servers"
    TICKETS = "tickets"
    SESSIONS = "sessions"
    WEBHOOKS = "webhooks"
    AUDIT = "audit"


MODERATOR_AREAS = frozenset({Area.MODERATION, Area.TICKETS, Area.SESSIONS})
"""Moderators see and do only moderation, tickets and bot sessions."""


def may_use(role: str, area: Area) -> bool:
    if role == Role.ADMIN.value:
        return True
    return role == Role.MODERATOR.value and area in MODERATOR_AREAS


@dataclass(frozen=True, slots=True)
class StaffMember:
    """Who is signed in, as read from the database on this request."""

    account_id: int
    username: str
    role: str

    @property
    def actor(self) -> Actor:
        return Actor("account", f"console:{self.username}", self.account_id)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    def may_use(self, area: Area) -> bool:
        return may_use(self.role, area)


async def check_password(session: AsyncSession, login: str, password: str) -> StaffMember | None:
    """The staff account whose username (as written) or email (whatever its case) and
    password these are, else None.

    The same work is done whatever fails (unknown name, wrong password, not staff),
    so the answer's timing says nothing about which accounts exist."""
    row = None
    login = login.strip()
    if login and storable(login):
        query = select(Account.id, Account.username, Account.role, Account.password_hash).where(
            or_(
                Account.username == login,
                func.lower(Account.email) == login.lower(),
            )
        )
        row = (await session.execute(query.limit(1))).first()
    matches = await verify(row.password_hash if row else None, password[:MAX_PASSWORD_LENGTH])
    if not matches or row is None:
        return None
    return await _staff(session, row.id, row.username, row.role)


async def _staff(
    session: AsyncSession, account_id: int, username: str, role: str
) -> StaffMember | None:
    """Staff, unless the role is not a staff role or a ban is in force (a ban also ended
    every console session the account had: ``panel.end_sessions``)."""
    if role not in STAFF_ROLES or await moderation.active_ban(session, account_id) is not None:
        return None
    return StaffMember(account_id, username, role)


async def staff_of_identity(
    session: AsyncSession, provider: Provider, subject: str
) -> StaffMember | None:
    """The staff member whose account is linked to this identity (a Discord sign-in).

    Only an account already linked to it: signing in with Discord never makes an
    account, nor links one, so no one becomes staff by signing in."""
    row = (
        await session.execute(
            select(Account.id, Account.username, Account.role)
            .join(Identity, Identity.account_id == Account.id)
            .where(Identity.provider == provider.value, Identity.subject == subject)
        )
    ).first()
    if row is None:
        return None
    return await _staff(session, row.id, row.username, row.role)


async def open_session(session: AsyncSession, member: StaffMember, ttl: timedelta) -> str:
    """A new console session for ``member``; the cookie value, returned this once."""
    version = await session.scalar(
        select(Account.token_version).where(Account.id == member.account_id)
    )
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            id_hash=digest(token),
            account_id=member.account_id,
            token_version=version or 0,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    await audit.record(
        session,
        member.actor,
        "console.sign_in",
        f"{member.username} signed in to the console",
        target_account_id=member.account_id,
        target=f"account:{member.account_id}",
    )
    await session.flush()
    return token


async def signed_in(session: AsyncSession, token: str) -> StaffMember | None:
    """The staff member a cookie names, if its session is live and they are still staff."""
    if not token or len(token) > 128 or not storable(token):
        return None
    row = (
        await session.execute(
            select(Account.id, Account.username, Account.role)
            .join(ConsoleSession, ConsoleSession.account_id == Account.id)
            .where(
                ConsoleSession.id_hash == digest(token),
                ConsoleSession.expires_at > utcnow(),
                ConsoleSession.token_version == Account.token_version,
            )
        )
    ).first()
    if row is None or row.role not in STAFF_ROLES:
        return None
    return StaffMember(row.id, row.username, row.role)


async def close_session(session: AsyncSession, token: str) -> bool:
    """Sign out; whether there was such a session."""
    ended = await session.execute(
        delete(ConsoleSession).where(ConsoleSession.id_hash == digest(token))
    )
    return bool(rowcount(ended))
