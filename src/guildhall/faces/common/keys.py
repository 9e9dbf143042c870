"""Guildhall API keys as every face checks them.

A key's last use is stamped only for a request it was good for and that
succeeded: a request its scope refuses, or one refused afterwards (a bad body,
a missing record), must not make a key look in use, nor, through the
once-a-minute limit, hide the next real use. So checking a key only notes it
on the connection (:func:`verify_key`); the face's route wrapper stamps it
once the answer is a success (:func:`stamp_used`, called by
``faces/common/session``), at most once a minute per process, after the
request and outside its transaction (see ``access.LastUsedTracker``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from guildhall.core.access import service as access
from guildhall.runtime import Runtime

KEY_USED = "guildhall.key_used"
"""Where, in the connection's ASGI scope, the key that authenticated it waits to be stamped."""


async def verify_key(
    runtime: Runtime, session: AsyncSession, token: str, scope: str, connection: HTTPConnection
) -> access.KeyPrincipal | None:
    """The key's principal if it exists, is not revoked or expired, and grants ``scope``;
    else None. A granted key is noted on ``connection`` for :func:`stamp_used`."""
    principal = await access.authenticate(session, token)
    if principal is None or not principal.allows(scope):
        return None
    note_used(connection, principal)
    return principal


def note_used(connection: HTTPConnection, principal: access.KeyPrincipal) -> None:
    """``principal``'s key authenticated ``connection``: stamp it if the work succeeds.

    For a face that checks keys its own way (Rustmail tells a missing permission
    apart); :func:`verify_key` does this itself."""
    connection.scope[KEY_USED] = principal.id


async def _stamp(runtime: Runtime, key_id: int) -> None:
    async with runtime.database.unit_of_work() as session:
        await access.stamp_last_used(session, key_id)


def stamp_used(runtime: Runtime, connection: HTTPConnection) -> None:
    """Stamp the last use of the key that authenticated ``connection``, if one did: call
    once its work succeeded (a response under 400, a WebSocket accepted)."""
    key_id = connection.scope.get(KEY_USED)
    if key_id is not None and runtime.key_stamps.due(key_id):
        runtime.spawn(_stamp(runtime, key_id))
