"""Guildhall API keys as every face checks them.

A key's last use is stamped only for a request its scope allows: a refused
request must not make a key look in use (nor, through the once-a-minute
limit, hide the next real use).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.access import service as access
from guildhall.runtime import Runtime


async def _stamp(runtime: Runtime, key_id: int) -> None:
    async with runtime.database.unit_of_work() as session:
        await access.stamp_last_used(session, key_id)


async def identify_key(
    runtime: Runtime, session: AsyncSession, token: str, scope: str
) -> access.KeyPrincipal | None:
    """The key's principal if it exists, is not revoked and has not expired, else None.

    The caller tells a refusal for ``scope`` apart itself (a face with a 403
    of its own); the key's last use is stamped only when it grants ``scope``,
    at most once a minute per process, after the request and outside its
    transaction (see ``access.LastUsedTracker``).
    """
    principal = await access.authenticate(session, token)
    if principal is not None and principal.allows(scope) and runtime.key_stamps.due(principal.id):
        runtime.spawn(_stamp(runtime, principal.id))
    return principal


async def verify_key(
    runtime: Runtime, session: AsyncSession, token: str, scope: str
) -> access.KeyPrincipal | None:
    """The key's principal if it is valid and grants ``scope``, else None."""
    principal = await identify_key(runtime, session, token, scope)
    return principal if principal is not None and principal.allows(scope) else None
