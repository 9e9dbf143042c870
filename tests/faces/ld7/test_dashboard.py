"""``GET /`` - Dashboard: sessions, their status, statistics; no secrets."""

from __future__ import annotations

import re

import httpx

from guildhall.runtime import Runtime
from tests.faces.ld7.conftest import BOT, online_bot


async def test_the_dashboard_lists_sessions_with_masked_numbers_and_stats(
    ld7: httpx.AsyncClient, runtime: Runtime
) -> None:
    await online_bot(ld7, runtime)
    pending = await ld7.post(
        "/api/sessions",
        json={"userId": "bot_2", "phoneNumber": "441234567890", "name": "<script>x</script>"},
    )
    code = pending.json()["pairingCode"]
    response = await ld7.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    page = response.text
    assert '<meta http-equiv="refresh"' in page
    assert re.search(r"<b>1</b>active sessions", page)
    assert re.search(r"<b>2</b>total users", page)
    assert "bot_1234567890" in page and "bot_2" in page
    assert "123*****90" in page and "441*******90" in page
    assert "1234567890" not in page.replace("bot_1234567890", "")
    assert code not in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"<(script|link|img)\b", page)  # no scripts, no outside assets


async def test_the_empty_dashboard_says_how_to_begin(ld7: httpx.AsyncClient) -> None:
    page = (await ld7.get("/")).text
    assert "No sessions yet" in page
    assert BOT["userId"] not in page
