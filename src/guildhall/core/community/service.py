"""Members, classes, quests, the bot's settings document and the guild directory.

Members are the shared accounts, named by their Discord identity; their
coins are the shared ledger (``core/economy``), so a change made through any
face shows here. A profile row (xp, level, streak...) exists once something
set it; until then a member reads with the defaults.

A settings document (Aurora's settings, Rustmail's bot configuration) grows
by merges, and every request touching it (Aurora's health included) copies
it whole, so its shape is capped: at most :data:`MAX_DOCUMENT_BYTES` of JSON,
:data:`MAX_DOCUMENT_KEYS` keys and array items at every level together, and
:data:`MAX_DOCUMENT_DEPTH` levels, measured on the document as clients read it
(defaults included) after the merge. A merge that would pass a cap is refused
(``Invalid``, code ``document_too_large``) and changes nothing, so repeated
small merges stop at the cap too. A document stored over a cap before the caps
existed can still be changed by merges that do not grow it past what it was
(replacing a big value by null trims it).
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.models import Account, Identity, Provider
from guildhall.core.accounts.service import USERNAME, AccountRef, find_by_provider
from guildhall.core.actor import Actor
from guildhall.core.community.models import (
    BotSettings,
    DirectoryEntry,
    GuildClass,
    GuildMember,
    MemberRole,
    Profile,
    Quest,
)
from guildhall.core.economy import service as economy
from guildhall.core.economy.models import Balance
from guildhall.core.errors import Conflict, Invalid, NotFound, is_digits
from guildhall.core.text import require_storable, storable
from guildhall.db.base import utcnow
from guildhall.db.gathered import Gathered
from guildhall.db.prepared import Prepared, Row
from guildhall.db.sql import (
    KEEP_ROW,
    ensure_row,
    flush_unless_duplicate,
    insert_ignore,
    rowcount,
    upsert,
)
from guildhall.events import audit, outbox
from guildhall.events.announce import announce

MAX_BIG = economy.MAX_AMOUNT
MAX_PAGE = 100
SORTS = ("balance", "level", "xp", "username")


# ---- members -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassView:
    id: str
    name: str
    balance: int
    role_id: str | None


@dataclass(frozen=True, slots=True)
class MemberView:
    discord_id: str
    account_id: int
    username: str
    balance: int
    xp: int
    level: int
    daily_streak: int
    is_active: bool
    guild_class: ClassView | None
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _member_select() -> Any:
    """Members with their balance in ``:unit``: built once, run as prepared statements."""
    return (
        select(
            Identity.subject,
            Account.id,
            Account.username,
            func.coalesce(Balance.amount, 0),
            func.coalesce(Profile.xp, 0),
            func.coalesce(Profile.level, 0),
            func.coalesce(Profile.daily_streak, 0),
            func.coalesce(Profile.is_active, True),
            GuildClass.id,
            GuildClass.name,
            GuildClass.balance,
            GuildClass.role_id,
            Profile.settings,
            Account.created_at,
            func.coalesce(Profile.updated_at, Account.updated_at),
        )
        .select_from(Identity)
        .join(Account, Account.id == Identity.account_id)
        .outerjoin(Profile, Profile.account_id == Account.id)
        .outerjoin(GuildClass, GuildClass.id == Profile.class_id)
        .outerjoin(
            Balance,
            and_(Balance.account_id == Account.id, Balance.currency == bindparam("unit")),
        )
        .where(Identity.provider == Provider.DISCORD.value)
    )


_SEARCH = Account.username.ilike(bindparam("pattern"), escape="\\")
_ONE_MEMBER = Prepared(_member_select().where(Identity.subject == bindparam("subject")))
_SORT_COLUMNS: dict[str, Any] = {
    "balance": func.coalesce(Balance.amount, 0),
    "level": func.coalesce(Profile.level, 0),
    "xp": func.coalesce(Profile.xp, 0),
    "username": Account.username,
}
# The one table besides ``identities`` that each order reads (``accounts`` is joined
# for a search anyway).
_SORT_TABLES: dict[str, tuple[Any, Any]] = {
    "balance": (
        Balance,
        and_(Balance.account_id == Identity.account_id, Balance.currency == bindparam("unit")),
    ),
    "level": (Profile, Profile.account_id == Identity.account_id),
    "xp": (Profile, Profile.account_id == Identity.account_id),
}
_PAGES: dict[tuple[str, bool, bool], Prepared] = {}


def _page_statement(sort_by: str, descending: bool, searching: bool) -> Prepared:
    """A page of members in order: the members are ranked first on the narrowest join
    that holds the order (identities and one table: on PostgreSQL half the time of
    sorting every member's whole row), then only the page's rows are joined whole."""
    key = (sort_by, descending, searching)
    if key not in _PAGES:
        column = _SORT_COLUMNS[sort_by]
        ranking = select(Identity.id, column.label("rank")).where(
            Identity.provider == Provider.DISCORD.value
        )
        if searching or sort_by == "username":
            ranking = ranking.join(Account, Account.id == Identity.account_id)
        if sort_by in _SORT_TABLES:
            ranking = ranking.outerjoin(*_SORT_TABLES[sort_by])
        if searching:
            ranking = ranking.where(_SEARCH)
        rank = column.desc() if descending else column.asc()
        ranked = (
            ranking.order_by(rank, Identity.account_id, Identity.id)
            .limit(bindparam("limit"))
            .offset(bindparam("offset"))
            .subquery("ranked")
        )
        in_order = ranked.c.rank.desc() if descending else ranked.c.rank.asc()
        _PAGES[key] = Prepared(
            _member_select()
            .join(ranked, ranked.c.id == Identity.id)
            .order_by(in_order, Account.id, Identity.id)
        )
    return _PAGES[key]


# Every identity has its account (a foreign key that is never null): no join needed.
_COUNT = (
    select(func.count()).select_from(Identity).where(Identity.provider == Provider.DISCORD.value)
)
_COUNT_ALL = Prepared(_COUNT)
_COUNT_SEARCH = Prepared(_COUNT.join(Account, Account.id == Identity.account_id).where(_SEARCH))


def _member(row: Any) -> MemberView:
    (
        subject,
        account_id,
        username,
        balance,
        xp,
        level,
        streak,
        active,
        class_id,
        class_name,
        class_balance,
        role_id,
        settings,
        created,
        updated,
    ) = row
    guild_class = (
        ClassView(class_id, class_name, class_balance, role_id) if class_id is not None else None
    )
    return MemberView(
        discord_id=subject,
        account_id=account_id,
        username=username,
        balance=balance,
        xp=xp,
        level=level,
        daily_streak=streak,
        is_active=bool(active),
        guild_class=guild_class,
        settings=settings or {},
        created_at=created,
        updated_at=updated,
    )


async def _member_row(session: AsyncSession, asked: tuple[str, str]) -> Row | None:
    discord_id, currency = asked
    return await _ONE_MEMBER.first(session, {"subject": discord_id, "unit": currency})


_MEMBER_ROW = Gathered("community.member", _member_row)
"""A bot asks for the same member many times a second: requests asking at once share
the read (``db/gathered.py``)."""


async def member(session: AsyncSession, discord_id: str, currency: str) -> MemberView:
    row = await _MEMBER_ROW.get(session, (discord_id, currency)) if storable(discord_id) else None
    if row is None:
        raise NotFound(f"no user has the Discord id {discord_id}", code="user_not_found")
    return _member(row)


@dataclass(frozen=True, slots=True)
class _PageAsked:
    """One page of the member list, as a key: requests asking for the same one at once
    share its read (``db/gathered.py``; a dashboard polls its first page)."""

    currency: str
    search: str
    sort_by: str
    descending: bool
    limit: int
    offset: int


async def _page_and_count(session: AsyncSession, asked: _PageAsked) -> tuple[list[Row], int]:
    params: dict[str, Any] = {"unit": asked.currency, "limit": asked.limit, "offset": asked.offset}
    if asked.search:
        escaped = asked.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["pattern"] = f"%{escaped}%"
        total = await _COUNT_SEARCH.scalar(session, {"pattern": params["pattern"]})
    else:
        total = await _COUNT_ALL.scalar(session, {})
    rows = await _page_statement(asked.sort_by, asked.descending, bool(asked.search)).all(
        session, params
    )
    return rows, int(total or 0)


_PAGE_AND_COUNT = Gathered("community.members", _page_and_count)


async def members(
    session: AsyncSession,
    currency: str,
    *,
    search: str | None,
    sort_by: str,
    descending: bool,
    limit: int,
    offset: int,
) -> tuple[list[MemberView], int]:
    """A page of members and how many match in all."""
    asked = _PageAsked(currency, search or "", sort_by, descending, limit, offset)
    rows, total = await _PAGE_AND_COUNT.get(session, asked)
    return [_member(row) for row in rows], total


async def _profile(session: AsyncSession, account_id: int) -> Profile:
    """The member's profile, locked; made first if they have none (the columns'
    defaults: no xp, level 0, active, no settings)."""
    return await ensure_row(session, Profile, {"account_id": account_id})


@dataclass
class MemberChange:
    """The fields a client sent; None means "leave as it is" (except ``class_id``)."""

    username: str | None = None
    balance: int | None = None
    xp: int | None = None
    level: int | None = None
    daily_streak: int | None = None
    is_active: bool | None = None
    settings: dict[str, Any] | None = None
    class_id: str | None = None
    class_given: bool = False


async def update_member(
    session: AsyncSession, discord_id: str, change: MemberChange, currency: str, actor: Actor
) -> MemberView:
    ref = await member_ref(session, discord_id)
    changed: list[str] = []
    if change.username is not None and change.username != ref.username:
        if not USERNAME.fullmatch(change.username):
            raise Invalid(
                "a username is 1 to 64 letters, digits, dots, dashes or underscores",
                field="username",
            )
        taken = await session.scalar(select(Account.id).where(Account.username == change.username))
        if taken is not None:
            raise Conflict(f"the username {change.username!r} is taken", field="username")
        account = await session.get(Account, ref.id, with_for_update=True)
        assert account is not None
        account.username = change.username
        if not await flush_unless_duplicate(session):
            raise Conflict(f"the username {change.username!r} is taken", field="username")
        changed.append("username")
    if change.balance is not None:
        await economy.set_balance(
            session, ref, change.balance, actor=actor, currency=currency, reason="set by Aurora"
        )
        changed.append("balance")
    fields: dict[str, object] = {
        "xp": change.xp,
        "level": change.level,
        "daily_streak": change.daily_streak,
        "is_active": change.is_active,
        "settings": change.settings,
    }
    profile_changes = {name: value for name, value in fields.items() if value is not None}
    if change.class_given:
        if (
            change.class_id is not None
            and await session.get(GuildClass, change.class_id, with_for_update=KEEP_ROW) is None
        ):
            raise NotFound(f"class {change.class_id} does not exist", code="class_not_found")
        profile_changes["class_id"] = change.class_id
    if profile_changes:
        profile = await _profile(session, ref.id)
        for name, value in profile_changes.items():
            setattr(profile, name, value)
        profile.updated_at = utcnow()
        changed.extend(profile_changes)
    await session.flush()
    if changed:
        await announce(
            session,
            actor,
            "user.updated",
            f"{actor.name} updated {ref.describe()}: {', '.join(sorted(changed))}",
            {"id": discord_id, "fields": sorted(changed)},
            target_account_id=ref.id,
            target=f"account:{ref.id}",
        )
    return await member(session, discord_id, currency)


async def member_ref(session: AsyncSession, discord_id: str) -> AccountRef:
    """The account of a member, by Discord id only (as ``GET /api/users/:id`` finds it)."""
    found = await find_by_provider(session, Provider.DISCORD, discord_id)
    if found is None:
        raise NotFound(f"no user has the Discord id {discord_id}", code="user_not_found")
    return found


# ---- classes -------------------------------------------------------------

CLASS_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
"""A class id a client chooses: it names the class in paths (``/api/classes/{id}``), so
letters, digits, ``_`` and ``-`` only (Discord role ids, ``warrior``...)."""


def _class_view(row: GuildClass) -> ClassView:
    return ClassView(row.id, row.name, row.balance, row.role_id)


async def classes(session: AsyncSession) -> list[ClassView]:
    rows = await session.scalars(select(GuildClass).order_by(GuildClass.created_at, GuildClass.id))
    return [_class_view(row) for row in rows]


async def class_page(session: AsyncSession, *, limit: int, offset: int) -> list[ClassView]:
    """``limit`` classes from ``offset`` in the order :func:`classes` lists them (the
    console pages them, reading one more to know whether another page follows: it never
    loads, nor counts, a whole table)."""
    rows = await session.scalars(
        select(GuildClass)
        .order_by(GuildClass.created_at, GuildClass.id)
        .limit(limit)
        .offset(offset)
    )
    return [_class_view(row) for row in rows]


async def class_count(session: AsyncSession) -> int:
    """How many classes there are."""
    return await session.scalar(select(func.count()).select_from(GuildClass)) or 0


async def _name_free(session: AsyncSession, name: str, except_id: str | None = None) -> None:
    query = select(GuildClass.id).where(func.lower(GuildClass.name) == name.lower())
    if except_id is not None:
        query = query.where(GuildClass.id != except_id)
    if await session.scalar(query) is not None:
        raise Conflict(f"a class named {name!r} already exists", code="duplicate_name")


async def create_class(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    balance: int = 0,
    role_id: str | None = None,
    class_id: str | None = None,
) -> ClassView:
    await _name_free(session, name)
    if class_id is None:
        class_id = secrets.token_hex(6)  # clients usually name it (a Discord-style id)
    elif not CLASS_ID.fullmatch(class_id):
        raise Invalid("the id must be 1 to 32 letters, digits, _ or -", field="id")
    elif await session.get(GuildClass, class_id) is not None:
        raise Conflict(f"class {class_id} already exists", code="duplicate_id")
    row = GuildClass(id=class_id, name=name, balance=balance, role_id=role_id)
    session.add(row)
    if not await flush_unless_duplicate(session):
        raise Conflict(f"a class named {name!r} already exists", code="duplicate_name")
    await announce(
        session,
        actor,
        "class.created",
        f"{actor.name} created class {name} ({class_id})",
        {"id": class_id, "name": name},
        target=f"class:{class_id}",
    )
    return _class_view(row)


async def update_class(
    session: AsyncSession,
    class_id: str,
    actor: Actor,
    *,
    name: str | None = None,
    balance: int | None = None,
    role_id: str | None = None,
    role_given: bool = False,
) -> ClassView:
    row = await _class_row(session, class_id)
    if name is not None:
        await _name_free(session, name, except_id=class_id)
        row.name = name
        if not await flush_unless_duplicate(session):
            raise Conflict(f"a class named {name!r} already exists", code="duplicate_name")
    if balance is not None:
        row.balance = balance
    if role_given:
        row.role_id = role_id
    await session.flush()
    await announce(
        session,
        actor,
        "class.updated",
        f"{actor.name} updated class {row.name} ({class_id})",
        {"id": class_id, "name": row.name},
        target=f"class:{class_id}",
    )
    return _class_view(row)


async def _class_row(session: AsyncSession, class_id: str) -> GuildClass:
    """The class, locked; NotFound for an id no class has (one with a NUL never is)."""
    row = (
        await session.get(GuildClass, class_id, with_for_update=True)
        if storable(class_id)
        else None
    )
    if row is None:
        raise NotFound(f"class {class_id} does not exist", code="class_not_found")
    return row


async def delete_class(session: AsyncSession, class_id: str, actor: Actor) -> None:
    row = await _class_row(session, class_id)
    await session.delete(row)
    await session.flush()
    await announce(
        session,
        actor,
        "class.deleted",
        f"{actor.name} deleted class {row.name} ({class_id})",
        {"id": class_id},
        target=f"class:{class_id}",
    )


# ---- quests --------------------------------------------------------------


@dataclass
class QuestFields:
    name: str | None = None
    description: str | None = None
    trigger_event: str | None = None
    target: int | None = None
    xp_reward: int | None = None
    balance_reward: int | None = None


async def quests(session: AsyncSession) -> list[Quest]:
    return list(await session.scalars(select(Quest).order_by(Quest.id)))


async def quest_page(session: AsyncSession, *, limit: int, offset: int) -> list[Quest]:
    """``limit`` quests from ``offset`` in the order :func:`quests` lists them."""
    return list(await session.scalars(select(Quest).order_by(Quest.id).limit(limit).offset(offset)))


async def quest_count(session: AsyncSession) -> int:
    """How many quests there are."""
    return await session.scalar(select(func.count()).select_from(Quest)) or 0


async def create_quest(session: AsyncSession, fields: QuestFields, actor: Actor) -> Quest:
    if not fields.name or not fields.trigger_event:
        raise Invalid("name and triggerEvent are required", field="name")
    row = Quest(
        name=fields.name,
        description=fields.description or "",
        trigger_event=fields.trigger_event,
        target=fields.target if fields.target is not None else 1,
        xp_reward=fields.xp_reward or 0,
        balance_reward=fields.balance_reward or 0,
    )
    session.add(row)
    await session.flush()
    await announce(
        session,
        actor,
        "quest.created",
        f"{actor.name} created quest {row.name} (#{row.id})",
        {"id": row.id, "name": row.name},
        target=f"quest:{row.id}",
    )
    return row


async def update_quest(
    session: AsyncSession, quest_id: int, fields: QuestFields, actor: Actor
) -> Quest:
    row = await session.get(Quest, quest_id, with_for_update=True)
    if row is None:
        raise NotFound(f"quest {quest_id} does not exist", code="quest_not_found")
    for name in ("name", "description", "trigger_event", "target", "xp_reward", "balance_reward"):
        value = getattr(fields, name)
        if value is not None:
            setattr(row, name, value)
    await session.flush()
    await announce(
        session,
        actor,
        "quest.updated",
        f"{actor.name} updated quest {row.name} (#{row.id})",
        {"id": row.id, "name": row.name},
        target=f"quest:{row.id}",
    )
    return row


async def delete_quest(session: AsyncSession, quest_id: int, actor: Actor) -> None:
    row = await session.get(Quest, quest_id, with_for_update=True)
    if row is None:
        raise NotFound(f"quest {quest_id} does not exist", code="quest_not_found")
    await session.delete(row)
    await session.flush()
    await announce(
        session,
        actor,
        "quest.deleted",
        f"{actor.name} deleted quest {row.name} (#{quest_id})",
        {"id": quest_id},
        target=f"quest:{quest_id}",
    )


# ---- settings ------------------------------------------------------------

DEFAULT_SETTINGS: dict[str, Any] = {
    "prefix": "!",
    "economy": {"currencyName": "coins", "dailyReward": 100, "dailyStreakBonus": 10},
    "leveling": {"xpPerMessage": 5, "xpCooldownSeconds": 60},
    "moderation": {"logChannelId": None, "muteRoleId": None},
    "maintenance": {"enabled": False, "reason": None, "since": None},
    "commands": {"reloadedAt": None, "count": 0},
}
"""The known keys and their types; a partial update must keep each known key's type."""


@dataclass(frozen=True)
class Document:
    """A settings document stored in ``bot_settings``: its row and its known keys."""

    id: int
    defaults: dict[str, Any]


AURORA_SETTINGS = Document(1, DEFAULT_SETTINGS)


MAX_DOCUMENT_BYTES = 64 * 1024
"""Largest a settings document may be, as JSON (64 KB): the documents' own examples
take a few hundred bytes."""
MAX_DOCUMENT_KEYS = 1_000
"""Most keys a settings document may hold, counting every object's keys and every
array's items at every level: what a merge and each read copy grows with it."""
MAX_DOCUMENT_DEPTH = 32
"""Most levels of objects and arrays in a settings document, the document itself
being the first: the depth every face accepts in a JSON body
(``faces/common/body.MAX_JSON_DEPTH``), so any body a face takes can be stored."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What the caps measure of a document: its JSON size, its keys and array items
    at every level together, and how deeply it nests."""

    size: int
    keys: int
    depth: int


def shape_of(document: dict[str, Any]) -> Shape:
    keys, depth = 0, 0
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(document, 1)]
    while pending:
        value, level = pending.pop()
        depth = max(depth, level)
        keys += len(value)
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return Shape(len(orjson.dumps(document)), keys, depth)


def _check_shape(merged: dict[str, Any], before: Callable[[], dict[str, Any]]) -> None:
    """Refuse ``merged`` if it passes a cap and grew past what ``before()`` (the document
    the merge started from) was; that one is built and measured only then."""
    after = shape_of(merged)
    if (
        after.size <= MAX_DOCUMENT_BYTES
        and after.keys <= MAX_DOCUMENT_KEYS
        and after.depth <= MAX_DOCUMENT_DEPTH
    ):
        return
    old = shape_of(before())
    limits = (
        (
            after.size,
            old.size,
            MAX_DOCUMENT_BYTES,
            f"take at most {MAX_DOCUMENT_BYTES // 1024} KB as JSON",
            "bytes",
        ),
        (
            after.keys,
            old.keys,
            MAX_DOCUMENT_KEYS,
            f"hold at most {MAX_DOCUMENT_KEYS} keys and array items in all",
            "keys and items",
        ),
        (
            after.depth,
            old.depth,
            MAX_DOCUMENT_DEPTH,
            f"nest at most {MAX_DOCUMENT_DEPTH} levels deep",
            "levels",
        ),
    )
    for new, was, cap, rule, unit in limits:
        if new > cap and new > was:
            raise Invalid(
                f"the settings may {rule}; this change would make them {new} {unit}",
                code="document_too_large",
                field="settings",
            )


MAX_SETTING_TEXT = 2000
"""Longest text a known setting takes (a Discord message's length)."""
MAX_SETTING_INTEGER = 2**53 - 1
"""Largest integer a known setting takes: the dashboards reading them are JavaScript."""


def _check_types(update: Any, known: Any, path: str) -> None:
    """Each known key of ``update`` keeps the type of its default; a default of null
    stands for text that may be null (ids, reasons, times). Unknown keys are the
    operator's own and pass as they are."""
    if not isinstance(update, dict):
        raise Invalid(f"{path or 'settings'} must be an object", field=path or "settings")
    for key, value in update.items():
        where = f"{path}.{key}" if path else key
        if not isinstance(known, dict) or key not in known:
            continue
        expected = known[key]
        if isinstance(expected, dict):
            _check_types(value, expected, where)
            continue
        if expected is None:
            if value is not None and not isinstance(value, str):
                raise Invalid(f"{where} must be a string or null", field=where)
        elif isinstance(expected, bool) != isinstance(value, bool) or not isinstance(
            value, type(expected)
        ):
            raise Invalid(
                f"{where} must be a {type(expected).__name__.replace('str', 'string')}",
                field=where,
            )
        if isinstance(value, str) and (len(value) > MAX_SETTING_TEXT or not storable(value)):
            raise Invalid(
                f"{where} must be at most {MAX_SETTING_TEXT} characters, without NUL",
                field=where,
            )
        if isinstance(value, int) and abs(value) > MAX_SETTING_INTEGER:
            raise Invalid(
                f"{where} must be between -{MAX_SETTING_INTEGER} and {MAX_SETTING_INTEGER}",
                field=where,
            )


def _check_names(update: dict[str, Any]) -> None:
    """The settings' names can be stored: the audit sentence names them. Deeper keys are
    the operator's data, kept as sent (the document is stored as JSON text)."""
    for key in update:
        require_storable(key, "a setting's name", field="settings")


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


async def settings(session: AsyncSession, document: Document = AURORA_SETTINGS) -> dict[str, Any]:
    row = await session.get(BotSettings, document.id)
    return deep_merge(document.defaults, row.document if row else {})


async def merge_settings(
    session: AsyncSession,
    update: Any,
    actor: Actor,
    *,
    event: str = "settings.updated",
    document: Document = AURORA_SETTINGS,
) -> dict[str, Any]:
    """Deep-merge ``update`` into the stored document, after checking the known keys' types;
    refused, changing nothing, when the result would pass a cap (see the module's docstring)."""
    _check_types(update, document.defaults, "")
    _check_names(update)
    row = await ensure_row(session, BotSettings, {"id": document.id, "document": {}})
    stored = deep_merge(row.document or {}, update)
    merged = deep_merge(document.defaults, stored)
    _check_shape(merged, lambda: deep_merge(document.defaults, row.document or {}))
    row.document = stored
    row.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor,
        event,
        f"{actor.name} changed the bot settings: {', '.join(sorted(update)) or 'nothing'}",
        target="settings",
    )
    await outbox.emit(session, event, {"keys": sorted(update)})
    return merged


async def set_maintenance(
    session: AsyncSession, enabled: bool, reason: str | None, actor: Actor
) -> dict[str, Any]:
    since = utcnow().isoformat() if enabled else None
    document = await merge_settings(
        session,
        {
            "maintenance": {
                "enabled": enabled,
                "reason": reason if enabled else None,
                "since": since,
            }
        },
        actor,
        event="maintenance.changed",
    )
    changed: dict[str, Any] = document["maintenance"]
    return changed


async def maintenance(session: AsyncSession) -> dict[str, Any]:
    found: dict[str, Any] = (await settings(session))["maintenance"]
    return found


# ---- directory -----------------------------------------------------------

KINDS = ("role", "channel", "command")


async def directory(session: AsyncSession, kind: str) -> list[DirectoryEntry]:
    return list(
        await session.scalars(
            select(DirectoryEntry)
            .where(DirectoryEntry.kind == kind)
            .order_by(DirectoryEntry.position, DirectoryEntry.key)
        )
    )


async def put_directory_entry(
    session: AsyncSession, kind: str, key: str, name: str, detail: str, actor: Actor
) -> None:
    """Add or replace a role (detail: colour), channel (detail: type) or command (category)."""
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}", field="kind")
    row = await session.get(DirectoryEntry, (kind, key), with_for_update=True)
    if row is None:
        count = await session.scalar(
            select(func.count()).select_from(DirectoryEntry).where(DirectoryEntry.kind == kind)
        )
        row = DirectoryEntry(kind=kind, key=key, position=count or 0)
        session.add(row)
    row.name, row.detail = name, detail
    await session.flush()
    await audit.record(
        session,
        actor,
        "directory.updated",
        f"{actor.name} set {kind} {key} ({name})",
        target=f"{kind}:{key}",
    )


async def remove_directory_entry(session: AsyncSession, kind: str, key: str) -> bool:
    result = await session.execute(
        delete(DirectoryEntry).where(DirectoryEntry.kind == kind, DirectoryEntry.key == key)
    )
    return bool(rowcount(result))


async def reload_commands(session: AsyncSession, actor: Actor) -> dict[str, Any]:
    """Re-read the command registry from the directory and record when and how many."""
    commands = await directory(session, "command")
    document = await merge_settings(
        session,
        {"commands": {"reloadedAt": utcnow().isoformat(), "count": len(commands)}},
        actor,
        event="commands.reloaded",
    )
    reloaded: dict[str, Any] = document["commands"]
    return reloaded


async def put_member(
    session: AsyncSession,
    member_id: str,
    username: str,
    roles: list[str],
    actor: Actor,
    avatar: str | None = None,
) -> None:
    """Add or replace a guild member and the roles they hold."""
    if not is_digits(member_id, 32):
        raise Invalid("a member id is a Discord id (digits)", field="id")
    row = await session.get(GuildMember, member_id, with_for_update=True)
    if row is None:
        row = GuildMember(id=member_id)
        session.add(row)
    row.username, row.avatar = username, avatar
    await session.flush()
    await session.execute(delete(MemberRole).where(MemberRole.member_id == member_id))
    for role_id in sorted(set(roles)):
        session.add(MemberRole(member_id=member_id, role_id=role_id))
    await session.flush()
    await audit.record(
        session,
        actor,
        "directory.updated",
        f"{actor.name} set member {username} ({member_id}) with roles {', '.join(roles) or 'none'}",
        target=f"member:{member_id}",
    )


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """A guild member as the platform reports them."""

    id: str
    username: str
    roles: tuple[str, ...] = ()
    avatar: str | None = None


async def sync_members(session: AsyncSession, members: Sequence[MemberFacts]) -> int:
    """Add or replace members as the platform reports them (GUILD_CREATE, member
    chunks, member events). No audit row per member: a guild's thousands would
    bury the log; the connector logs how many. Returns how many were written."""
    for facts in members:
        await upsert(
            session,
            GuildMember.__table__,
            {"id": facts.id, "username": facts.username[:100], "avatar": facts.avatar},
            ("id",),
        )
        await session.execute(
            delete(MemberRole).where(
                MemberRole.member_id == facts.id, MemberRole.role_id.not_in(facts.roles)
            )
        )
        for role_id in sorted(set(facts.roles)):
            await insert_ignore(
                session, MemberRole.__table__, {"member_id": facts.id, "role_id": role_id}
            )
    return len(members)


async def remove_member(session: AsyncSession, member_id: str) -> bool:
    """A member left (or was removed): gone from the directory; their account stays."""
    result = await session.execute(delete(GuildMember).where(GuildMember.id == member_id))
    return bool(rowcount(result))


async def sync_entries(
    session: AsyncSession,
    kind: str,
    entries: Sequence[tuple[str, str, str]],
    *,
    complete: bool = False,
) -> None:
    """Add or replace roles or channels (key, name, detail) as the platform reports
    them; ``complete`` (a whole guild's list) also removes those it no longer has."""
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if complete:
        await session.execute(
            delete(DirectoryEntry).where(
                DirectoryEntry.kind == kind,
                DirectoryEntry.key.not_in([key for key, _name, _detail in entries]),
            )
        )
    start = 0
    if not complete:  # one new entry goes last
        start = (
            await session.scalar(
                select(func.count()).select_from(DirectoryEntry).where(DirectoryEntry.kind == kind)
            )
            or 0
        )
    for position, (key, name, detail) in enumerate(entries, start):
        values: dict[str, str | int] = {
            "kind": kind,
            "key": key,
            "name": name[:100],
            "detail": detail[:100],
        }
        if complete:
            values["position"] = position
            await upsert(session, DirectoryEntry.__table__, values, ("kind", "key"))
            continue
        await insert_ignore(session, DirectoryEntry.__table__, {**values, "position": position})
        await session.execute(
            update(DirectoryEntry)
            .where(DirectoryEntry.kind == kind, DirectoryEntry.key == key)
            .values(name=values["name"], detail=values["detail"])
        )


async def guild_member(session: AsyncSession, member_id: str) -> GuildMember | None:
    return await session.get(GuildMember, member_id)


async def guild_members(session: AsyncSession) -> list[GuildMember]:
    return list(await session.scalars(select(GuildMember).order_by(GuildMember.username)))


async def roles_of(session: AsyncSession, member_id: str) -> list[str]:
    return list(
        await session.scalars(select(MemberRole.role_id).where(MemberRole.member_id == member_id))
    )
