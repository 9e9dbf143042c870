"""The Aurora bot's economy: daily rewards, transfers, the shop, quests and lootdrops.

Every coin moves through the core ledger (``economy.adjust``), the same balance
Heliactyl's ``addcoins`` changes, so a ledger entry, a ``coins.changed`` event
and an audit row come with each movement, in the transaction of the change.

Amounts come from Aurora's settings document (``GET/POST /api/settings``):

- ``economy.dailyReward`` (100) and ``economy.dailyStreakBonus`` (10): a daily
  claim pays ``dailyReward + dailyStreakBonus * (streak - 1)``; the streak
  grows when the previous claim was the day before (UTC) and starts again at
  1 otherwise. One claim per UTC day: the member's profile row is locked, so
  concurrent claims pay once.
- ``leveling.xpCooldownSeconds`` (60): a member's messages count (for quests
  and lootdrops) at most once in that many seconds.
- ``lootdrops.chance`` (0.05, per counted message in a lootdrop channel),
  ``lootdrops.minAmount`` (10), ``lootdrops.maxAmount`` (50) and
  ``lootdrops.expirySeconds`` (60): optional keys, these defaults when absent.
  The first claim of a drop wins (a conditional UPDATE), exactly once.

A quest (``/api/quests``) advances when its ``triggerEvent`` happens to a
member: ``daily`` (a daily claim), ``transfer`` (sending coins), ``buy`` (a
shop purchase), ``message`` (a message in the guild), ``lootdrop`` (a claim);
``login`` (a member's first message or command of a UTC day); reaching
``target`` pays its rewards once (QUEST_REWARD and xp). Other triggers are
kept, and nothing advances them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.community.models import Lootdrop, Profile, Quest, QuestProgress
from guildhall.core.economy import service as economy
from guildhall.core.economy.service import EntryType
from guildhall.core.errors import Conflict, Invalid, LimitExceeded, NotFound
from guildhall.core.items import service as items
from guildhall.core.items.models import Item
from guildhall.db.base import utcnow
from guildhall.db.sql import KEEP_ROW, ensure_row, insert_ignore, rowcount
from guildhall.events.announce import announce

STRANDED = timedelta(minutes=5)
LOOTDROP_DEFAULTS = {"chance": 0.05, "minAmount": 10, "maxAmount": 50, "expirySeconds": 60}


def _setting(document: dict[str, Any], section: str, key: str, default: int) -> int:
    value = (document.get(section) or {}).get(key, default)
    return value if isinstance(value, type(default)) and not isinstance(value, bool) else default


def message_cooldown(document: dict[str, Any]) -> int:
    """``leveling.xpCooldownSeconds``: how often a member's messages count (60 s)."""
    seconds = _setting(document, "leveling", "xpCooldownSeconds", 60)
    return max(0, min(seconds, 86_400))


def lootdrop_settings(document: dict[str, Any]) -> dict[str, Any]:
    found = {key: _setting(document, "lootdrops", key, 0) for key in ("minAmount", "maxAmount")}
    chance = (document.get("lootdrops") or {}).get("chance", LOOTDROP_DEFAULTS["chance"])
    settings = {**LOOTDROP_DEFAULTS, **{k: v for k, v in found.items() if v > 0}}
    if isinstance(chance, int | float) and not isinstance(chance, bool) and 0 <= chance <= 1:
        settings["chance"] = float(chance)
    expiry = _setting(document, "lootdrops", "expirySeconds", 0)
    if 1 <= expiry <= 3600:
        settings["expirySeconds"] = expiry
    settings["maxAmount"] = max(settings["maxAmount"], settings["minAmount"])
    return settings


async def _profile(session: AsyncSession, account_id: int) -> Profile:
    return await ensure_row(session, Profile, {"account_id": account_id})


def _until_tomorrow(now: datetime) -> str:
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = int((midnight - now).total_seconds() // 60) + 1
    return f"{minutes // 60}h {minutes % 60}m"


@dataclass(frozen=True, slots=True)
class DailyClaim:
    amount: int
    streak: int
    balance: int


async def claim_daily(
    session: AsyncSession,
    account: AccountRef,
    document: dict[str, Any],
    actor: Actor,
    currency: str = economy.COINS,
) -> DailyClaim:
    """Pay the daily reward; Conflict ``daily_claimed`` (with the time left) on a second
    claim the same UTC day."""
    profile = await _profile(session, account.id)  # locked: concurrent claims queue here
    now = utcnow()
    last = profile.last_daily_at
    if last is not None and last.date() == now.date():
        raise Conflict(
            f"you have claimed today's reward; the next one in {_until_tomorrow(now)}",
            code="daily_claimed",
        )
    yesterday = (now - timedelta(days=1)).date()
    streak = profile.daily_streak + 1 if last is not None and last.date() == yesterday else 1
    reward = _setting(document, "economy", "dailyReward", 100)
    bonus = _setting(document, "economy", "dailyStreakBonus", 10)
    amount = max(reward + bonus * (streak - 1), 1)
    profile.last_daily_at, profile.daily_streak, profile.updated_at = now, streak, now
    await session.flush()
    balance = await economy.adjust(
        session,
        account,
        amount,
        actor=actor,
        entry_type=EntryType.DAILY_REWARD,
        reason=f"Daily reward (Streak: {streak})",
        currency=currency,
    )
    return DailyClaim(amount, streak, balance)


async def transfer(
    session: AsyncSession,
    sender: AccountRef,
    receiver: AccountRef,
    amount: int,
    actor: Actor,
    currency: str = economy.COINS,
) -> int:
    """Move coins between members in one transaction; the sender's new balance."""
    if amount <= 0:
        raise Invalid("the amount must be a positive whole number", field="amount")
    if sender.id == receiver.id:
        raise Invalid("you cannot send coins to yourself", field="user")

    async def take() -> int:
        try:
            return await economy.adjust(
                session,
                sender,
                -amount,
                actor=actor,
                entry_type=EntryType.TRANSFER_OUT,
                reason=f"Transfer to {receiver.describe()}",
                currency=currency,
            )
        except LimitExceeded:
            raise LimitExceeded(
                f"you do not have {amount} {currency}", code="insufficient"
            ) from None

    async def give() -> int:
        return await economy.adjust(
            session,
            receiver,
            amount,
            actor=actor,
            entry_type=EntryType.TRANSFER_IN,
            reason=f"Transfer from {sender.describe()}",
            currency=currency,
        )

    # Both balance rows are locked in account order, so two members paying each other
    # at once wait for one another instead of deadlocking (PostgreSQL).
    if sender.id < receiver.id:
        left = await take()
        await give()
    else:
        await give()
        left = await take()
    return left


async def shop(session: AsyncSession) -> list[Item]:
    """What is for sale: items with a price, cheapest first."""
    return list(await session.scalars(select(Item).where(Item.price > 0).order_by(Item.price)))


async def find_item(session: AsyncSession, name_or_id: str) -> Item:
    text = name_or_id.strip()
    found = None
    if text.isdigit():
        found = await session.get(Item, int(text))
    if found is None:
        found = await session.scalar(select(Item).where(func.lower(Item.name) == text.lower()))
    if found is None:
        raise NotFound(f"there is no item {text!r}", code="item_not_found")
    return found


async def buy(
    session: AsyncSession,
    account: AccountRef,
    item_id: int,
    quantity: int,
    actor: Actor,
    currency: str = economy.COINS,
) -> tuple[Item, int, int]:
    """Buy from the shop: coins out (SHOP_BUY) and the item in, in one transaction.
    Returns the item, how many are now held, and the balance left."""
    if not 1 <= quantity <= 1000:
        raise Invalid("quantity must be 1 to 1000", field="quantity")
    item = await items.get(session, item_id, lock=KEEP_ROW)
    if item.price <= 0:
        raise Invalid(f"{item.name} is not for sale", field="item")
    try:
        left = await economy.adjust(
            session,
            account,
            -item.price * quantity,
            actor=actor,
            entry_type=EntryType.SHOP_BUY,
            reason=f"Bought {quantity} x {item.name}",
            currency=currency,
        )
    except LimitExceeded:
        raise LimitExceeded(
            f"{quantity} x {item.name} costs {item.price * quantity} {currency}; you have less",
            code="insufficient",
        ) from None
    held = await items.add(session, account, item.id, quantity, actor)
    return item, held, left


@dataclass(frozen=True, slots=True)
class QuestState:
    quest: Quest
    progress: int
    completed: bool


async def quests_of(session: AsyncSession, account: AccountRef) -> list[QuestState]:
    rows = await session.execute(
        select(Quest, QuestProgress)
        .outerjoin(
            QuestProgress,
            (QuestProgress.quest_id == Quest.id) & (QuestProgress.account_id == account.id),
        )
        .order_by(Quest.id)
    )
    return [
        QuestState(quest, held.progress if held else 0, bool(held and held.completed_at))
        for quest, held in rows
    ]


async def advance_quests(
    session: AsyncSession,
    account: AccountRef,
    trigger: str,
    actor: Actor,
    currency: str = economy.COINS,
    by: int = 1,
) -> list[Quest]:
    """Advance the member's quests triggered by ``trigger``; the ones this completed
    (each pays its rewards once: the progress row is locked)."""
    completed: list[Quest] = []
    quests = await session.scalars(select(Quest).where(Quest.trigger_event == trigger))
    for quest in list(quests):
        await insert_ignore(
            session,
            QuestProgress.__table__,
            {"account_id": account.id, "quest_id": quest.id, "progress": 0},
        )
        held = await session.get(
            QuestProgress, (account.id, quest.id), with_for_update=True, populate_existing=True
        )
        assert held is not None
        if held.completed_at is not None:
            continue
        held.progress = min(held.progress + by, quest.target)
        if held.progress < quest.target:
            continue
        held.completed_at = utcnow()
        await session.flush()
        if quest.balance_reward > 0:
            await economy.adjust(
                session,
                account,
                quest.balance_reward,
                actor=actor,
                entry_type=EntryType.QUEST_REWARD,
                reason=f"Quest reward: {quest.name}",
                currency=currency,
            )
        if quest.xp_reward > 0:
            profile = await _profile(session, account.id)
            profile.xp += quest.xp_reward
            profile.updated_at = utcnow()
        await announce(
            session,
            actor,
            "quest.completed",
            f"{account.describe()} completed quest {quest.name}",
            {"userId": account.subject, "questId": str(quest.id), "name": quest.name},
            target_account_id=account.id,
            target=f"quest:{quest.id}",
        )
        completed.append(quest)
    await session.flush()
    return completed


async def note_activity(
    session: AsyncSession, account: AccountRef, actor: Actor, currency: str = economy.COINS
) -> list[Quest]:
    """A member did something in the guild: their first activity of a UTC day is a
    ``login``. The quests that completed."""
    profile = await _profile(session, account.id)
    now = utcnow()
    if profile.last_active_at is not None and profile.last_active_at.date() == now.date():
        return []
    profile.last_active_at = now
    await session.flush()
    return await advance_quests(session, account, "login", actor, currency)


async def new_lootdrop(
    session: AsyncSession, channel_id: str, amount: int, seconds: int
) -> Lootdrop:
    now = utcnow()
    drop = Lootdrop(
        channel_id=channel_id,
        amount=amount,
        created_at=now,
        expires_at=now + timedelta(seconds=seconds),
    )
    session.add(drop)
    await session.flush()
    return drop


async def claim_lootdrop(
    session: AsyncSession,
    drop_id: int,
    account: AccountRef,
    actor: Actor,
    currency: str = economy.COINS,
) -> Lootdrop:
    """Claim a drop: exactly one claimer wins; Conflict ``lootdrop_gone`` for the rest."""
    now = utcnow()
    won = await session.execute(
        update(Lootdrop)
        .where(
            Lootdrop.id == drop_id,
            Lootdrop.claimed_by.is_(None),
            Lootdrop.closed_at.is_(None),
            Lootdrop.expires_at > now,
        )
        .values(claimed_by=account.id, claimed_at=now, closed_at=now)
        .execution_options(synchronize_session=False)
    )
    drop = await session.get(Lootdrop, drop_id, populate_existing=True)
    if drop is None or not rowcount(won):
        raise Conflict("someone else got it first, or it expired", code="lootdrop_gone")
    await economy.adjust(
        session,
        account,
        drop.amount,
        actor=actor,
        entry_type=EntryType.LOOTDROP_CLAIM,
        reason=f"Lootdrop {drop.id}",
        currency=currency,
    )
    return drop


async def close_expired_lootdrops(session: AsyncSession) -> list[Lootdrop]:
    """The unclaimed drops whose time is up, now closed (their messages say so)."""
    now = utcnow()
    rows = list(
        await session.scalars(
            select(Lootdrop)
            .where(
                Lootdrop.claimed_by.is_(None),
                Lootdrop.closed_at.is_(None),
                Lootdrop.expires_at <= now,
                # Not before its message is known (or surely never will be).
                Lootdrop.message_id.is_not(None) | (Lootdrop.expires_at <= now - STRANDED),
            )
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.closed_at = now
    await session.flush()
    return rows
