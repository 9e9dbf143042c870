"""One ASGI app per seed document; each face only translates.

``FACES`` is the registry ``guildhall serve`` reads: a face that is not in it
does not exist yet, and naming it in the configuration is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp

from guildhall.config import Settings
from guildhall.faces.aurora.app import create_app as aurora_app
from guildhall.faces.console.app import create_app as console_app
from guildhall.faces.heliactyl.app import create_app as heliactyl_app
from guildhall.faces.ld7.app import create_app as ld7_app
from guildhall.faces.rustmail.app import create_app as rustmail_app
from guildhall.faces.skypanel.app import create_app as skypanel_app
from guildhall.runtime import Runtime

FACES: dict[str, Callable[[Runtime], FastAPI]] = {
    "heliactyl": heliactyl_app,
    "ld7": ld7_app,
    "skypanel": skypanel_app,
    "aurora": aurora_app,
    "rustmail": rustmail_app,
}


CONSOLE = "console"
"""The web console: a listener like a face's, configured under ``[console]``."""


def app_for(listener: str, runtime: Runtime) -> ASGIApp:
    """The app a listener serves: a face's, or the console."""
    if listener == CONSOLE:
        return console_app(runtime)
    return FACES[listener](runtime)


@dataclass(frozen=True)
class Entrance:
    """How a client of a face reaches it: the base URL's path, and how it proves who it is."""

    base_path: str
    credentials: Callable[[Settings], str]


def _optional_key(keyless: bool, keyed: str, header: str) -> str:
    if keyless:
        return f"{header} optional: no key is set, so it answers this machine only"
    return keyed


ENTRANCES: dict[str, Entrance] = {
    "heliactyl": Entrance("/api", lambda _s: "Authorization: Bearer <key>"),
    "ld7": Entrance(
        "",
        lambda s: _optional_key(
            s.faces.ld7.keyless, "X-API-Key: <key> (reading sessions needs none)", "X-API-Key"
        ),
    ),
    "skypanel": Entrance(
        "/api", lambda _s: "email and password (POST /api/auth/login), then Bearer <token>"
    ),
    "aurora": Entrance(
        "/api",
        lambda s: _optional_key(
            s.faces.aurora.keyless,
            "Authorization: Bearer <key> or X-API-Key: <key>",
            "Bearer or X-API-Key",
        ),
    ),
    "rustmail": Entrance(
        "/api", lambda _s: "X-API-Key: <key> on /api/externals/* only; panel: Discord login"
    ),
    CONSOLE: Entrance("", lambda _s: "web console: sign in as an admin or moderator"),
}
"""What ``serve``'s banner tells a client author about each face."""
