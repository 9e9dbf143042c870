"""Sample data with which every example in the seed documents works as written.

Loading is idempotent, and safe after any of the documents' examples ran:
each demo thing is found again by what no client can change, never by a name
a client may edit. An account is its Discord id (Aurora renames users,
SkyPANEL changes their profile and password); a server and an invoice are
their owner's; a bot session, a class, a directory entry and a guild member
are their ids. What exists is left alone, as the examples left it (a renamed
user keeps the new name, a changed password stays changed). What is missing
is made again; where a name or email it would take is now someone else's,
it is made without it and the loader says so, instead of stopping.

The demo API key is made fresh on each load (only its hash is stored, so an
old one cannot be shown again) and earlier demo keys are revoked: Guildhall
keys (``gh_``, which only an operator makes) named ``demo``, never a key a
face's client made (Rustmail's panel makes ``rustmail_`` keys of any name).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypedDict

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.access import service as access
from guildhall.core.access.models import ApiKey
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Provider, Role
from guildhall.core.accounts.passwords import hash_new
from guildhall.core.actor import Actor
from guildhall.core.billing import service as billing
from guildhall.core.billing.models import Invoice
from guildhall.core.community import service as community
from guildhall.core.community.models import DirectoryEntry, GuildClass
from guildhall.core.economy import service as economy
from guildhall.core.hosting.models import Server
from guildhall.core.plans import service as plans
from guildhall.core.sessions.models import BotSession
from guildhall.db.base import utcnow
from guildhall.runtime import Runtime

DEMO_ACTOR = Actor("operator", "guildhall demo")
DEMO_KEY_NAME = "demo"
DEMO_ADMIN = "admin"
"""The console's demo administrator; its password is made fresh on each load, like the key."""


@dataclass(frozen=True)
class DemoAccount:
    username: str
    discord: str
    email: str
    first_name: str = ""
    last_name: str = ""
    password: str | None = None
    coins: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    renewal_bypass: bool = False


DEMO_ACCOUNTS = (
    # The user of the Heliactyl document's userinfo example.
    DemoAccount(
        username="user123",
        discord="123456789",
        email="user@example.com",
        # The SkyPANEL document's login and profile examples.
        first_name="John",
        last_name="Doe",
        password="yourpassword",
        coins=1500,
        extra={"ram": 1024, "disk": 5120, "cpu": 50, "servers": 1},
        renewal_bypass=True,
    ),
    # The user of its userinteractions example.
    DemoAccount(
        username="miguel.cuba",
        discord="849694563295690772",
        email="miguel@example.com",
        first_name="Miguel",
        last_name="Cuba",
        coins=250,
    ),
)


DEMO_BOT_SESSIONS = (
    # The stopped session of the LD7 document's list example. (Its other
    # session, bot_1234567890, is the one its examples create, so it is left out.)
    ("bot_9876543210", "9876543210"),
)


# The Aurora document's examples: the Warrior class, its user's profile, and
# the metadata of GET /api/settings/meta. (Items, quests and cases are left
# out: its examples create them, "Health Potion" first, as id 1.)
DEMO_DIRECTORY = (
    ("role", "123", "Admin", "#FF0000"),
    ("channel", "456", "general", "0"),
    ("command", "daily", "daily", "economy"),
)


# Rustmail's examples: the member its curl creates a ticket for, and a staff member.
DEMO_MEMBERS = (
    ("689149284871962727", "supportseeker", ()),
    ("123456789012345678", "StaffMember", ("123456789012345678",)),
)
DEMO_ROLES = (("123456789012345678", "Moderator", "#3498DB"),)


@dataclass(frozen=True)
class DemoResult:
    created: list[str]
    api_key: str
    notes: list[str] = field(default_factory=list)
    console_password: str | None = None
    """The demo administrator's password for the console (None: no such account could be
    made, and a note says why)."""
    """Sentences for the operator: what could not be made as the documents show it."""


DEMO_CLASS = ("1", "Warrior", 5000, "123456789")


class DemoProfile(TypedDict):
    xp: int
    level: int
    daily_streak: int


DEMO_PROFILE: DemoProfile = {"xp": 500, "level": 5, "daily_streak": 3}
"""The first demo account's Aurora profile (the document's GET /api/users/:id)."""


async def _free_username(session: AsyncSession, demo: DemoAccount) -> str:
    for candidate in (demo.username, f"{demo.username}-{demo.discord[-6:]}"):
        if await accounts.holder_of_username(session, candidate) is None:
            return candidate
    return f"discord-{demo.discord}"


async def _load_account(session: AsyncSession, demo: DemoAccount, notes: list[str]) -> str | None:
    """Make a demo account unless its Discord id names one already; the name it got."""
    if await accounts.find_by_provider(session, Provider.DISCORD, demo.discord) is not None:
        return None
    username = await _free_username(session, demo)
    if username != demo.username:
        notes.append(
            f"The username {demo.username!r} belongs to another account, so the demo account "
            f"of Discord id {demo.discord} is named {username!r}."
        )
    email: str | None = demo.email
    if await accounts.holder_of_email(session, demo.email) is not None:
        notes.append(
            f"The email {demo.email!r} belongs to another account, so the demo account "
            f"{username!r} has none."
        )
        email = None
    account = await accounts.create(
        session,
        username=username,
        email=email,
        first_name=demo.first_name,
        last_name=demo.last_name,
        password=demo.password,
        identities={Provider.DISCORD: demo.discord},
        actor=DEMO_ACTOR,
    )
    ref = accounts.AccountRef(account.id, account.username, demo.discord)
    if demo.coins:
        await economy.adjust(session, ref, demo.coins, actor=DEMO_ACTOR, reason="demo data")
    if demo.extra:
        await plans.set_extra(session, ref, demo.extra, DEMO_ACTOR)
    if demo.renewal_bypass:
        await plans.set_renewal_bypass(session, ref, True, DEMO_ACTOR)
    return username


async def _load_class(session: AsyncSession, notes: list[str]) -> None:
    class_id, name, balance, role_id = DEMO_CLASS
    if await session.get(GuildClass, class_id) is not None:
        return
    if any(c.name.lower() == name.lower() for c in await community.classes(session)):
        notes.append(
            f"A class named {name!r} exists under another id, so class {class_id} is not made."
        )
        return
    await community.create_class(
        session, DEMO_ACTOR, name=name, balance=balance, role_id=role_id, class_id=class_id
    )


async def _load_profile(session: AsyncSession, discord: str) -> None:
    """The document's profile for a demo account just made (class 1 when it exists)."""
    has_class = await session.get(GuildClass, DEMO_CLASS[0]) is not None
    change = community.MemberChange(
        **DEMO_PROFILE,
        class_id=DEMO_CLASS[0] if has_class else None,
        class_given=has_class,
    )
    await community.update_member(session, discord, change, "coins", DEMO_ACTOR)


async def _load_community(session: AsyncSession) -> None:
    for kind, key, name, detail in DEMO_DIRECTORY + tuple(("role", *r) for r in DEMO_ROLES):
        if await session.get(DirectoryEntry, (kind, key)) is None:
            await community.put_directory_entry(session, kind, key, name, detail, DEMO_ACTOR)
    for member_id, username, roles in DEMO_MEMBERS:
        if await community.guild_member(session, member_id) is None:
            await community.put_member(session, member_id, username, list(roles), DEMO_ACTOR)


async def _load_server(runtime: Runtime) -> None:
    """SkyPANEL's example server ("My VPS", plan Basic) for user123, made on its driver
    after the rest is committed (a driver is never called inside a transaction)."""
    async with runtime.database.unit_of_work(write=False) as session:
        owner = await accounts.find_by_provider(session, Provider.DISCORD, DEMO_ACCOUNTS[0].discord)
        if owner is None:  # made just before when it was missing; never so
            return
        if await session.scalar(select(Server.id).where(Server.account_id == owner.id)):
            return
    async with runtime.database.unit_of_work() as session:
        made = await runtime.hosting.create(session, owner, "My VPS", "Basic", DEMO_ACTOR)
    await runtime.hosting.provision(made.public_id)


async def _load_hosting(runtime: Runtime, session: AsyncSession) -> None:
    """SkyPANEL's example invoice (9.99, paid) for user123."""
    owner = await accounts.find_by_provider(session, Provider.DISCORD, DEMO_ACCOUNTS[0].discord)
    if owner is None:  # made just before when it was missing; never so
        return
    if await session.scalar(select(Invoice.id).where(Invoice.account_id == owner.id)) is None:
        made = await billing.create(
            session, owner, "9.99", "USD", utcnow().date() + timedelta(days=14), DEMO_ACTOR
        )
        await billing.pay(session, made.public_id, DEMO_ACTOR)


async def load(runtime: Runtime) -> DemoResult:
    created: list[str] = []
    notes: list[str] = []
    async with runtime.database.unit_of_work() as session:
        await _load_class(session, notes)
        for index, demo in enumerate(DEMO_ACCOUNTS):
            made = await _load_account(session, demo, notes)
            if made is None:
                continue
            created.append(made)
            if index == 0:
                await _load_profile(session, demo.discord)
        await _load_hosting(runtime, session)
        await _load_community(session)
        old_keys = await session.scalars(
            select(ApiKey.id).where(
                ApiKey.name == DEMO_KEY_NAME,
                ApiKey.prefix.startswith(access.KEY_PREFIX, autoescape=True),
                ApiKey.revoked_at.is_(None),
            )
        )
        for key_id in list(old_keys):
            await access.revoke(session, key_id, DEMO_ACTOR)
        _key, plaintext = await access.create(
            session, name=DEMO_KEY_NAME, scopes=["*"], actor=DEMO_ACTOR
        )
        console_password = await _load_console_admin(session, notes)
    await _load_server(runtime)
    await _load_bot_sessions(runtime)
    return DemoResult(created, plaintext, notes, console_password)


async def _load_console_admin(session: AsyncSession, notes: list[str]) -> str | None:
    """The console's demo administrator, with a new password (older sign-ins end)."""
    password = secrets.token_urlsafe(12)
    account_id = await accounts.holder_of_username(session, DEMO_ADMIN)
    if account_id is None:
        await accounts.create(
            session, username=DEMO_ADMIN, password=password, role=Role.ADMIN, actor=DEMO_ACTOR
        )
        return password
    role = await session.scalar(select(Account.role).where(Account.id == account_id))
    if role != Role.ADMIN.value:
        notes.append(
            f"The username {DEMO_ADMIN!r} belongs to an account that is not an administrator, "
            "so the console has no demo sign-in; make one with `guildhall users create "
            "--role admin`."
        )
        return None
    await session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(password_hash=await hash_new(password), token_version=Account.token_version + 1)
    )
    return password


async def _load_bot_sessions(runtime: Runtime) -> None:
    """LD7's example sessions, stopped; each change opens its own units of work, as the
    session service calls its platform outside them."""
    for handle, phone in DEMO_BOT_SESSIONS:
        async with runtime.database.unit_of_work(write=False) as session:
            exists = await session.scalar(select(BotSession.id).where(BotSession.handle == handle))
        if not exists:
            await runtime.sessions.create(handle, phone, DEMO_ACTOR)
            await runtime.sessions.stop(handle, DEMO_ACTOR)
