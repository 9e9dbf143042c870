"""The Aurora bot end to end: slash commands, quests, lootdrops and moderation carried
out, hikari against the loopback Discord peer, on both databases.

What a member sees in Discord (the interaction's answer, ephemeral or not) and
what Aurora's dashboard API reports afterwards (balances, transactions, cases).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.actor import SYSTEM
from guildhall.core.community import service as community
from guildhall.core.community.models import Profile
from guildhall.core.economy.models import LedgerEntry
from guildhall.core.support import service as support
from guildhall.events import outbox
from guildhall.faces.aurora.app import create_app
from guildhall.runtime import Runtime
from tests.connectors.discord.conftest import MEMBER, MODERATOR
from tests.peers.discord.peer import GENERAL_CHANNEL_ID, DiscordPeer
from tests.waiting import eventually

OTHER = "300000000000000003"
LOOT_CHANNEL = GENERAL_CHANNEL_ID


@pytest.fixture
async def aurora_bot(connected: Callable[..., Runtime], peer: DiscordPeer) -> Runtime:
    peer.add_member(OTHER, "bob")
    runtime = connected(discord__aurora__lootdrop_channel_ids=[LOOT_CHANNEL])
    await runtime.prepare()
    async with runtime.database.unit_of_work() as session:
        await support.start(session, SYSTEM)
    await runtime.start({"aurora"})
    await peer.wait_for(lambda: peer.connected == 1, timeout=10)
    return runtime


@pytest.fixture
async def dashboard(aurora_bot: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(aurora_bot))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def registered(dashboard: httpx.AsyncClient) -> dict[str, object]:
    response = await dashboard.post("/api/actions/reload-commands")
    assert response.status_code == 200, response.text
    return response.json()["commands"]


async def answer(peer: DiscordPeer, interaction_id: str) -> dict[str, object]:
    await peer.wait_for(lambda: peer.answer_to(interaction_id) is not None, timeout=10)
    found = peer.answer_to(interaction_id)
    assert found is not None
    return found


async def run(
    peer: DiscordPeer, user: str, command: str, options: dict[str, object] | None = None
) -> dict[str, object]:
    return await answer(peer, await peer.member_runs(user, command, options))


async def balance(dashboard: httpx.AsyncClient, user: str) -> int:
    """A member's balance as the dashboard shows it (0 for one with no account yet)."""
    response = await dashboard.get(f"/api/users/{user}")
    if response.status_code == 404:
        return 0
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


async def test_reload_registers_the_commands_on_discord_and_reports_them(
    dashboard: httpx.AsyncClient, peer: DiscordPeer, aurora_bot: Runtime
) -> None:
    report = await registered(dashboard)
    names = {c["name"] for c in peer.commands}
    assert names == {
        "daily",
        "balance",
        "profile",
        "transfer",
        "shop",
        "buy",
        "inventory",
        "quests",
    }
    assert set(report["registered"]) == names and report["count"] == 8
    meta = (await dashboard.get("/api/settings/meta")).json()
    assert {c["name"]: c["category"] for c in meta["commands"]}["daily"] == "economy"

    async with aurora_bot.database.unit_of_work() as session:  # the dashboard trims the list
        await community.remove_directory_entry(session, "command", "shop")
        await community.put_directory_entry(session, "command", "dance", "dance", "fun", SYSTEM)
    report = await registered(dashboard)
    assert "shop" not in {c["name"] for c in peer.commands}
    assert report["refused"] == ["dance"]


async def test_daily_pays_once_a_day_through_the_ledger_heliactyl_reads(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await registered(dashboard)
    first = await run(peer, MEMBER, "daily")
    assert first["ephemeral"] is False
    assert "You claimed 100 coins (streak 1)" in str(first["content"])
    second = await run(peer, MEMBER, "daily")
    assert second["ephemeral"] is True
    assert "claimed today's reward; the next one in" in str(second["content"])
    assert await balance(dashboard, MEMBER) == 100
    listed = (await dashboard.get(f"/api/transactions?userId={MEMBER}")).json()["transactions"]
    assert [t["type"] for t in listed] == ["DAILY_REWARD"]
    assert listed[0]["description"] == "Daily reward (Streak: 1)"


async def test_a_claim_the_day_after_grows_the_streak_and_its_bonus(
    dashboard: httpx.AsyncClient, peer: DiscordPeer, aurora_bot: Runtime
) -> None:
    await registered(dashboard)
    await run(peer, MEMBER, "daily")
    async with aurora_bot.database.unit_of_work() as session:  # as if claimed yesterday
        account = await accounts.find_by_provider(session, Provider.DISCORD, MEMBER)
        assert account is not None
        profile = await session.get(Profile, account.id)
        assert profile is not None and profile.last_daily_at is not None
        profile.last_daily_at -= timedelta(days=1)
    second = await run(peer, MEMBER, "daily")
    assert "You claimed 110 coins (streak 2)" in str(second["content"])  # 100 + 10 bonus
    assert await balance(dashboard, MEMBER) == 210


async def test_twenty_concurrent_daily_claims_pay_once(
    dashboard: httpx.AsyncClient, peer: DiscordPeer, aurora_bot: Runtime
) -> None:
    await registered(dashboard)
    ids = await asyncio.gather(*(peer.member_runs(OTHER, "daily") for _ in range(20)))
    answers = [await answer(peer, interaction) for interaction in ids]
    paid = [a for a in answers if "You claimed" in str(a["content"])]
    assert len(paid) == 1
    assert all(a["ephemeral"] for a in answers if a not in paid)
    assert await balance(dashboard, OTHER) == 100
    async with aurora_bot.database.unit_of_work(write=False) as session:
        entries = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.type == "DAILY_REWARD")
        )
    assert entries == 1


async def test_transfer_moves_coins_and_refuses_what_it_must(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await registered(dashboard)
    await run(peer, MEMBER, "daily")
    sent = await run(peer, MEMBER, "transfer", {"user": OTHER, "amount": 30})
    assert sent["content"] == "You sent 30 coins to bob. Balance: 70 coins."
    assert (await balance(dashboard, MEMBER), await balance(dashboard, OTHER)) == (70, 30)
    too_much = await run(peer, MEMBER, "transfer", {"user": OTHER, "amount": 1000})
    assert too_much["ephemeral"] is True and "do not have 1000" in str(too_much["content"])
    to_self = await run(peer, MEMBER, "transfer", {"user": MEMBER, "amount": 5})
    assert to_self["ephemeral"] is True and "yourself" in str(to_self["content"])
    to_bot = await run(peer, MEMBER, "transfer", {"user": "100000000000000002", "amount": 5})
    assert to_bot["ephemeral"] is True and "Bots cannot" in str(to_bot["content"])
    assert (await balance(dashboard, MEMBER), await balance(dashboard, OTHER)) == (70, 30)
    mine = await run(peer, OTHER, "balance")
    assert mine["content"] == "bob has 30 coins."
    theirs = await run(peer, OTHER, "balance", {"user": MEMBER})
    assert theirs["content"] == "alice has 70 coins."


async def test_shop_buy_and_inventory(dashboard: httpx.AsyncClient, peer: DiscordPeer) -> None:
    await registered(dashboard)
    created = await dashboard.post(
        "/api/items",
        json={"name": "Health Potion", "type": "CONSUMABLE", "rarity": "C", "price": "40"},
    )
    assert created.status_code in (200, 201), created.text
    await run(peer, MEMBER, "daily")
    shop = await run(peer, MEMBER, "shop")
    assert "Health Potion: 40 coins" in str(shop["content"])
    bought = await run(peer, MEMBER, "buy", {"item": "health potion", "quantity": 2})
    assert bought["content"] == "You bought 2 x Health Potion (you hold 2). Balance: 20 coins."
    broke = await run(peer, MEMBER, "buy", {"item": "Health Potion"})
    assert broke["ephemeral"] is True and "you have less" in str(broke["content"])
    held = await run(peer, MEMBER, "inventory")
    assert held["content"] == "alice holds:\n2 x Health Potion"
    listed = (await dashboard.get(f"/api/transactions?userId={MEMBER}")).json()["transactions"]
    assert sorted(t["type"] for t in listed) == ["DAILY_REWARD", "SHOP_BUY"]


async def test_a_quest_completes_from_real_events_and_pays_once(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await registered(dashboard)
    made = await dashboard.post(
        "/api/quests",
        json={
            "name": "Chatterbox",
            "description": "Say three things",
            "triggerEvent": "message",
            "target": 3,
            "xpReward": 50,
            "balanceReward": 25,
        },
    )
    assert made.status_code in (200, 201), made.text
    login = await dashboard.post(  # the document's own example quest
        "/api/quests",
        json={"name": "Daily Login", "triggerEvent": "login", "target": 1, "balanceReward": 100},
    )
    assert login.status_code in (200, 201), login.text
    await dashboard.post("/api/settings", json={"leveling": {"xpCooldownSeconds": 0}})
    for text in ("hi", "how are you", "bye", "one more"):
        await peer.member_says("100000000000000030", MEMBER, text)
    await peer.wait_for(
        lambda: any(
            "completed the quest **Chatterbox**" in m["content"]
            for m in peer.messages.get("100000000000000030", [])
        ),
        timeout=10,
    )
    # 25 for the quest, 100 for the first activity of the day (once, whatever follows).
    assert await eventually(lambda: balance(dashboard, MEMBER), lambda got: got == 125) == 125
    progress = await run(peer, MEMBER, "quests")
    assert progress["ephemeral"] is True and "Chatterbox: 3/3" in str(progress["content"])
    assert "Daily Login: 1/1" in str(progress["content"])
    profile = await run(peer, MEMBER, "profile")
    assert profile["content"] == "alice: level 0, 50 xp, class none, daily streak 0."
    announcements = [
        m for m in peer.messages["100000000000000030"] if "completed the quest" in m["content"]
    ]
    assert len(announcements) == 2  # each quest once


async def test_chatting_fast_counts_one_message_per_cooldown(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await registered(dashboard)
    await dashboard.post(
        "/api/quests",
        json={"name": "Talker", "triggerEvent": "message", "target": 5, "balanceReward": 5},
    )
    for text in ("a", "b", "c", "d"):  # within the default 60 s
        await peer.member_says(GENERAL_CHANNEL_ID, MEMBER, text)
    await asyncio.sleep(0.5)
    progress = await run(peer, MEMBER, "quests")
    assert "Talker: 1/5" in str(progress["content"])


async def test_a_lootdrop_goes_to_the_first_click_only(
    dashboard: httpx.AsyncClient, peer: DiscordPeer, aurora_bot: Runtime
) -> None:
    await dashboard.post(
        "/api/settings", json={"lootdrops": {"chance": 1, "minAmount": 7, "maxAmount": 7}}
    )
    await peer.member_says(LOOT_CHANNEL, MODERATOR, "anyone around?")
    await peer.wait_for(
        lambda: any(m.get("components") for m in peer.messages.get(LOOT_CHANNEL, [])),
        timeout=10,
    )
    drop = next(m for m in peer.messages[LOOT_CHANNEL] if m.get("components"))
    button = drop["components"][0]["components"][0]["custom_id"]
    clicks = await asyncio.gather(
        *(peer.member_clicks(user, drop["id"], button) for user in (MEMBER, OTHER, MEMBER))
    )
    answers = [await answer(peer, click) for click in clicks]
    won = [a for a in answers if "claimed the lootdrop of 7 coins" in str(a["content"])]
    assert len(won) == 1
    assert sum(a["ephemeral"] is True for a in answers) == 2
    totals = [await balance(dashboard, user) for user in (MEMBER, OTHER)]
    assert sorted(totals) == [0, 7]


async def test_an_unclaimed_lootdrop_expires_and_says_so(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await dashboard.post("/api/settings", json={"lootdrops": {"chance": 1, "expirySeconds": 1}})
    await peer.member_says(LOOT_CHANNEL, MODERATOR, "quiet here")
    await peer.wait_for(
        lambda: any("expired unclaimed" in m["content"] for m in peer.messages[LOOT_CHANNEL]),
        timeout=10,
    )
    expired = next(m for m in peer.messages[LOOT_CHANNEL] if "expired" in m["content"])
    assert not expired.get("components")


async def case_of(dashboard: httpx.AsyncClient, label: str) -> dict[str, object]:
    response = await dashboard.get(f"/api/moderation/{label}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_ban_case_is_carried_out_and_lifted_when_cleared(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    created = await dashboard.post(
        "/api/moderation",
        json={
            "type": "ban",
            "userId": MEMBER,
            "username": "alice",
            "moderatorId": MODERATOR,
            "moderatorName": "mod",
            "reason": "spam",
        },
    )
    assert created.status_code == 201, created.text
    label = created.json()["case"]["caseId"]
    await peer.wait_for(lambda: MEMBER in peer.bans, timeout=10)
    assert peer.moderation[-1]["action"] == "ban"
    assert peer.moderation[-1]["reason"] == f"{label}: spam"
    case = await eventually(
        lambda: case_of(dashboard, label), lambda c: "discord" in c.get("metadata", {})
    )
    assert case["metadata"]["discord"]["outcome"] == "done"
    cleared = await dashboard.put(
        f"/api/moderation/{label}/clear", json={"clearedBy": MODERATOR, "reason": "appeal"}
    )
    assert cleared.status_code == 200
    await peer.wait_for(lambda: MEMBER not in peer.bans, timeout=10)
    assert peer.moderation[-1]["action"] == "unban"


async def test_a_timeout_lasts_the_cases_duration_and_a_failure_is_recorded(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    created = await dashboard.post(
        "/api/moderation",
        json={
            "type": "timeout",
            "userId": OTHER,
            "moderatorId": MODERATOR,
            "reason": "cool down",
            "metadata": {"duration": "2h"},
        },
    )
    label = created.json()["case"]["caseId"]
    await peer.wait_for(lambda: bool(peer.moderation), timeout=10)
    until = datetime.fromisoformat(str(peer.moderation[-1]["until"]))
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=2)

    peer.bot_permissions.discard("KICK_MEMBERS")
    kick = await dashboard.post(
        "/api/moderation", json={"type": "kick", "userId": OTHER, "moderatorId": MODERATOR}
    )
    kicked = kick.json()["case"]["caseId"]
    case = await eventually(
        lambda: case_of(dashboard, kicked), lambda c: "discord" in c.get("metadata", {})
    )
    assert case["metadata"]["discord"]["outcome"] == "failed"
    assert "Missing Permissions" in case["metadata"]["discord"]["detail"]
    assert label != kicked
    bad = await dashboard.post(
        "/api/moderation",
        json={
            "type": "timeout",
            "userId": OTHER,
            "moderatorId": MODERATOR,
            "metadata": {"duration": "forever"},
        },
    )
    assert bad.status_code == 400


async def test_a_moderators_ban_in_discord_becomes_a_case_once(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    await peer.moderator_bans(MODERATOR, OTHER, reason="raiding")

    async def bans() -> list[dict[str, object]]:
        found = await dashboard.get(f"/api/moderation?userId={OTHER}&type=ban")
        return found.json()["cases"]

    [case] = await eventually(bans, lambda found: len(found) == 1)
    assert case["moderatorId"] == MODERATOR and case["reason"] == "raiding"
    assert case["metadata"]["source"] == "discord"
    await asyncio.sleep(0.5)
    assert len(await bans()) == 1  # not carried out again, not recorded twice


async def test_a_member_leaving_leaves_the_directory(
    dashboard: httpx.AsyncClient, peer: DiscordPeer, aurora_bot: Runtime
) -> None:
    async def members() -> set[str]:
        async with aurora_bot.database.unit_of_work(write=False) as session:
            return {m.id for m in await community.guild_members(session)}

    await eventually(members, lambda ids: OTHER in ids)
    peer.remove_member(OTHER)
    await eventually(members, lambda ids: OTHER not in ids)


async def test_a_timeout_case_is_lifted_when_cleared_and_announced(
    dashboard: httpx.AsyncClient, peer: DiscordPeer, aurora_bot: Runtime
) -> None:
    created = await dashboard.post(
        "/api/moderation",
        json={"type": "timeout", "userId": OTHER, "moderatorId": MODERATOR, "metadata": {}},
    )
    label = created.json()["case"]["caseId"]
    await peer.wait_for(lambda: len(peer.moderation) == 1, timeout=10)
    assert peer.moderation[0]["until"] is not None  # 24 hours when no duration is given
    await dashboard.put(f"/api/moderation/{label}/clear", json={"clearedBy": MODERATOR})
    await peer.wait_for(lambda: len(peer.moderation) == 2, timeout=10)
    assert (peer.moderation[1]["action"], peer.moderation[1]["until"]) == ("timeout", None)

    async def outcomes() -> list[str]:
        async with aurora_bot.database.unit_of_work(write=False) as session:
            found = await outbox.recent(session, "moderation.carried_out")
        return [str(e["data"]["action"]) for e in found]

    # Announced to webhooks and the live feed: carried out, then lifted.
    assert await eventually(outcomes, lambda found: len(found) == 2) == ["lifted", "carried out"]


async def test_a_moderators_timeout_in_discord_becomes_a_timeout_case(
    dashboard: httpx.AsyncClient, peer: DiscordPeer
) -> None:
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await peer.moderator_times_out(MODERATOR, OTHER, until, reason="calm down")

    async def timeouts() -> list[dict[str, object]]:
        found = await dashboard.get(f"/api/moderation?userId={OTHER}&type=timeout")
        return found.json()["cases"]

    [case] = await eventually(timeouts, lambda found: len(found) == 1)
    assert case["reason"] == "calm down" and case["metadata"]["source"] == "discord"
    seconds = int(str(case["metadata"]["duration"]).removesuffix("s"))
    assert 3500 <= seconds <= 3600
    assert peer.moderation == []  # nothing carried out again by the bot


async def test_a_slow_command_is_deferred_within_three_seconds_then_answered(
    dashboard: httpx.AsyncClient, peer: DiscordPeer, aurora_bot: Runtime
) -> None:
    await registered(dashboard)
    await run(peer, MEMBER, "daily")
    async with aurora_bot.database.unit_of_work() as session:
        account = await accounts.find_by_provider(session, Provider.DISCORD, MEMBER)
        assert account is not None
        # Hold the member's profile row (and, on SQLite, the one writer) for a while.
        await session.execute(
            update(Profile).where(Profile.account_id == account.id).values(xp=Profile.xp)
        )
        interaction = await peer.member_runs(MEMBER, "daily")
        await asyncio.sleep(2.6)
    found = await answer(peer, interaction)
    assert peer.interaction_responses[interaction][0]["type"] == 5  # deferred in time
    assert "claimed today's reward" in str(found["content"])
