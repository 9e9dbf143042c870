"""Housekeeping and ticket closing: what the serving process and the operator tidy up."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from guildhall.core.access import panel
from guildhall.core.access.panel import LoginState, PanelSession
from guildhall.core.economy import service as economy
from guildhall.core.support import service as support
from guildhall.core.support.models import CLOSED
from guildhall.db.base import utcnow
from guildhall.events import outbox
from guildhall.events.models import OutboxEvent
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account


async def test_expired_logins_and_sessions_are_purged(runtime: Runtime) -> None:
    account = await make_account(runtime, "alice", discord="111")
    async with runtime.database.unit_of_work() as session:
        await panel.begin_login(session, "browser", "/", timedelta(seconds=-1))
        await panel.begin_login(session, "browser", "/", timedelta(minutes=5))
        await panel.open_session(session, account.id, "111", None, timedelta(seconds=-1))
        live = await panel.open_session(session, account.id, "111", None, timedelta(hours=1))
    async with runtime.database.unit_of_work() as session:
        assert await panel.purge_expired(session) == 2
    async with runtime.database.unit_of_work(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(LoginState)) == 1
        assert await session.scalar(select(func.count()).select_from(PanelSession)) == 1
        assert await panel.session_user(session, live) is not None


async def test_only_old_dispatched_events_are_pruned(runtime: Runtime) -> None:
    account = await make_account(runtime, "alice", discord="111")
    async with runtime.database.unit_of_work() as session:
        for amount in (1, 2, 3):
            await economy.adjust(session, account, amount, actor=TEST_ACTOR)
    async with runtime.database.unit_of_work() as session:
        ids = list(await session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id)))
        old = utcnow() - timedelta(days=30)
        # the first two are old; only the first was dispatched
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(ids[:2])).values(created_at=old)
        )
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id == ids[0]).values(dispatched_at=old)
        )
    async with runtime.database.unit_of_work() as session:
        assert await outbox.prune(session, timedelta(days=7)) == 1
    async with runtime.database.unit_of_work(write=False) as session:
        left = list(await session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id)))
    assert left == ids[1:]


async def test_a_closed_ticket_lets_its_member_open_another(runtime: Runtime) -> None:
    account = await make_account(runtime, "alice", discord="111")
    async with runtime.database.unit_of_work() as session:
        first = await support.open_ticket(session, account, "alice", TEST_ACTOR)
    async with runtime.database.unit_of_work() as session:
        closed = await support.close_ticket(session, first.public_id, TEST_ACTOR)
        assert closed.status == CLOSED
    async with runtime.database.unit_of_work() as session:
        second = await support.open_ticket(session, account, "alice", TEST_ACTOR)
        assert second.channel_id != first.channel_id
        events = [e["event"] for e in reversed(await outbox.recent(session))]
    assert events[-3:] == ["ticket.created", "ticket.closed", "ticket.created"]


async def test_a_ban_that_runs_out_is_announced_once(runtime: Runtime) -> None:
    from guildhall.core.moderation import service as moderation
    from guildhall.core.moderation.models import Ban

    account = await make_account(runtime, "alice", discord="111")
    async with runtime.database.unit_of_work() as session:
        await moderation.ban(
            session, account, actor=TEST_ACTOR, expires_at=utcnow() + timedelta(hours=1)
        )
        assert await moderation.announce_expired(session, TEST_ACTOR) == 0  # still running
    async with runtime.database.unit_of_work() as session:
        await session.execute(update(Ban).values(expires_at=utcnow() - timedelta(seconds=1)))
    async with runtime.database.unit_of_work() as session:
        assert await moderation.announce_expired(session, TEST_ACTOR) == 1
    async with runtime.database.unit_of_work() as session:
        assert await moderation.announce_expired(session, TEST_ACTOR) == 0
        events = await outbox.recent(session, "user.unbanned")
    assert [e["data"] for e in events] == [{"userId": "111", "reason": "expired"}]
