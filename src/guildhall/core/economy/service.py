"""Balances and their ledger.

A balance changes only through one ``UPDATE ... SET amount = amount + :delta
WHERE amount + :delta BETWEEN :lo AND :hi`` (:func:`_apply`, and the same
found by an identity) and, in the same transaction, one ledger row carrying
the amount and the balance after it. No balance is ever read into Python,
changed and written back, so two concurrent changes can never lose one another.

On PostgreSQL, changes to one balance that requests make at the same moment
can go as one statement (:func:`adjust_by_identity_committed`, ``db/together.py``):
its UPDATE adds their sum if the balance stays in range after each of them in
turn, and writes each change's ledger row with the balance after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    String,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Identity, Provider
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.economy.models import Balance, LedgerEntry
from guildhall.core.errors import Invalid, LimitExceeded
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.db.prepared import Prepared, Row
from guildhall.db.sql import dialect_of, insert_ignore
from guildhall.db.together import Together
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
_account_of_subject = (
    select(_identities.c.account_id)
    .where(_identities.c.subject == bindparam("subject"))
    .order_by(accounts.PROVIDER_ORDER)
    .limit(1)
    .scalar_subquery()
)
_moved_account = (
    _balances.c.account_id,
    select(_accounts.c.username)
    .where(_accounts.c.id == _balances.c.account_id)
    .scalar_subquery()
    .label("username"),
    _balances.c.amount,
)
_apply_by_subject = (
    update(_balances)
    .where(
        _balances.c.currency == bindparam("unit"),
        _balances.c.account_id == _account_of_subject,
        (_balances.c.amount + bindparam("delta")).between(0, MAX_AMOUNT),
    )
    .values(amount=_balances.c.amount + bindparam("delta"))
    .returning(*_moved_account)
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


_CHANGE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("delta", BigInteger),
    ("step", BigInteger),  # the changes up to this one, summed
    ("type", String),
    ("actor", String),
    ("actor_account_id", BigInteger),
    ("reason", String),
    ("before_name", String),  # the audit message, around the name and balance
    ("before_balance", String),
    ("after", String),
)
"""One array parameter per column: a row per change (``_recorded`` makes one)."""


def _adjust_by_subject_whole(many: bool) -> Prepared:
    """PostgreSQL: changes to the balance of the account an identity names, with each
    change's ledger row, audit row and event, as one statement (INSERT ... SELECT from
    the UPDATE's RETURNING, in one WITH).

    The changes come as arrays (``_CHANGE_COLUMNS``): the UPDATE adds their sum once,
    if every balance on the way stays in range, and each change's rows carry the
    balance after it, in order. Run alone (``Prepared.alone``) it is the whole unit
    of work of every change it carries (``Together``): one round trip with no BEGIN
    or COMMIT, and a hot balance's row is locked only while PostgreSQL runs and
    commits it. The rows are those ``_record_change`` writes; the values only the
    UPDATE knows (account id, name, balance) come from it, the rest are bound. It
    answers each change's place (from 1), account id, name and balance after it.
    SQLite cannot run an UPDATE or INSERT inside WITH, and needs no round trips."""
    changes: Any
    if many:
        changes = (
            func.unnest(*(bindparam(name, type_=ARRAY(kind)) for name, kind in _CHANGE_COLUMNS))
            .table_valued(
                *(column(name, kind) for name, kind in _CHANGE_COLUMNS), with_ordinality="n"
            )
            .render_derived("changes")
        )
    else:  # one change, bound as it is: arrays cost PostgreSQL and asyncpg more
        bound_change = (bindparam(name, type_=kind).label(name) for name, kind in _CHANGE_COLUMNS)
        changes = select(*bound_change, literal(1, BigInteger).label("n")).subquery("changes")
    moved = (
        update(_balances)
        .where(
            _balances.c.currency == bindparam("unit"),
            _balances.c.account_id == _account_of_subject,
            _balances.c.amount + bindparam("lowest", type_=BigInteger) >= 0,
            _balances.c.amount + bindparam("highest", type_=BigInteger) <= MAX_AMOUNT,
        )
        .values(amount=_balances.c.amount + bindparam("total", type_=BigInteger))
        .returning(*_moved_account)
        .cte("moved")
    )
    balance = moved.c.amount - bindparam("total", type_=BigInteger) + changes.c.step
    steps = (
        select(changes, moved.c.account_id, moved.c.username, balance.label("balance"))
        .select_from(changes.join(moved, true()))
        .cte("steps")
    )

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
                steps.c.account_id,
                bound("unit", _ledger.c.currency),
                steps.c.type,
                steps.c.delta,
                steps.c.balance,
                steps.c.actor,
                steps.c.reason,
                bound("created_at", _ledger.c.created_at),
            ).order_by(steps.c.n),
        )
        .cte("ledger")
    )
    trail = audit.insert_from(
        steps,
        actor=steps.c.actor,
        actor_account_id=steps.c.actor_account_id,
        target_account_id=steps.c.account_id,
        target=bindparam("target_prefix", type_=String) + cast(steps.c.account_id, String),
        message=steps.c.before_name
        + steps.c.username
        + steps.c.before_balance
        + cast(steps.c.balance, String)
        + steps.c.after,
        in_order=steps.c.n,
    ).cte("trail")
    data = _coins_changed(
        bindparam("subject", type_=String),
        bindparam("unit", type_=String),
        steps.c.type,
        cast(steps.c.delta, String),
        cast(steps.c.balance, String),
    )
    payload = func.json_build_object(*(part for item in data.items() for part in item), type_=JSON)
    event = outbox.insert_from(steps, "coins.changed", payload, steps.c.n).cte("event")
    return Prepared(
        select(steps.c.n, steps.c.account_id, steps.c.username, steps.c.balance)
        .order_by(steps.c.n)
        .add_cte(ledger, trail, event)
    )


# For one change, and for several (indexed by ``several``: False, True).
_APPLY_BY_SUBJECT_WHOLE = _adjust_by_subject_whole(many=False), _adjust_by_subject_whole(many=True)


async def _run_together(session: AsyncSession, changes: Sequence[dict[str, Any]]) -> list[Row]:
    """Changes to one balance (``_recorded``'s, of one subject and currency) as one
    ``_APPLY_BY_SUBJECT_WHOLE``."""
    first = changes[0]
    params: dict[str, Any]
    if len(changes) == 1:
        params = {name: first[name] for name, _kind in _CHANGE_COLUMNS if name != "step"}
        total = params["step"] = first["delta"]
        lowest, highest = min(0, total), max(0, total)
    else:
        params = {name: [] for name, _kind in _CHANGE_COLUMNS}
        total = lowest = highest = 0
        for change in changes:
            total += change["delta"]
            lowest, highest = min(lowest, total), max(highest, total)
            for name, _kind in _CHANGE_COLUMNS:
                params[name].append(total if name == "step" else change[name])
    params |= {
        "unit": first["unit"],
        "subject": first["subject"],
        "total": total,
        "lowest": lowest,
        "highest": highest,
        "created_at": utcnow(),
        "action": "coins.changed",
        "target_prefix": "account:",
    }
    several = len(changes) > 1
    return await _APPLY_BY_SUBJECT_WHOLE[several].alone(session, params)


_TOGETHER = Together("economy.balance_changes", _run_together)
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
    if delta and abs(delta) <= MAX_AMOUNT and accounts.plausible_subject(subject):
        if dialect_of(session).name == "postgresql":
            change = _recorded(subject, delta, currency, entry_type, actor, reason)
            rows = await _run_together(session, [change])
            if rows:  # with its ledger row, audit row and event
                _place, account_id, username, new_amount = rows[0]
                return AccountRef(account_id, username, subject), new_amount
        else:
            params = {"unit": currency, "subject": subject, "delta": delta}
            row = await _APPLY_BY_SUBJECT.first(session, params)
            if row is not None:
                account_id, username, new_amount = row
                account = AccountRef(account_id, username, subject)
                await _record_change(
                    session, account, currency, entry_type, delta, new_amount, actor, reason
                )
                return account, new_amount
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


async def adjust_by_identity_committed(
    database: Database,
    subject: str,
    delta: int,
    *,
    actor: Actor,
    entry_type: EntryType = EntryType.ADMIN_ADJUSTMENT,
    reason: str = "",
    currency: str = COINS,
) -> tuple[AccountRef, int]:
    """:func:`adjust_by_identity` in a unit of work of its own: committed when it returns.

    On PostgreSQL the change goes with those that other requests of this process
    make to the same balance at the same moment (``Together``): one statement for
    all of them, and it waits for its turn without holding a connection. A change
    that statement did not make (no such identity, no balance row yet, a balance out
    of range on the way) then runs by itself, which says why or opens the balance.
    """
    if (
        not database.is_sqlite
        and delta
        and abs(delta) <= MAX_AMOUNT
        and accounts.plausible_subject(subject)
    ):
        change = _recorded(subject, delta, currency, entry_type, actor, reason)
        rows = await _TOGETHER.run(database, (subject, currency), change)
        if rows:  # with its ledger row, audit row and event
            account_id, username, new_amount = rows[0]
            return AccountRef(account_id, username, subject), new_amount
    async with database.unit_of_work() as session:
        return await adjust_by_identity(
            session,
            subject,
            delta,
            actor=actor,
            entry_type=entry_type,
            reason=reason,
            currency=currency,
        )


def _recorded(
    subject: str, delta: int, currency: str, entry_type: EntryType, actor: Actor, reason: str
) -> dict[str, Any]:
    """One change as ``_run_together`` takes it: what ``_APPLY_BY_SUBJECT_WHOLE`` binds
    to write the rows ``_record_change`` writes."""
    described = AccountRef(0, _NAME, subject).describe()
    template = _change_message(actor, delta, currency, described, _BALANCE_AFTER)
    before_name, rest = template.split(_NAME)
    before_balance, after = rest.split(_BALANCE_AFTER)
    return {
        "subject": subject,
        "unit": currency,
        "delta": delta,
        "type": entry_type.value,
        "actor": str(actor),
        "actor_account_id": actor.account_id,
        "reason": reason,
        "before_name": before_name,
        "before_balance": before_balance,
        "after": after,
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
