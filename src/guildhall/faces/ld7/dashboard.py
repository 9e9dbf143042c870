"""``GET /``: the LD7 dashboard, one self-contained HTML page.

No scripts and no outside assets: it refreshes itself with a meta tag, so it
works in any browser and behind a strict Content-Security-Policy. It never
shows a pairing code, a key or a full phone number.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from guildhall.core.sessions.service import SessionView, Stats

REFRESH_SECONDS = 10
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.4rem;margin:0 0 1rem}
.stats{display:flex;gap:1rem;margin-bottom:1.5rem}
.stat{background:#fff;border-radius:8px;padding:.8rem 1.2rem;box-shadow:0 1px 2px #0002}
.stat b{display:block;font-size:1.6rem}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:.5rem .8rem;border-bottom:1px solid #e3e6ea}
.online{color:#137333;font-weight:600}.offline{color:#8a8f98}
.empty{color:#8a8f98;padding:1rem}
"""


def mask_phone(phone: str) -> str:
    """Country code and last two digits; the rest hidden."""
    if len(phone) <= 5:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 5) + phone[-2:]


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def render(sessions: list[SessionView], stats: Stats) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{escape(item.handle)}</td>"
        f"<td>{escape(item.name or '')}</td>"
        f"<td>{escape(mask_phone(item.phone_number))}</td>"
        f'<td class="{"online" if item.online else "offline"}">'
        f"{'online' if item.online else 'offline'}</td>"
        f"<td>{escape(item.state.value.replace('_', ' '))}</td>"
        f"<td>{escape(_when(item.last_connected_at))}</td>"
        "</tr>"
        for item in sessions
    )
    table = (
        "<table><thead><tr><th>Session</th><th>Name</th><th>Phone</th><th>Status</th>"
        f"<th>State</th><th>Last connected</th></tr></thead><tbody>{rows}</tbody></table>"
        if sessions
        else '<p class="empty">No sessions yet. Create one with POST /api/sessions.</p>'
    )
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Bot sessions · Guildhall</title><style>{_STYLE}</style></head><body>"
        "<h1>Bot sessions</h1>"
        '<div class="stats">'
        f'<div class="stat"><b>{stats.online}</b>active sessions</div>'
        f'<div class="stat"><b>{stats.total}</b>total users</div>'
        "</div>"
        f"{table}"
        "</body></html>"
    )
