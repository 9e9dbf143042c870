"""Sample data with which every example in the seed documents works as written.

Loading is idempotent: accounts that exist are left alone. The demo API key
is made fresh on each load (only its hash is stored, so an old one cannot be
shown again) and earlier demo keys are revoked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.access import service as access
from guildhall.core.access.models import ApiKey
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Provider
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


async def _load_account(session: AsyncSession, demo: DemoAccount) -> bool:
    if await session.scalar(select(Account.id).where(Account.username == demo.username)):
        return False
    account = await accounts.create(
        session,
        username=demo.username,
        email=demo.email,
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
    return True


async def _load_community(session: AsyncSession) -> None:
    if await session.get(GuildClass, "1") is None:
        await community.create_class(
            session, DEMO_ACTOR, name="Warrior", balance=5000, role_id="123456789", class_id="1"
        )
        await community.update_member(
            session,
            DEMO_ACCOUNTS[0].discord,
            community.MemberChange(xp=500, level=5, daily_streak=3, class_id="1", class_given=True),
            "coins",
            DEMO_ACTOR,
        )
    for kind, key, name, detail in DEMO_DIRECTORY + tuple(("role", *r) for r in DEMO_ROLES):
        if await session.get(DirectoryEntry, (kind, key)) is None:
            await community.put_directory_entry(session, kind, key, name, detail, DEMO_ACTOR)
    for member_id, username, roles in DEMO_MEMBERS:
        if await community.guild_member(session, member_id) is None:
            await community.put_member(session, member_id, username, list(roles), DEMO_ACTOR)


async def _load_hosting(runtime: Runtime, session: AsyncSession) -> None:
    """SkyPANEL's example server ("My VPS", plan Basic) and invoice (9.99, paid) for user123."""
    owner = await accounts.require_by_identity(session, DEMO_ACCOUNTS[0].discord)
    if await session.scalar(select(Server.id).where(Server.account_id == owner.id)) is None:
        await runtime.hosting.create(session, owner, "My VPS", "Basic", DEMO_ACTOR)
    if await session.scalar(select(Invoice.id).where(Invoice.account_id == owner.id)) is None:
        made = await billing.create(
            session, owner, "9.99", "USD", utcnow().date() + timedelta(days=14), DEMO_ACTOR
        )
        await billing.pay(session, made.public_id, DEMO_ACTOR)


async def load(runtime: Runtime) -> DemoResult:
    created: list[str] = []
    async with runtime.database.unit_of_work() as session:
        for demo in DEMO_ACCOUNTS:
            if await _load_account(session, demo):
                created.append(demo.username)
        await _load_hosting(runtime, session)
        await _load_community(session)
        for handle, phone in DEMO_BOT_SESSIONS:
            if not await session.scalar(select(BotSession.id).where(BotSession.handle == handle)):
                await runtime.sessions.create(session, handle, phone, DEMO_ACTOR)
                await runtime.sessions.stop(session, handle, DEMO_ACTOR)
        old_keys = await session.scalars(
            select(ApiKey.id).where(ApiKey.name == DEMO_KEY_NAME, ApiKey.revoked_at.is_(None))
        )
        for key_id in list(old_keys):
            await access.revoke(session, key_id, DEMO_ACTOR)
        _key, plaintext = await access.create(
            session, name=DEMO_KEY_NAME, scopes=["*"], actor=DEMO_ACTOR
        )
    return DemoResult(created, plaintext)
