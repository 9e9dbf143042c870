"""The session state machine: only the moves in TRANSITIONS happen.

Checked two ways: the table refuses what it does not list (and a refused
move writes nothing), and every public method of the service, run through a
session's whole life, moves only along the table.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from guildhall.core.errors import Conflict
from guildhall.core.sessions.models import BotSession, State
from guildhall.core.sessions.service import TRANSITIONS
from guildhall.events import outbox
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.ld7.conftest import counts

PHONE = "1234567890"


def test_every_state_has_its_moves_and_created_is_only_where_a_session_begins() -> None:
    assert set(TRANSITIONS) == set(State)
    assert State.CREATED not in {target for moves in TRANSITIONS.values() for target in moves}
    # Logged out through the API, a session is deleted in the same transaction; logged out
    # from the phone, it stays, and the only way on is a fresh pairing.
    assert TRANSITIONS[State.LOGGED_OUT] == frozenset({State.PAIRING})
    assert {s for s in State if State.LOGGED_OUT in TRANSITIONS[s]} == set(State) - {
        State.CREATED,
        State.LOGGED_OUT,
    }
    assert TRANSITIONS[State.CREATED] == {State.PAIRING, State.OFFLINE}  # create, restore


async def _force(runtime: Runtime, handle: str, state: State) -> None:
    async with runtime.database.unit_of_work() as session:
        await session.execute(
            update(BotSession).where(BotSession.handle == handle).values(state=state.value)
        )


@pytest.mark.parametrize(
    ("state", "target"),
    [
        (previous, target)
        for previous in State
        for target in State
        if target not in TRANSITIONS[previous] and target is not State.CREATED
    ],
)
async def test_a_move_outside_the_table_is_refused_and_writes_nothing(
    runtime: Runtime, state: State, target: State
) -> None:
    service = runtime.sessions
    await service.create("bot_1", PHONE, TEST_ACTOR)
    await _force(runtime, "bot_1", state)
    before = await counts(runtime)
    async with runtime.database.unit_of_work() as session:
        row = await session.scalar(select(BotSession))
        assert row is not None
        with pytest.raises(Conflict, match=f"session bot_1 is {state.value.replace('_', ' ')}"):
            await service._move(session, row, target, TEST_ACTOR, "test")
        assert row.state == state.value
    assert await counts(runtime) == before


async def test_logout_is_a_move_too_refused_where_the_table_says_so(runtime: Runtime) -> None:
    """A session still being created cannot be logged out: refused before the platform is
    asked, with nothing written."""
    service = runtime.sessions
    await service.create("bot_1", PHONE, TEST_ACTOR)
    await _force(runtime, "bot_1", State.CREATED)
    before = await counts(runtime)
    with pytest.raises(Conflict, match="session bot_1 is created and cannot become logged out"):
        await service.logout("bot_1", TEST_ACTOR)
    assert await counts(runtime) == before


async def test_every_public_method_moves_only_along_the_table(runtime: Runtime) -> None:
    service = runtime.sessions

    async def run(method: str, *args: object) -> object:
        return await getattr(service, method)(*args)

    # A whole life: create, pair, stop, start, back up, delete, restore, start, log out.
    _view, pairing = await run("create", "bot_1", PHONE, TEST_ACTOR)
    await run("complete_pairing", "bot_1", pairing.code, TEST_ACTOR)
    await run("stop", "bot_1", TEST_ACTOR)
    await run("start", "bot_1", TEST_ACTOR)
    await run("backup", "bot_1", TEST_ACTOR)
    await run("delete", "bot_1", TEST_ACTOR)
    await run("restore", "bot_1", TEST_ACTOR)
    await run("logout", "bot_1", TEST_ACTOR)  # from offline: never started after the restore
    # And a second one: stopped while pairing, a fresh code, expired, logged out from failed.
    _view, pairing = await run("create", "bot_2", PHONE, TEST_ACTOR)
    await run("stop", "bot_2", TEST_ACTOR)
    await run("start", "bot_2", TEST_ACTOR)
    async with runtime.database.unit_of_work() as session:
        await session.execute(update(BotSession).values(pairing_expires_at=BotSession.created_at))
    assert await run("expire_pairings", TEST_ACTOR) == ["bot_2"]
    await run("logout", "bot_2", TEST_ACTOR)

    async with runtime.database.unit_of_work(write=False) as session:
        events = list(reversed(await outbox.recent(session, "session.status")))
    moves = [(e["data"]["previous_state"], e["data"]["state"]) for e in events]
    for previous, target in moves:
        if previous == "none":
            assert target == State.CREATED.value, (previous, target)
        elif target != "deleted":
            assert State(target) in TRANSITIONS[State(previous)], (previous, target)
    assert ("none", "created") in moves and ("created", "offline") in moves  # the restore
    assert ("offline", "logged_out") in moves and ("failed", "logged_out") in moves
    assert moves.count(("logged_out", "deleted")) == 2
    assert (await counts(runtime)).sessions == 0
