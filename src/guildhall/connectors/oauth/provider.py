"""An OAuth2 authorization-code provider: Discord by default, any compatible one by config.

Authlib builds the authorization URL and the token request (RFC 6749); httpx
carries them. The provider's access token is used once, to ask who logged in,
and then dropped: it is never stored.

``timeout`` bounds the whole exchange (both requests together), not each
read: a provider that trickles its answer still ends the login in time. The
caller holds no database transaction while it waits (see the Rustmail face's
callback).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request

from guildhall.config import OAuthSettings

AVATAR_HASH = re.compile(r"[A-Za-z0-9_]{1,64}")
"""Discord's avatar hashes (hex, ``a_`` before an animated one), which the panel puts
in a CDN path: anything else is dropped rather than placed in that URL."""


class ProviderError(Exception):
    """The provider refused the code or answered something unusable."""


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    username: str
    avatar: str | None


@dataclass(frozen=True, slots=True)
class OAuthProvider:
    client_id: str
    client_secret: str
    redirect_url: str
    authorize_url: str
    token_url: str
    userinfo_url: str
    scope: str = "identify"
    timeout: float = 10

    @classmethod
    def configured_by(cls, settings: OAuthSettings) -> OAuthProvider:
        """The provider a configuration section (``[faces.rustmail.oauth]``, ``[console.oauth]``)
        describes."""
        return cls(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            redirect_url=settings.redirect_url,
            authorize_url=settings.authorize_url,
            token_url=settings.token_url,
            userinfo_url=settings.userinfo_url,
            scope=settings.scope,
            timeout=settings.timeout_seconds,
        )

    def authorization_url(self, state: str) -> str:
        url: str = prepare_grant_uri(
            self.authorize_url,
            self.client_id,
            "code",
            redirect_uri=self.redirect_url,
            scope=self.scope,
            state=state,
        )
        return url

    async def identify(self, code: str) -> Identity:
        """Trade the code for a token, and the token for who the person is, within ``timeout``."""
        try:
            async with asyncio.timeout(self.timeout):
                info = await self._ask(code)
        except TimeoutError:
            raise ProviderError(
                f"the provider did not answer within {self.timeout:g} seconds"
            ) from None
        # isdecimal() alone takes other scripts' digits ("٣"), isdigit() even "²".
        subject = str(info.get("id", "")) if isinstance(info, dict) else ""
        if not (subject.isascii() and subject.isdecimal() and len(subject) <= 20):
            raise ProviderError("the provider did not say who logged in")
        return Identity(id=subject, username=_username(info, subject), avatar=_avatar(info))

    async def _ask(self, code: str) -> Any:
        """The provider's answer to who logged in (unchecked JSON)."""
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=self.redirect_url
        )
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                token = await client.post(
                    self.token_url,
                    content=body,
                    auth=(self.client_id, self.client_secret),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                )
                answer = token.json() if token.is_success else None
                access_token = answer.get("access_token") if isinstance(answer, dict) else None
                if not access_token:
                    raise ProviderError(f"the provider refused the code (HTTP {token.status_code})")
                user = await client.get(
                    self.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}
                )
                return user.json() if user.is_success else {}
            except (httpx.HTTPError, ValueError) as exc:
                raise ProviderError(f"the provider could not be reached: {exc}") from None


def _username(info: dict[str, Any], subject: str) -> str:
    """The provider's name for the person, or their id when it sent no usable text."""
    name = info.get("username")
    if isinstance(name, str) and name.strip():
        return name.strip()[:64]
    return subject


def _avatar(info: dict[str, Any]) -> str | None:
    avatar = info.get("avatar")
    return avatar if isinstance(avatar, str) and AVATAR_HASH.fullmatch(avatar) else None
