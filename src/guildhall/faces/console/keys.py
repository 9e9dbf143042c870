"""The console's cookies and the keys its tokens are signed with."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import Request

from guildhall.runtime import Runtime

SESSION_COOKIE = "gh_console"
SIGN_IN_COOKIE = "gh_console_signin"
"""Before a session exists, the sign-in form's CSRF token is bound to this cookie."""
DISCORD_COOKIE = "gh_console_discord"
"""Ties a Discord sign-in's state to the browser that started it."""


@dataclass(frozen=True)
class ConsoleKeys:
    """Keys derived once from the installation's secret, each for one purpose."""

    csrf: bytes
    notice: bytes

    @classmethod
    def of(cls, runtime: Runtime) -> ConsoleKeys:
        return cls(runtime.secrets.derive("console csrf"), runtime.secrets.derive("console notice"))

    def csrf_for(self, secret: str) -> str:
        return hmac.new(self.csrf, secret.encode(), hashlib.sha256).hexdigest()


def keys_of(request: Request) -> ConsoleKeys:
    keys: ConsoleKeys = request.app.state.console_keys
    return keys


def csrf_of_session(request: Request) -> str:
    """The CSRF token for this browser's session (empty without one)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    return keys_of(request).csrf_for(token) if token else ""
