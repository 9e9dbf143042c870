"""Password login and password changes (Argon2id), for faces with a login form.

Hashing and verifying take tens of milliseconds of CPU on purpose, so they
run in a worker thread, never on the event loop. An unknown email costs the
same as a wrong password (a dummy hash is verified), so timing does not tell
an attacker which emails have accounts.

A password change is checked before anything is written (:func:`check_change`:
the stored hash is read in a read unit of work, the current password verified
and the new one hashed with no transaction open), so a guess never holds
SQLite's one write lock while Argon2 runs. The write (:func:`change`) then
replaces the hash only if it is still the one the current password matched; if
the password changed meanwhile, the current password given is no longer right
and the change is refused as a wrong password.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.models import Account
from guildhall.core.actor import Actor
from guildhall.core.errors import Invalid, NotFound
from guildhall.core.text import storable
from guildhall.db.engine import Database
from guildhall.events import audit

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_hasher = PasswordHasher()  # Argon2id with the library's recommended cost


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify(stored: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, stored, password)


async def hash_new(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise Invalid(
            f"the new password must be at least {MIN_PASSWORD_LENGTH} characters",
            code="weak_password",
            field="newPassword",
        )
    return await asyncio.to_thread(_hasher.hash, password)


@dataclass(frozen=True, slots=True)
class Credentials:
    account_id: int
    role: str
    token_version: int
    uuid: str  # never reused, unlike an id once deleted: tokens carry it too


async def login(session: AsyncSession, email: str, password: str) -> Credentials | None:
    """The account whose email and password these are, else None (same cost either way)."""
    row = None
    if storable(email):  # no account's email holds a NUL
        query = select(
            Account.id, Account.role, Account.token_version, Account.uuid, Account.password_hash
        ).where(func.lower(Account.email) == email.strip().lower())
        row = (await session.execute(query)).first()
    if not await verify(row.password_hash if row else None, password[:MAX_PASSWORD_LENGTH]):
        return None
    assert row is not None
    return Credentials(row.id, row.role, row.token_version, row.uuid)


async def credentials(session: AsyncSession, account_id: int) -> Credentials | None:
    row = (
        await session.execute(
            select(Account.id, Account.role, Account.token_version, Account.uuid).where(
                Account.id == account_id
            )
        )
    ).first()
    return Credentials(*row) if row else None


@dataclass(frozen=True, slots=True)
class CheckedChange:
    """A password change whose current password was verified against ``old_hash``."""

    account_id: int
    old_hash: str
    new_hash: str


def _wrong_password() -> Invalid:
    return Invalid(
        "the current password is incorrect", code="wrong_password", field="currentPassword"
    )


async def check_change(
    database: Database, account_id: int, current: str, new: str
) -> CheckedChange:
    """Verify the current password and hash the new one, with no transaction open
    while Argon2 runs (the hash is read in a short read unit of work)."""
    async with database.unit_of_work(write=False) as session:
        found = (
            await session.execute(select(Account.password_hash).where(Account.id == account_id))
        ).first()
    if found is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    stored = found.password_hash
    if not await verify(stored, current[:MAX_PASSWORD_LENGTH]) or stored is None:
        raise _wrong_password()
    return CheckedChange(account_id, stored, await hash_new(new))


async def change(session: AsyncSession, checked: CheckedChange, actor: Actor) -> Credentials:
    """Store the new password of a :func:`check_change`; earlier tokens stop working.
    Refused as a wrong password if the hash changed since it was checked."""
    account_id = checked.account_id
    replaced = await session.execute(
        update(Account)
        .where(Account.id == account_id, Account.password_hash == checked.old_hash)
        .values(password_hash=checked.new_hash, token_version=Account.token_version + 1)
        .returning(Account.role, Account.token_version, Account.uuid, Account.username)
        .execution_options(synchronize_session=False)
    )
    row = replaced.first()
    if row is None:
        raise _wrong_password()
    await audit.record(
        session,
        actor,
        "account.password_changed",
        f"Password of account {row.username} (#{account_id}) changed; earlier tokens revoked",
        target_account_id=account_id,
        target=f"account:{account_id}",
    )
    return Credentials(account_id, row.role, row.token_version, row.uuid)


async def rename(
    session: AsyncSession,
    account_id: int,
    actor: Actor,
    first_name: str | None = None,
    last_name: str | None = None,
) -> None:
    """Change the given names only."""
    changes = {
        column: value
        for column, value in (("first_name", first_name), ("last_name", last_name))
        if value is not None
    }
    if not changes:
        return
    account = await session.get(Account, account_id, with_for_update=True)
    if account is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    for column, value in changes.items():
        setattr(account, column, value)
    await session.flush()
    await audit.record(
        session,
        actor,
        "account.updated",
        f"Profile of account {account.username} (#{account_id}) updated: "
        + ", ".join(sorted(changes)),
        target_account_id=account_id,
        target=f"account:{account_id}",
    )
