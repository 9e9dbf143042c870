"""The HTTP client every REST connector starts from (a panel, a hypervisor's API)."""

from __future__ import annotations

import httpx

from guildhall import __version__


def json_api(base_url: str, token: str, timeout: float) -> httpx.AsyncClient:
    """A client for a JSON API with a Bearer token. ``Accept: application/json`` is sent
    always: Laravel apps (Pterodactyl, VirtFusion) answer errors with redirects without it."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"Guildhall/{__version__}",
        },
        timeout=timeout,
    )
