"""Accounts found by any identity; API keys hashed, scoped, expiring, revocable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from guildhall.core.access import service as access
from guildhall.core.access.models import ApiKey
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.errors import Conflict, Invalid, NotFound
from guildhall.core.hosting import summary
from guildhall.core.moderation import service as moderation
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_account


async def test_every_identity_finds_the_one_account(runtime: Runtime) -> None:
    ref = await make_account(runtime, "many", discord="10", github="20")
    async with runtime.database.unit_of_work() as session:
        await accounts.link(session, ref, Provider.GOOGLE, "30", TEST_ACTOR)
        uuid = (await accounts.view(session, ref.id)).uuid
    async with runtime.database.unit_of_work(write=False) as session:
        for subject in ("10", "20", "30", uuid):
            found = await accounts.find_by_identity(session, subject)
            assert found is not None and found.id == ref.id
        assert await accounts.find_by_identity(session, "1") is None


async def test_a_subject_under_several_providers_finds_the_best_ranked_one(
    runtime: Runtime,
) -> None:
    """The same digits can be one person's GitHub id and another's Discord id: the
    Discord identity wins, then Google, then GitHub, whatever order they were made in."""
    octocat = await make_account(runtime, "octocat", github="777")
    gamer = await make_account(runtime, "gamer", discord="777")
    async with runtime.database.unit_of_work(write=False) as session:
        found = await accounts.find_by_identity(session, "777")
        shown = (
            await summary.summary_by_identity(
                session,
                "777",
                catalogue=runtime.catalogue,
                hosting=runtime.hosting,
                with_panel_user=False,
            )
        ).account
        assert (await accounts.find_by_identity(session, "77")) is None
    assert found is not None and found.id == gamer.id != octocat.id
    assert shown.id == gamer.id and shown.username == "gamer"


async def test_an_identity_belongs_to_one_account(runtime: Runtime) -> None:
    await make_account(runtime, "first", discord="10")
    second = await make_account(runtime, "second")
    with pytest.raises(Conflict):
        async with runtime.database.unit_of_work() as session:
            await accounts.link(session, second, Provider.DISCORD, "10", TEST_ACTOR)
    with pytest.raises(Conflict):
        await make_account(runtime, "first")
    with pytest.raises(Invalid):
        await make_account(runtime, "bad name!")


async def test_passwords_are_stored_as_argon2id(runtime: Runtime) -> None:
    async with runtime.database.unit_of_work() as session:
        account = await accounts.create(
            session, username="pw", password="correct horse", actor=TEST_ACTOR
        )
    assert account.password_hash is not None
    assert account.password_hash.startswith("$argon2id$")
    assert "correct horse" not in account.password_hash


async def test_keys_are_hashed_scoped_expiring_and_revocable(runtime: Runtime) -> None:
    async with runtime.database.unit_of_work() as session:
        key, plaintext = await access.create(
            session, name="bot", scopes=["heliactyl", "aurora"], actor=TEST_ACTOR
        )
        assert key.key_hash == access.hash_key(plaintext) != plaintext
        key.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await session.flush()
        assert await access.authenticate(session, plaintext) is None
        key.expires_at = None
        await session.flush()
        principal = await access.authenticate(session, plaintext)
        assert principal is not None
        assert principal.allows("heliactyl") and not principal.allows("rustmail")
        assert await access.authenticate(session, plaintext + "x") is None
        await access.revoke(session, key.id, TEST_ACTOR)
        assert await access.authenticate(session, plaintext) is None


async def test_a_remembered_key_is_refused_the_moment_it_expires(runtime: Runtime) -> None:
    """A key verified a moment before its expiry is not trusted past it from memory."""
    async with runtime.database.unit_of_work() as session:
        _key, plaintext = await access.create(
            session,
            name="brief",
            scopes=["heliactyl"],
            actor=TEST_ACTOR,
            expires_at=datetime.now(UTC) + timedelta(seconds=0.3),
        )
    async with runtime.database.unit_of_work(write=False) as session:
        assert await access.authenticate(session, plaintext) is not None
    await asyncio.sleep(0.4)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await access.authenticate(session, plaintext) is None


async def test_a_key_revoked_elsewhere_is_refused_within_a_second(runtime: Runtime) -> None:
    """Another process's revocation (here: the row changed without this process's
    service) reaches this process's memory within ``KEY_CACHE_SECONDS``."""
    async with runtime.database.unit_of_work() as session:
        key, plaintext = await access.create(
            session, name="elsewhere", scopes=["heliactyl"], actor=TEST_ACTOR
        )
    async with runtime.database.unit_of_work(write=False) as session:
        assert await access.authenticate(session, plaintext) is not None
    async with runtime.database.unit_of_work() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == key.id).values(revoked_at=datetime.now(UTC))
        )
    await asyncio.sleep(access.KEY_CACHE_SECONDS + 0.05)
    async with runtime.database.unit_of_work(write=False) as session:
        assert await access.authenticate(session, plaintext) is None


async def test_a_new_ban_replaces_the_old_one(runtime: Runtime) -> None:
    ref = await make_account(runtime, "banned", discord="66")
    later = datetime.now(UTC) + timedelta(days=1)
    async with runtime.database.unit_of_work() as session:
        await moderation.ban(session, ref, actor=TEST_ACTOR, reason="first")
        await moderation.ban(session, ref, actor=TEST_ACTOR, reason="second", expires_at=later)
    async with runtime.database.unit_of_work(write=False) as session:
        ban = await moderation.active_ban(session, ref.id)
    assert ban is not None and ban.reason == "second"
    async with runtime.database.unit_of_work() as session:
        assert await moderation.unban(session, ref, actor=TEST_ACTOR) is True
        assert await moderation.unban(session, ref, actor=TEST_ACTOR) is False


async def test_an_operator_naming_a_discord_id_reaches_its_owner_not_a_namesake(
    runtime: Runtime,
) -> None:
    """Anyone can choose a username; a Discord id is proof. So a reference that is both
    someone's identity and someone else's username names the identity's owner."""
    owner = await make_account(runtime, "owner", discord="222000000000000002")
    namesake = await make_account(runtime, "222000000000000002")
    async with runtime.database.unit_of_work(write=False) as session:
        by_identity = await accounts.resolve(session, "222000000000000002")
        by_name = await accounts.resolve(session, "owner")
        by_id = await accounts.resolve(session, str(namesake.id))
        with pytest.raises(NotFound):
            await accounts.resolve(session, "nobody")
    assert by_identity.id == owner.id != namesake.id
    assert by_name.id == owner.id
    assert by_id.id == namesake.id


async def test_emails_differing_only_in_case_are_one_email(runtime: Runtime) -> None:
    """Login matches an email whatever its case, so a second account with the same
    email in other letters would make it ambiguous which one logs in."""
    first = await make_account(runtime, "alice", email="alice@example.test")
    with pytest.raises(Conflict):
        await make_account(runtime, "alice2", email="ALICE@Example.test")
    async with runtime.database.unit_of_work(write=False) as session:
        assert (await accounts.resolve(session, "alice")).id == first.id
        with pytest.raises(NotFound):
            await accounts.resolve(session, "alice2")
