"""The session state machine: only the moves in TRANSITIONS happen."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from guildhall.core.errors import Conflict
from guildhall.core.sessions.models import BotSession, State
from guildhall.core.sessions.service import TRANSITIONS
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR


def test_every_state_has_its_moves_and_logged_out_is_left_only_by_pairing_again() -> None:
    assert set(TRANSITIONS) == set(State)
    assert State.CREATED not in {target for moves in TRANSITIONS.values() for target in moves}
    assert TRANSITIONS[State.LOGGED_OUT] == {State.PAIRING, State.OFFLINE}
    assert State.ONLINE not in TRANSITIONS[State.CREATED]


@pytest.mark.parametrize(
    ("state", "target"),
    [
        (previous, target)
        for previous in State
        for target in State
        if target not in TRANSITIONS[previous] and target is not State.CREATED
    ],
)
async def test_a_move_outside_the_table_is_refused_and_changes_nothing(
    runtime: Runtime, state: State, target: State
) -> None:
    service = runtime.sessions
    async with runtime.database.unit_of_work() as session:
        await service.create(session, "bot_1", "1234567890", TEST_ACTOR)
        row = await session.scalar(select(BotSession))
        assert row is not None
        row.state = state.value
        await session.flush()
        with pytest.raises(Conflict, match=f"session bot_1 is {state.value.replace('_', ' ')}"):
            await service._move(session, row, target, TEST_ACTOR, "test")
        assert row.state == state.value
