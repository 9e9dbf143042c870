"""One ASGI app per seed document; each face only translates.

``FACES`` is the registry ``guildhall serve`` reads: a face that is not in it
does not exist yet, and naming it in the configuration is an error.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from guildhall.faces.aurora.app import create_app as aurora_app
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
