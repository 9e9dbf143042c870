"""One module per console area, each with its ``ROUTES``; ``PAGES`` is all of them."""

from __future__ import annotations

from starlette.routing import BaseRoute

from guildhall.faces.console.pages import (
    accounts,
    audit,
    economy,
    moderation,
    overview,
    servers,
    sessions,
    tickets,
    webhooks,
)

PAGES: list[BaseRoute] = [
    *overview.ROUTES,
    *accounts.ROUTES,
    *economy.ROUTES,
    *moderation.ROUTES,
    *servers.ROUTES,
    *tickets.ROUTES,
    *sessions.ROUTES,
    *webhooks.ROUTES,
    *audit.ROUTES,
]
