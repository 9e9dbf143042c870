"""Issue 15: password guesses through the profile update, and tokens of a deleted account.

PUT /api/users/me {"currentPassword": ..., "newPassword": ...} counts against the
authentication limit (10 a minute, the document's), and a token names one account
for good: ``sub`` (the id) and ``uid`` (the account's uuid).
"""

from __future__ import annotations

import httpx
import jwt
import pytest
from sqlalchemy import delete

from guildhall.core.accounts import passwords
from guildhall.core.accounts.models import Account
from guildhall.core.errors import Invalid
from guildhall.faces.skypanel import auth
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.skypanel.conftest import PASSWORD, envelope_error, login, make_user


async def _token_without_login(runtime: Runtime, account_id: int) -> str:
    """A token as a login issues it, without spending one of the auth group's requests."""
    async with runtime.database.unit_of_work(write=False) as session:
        found = await passwords.credentials(session, account_id)
    assert found is not None
    return auth.issue(runtime, found)


async def test_profile_password_guesses_count_in_the_auth_limit(
    skypanel: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    skypanel.headers["Authorization"] = f"Bearer {await _token_without_login(runtime, user.id)}"
    guess = {"currentPassword": "not it at all", "newPassword": "a brand new one"}
    answers = [(await skypanel.put("/api/users/me", json=guess)).status_code for _ in range(11)]
    assert answers == [401] * 10 + [429]
    limited = await skypanel.put("/api/users/me", json={**guess, "currentPassword": PASSWORD})
    envelope_error(limited, 429, "RATE_LIMITED")
    # Other routes keep their own, wider limit.
    assert (await skypanel.get("/api/users/me")).status_code == 200


async def test_the_right_password_still_changes_it_with_the_names(
    skypanel: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_user(runtime)
    skypanel.headers["Authorization"] = f"Bearer {await login(skypanel)}"
    changed = await skypanel.put(
        "/api/users/me",
        json={"firstName": "Jo", "currentPassword": PASSWORD, "newPassword": "another password"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["firstName"] == "Jo"
    fresh = {"Authorization": f"Bearer {changed.json()['data']['token']}"}
    assert (await skypanel.get("/api/users/me", headers=fresh)).status_code == 200
    relogin = await skypanel.post(
        "/api/auth/login", json={"email": "user@example.com", "password": "another password"}
    )
    assert relogin.status_code == 200


async def test_a_change_checked_before_another_change_is_refused(runtime: Runtime) -> None:
    """The password is verified outside the write; the write refuses it if the
    password changed in between (the current password given is no longer right)."""
    user = await make_user(runtime)
    first = await passwords.check_change(runtime.database, user.id, PASSWORD, "first new one")
    second = await passwords.check_change(runtime.database, user.id, PASSWORD, "second new one")
    async with runtime.database.unit_of_work() as session:
        await passwords.change(session, first, TEST_ACTOR)
    with pytest.raises(Invalid) as refused:
        async with runtime.database.unit_of_work() as session:
            await passwords.change(session, second, TEST_ACTOR)
    assert refused.value.code == "wrong_password"
    async with runtime.database.unit_of_work(write=False) as session:
        assert await passwords.login(session, "user@example.com", "first new one") is not None
        assert await passwords.login(session, "user@example.com", "second new one") is None


async def test_a_token_of_a_deleted_account_does_not_open_the_next_one(
    skypanel: httpx.AsyncClient, runtime: Runtime
) -> None:
    """SQLite used to give a deleted account's id to the next account: the old token
    (same ``sub``, same version 0) then opened the newcomer's profile."""
    gone = await make_user(runtime, "gone", "gone@example.com")
    old_token = await login(skypanel, "gone@example.com")
    async with runtime.database.unit_of_work() as session:
        await session.execute(delete(Account).where(Account.id == gone.id))
    newcomer = await make_user(runtime, "newcomer", "newcomer@example.com")
    assert newcomer.id != gone.id  # ids are never reused, on either database
    stale = await skypanel.get("/api/users/me", headers={"Authorization": f"Bearer {old_token}"})
    envelope_error(stale, 401, "UNAUTHORIZED")
    mine = await skypanel.get(
        "/api/users/me",
        headers={"Authorization": f"Bearer {await login(skypanel, 'newcomer@example.com')}"},
    )
    assert mine.json()["data"]["email"] == "newcomer@example.com"


async def test_a_token_names_its_account_by_uuid_too(
    skypanel: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A token for the same id but another uuid (an account that held the id before),
    or one without ``uid`` (issued before it existed), is refused."""
    user = await make_user(runtime)
    token = await login(skypanel)
    claims = jwt.decode(token, auth.signing_key(runtime), algorithms=["HS256"])
    assert claims["uid"] == user.subject and claims["sub"] == str(user.id)
    key = auth.signing_key(runtime)
    for forged in (
        {**claims, "uid": "00000000-0000-4000-8000-000000000000"},
        {name: value for name, value in claims.items() if name != "uid"},
        {**claims, "uid": None},
    ):
        response = await skypanel.get(
            "/api/users/me", headers={"Authorization": f"Bearer {jwt.encode(forged, key)}"}
        )
        envelope_error(response, 401, "UNAUTHORIZED")
    good = await skypanel.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 200
