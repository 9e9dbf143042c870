"""Guildhall API keys as every face checks them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.access import service as access
from guildhall.runtime import Runtime


async def _stamp(runtime: Runtime, key_id: int) -> None:
    async with runtime.database.unit_of_work() as session:
        await access.stamp_last_used(session, key_id)


async def verify_key(
    runtime: Runtime, session: AsyncSession, token: str, scope: str
) -> access.KeyPrincipal | None:
    """The key's principal if it is valid and grants ``scope``, else None.

    Its last use is stamped at most once a minute per process, after the
    request and outside its transaction (see ``access.LastUsedTracker``).
    """
    principal = await access.authenticate(session, token)
    if principal is None or not principal.allows(scope):
        return None
    if runtime.key_stamps.due(principal.id):
        runtime.spawn(_stamp(runtime, principal.id))
    return principal
