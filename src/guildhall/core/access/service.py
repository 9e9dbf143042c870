"""API keys.

A key is 256 random bits; only its SHA-256 is stored. A fast hash is the
right tool here: a slow one (Argon2) protects guessable passwords, and a
random key cannot be guessed, while every API request has to verify one.
Keys are looked up by their hash and the match is confirmed with a
constant-time comparison.

A verified key is then trusted from memory for :data:`KEY_CACHE_SECONDS`
(:class:`KeyCache`, one per process and database): checking it costs a
database round trip, on PostgreSQL the largest share of a small request. A
revocation or deletion in this process forgets the key at once; in another
process (a second ``--workers`` process, the CLI) the key is looked up again
within that second. Only verified keys are kept: an unknown key is looked up
every time, so a key made a moment ago by another process works at once, and
garbage sent by a stranger cannot fill the memory.

A scope names what a key opens, from one fixed list (:data:`SCOPES`): a key
whose scope nothing checks would be refused everywhere, so a misspelled scope
is refused when the key is made, with the list, instead of making a useless
key. (Rustmail's panel permissions, such as ``manage_bot``, are grants to
logged-in staff, not key scopes; its key permissions are scopes here.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.access.models import ApiKey
from guildhall.core.actor import Actor
from guildhall.core.errors import Invalid, NotFound
from guildhall.core.text import require_storable
from guildhall.db.base import utcnow
from guildhall.db.engine import LOCAL_CACHES
from guildhall.db.prepared import Prepared
from guildhall.events import audit

KEY_PREFIX = "gh_"
SCOPES: dict[str, str] = {
    "*": "every face's API (never Rustmail's panel, which takes a login)",
    "aurora": "the Aurora face",
    "heliactyl": "the Heliactyl face",
    "ld7": "the LD7 face",
    "read:tickets": "Rustmail's external API, reading tickets",
    "write:tickets": "Rustmail's external API, creating tickets",
}
"""Every scope a key may hold, with what it opens; each face checks one of these."""
# last_used_at is a hint for people; writing it more often than this would
# turn every read request into a write.
LAST_USED_RESOLUTION_SECONDS = 60.0
KEY_CACHE_SECONDS = 1.0
"""How long a verified key is trusted without looking at the database again: the
longest a revocation made by another process can take to reach this one."""
KEY_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """A verified key: what the request may do, and who to name in the audit log."""

    id: int
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> Actor:
        return Actor("api_key", f"API key {self.name!r} (#{self.id})")

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "*" in self.scopes


class KeyCache:
    """Verified keys by digest, each with the moment it must be looked up again.

    Found by a dict lookup on the SHA-256 digest: an attacker cannot steer
    the digest of what they send, so the lookup's timing tells them nothing.
    """

    NAME = "api_keys"  # its name among the database's local caches

    def __init__(self, size: int = KEY_CACHE_SIZE) -> None:
        self._size = size
        # digest -> (look again after (monotonic), expires at (epoch seconds) or None, principal)
        self._entries: dict[str, tuple[float, float | None, KeyPrincipal]] = {}

    def get(self, digest: str) -> KeyPrincipal | None:
        """The principal if its entry is fresh and the key has not expired."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        fresh_until, expires, principal = entry
        if time.monotonic() >= fresh_until or (expires is not None and time.time() >= expires):
            del self._entries[digest]
            return None
        return principal

    def put(self, digest: str, principal: KeyPrincipal, expires_at: datetime | None) -> None:
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        expires = expires_at.timestamp() if expires_at is not None else None
        self._entries[digest] = (time.monotonic() + KEY_CACHE_SECONDS, expires, principal)

    def forget(self, key_id: int) -> None:
        for digest in [d for d, (_, _, p) in self._entries.items() if p.id == key_id]:
            del self._entries[digest]


def _key_cache(session: AsyncSession) -> KeyCache | None:
    """The process's cache for the session's database; None for a session no unit
    of work made (then every check looks at the database)."""
    caches: dict[str, object] | None = session.info.get(LOCAL_CACHES)
    if caches is None:
        return None
    cache = caches.get(KeyCache.NAME)
    if cache is None:
        cache = caches[KeyCache.NAME] = KeyCache()
    assert isinstance(cache, KeyCache)
    return cache


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted({scope.strip().lower() for scope in scopes})
    if not cleaned:
        raise Invalid("a key needs at least one scope", field="scope")
    for scope in cleaned:
        if scope not in SCOPES:
            raise Invalid(
                f"{scope[:64]!r} is not a valid scope; the valid scopes are {', '.join(SCOPES)}",
                field="scope",
            )
    return cleaned


async def create(
    session: AsyncSession,
    *,
    name: str,
    scopes: Iterable[str],
    actor: Actor,
    expires_at: datetime | None = None,
    prefix: str = KEY_PREFIX,
    token: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned here once and never again."""
    name = require_storable(name.strip(), "a key name", field="name")
    if not name or len(name) > 100:
        raise Invalid("a key name is 1 to 100 characters", field="name")
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid("the expiry must be in the future", field="expires")
    plaintext = prefix + (token or secrets.token_urlsafe(32))
    key = ApiKey(
        name=name,
        prefix=plaintext[: len(prefix) + 4],
        key_hash=hash_key(plaintext),
        scopes=_check_scopes(scopes),
        expires_at=expires_at,
        created_at=utcnow(),
    )
    session.add(key)
    await session.flush()
    await audit.record(
        session,
        actor,
        "api_key.created",
        f"{actor.name} created API key {name!r} (#{key.id}) with scopes {', '.join(key.scopes)}",
        target=f"api_key:{key.id}",
    )
    return key, plaintext


# Built once: every API request runs it, and a statement built per call costs
# more than the query itself.
_keys = ApiKey.__table__
_KEY_BY_HASH = Prepared(
    select(
        _keys.c.id,
        _keys.c.name,
        _keys.c.key_hash,
        _keys.c.scopes,
        _keys.c.expires_at,
        _keys.c.revoked_at,
    ).where(_keys.c.key_hash == bindparam("digest"))
)


async def authenticate(session: AsyncSession, plaintext: str) -> KeyPrincipal | None:
    """The key's principal if it exists, is not revoked and has not expired."""
    digest = hash_key(plaintext)
    cache = _key_cache(session)
    if cache is not None and (known := cache.get(digest)) is not None:
        return known
    row = await _KEY_BY_HASH.first(session, {"digest": digest})
    if row is None:
        return None
    key_id, name, key_hash, scopes, expires_at, revoked_at = row
    if not hmac.compare_digest(key_hash, digest) or revoked_at is not None:
        return None
    if expires_at is not None and expires_at <= utcnow():
        return None
    principal = KeyPrincipal(key_id, name, frozenset(scopes))
    if cache is not None:
        cache.put(digest, principal, expires_at)
    return principal


def _forget(session: AsyncSession, key_id: int) -> None:
    """A revoked or deleted key is refused by this process from now on."""
    cache = _key_cache(session)
    if cache is not None:
        cache.forget(key_id)


class LastUsedTracker:
    """Remembers when this process last stamped each key, to stamp it rarely."""

    def __init__(self) -> None:
        self._stamped: dict[int, float] = {}

    def due(self, key_id: int) -> bool:
        now = time.monotonic()
        if now - self._stamped.get(key_id, -LAST_USED_RESOLUTION_SECONDS) < (
            LAST_USED_RESOLUTION_SECONDS
        ):
            return False
        self._stamped[key_id] = now
        return True


async def stamp_last_used(session: AsyncSession, key_id: int) -> None:
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def list_keys(session: AsyncSession, prefix: str | None = None) -> list[ApiKey]:
    """Every key, or those whose plaintext starts with ``prefix`` (one face's keys)."""
    query = select(ApiKey).order_by(ApiKey.id)
    if prefix is not None:
        query = query.where(ApiKey.prefix.startswith(prefix, autoescape=True))
    return list(await session.scalars(query))


async def key_page(session: AsyncSession, *, limit: int, offset: int) -> list[ApiKey]:
    """``limit`` keys from ``offset``, newest first (a page of them, for the console)."""
    return list(
        await session.scalars(select(ApiKey).order_by(ApiKey.id.desc()).limit(limit).offset(offset))
    )


async def delete(session: AsyncSession, key_id: int, actor: Actor) -> None:
    """Remove a key for good; it is refused from the next request on."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key has the id {key_id}", code="key_not_found")
    await session.delete(key)
    await session.flush()
    _forget(session, key_id)
    await audit.record(
        session,
        actor,
        "api_key.deleted",
        f"{actor.name} deleted API key {key.name!r} (#{key.id})",
        target=f"api_key:{key.id}",
    )


async def revoke(session: AsyncSession, key_id: int, actor: Actor) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key has the id {key_id}", code="key_not_found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
        _forget(session, key_id)
        await audit.record(
            session,
            actor,
            "api_key.revoked",
            f"{actor.name} revoked API key {key.name!r} (#{key.id})",
            target=f"api_key:{key.id}",
        )
    return key
