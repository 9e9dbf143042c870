"""Accounts and their identities.

Every account gets a ``local`` identity holding its uuid, so the id a
Heliactyl client knows for a local user ("Generated UUID") finds it like a
Discord or GitHub id does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.models import Account, Identity, Provider, Role
from guildhall.core.actor import Actor
from guildhall.core.errors import Conflict, Invalid, NotFound, is_digits
from guildhall.core.text import storable
from guildhall.db.prepared import Prepared, Row
from guildhall.db.sql import dialect_of, prefix_end
from guildhall.events import audit

USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_password_hasher = PasswordHasher()

# When one subject is linked under several providers, this order decides.
_PROVIDER_ORDER = case(
    {p.value: rank for rank, p in enumerate(Provider)},
    value=Identity.__table__.c.provider,
    else_=99,
)


@dataclass(frozen=True, slots=True)
class AccountRef:
    """Enough of an account to act on it and to name it in a sentence."""

    id: int
    username: str
    subject: str

    def describe(self) -> str:
        return f"user {self.username} ({self.subject})"


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


# Hot statements are built once, on table columns (no ORM loading): every API
# request runs them, and building or ORM-loading costs more than SQLite does.
_accounts = Account.__table__
_identities = Identity.__table__
# A subject names one identity per provider at most, so these answer a row or
# a few; the provider's rank picks one in Python (see preferred), which costs
# less than having SQLite sort them.
_ACCOUNT_BY_SUBJECT = Prepared(
    select(_identities.c.provider, _accounts.c.id, _accounts.c.username)
    .join(_identities, _identities.c.account_id == _accounts.c.id)
    .where(_identities.c.subject == bindparam("subject"))
)
PUBLIC_COLUMNS = (
    "id",
    "uuid",
    "username",
    "email",
    "first_name",
    "last_name",
    "role",
    "created_at",
    "updated_at",
)
_ACCOUNT_BY_ID = Prepared(
    select(*(_accounts.c[name] for name in PUBLIC_COLUMNS)).where(
        _accounts.c.id == bindparam("account_id")
    )
)
_PROVIDER_RANK = {provider.value: rank for rank, provider in enumerate(Provider)}
PROVIDER_ORDER = case(_PROVIDER_RANK, value=_identities.c.provider, else_=len(_PROVIDER_RANK))
"""``ORDER BY`` this puts the identity :func:`preferred` would pick first (in SQL)."""


def preferred(rows: list[Row]) -> Row | None:
    """Of the rows (provider first) one subject finds, the best-ranked provider's,
    without its provider; None for no rows."""
    if not rows:
        return None
    best = rows[0] if len(rows) == 1 else min(rows, key=lambda row: _PROVIDER_RANK.get(row[0], 99))
    return best[1:]


@dataclass(frozen=True, slots=True)
class AccountView:
    """What may be shown of an account (never its password hash)."""

    id: int
    uuid: str
    username: str
    email: str | None
    first_name: str
    last_name: str
    role: str
    created_at: datetime
    updated_at: datetime


async def view(session: AsyncSession, account_id: int) -> AccountView:
    row = await _ACCOUNT_BY_ID.first(session, {"account_id": account_id})
    if row is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    return AccountView(*row)


MAX_SUBJECT = 191


MAX_DISCORD_ID = 32
"""The longest Discord id the faces accept (snowflakes have up to 20 digits today)."""


def plausible_subject(subject: str) -> bool:
    # Longer than any stored id, or with a NUL (which PostgreSQL refuses in
    # text): no account can have it, so do not ask the database.
    return 0 < len(subject) <= MAX_SUBJECT and storable(subject)


async def find_by_identity(session: AsyncSession, subject: str) -> AccountRef | None:
    """The account that any identity (discord, google, github, local uuid) names."""
    if not plausible_subject(subject):
        return None
    row = preferred(await _ACCOUNT_BY_SUBJECT.all(session, {"subject": subject}))
    return AccountRef(row[0], row[1], subject) if row else None


async def find_by_provider(
    session: AsyncSession, provider: Provider, subject: str
) -> AccountRef | None:
    """The account one provider's identity names (a Discord id only, say)."""
    if not plausible_subject(subject):
        return None
    row = (
        await session.execute(
            select(Account.id, Account.username)
            .join(Identity, Identity.account_id == Account.id)
            .where(Identity.provider == provider.value, Identity.subject == subject)
        )
    ).first()
    return AccountRef(row[0], row[1], subject) if row else None


async def require_by_identity(session: AsyncSession, subject: str) -> AccountRef:
    account = await find_by_identity(session, subject)
    if account is None:
        raise NotFound(f"no account has the id {subject!r}", code="account_not_found")
    return account


async def resolve(session: AsyncSession, reference: str) -> AccountRef:
    """An operator's way to name an account: numeric id, any identity, or username.

    Identities before usernames: a panel login makes an account named after the
    person's chosen name, so whoever chose someone else's Discord id as their name
    must not receive what the operator gives that id.
    """
    if not plausible_subject(reference):
        # Longer than any stored id or name, or with a NUL: no account has it.
        raise NotFound(f"no account has the id {reference!r}", code="account_not_found")
    if reference.isascii() and reference.isdecimal() and len(reference) <= 18:
        account = await session.get(Account, int(reference))
        if account is not None:
            return AccountRef(account.id, account.username, account.uuid)
    found = await find_by_identity(session, reference)
    if found is not None:
        return found
    row = (
        await session.execute(select(Account.id, Account.uuid).where(Account.username == reference))
    ).first()
    if row:
        return AccountRef(row.id, reference, row.uuid)
    raise NotFound(f"no account has the id {reference!r}", code="account_not_found")


async def _check_identity_free(session: AsyncSession, provider: Provider, subject: str) -> None:
    if not plausible_subject(subject):
        raise Invalid(f"a {provider} id must be 1 to 191 characters", field=provider.value)
    # Every face looks a Discord user up by a snowflake of ASCII digits; an id of
    # anything else could never be found again.
    if provider is Provider.DISCORD and not is_digits(subject, MAX_DISCORD_ID):
        raise Invalid(
            f"a discord id is 1 to {MAX_DISCORD_ID} digits, not {subject!r}", field="discord"
        )
    taken = await session.scalar(
        select(Identity.account_id).where(
            Identity.provider == provider.value, Identity.subject == subject
        )
    )
    if taken is not None:
        raise Conflict(f"the {provider} id {subject} is already linked to account {taken}")


async def holder_of_username(session: AsyncSession, username: str) -> int | None:
    """The id of the account with this username, if any."""
    return await session.scalar(select(Account.id).where(Account.username == username))


async def holder_of_email(session: AsyncSession, email: str) -> int | None:
    """The id of the account with this email whatever its case (logins match it so,
    so two may not differ only by it), if any."""
    return await session.scalar(
        select(Account.id).where(func.lower(Account.email) == email.lower())
    )


async def ref_of(session: AsyncSession, account: AccountView) -> AccountRef:
    """How the core names ``account`` in sentences and events: by its Discord id when it
    has one, else by its uuid (as an expired ban is announced)."""
    discord = await session.scalar(
        select(Identity.subject).where(
            Identity.account_id == account.id, Identity.provider == Provider.DISCORD.value
        )
    )
    return AccountRef(account.id, account.username, discord or account.uuid)


# ---- search --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountMatch:
    """An account a search found, with the identities it is linked to (but its local one)."""

    id: int
    username: str
    email: str | None
    role: str
    created_at: datetime
    identities: list[tuple[str, str]]


async def named_exactly(session: AsyncSession, text: str) -> set[int]:
    """The ids of the accounts ``text`` names whole: by id, uuid, email or any identity.

    Each is an indexed equality look-up; only an email not found as typed is compared
    whatever its case (as logins compare it), which reads the table once.
    """
    if not storable(text):
        return set()
    found: set[int] = set()
    if is_digits(text, 18):
        found.add(int(text))
    found.update(await session.scalars(select(Identity.account_id).where(Identity.subject == text)))
    found.update(await session.scalars(select(Account.id).where(Account.uuid == text)))
    by_email = await session.scalar(select(Account.id).where(Account.email == text))
    if by_email is None and "@" in text:
        by_email = await holder_of_email(session, text)
    if by_email is not None:
        found.add(by_email)
    return found


def _username_key(dialect: str) -> Any:
    """``lower(username)`` as its index holds it: in the "C" collation on PostgreSQL
    (migration 0015), so a prefix is a range of that index, in its order."""
    lowered = func.lower(Account.username)
    return lowered.collate("C") if dialect == "postgresql" else lowered


async def search(
    session: AsyncSession, text: str, *, limit: int, offset: int
) -> list[AccountMatch]:
    """The accounts ``text`` finds (every account, newest first, when it is empty).

    What identifies an account: its id, its uuid, its email (whatever its case), any
    linked identity's subject (a Discord, GitHub or Google id), all matched whole, or
    its username matched by its beginning whatever the case (``ali`` finds ``Alice``).
    The whole matches come first (newest first; indexed look-ups), then the usernames
    that start with ``text`` in their order: a range of the ``lower(username)`` index,
    read no further than the page, however many accounts there are. Only text a
    username could start with reads usernames at all (not an email: no username holds
    an ``@``). Text with a NUL finds nothing.
    """
    columns = (Account.id, Account.username, Account.email, Account.role, Account.created_at)
    if not text:
        query = select(*columns).order_by(Account.id.desc()).limit(limit).offset(offset)
        rows = list((await session.execute(query)).all())
    else:
        exact = sorted(await named_exactly(session, text), reverse=True)
        whole = list(
            (
                await session.execute(
                    select(*columns).where(Account.id.in_(exact)).order_by(Account.id.desc())
                )
            ).all()
        )
        rows = whole[offset : offset + limit]
        wanted = limit - len(rows)
        if wanted > 0 and USERNAME.fullmatch(text):
            key = _username_key(dialect_of(session).name)
            prefix = text.lower()
            end = prefix_end(prefix)
            named = select(*columns).where(key >= prefix, Account.id.not_in(exact))
            if end is not None:
                named = named.where(key < end)
            named = named.order_by(key, Account.id).limit(wanted)
            rows += (await session.execute(named.offset(max(0, offset - len(whole))))).all()
    linked: dict[int, list[tuple[str, str]]] = {row.id: [] for row in rows}
    if rows:
        identities = await session.execute(
            select(Identity.account_id, Identity.provider, Identity.subject)
            .where(
                Identity.account_id.in_(list(linked)),
                Identity.provider != Provider.LOCAL.value,
            )
            # By account first: the planner then reads the account_id index, not every
            # identity in id order looking for these accounts'.
            .order_by(Identity.account_id, Identity.id)
        )
        for account_id, provider, subject in identities:
            linked[account_id].append((provider, subject))
    return [
        AccountMatch(row.id, row.username, row.email, row.role, row.created_at, linked[row.id])
        for row in rows
    ]


async def create(
    session: AsyncSession,
    *,
    username: str,
    actor: Actor,
    email: str | None = None,
    password: str | None = None,
    role: Role = Role.USER,
    identities: dict[Provider, str] | None = None,
    first_name: str = "",
    last_name: str = "",
) -> Account:
    """Create an account with its local identity and any linked ones."""
    if not USERNAME.fullmatch(username):
        raise Invalid(
            "a username is 1 to 64 letters, digits, dots, dashes or underscores", field="username"
        )
    if await holder_of_username(session, username) is not None:
        raise Conflict(f"the username {username!r} is taken")
    if email is not None:
        if "@" not in email or len(email) > 320:
            raise Invalid(f"{email!r} is not an email address", field="email")
        if await holder_of_email(session, email) is not None:
            raise Conflict(f"the email {email!r} is taken")
    linked = identities or {}
    for provider, subject in linked.items():
        await _check_identity_free(session, provider, subject)

    account = Account(
        username=username,
        email=email,
        role=role.value,
        first_name=first_name,
        last_name=last_name,
        password_hash=hash_password(password) if password else None,
    )
    session.add(account)
    await session.flush()
    session.add(
        Identity(account_id=account.id, provider=Provider.LOCAL.value, subject=account.uuid)
    )
    for provider, subject in linked.items():
        session.add(Identity(account_id=account.id, provider=provider.value, subject=subject))
    await session.flush()
    names = ", ".join(f"{p} {s}" for p, s in linked.items())
    await audit.record(
        session,
        actor,
        "account.created",
        f"Account {username} (#{account.id}) created" + (f", linked to {names}" if names else ""),
        target_account_id=account.id,
        target=f"account:{account.id}",
    )
    return account


async def link(
    session: AsyncSession, account: AccountRef, provider: Provider, subject: str, actor: Actor
) -> None:
    """Add an identity to an account; each identity belongs to one account only."""
    if provider is Provider.LOCAL:
        raise Invalid("the local identity is the account's uuid and cannot be linked")
    await _check_identity_free(session, provider, subject)
    session.add(Identity(account_id=account.id, provider=provider.value, subject=subject))
    await session.flush()
    await audit.record(
        session,
        actor,
        "account.linked",
        f"Linked {provider} id {subject} to account {account.username} (#{account.id})",
        target_account_id=account.id,
        target=f"account:{account.id}",
    )


async def list_identities(session: AsyncSession, account_id: int) -> list[Identity]:
    rows = await session.scalars(
        select(Identity).where(Identity.account_id == account_id).order_by(_PROVIDER_ORDER)
    )
    return list(rows)


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list(await session.scalars(select(Account).order_by(Account.id)))


async def ensure_for_identity(
    session: AsyncSession, provider: Provider, subject: str, username: str, actor: Actor
) -> AccountRef:
    """The account an identity names, created (named after ``username``) if there is none.

    Safe under concurrency: when another transaction creates it first, the
    unique constraints refuse ours and the account it made is returned.
    """
    for candidate in (username, f"{username}-{subject[-6:]}", f"{provider}-{subject}"):
        found = await find_by_provider(session, provider, subject)
        if found is not None:
            return found
        try:
            async with session.begin_nested():
                made = await create(
                    session, username=candidate, identities={provider: subject}, actor=actor
                )
            return AccountRef(made.id, made.username, subject)
        except (Conflict, Invalid, IntegrityError):
            continue
    found = await find_by_provider(session, provider, subject)
    if found is None:
        raise Conflict(f"no account can be made for {provider} id {subject}")
    return found
