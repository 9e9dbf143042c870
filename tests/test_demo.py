"""The demo loader finds its data by what clients cannot change, and never stops on a clash."""

from __future__ import annotations

from guildhall import demo
from guildhall.core.access import service as access
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Account, Provider
from guildhall.core.community import service as community
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account


async def test_a_name_and_email_taken_by_someone_else_are_left_to_them(runtime: Runtime) -> None:
    """An operator made 'user123' with the demo's email before loading the demo (and a
    class named like the demo's): the demo account is made by its Discord id anyway."""
    theirs = await make_account(runtime, "user123", email="USER@example.com")
    async with runtime.database.unit_of_work() as session:
        await community.create_class(session, TEST_ACTOR, name="warrior", class_id="7")

    first = await demo.load(runtime)
    assert first.created == ["user123-456789", "miguel.cuba"]
    assert first.notes == [
        "A class named 'Warrior' exists under another id, so class 1 is not made.",
        "The username 'user123' belongs to another account, so the demo account of "
        "Discord id 123456789 is named 'user123-456789'.",
        "The email 'user@example.com' belongs to another account, so the demo account "
        "'user123-456789' has none.",
    ]
    second = await demo.load(runtime)
    assert second.created == []  # found by its Discord id; only the class is still missing
    assert second.notes == first.notes[:1]

    async with runtime.database.unit_of_work(write=False) as session:
        made = await accounts.find_by_provider(session, Provider.DISCORD, "123456789")
        assert made is not None and made.id != theirs.id
        account = await session.get(Account, made.id)
        assert account is not None and account.email is None
        mine = await session.get(Account, theirs.id)
        assert mine is not None
        assert (mine.username, mine.email) == ("user123", "USER@example.com")
        profile = await community.member(session, "123456789", "coins")
        assert (profile.level, profile.guild_class) == (5, None)


async def test_only_the_loaders_own_keys_are_revoked(runtime: Runtime) -> None:
    """A Rustmail panel user may name a key 'demo' too; only Guildhall's demo key goes."""
    async with runtime.database.unit_of_work() as session:
        panel_key, _ = await access.create(
            session, name="demo", scopes=["write:tickets"], actor=TEST_ACTOR, prefix="rustmail_"
        )
    first = await demo.load(runtime)
    second = await demo.load(runtime)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await access.authenticate(session, first.api_key) is None
        assert await access.authenticate(session, second.api_key) is not None
        keys = {key.id: key for key in await access.list_keys(session)}
    assert keys[panel_key.id].revoked_at is None
