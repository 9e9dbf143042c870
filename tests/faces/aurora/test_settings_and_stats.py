"""Settings (partial merge, typed known keys), Discord metadata, admin actions, stats, health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from guildhall.config import Settings
from guildhall.core.accounts.service import AccountRef
from guildhall.core.community import service as community
from guildhall.core.economy import service as economy
from guildhall.events import outbox
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR, make_key
from tests.faces.aurora.conftest import POTION, client_for, error


async def test_settings_merge_deeply_and_check_known_types(aurora: httpx.AsyncClient) -> None:
    defaults = (await aurora.get("/api/settings")).json()
    assert defaults["economy"]["dailyReward"] == 100
    merged = await aurora.post(
        "/api/settings", json={"economy": {"dailyReward": 250}, "welcome": {"text": "hi"}}
    )
    assert merged.json()["success"] is True
    document = (await aurora.get("/api/settings")).json()
    assert document["economy"] == {**defaults["economy"], "dailyReward": 250}
    assert document["welcome"] == {"text": "hi"}  # unknown keys are kept
    assert document["prefix"] == "!"
    for bad in (
        {"economy": {"dailyReward": "lots"}},
        {"prefix": 5},
        {"economy": 3},
        {"maintenance": {"enabled": "yes"}},
        {"prefix": None},  # null only where the default is null
        {"prefix": "\u0000"},
        {"prefix": "x" * 2001},
        {"economy": {"dailyReward": 2**63}},  # beyond what a JavaScript dashboard reads
        {"maintenance": {"reason": 5}},  # ids, reasons and times are text or null
        {"moderation": {"logChannelId": ["1"]}},
        [1, 2],
    ):
        error(await aurora.post("/api/settings", json=bad), 400)
    for raw, details in (
        (b"{not json", "The request body must be valid JSON"),
        (b'"a string"', "The request body must be a JSON object"),
    ):
        sent = await aurora.post(
            "/api/settings", content=raw, headers={"Content-Type": "application/json"}
        )
        assert error(sent, 400) == details
    assert (await aurora.get("/api/settings")).json() == document


async def test_meta_comes_from_the_directory(aurora: httpx.AsyncClient, runtime: Runtime) -> None:
    async with runtime.database.unit_of_work() as session:
        await community.put_directory_entry(session, "role", "123", "Admin", "#FF0000", TEST_ACTOR)
        await community.put_directory_entry(session, "channel", "456", "general", "0", TEST_ACTOR)
        await community.put_directory_entry(
            session, "command", "daily", "daily", "economy", TEST_ACTOR
        )
    assert (await aurora.get("/api/settings/meta")).json() == {
        "roles": [{"id": "123", "name": "Admin", "color": "#FF0000"}],
        "channels": [{"id": "456", "name": "general", "type": 0}],
        "commands": [{"name": "daily", "category": "economy"}],
    }


async def test_reload_commands_counts_the_registry(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.unit_of_work() as session:
        for name in ("daily", "pay", "shop"):
            await community.put_directory_entry(
                session, "command", name, name, "economy", TEST_ACTOR
            )
    reloaded = (await aurora.post("/api/actions/reload-commands")).json()
    assert reloaded["success"] is True and reloaded["commands"]["count"] == 3
    assert (await aurora.get("/api/settings")).json()["commands"]["count"] == 3


async def test_maintenance_mode_shows_everywhere_and_is_audited(
    aurora: httpx.AsyncClient, runtime: Runtime
) -> None:
    on = await aurora.post(
        "/api/actions/maintenance-mode", json={"enabled": True, "reason": "Updating..."}
    )
    assert on.json()["maintenance"]["enabled"] is True
    assert (await aurora.get("/api/health")).json()["maintenance"] is True
    assert (await aurora.get("/api/stats")).json()["maintenance"]["reason"] == "Updating..."
    assert (await aurora.get("/api/settings")).json()["maintenance"]["enabled"] is True
    off = await aurora.post("/api/actions/maintenance-mode", json={"enabled": False})
    assert off.json()["maintenance"] == {"enabled": False, "reason": None, "since": None}
    assert (await aurora.get("/api/health")).json()["maintenance"] is False
    error(await aurora.post("/api/actions/maintenance-mode", json={"reason": "x"}), 400)
    async with runtime.database.unit_of_work(write=False) as session:
        events = [e["event"] for e in await outbox.recent(session, "maintenance.changed")]
    assert events == ["maintenance.changed", "maintenance.changed"]


async def test_health(aurora: httpx.AsyncClient) -> None:
    import time

    body = (await aurora.get("/api/health")).json()
    assert body["status"] == "ok"
    assert abs(body["timestamp"] - time.time() * 1000) < 10_000


async def test_stats_count_what_a_dashboard_shows(
    aurora: httpx.AsyncClient, runtime: Runtime, player: AccountRef
) -> None:
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, player, 500, actor=TEST_ACTOR)
    await aurora.post("/api/items", json=POTION)
    await aurora.post("/api/moderation", json={"type": "warn", "userId": "1", "moderatorId": "2"})
    await aurora.post("/api/quests", json={"name": "Q", "triggerEvent": "login"})
    stats = (await aurora.get("/api/stats")).json()
    assert {k: v for k, v in stats.items() if k != "maintenance"} == {
        "totalUsers": 1,
        "activeUsers": 1,
        "coinsInCirculation": 500,
        "totalItems": 1,
        "openCases": 1,
        "transactionsToday": 1,
        "totalQuests": 1,
    }
    await aurora.put("/api/users/123456789012345678", json={"isActive": False})
    assert (await aurora.get("/api/stats")).json()["activeUsers"] == 0


async def test_activity_is_hourly_cached_and_cleared_by_clear_cache(
    aurora: httpx.AsyncClient, runtime: Runtime, player: AccountRef
) -> None:
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, player, 5, actor=TEST_ACTOR)
    first = (await aurora.get("/api/stats/activity")).json()["activity"]
    assert len(first) == 24
    assert sum(hour["transactions"] for hour in first) == 1
    assert first[-1]["transactions"] == 1  # this hour, the last bucket
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, player, 5, actor=TEST_ACTOR)
    cached = (await aurora.get("/api/stats/activity")).json()["activity"]
    assert cached == first  # within five minutes: not recomputed
    cleared = (await aurora.post("/api/actions/clear-cache")).json()
    assert (cleared["success"], cleared["cleared"]) == (True, 1)
    fresh = (await aurora.get("/api/stats/activity")).json()["activity"]
    assert sum(hour["transactions"] for hour in fresh) == 2


@pytest.fixture
async def keyed(settings: Settings) -> AsyncIterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(**aurora: object) -> Runtime:
        data = settings.model_dump()
        data["faces"]["aurora"].update(aurora)
        runtime = Runtime(Settings(**data))
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.close()


async def test_with_a_key_every_route_but_health_and_assets_needs_it(
    keyed: Callable[..., Runtime],
) -> None:
    runtime = keyed(api_key="k" * 40)
    async with client_for(runtime) as aurora:
        assert (await aurora.get("/api/health")).status_code == 200
        assert (await aurora.get("/assets/items/1.png")).status_code == 404  # public, not found
        for method, path in (
            ("GET", "/api/users"),
            ("GET", "/api/stats"),
            ("POST", "/api/items"),
            ("GET", "/api/settings"),
        ):
            response = await aurora.request(method, path, json={})
            assert response.status_code == 401, path
        assert (await aurora.get("/api/users", headers={"X-API-Key": "k" * 40})).status_code == 200
        bearer = {"Authorization": f"Bearer {'k' * 40}"}
        assert (await aurora.get("/api/users", headers=bearer)).status_code == 200
        scoped = await make_key(runtime, "aurora")
        other = await make_key(runtime, "ld7")
        ok = await aurora.get("/api/users", headers={"Authorization": f"Bearer {scoped}"})
        assert ok.status_code == 200
        refused = await aurora.get("/api/users", headers={"Authorization": f"Bearer {other}"})
        assert refused.status_code == 401


async def test_a_separate_currency_keeps_aurora_balances_apart(
    keyed: Callable[..., Runtime], player: AccountRef
) -> None:
    runtime = keyed(currency="gems")
    async with runtime.database.unit_of_work() as session:
        await economy.adjust(session, player, 70, actor=TEST_ACTOR)  # coins, not gems
    async with client_for(runtime) as aurora:
        assert (await aurora.get("/api/users/123456789012345678")).json()["balance"] == "0"
        await aurora.put("/api/users/123456789012345678", json={"balance": "9"})
        assert (await aurora.get("/api/users/123456789012345678")).json()["balance"] == "9"
    async with runtime.database.unit_of_work(write=False) as session:
        assert await economy.balance_of(session, player.id) == 70
        assert await economy.balance_of(session, player.id, "gems") == 9


def test_without_a_key_aurora_may_listen_on_loopback_only() -> None:
    from guildhall.config import ConfigError, load_settings
    from guildhall.server import plan_listeners

    exposed = load_settings(None, faces={"aurora": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match=r"aurora face has no API key.*loopback"):
        plan_listeners(exposed)
    keyed_settings = load_settings(None, faces={"aurora": {"host": "0.0.0.0", "api_key": "k" * 40}})
    assert "aurora" in [listener.face for listener in plan_listeners(keyed_settings)]
