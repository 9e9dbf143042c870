"""Balances and their ledger.

A balance changes only through :func:`_apply`: one ``UPDATE ... SET amount =
amount + :delta WHERE amount + :delta BETWEEN :lo AND :hi`` and, in the same
transaction, one ledger row carrying the amount and the balance after it.
No balance is ever read into Python, changed and written back, so two
concurrent changes can never lose one another.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, String, bindparam, cast, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Identity, Provider
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.economy.models import Balance, LedgerEntry
from guildhall.core.errors import Invalid, LimitExceeded
from guildhall.db.base import utcnow
from guildhall.db.prepared import Prepared
from guildhall.db.sql import dialect_of, insert_ignore
from guildhall.events import audit, outbox

COINS = "coins"
MAX_AMOUNT = 999_999_999_999_999


class EntryType(StrEnum):
    ADMIN_ADJUSTMENT = "ADMIN_ADJUSTMENT"
    DAILY_REWARD = "DAILY_REWARD"
    TRANSFER_IN = "TRANSFER_IN"
    TRANSFER_OUT = "TRANSFER_OUT"
    LOOTDROP_CLAIM = "LOOTDROP_CLAIM"
    SHOP_BUY = "SHOP_BUY"
    QUEST_REWARD = "QUEST_REWARD"
    RENEWAL = "renewal"  # Heliactyl's word for a game server's periodic cost


_balances = Balance.__table__
_ledger = LedgerEntry.__table__
_OWNER = (_balances.c.account_id == bindparam("owner")) & (
    _balances.c.currency == bindparam("unit")
)
# Statements built once: the hot paths run them on every request, and a
# statement built per call costs more than SQLite takes to run it.
_BALANCE = Prepared(select(_balances.c.amount).where(_OWNER))
_LEDGER_SUM = Prepared(
    select(func.coalesce(func.sum(_ledger.c.amount), 0)).where(
        _ledger.c.account_id == bindparam("owner"),
        _ledger.c.currency == bindparam("unit"),
    )
)
_apply_delta = (
    update(_balances)
    .where(_OWNER, (_balances.c.amount + bindparam("delta")).between(0, MAX_AMOUNT))
    .values(amount=_balances.c.amount + bindparam("delta"))
    .returning(_balances.c.amount)
)
_APPLY = Prepared(_apply_delta)
_APPLY_IF_UNCHANGED = Prepared(_apply_delta.where(_balances.c.amount == bindparam("expected")))
_accounts = Account.__table__
_identities = Identity.__table__
# The same change for the account an identity names (the provider ranked first, as
# ``accounts.find_by_identity`` picks it), found inside the UPDATE: one round trip,
# where finding the account first takes two. It answers the account's id and name too.
_apply_by_subject = (
    update(_balances)
    .where(
        _balances.c.currency == bindparam("unit"),
        _balances.c.account_id
        == select(_identities.c.account_id)
        .where(_identities.c.subject == bindparam("subject"))
        .order_by(accounts.PROVIDER_ORDER)
        .limit(1)
        .scalar_subquery(),
        (_balances.c.amount + bindparam("delta")).between(0, MAX_AMOUNT),
    )
    .values(amount=_balances.c.amount + bindparam("delta"))
    .returning(
        _balances.c.account_id,
        select(_accounts.c.username)
        .where(_accounts.c.id == _balances.c.account_id)
        .scalar_subquery()
        .label("username"),
        _balances.c.amount,
    )
)
_APPLY_BY_SUBJECT = Prepared(_apply_by_subject)
_INSERT_ENTRY = Prepared(insert(_ledger))


def _coins_changed(
    subject: Any, currency: Any, kind: Any, amount: Any, balance: Any
) -> dict[str, Any]:
    """The ``coins.changed`` event's data (values, or SQL expressions that compute them)."""
    return {
        "userId": subject,
        "currency": currency,
        "type": kind,
        "amount": amount,
        "balance": balance,
    }


def _change_message(
    actor: Actor, delta: int, currency: str, described: str, new_amount: str
) -> str:
    """The audit sentence of a change of balance."""
    verb = f"added {delta} {currency} to" if delta > 0 else f"took {-delta} {currency} from"
    return f"{actor.name} {verb} {described}; balance now {new_amount}"


def _adjust_by_subject_whole() -> Prepared:
    """PostgreSQL: ``_APPLY_BY_SUBJECT`` with the change's ledger row, audit row and event
    written by the same statement (INSERT ... SELECT from the UPDATE's RETURNING, in one
    WITH). Run alone (``Prepared.alone``) it is the whole unit of work: one round trip
    with no BEGIN or COMMIT, and a hot balance's row is locked only while PostgreSQL runs
    and commits it, not while the serving process sends the next statement. The rows
    are those ``_record_change`` writes; the values only the UPDATE knows (account id,
    name, balance after) come from it, the rest are bound. SQLite cannot run an UPDATE
    or INSERT inside WITH, and its unit of work needs no round trips."""
    moved = _apply_by_subject.cte("moved")

    def bound(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type)

    ledger = (
        insert(_ledger)
        .from_select(
            [
                "account_id",
                "currency",
                "type",
                "amount",
                "balance_after",
                "actor",
                "reason",
                "created_at",
            ],
            select(
                moved.c.account_id,
                bound("unit", _ledger.c.currency),
                bound("type", _ledger.c.type),
                bound("delta", _ledger.c.amount),
                moved.c.amount,
                bound("actor", _ledger.c.actor),
                bound("reason", _ledger.c.reason),
                bound("created_at", _ledger.c.created_at),
            ),
        )
        .cte("ledger")
    )
    trail = audit.insert_from(
        moved,
        target_account_id=moved.c.account_id,
        target=bindparam("target_prefix", type_=String) + cast(moved.c.account_id, String),
        message=bindparam("message_before_name", type_=String)
        + moved.c.username
        + bindparam("message_before_balance", type_=String)
        + cast(moved.c.amount, String)
        + bindparam("message_after", type_=String),
    ).cte("trail")
    data = _coins_changed(
        bindparam("subject", type_=String),
        bindparam("unit", type_=String),
        bindparam("type", type_=String),
        cast(bindparam("delta", type_=BigInteger), String),
        cast(moved.c.amount, String),
    )
    payload = func.json_build_object(*(part for item in data.items() for part in item), type_=JSON)
    event = outbox.insert_from(moved, "coins.changed", payload).cte("event")
    return Prepared(
        select(moved.c.account_id, moved.c.username, moved.c.amount).add_cte(ledger, trail, event)
    )


_APPLY_BY_SUBJECT_WHOLE = _adjust_by_subject_whole()
_NAME, _BALANCE_AFTER = "\x00name\x00", "\x00balance\x00"  # marks in a message template


async def balance_of(session: AsyncSession, account_id: int, currency: str = COINS) -> int:
    amount = await _BALANCE.scalar(session, {"owner": account_id, "unit": currency})
    return amount or 0


async def ledger_sum(session: AsyncSession, account_id: int, currency: str = COINS) -> int:
    """The sum of an account's ledger rows: always equal to its balance."""
    total = await _LEDGER_SUM.scalar(session, {"owner": account_id, "unit": currency})
    return int(total or 0)


async def _apply(
    session: AsyncSession,
    account_id: int,
    currency: str,
    delta: int,
    *,
    expected: int | None = None,
) -> int | None:
    """Move a balance by ``delta`` if the result stays in range; the new amount, or None."""
    params = {"owner": account_id, "unit": currency, "delta": delta}
    statement = _APPLY
    if expected is not None:
        statement = _APPLY_IF_UNCHANGED
        params["expected"] = expected
    new_amount: int | None = await statement.scalar(session, params)
    if new_amount is None:
        # Either out of range, or there was no row yet. The row may have been
        # committed by a concurrent first writer since the update looked, so try
        # again once the row surely exists: only then is None a refusal.
        await _open_balance(session, account_id, currency)
        new_amount = await statement.scalar(session, params)
    return new_amount


async def _open_balance(session: AsyncSession, account_id: int, currency: str) -> None:
    """Create a zero balance row if there is none."""
    exists = await _BALANCE.scalar(session, {"owner": account_id, "unit": currency})
    if exists is None:
        await insert_ignore(
            session,
            Balance.__table__,
            {"account_id": account_id, "currency": currency, "amount": 0},
        )


async def _write_entry(
    session: AsyncSession,
    account: AccountRef,
    currency: str,
    entry_type: EntryType,
    amount: int,
    balance_after: int,
    actor: Actor,
    reason: str,
) -> None:
    await _INSERT_ENTRY.later(
        session,
        {
            "account_id": account.id,
            "currency": currency,
            "type": entry_type.value,
            "amount": amount,
            "balance_after": balance_after,
            "actor": str(actor),
            "reason": reason,
            "created_at": utcnow(),
        },
    )
    await outbox.emit(
        session,
        "coins.changed",
        _coins_changed(
            account.subject, currency, entry_type.value, str(amount), str(balance_after)
        ),
    )


async def adjust(
    session: AsyncSession,
    account: AccountRef,
    delta: int,
    *,
    actor: Actor,
    entry_type: EntryType = EntryType.ADMIN_ADJUSTMENT,
    reason: str = "",
    currency: str = COINS,
) -> int:
    """Add ``delta`` (negative to take) to a balance; returns the new balance."""
    if delta == 0:
        raise Invalid("the amount must not be zero", code="zero_amount", field="amount")
    if abs(delta) > MAX_AMOUNT:
        raise LimitExceeded(
            f"{currency} must stay between 0 and {MAX_AMOUNT}", code="balance_out_of_range"
        )
    new_amount = await _apply(session, account.id, currency, delta)
    if new_amount is None:
        raise LimitExceeded(
            f"{currency} must stay between 0 and {MAX_AMOUNT}", code="balance_out_of_range"
        )
    await _record_change(session, account, currency, entry_type, delta, new_amount, actor, reason)
    return new_amount


async def adjust_by_identity(
    session: AsyncSession,
    subject: str,
    delta: int,
    *,
    actor: Actor,
    entry_type: EntryType = EntryType.ADMIN_ADJUSTMENT,
    reason: str = "",
    currency: str = COINS,
) -> tuple[AccountRef, int]:
    """:func:`adjust` for the account an identity names (``accounts.require_by_identity``);
    the account and its new balance.

    The usual case is one statement: the UPDATE finds the account itself, and on
    PostgreSQL writes the ledger row, the audit row and the event too, as the unit of
    work's whole change when it is its first (``Prepared.alone``: one round trip, no
    BEGIN or COMMIT; nothing may run after it in that unit of work). When it changes
    nothing (no such identity, no balance row yet, a result out of range), the
    account is looked up and :func:`adjust` says which, or opens the balance.
    """
    row = None
    if delta and abs(delta) <= MAX_AMOUNT and accounts.plausible_subject(subject):
        params: dict[str, Any] = {"unit": currency, "subject": subject, "delta": delta}
        if dialect_of(session).name == "postgresql":
            params |= _recorded(subject, delta, currency, entry_type, actor, reason)
            rows = await _APPLY_BY_SUBJECT_WHOLE.alone(session, params)
            if rows:  # with its ledger row, audit row and event
                account_id, username, new_amount = rows[0]
                return AccountRef(account_id, username, subject), new_amount
        else:
            row = await _APPLY_BY_SUBJECT.first(session, params)
    if row is None:
        account = await accounts.require_by_identity(session, subject)
        new_amount = await adjust(
            session,
            account,
            delta,
            actor=actor,
            entry_type=entry_type,
            reason=reason,
            currency=currency,
        )
        return account, new_amount
    account_id, username, new_amount = row
    account = AccountRef(account_id, username, subject)
    await _record_change(session, account, currency, entry_type, delta, new_amount, actor, reason)
    return account, new_amount


def _recorded(
    subject: str, delta: int, currency: str, entry_type: EntryType, actor: Actor, reason: str
) -> dict[str, Any]:
    """What ``_APPLY_BY_SUBJECT_WHOLE`` binds to write the rows ``_record_change`` writes."""
    described = AccountRef(0, _NAME, subject).describe()
    template = _change_message(actor, delta, currency, described, _BALANCE_AFTER)
    before_name, rest = template.split(_NAME)
    before_balance, after = rest.split(_BALANCE_AFTER)
    return {
        "type": entry_type.value,
        "actor": str(actor),
        "actor_account_id": actor.account_id,
        "reason": reason,
        "created_at": utcnow(),
        "action": "coins.changed",
        "target_prefix": "account:",
        "message_before_name": before_name,
        "message_before_balance": before_balance,
        "message_after": after,
    }


async def _record_change(
    session: AsyncSession,
    account: AccountRef,
    currency: str,
    entry_type: EntryType,
    delta: int,
    new_amount: int,
    actor: Actor,
    reason: str,
) -> None:
    """The ledger row and the audit entry of a change already applied."""
    await _write_entry(session, account, currency, entry_type, delta, new_amount, actor, reason)
    await audit.record(
        session,
        actor,
        "coins.changed",
        _change_message(actor, delta, currency, account.describe(), str(new_amount)),
        target_account_id=account.id,
        target=f"account:{account.id}",
    )


async def set_balance(
    session: AsyncSession,
    account: AccountRef,
    amount: int,
    *,
    actor: Actor,
    reason: str = "",
    currency: str = COINS,
) -> int:
    """Set a balance to an exact amount, written to the ledger as the difference.

    The current amount is read under the row lock (``FOR UPDATE`` on
    PostgreSQL, the write transaction on SQLite) and the update is guarded by
    it, so a concurrent change is never overwritten.
    """
    if not 0 <= amount <= MAX_AMOUNT:
        raise LimitExceeded(
            f"{currency} must stay between 0 and {MAX_AMOUNT}", code="balance_out_of_range"
        )
    current_query = (
        select(Balance.amount)
        .where(Balance.account_id == account.id, Balance.currency == currency)
        .with_for_update()
    )
    current = await session.scalar(current_query)
    if current is None:
        await _open_balance(session, account.id, currency)
        current = await session.scalar(current_query) or 0
    delta = amount - current
    if delta:
        new_amount = await _apply(session, account.id, currency, delta, expected=current)
        if new_amount is None:  # pragma: no cover - the row lock makes this unreachable
            raise LimitExceeded("the balance changed meanwhile; try again", code="conflict")
        entry_reason = reason or f"set to {amount}"
        await _write_entry(
            session,
            account,
            currency,
            EntryType.ADMIN_ADJUSTMENT,
            delta,
            amount,
            actor,
            entry_reason,
        )
    await audit.record(
        session,
        actor,
        "coins.set",
        f"{actor.name} set the {currency} of {account.describe()} to {amount} (was {current})",
        target_account_id=account.id,
        target=f"account:{account.id}",
    )
    return amount


async def entries(
    session: AsyncSession,
    *,
    currency: str = COINS,
    account_id: int | None = None,
    entry_type: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[LedgerEntry, str | None]], int]:
    """Ledger rows, newest first, each with the account's Discord id (if it has one)."""
    query = (
        select(LedgerEntry, Identity.subject)
        .outerjoin(
            Identity,
            (Identity.account_id == LedgerEntry.account_id)
            & (Identity.provider == Provider.DISCORD.value),
        )
        .where(LedgerEntry.currency == currency)
    )
    if account_id is not None:
        query = query.where(LedgerEntry.account_id == account_id)
    if entry_type is not None:
        query = query.where(LedgerEntry.type == entry_type)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(query.order_by(LedgerEntry.id.desc()).limit(limit).offset(offset))
    return [(entry, subject) for entry, subject in rows], total
