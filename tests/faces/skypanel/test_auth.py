"""Login, tokens and the profile, as the SkyPANEL document gives them.

POST /api/auth/login {"email": "user@example.com", "password": "yourpassword"}
-> {"success": true, "data": {"token": "jwt_token_here",
                              "user": {"id": 1, "email": "user@example.com", "role": "user"}}}
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from guildhall.core.accounts.service import AccountRef
from guildhall.core.moderation import service as moderation
from guildhall.faces.skypanel.auth import signing_key
from guildhall.runtime import Runtime
from tests.conftest import TEST_ACTOR
from tests.faces.skypanel.conftest import PASSWORD, envelope_error, login, make_user


async def test_login_answers_a_token_and_the_user(
    skypanel: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    response = await skypanel.post(
        "/api/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["data"]["user"] == {"id": user.id, "email": "user@example.com", "role": "user"}
    token = body["data"]["token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, signing_key(runtime), algorithms=["HS256"])
    assert claims["sub"] == str(user.id) and claims["role"] == "user"
    assert claims["exp"] - claims["iat"] == 3600
    assert len(claims["jti"]) == 32
    # Each login is its own token.
    assert (
        jwt.decode(await login(skypanel), signing_key(runtime), algorithms=["HS256"])["jti"]
        != claims["jti"]
    )


async def test_wrong_password_and_unknown_email_look_the_same(
    skypanel: httpx.AsyncClient, user: AccountRef
) -> None:
    async def attempt(email: str, password: str) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = await skypanel.post(
            "/api/auth/login", json={"email": email, "password": password}
        )
        return time.perf_counter() - started, response

    wrong = [await attempt("user@example.com", "not the password") for _ in range(3)]
    unknown = [await attempt("nobody@example.com", "not the password") for _ in range(3)]
    bodies = {json.dumps(r.json(), sort_keys=True) for _t, r in wrong + unknown}
    assert len(bodies) == 1
    error = envelope_error(wrong[0][1], 401, "UNAUTHORIZED")
    assert error["message"] == "Invalid email or password"
    # Both verify an Argon2 hash: without the dummy hash an unknown email
    # would answer about fifty times sooner.
    wrong_time = min(t for t, _r in wrong)
    unknown_time = min(t for t, _r in unknown)
    assert 0.5 < unknown_time / wrong_time < 2


async def test_emails_match_without_regard_to_case(
    skypanel: httpx.AsyncClient, user: AccountRef
) -> None:
    assert await login(skypanel, "User@Example.COM")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["email", "password"]),
        ({"email": "user@example.com"}, ["password"]),
        ({"email": 5, "password": PASSWORD}, ["email"]),
        ({"email": "user@example.com", "password": ""}, ["password"]),
    ],
)
async def test_login_validation_names_the_fields(
    skypanel: httpx.AsyncClient, user: AccountRef, body: dict, fields: list[str]
) -> None:
    error = envelope_error(
        await skypanel.post("/api/auth/login", json=body), 400, "VALIDATION_ERROR"
    )
    assert [item["field"] for item in error["details"]] == fields


async def test_malformed_json_gets_the_envelope(skypanel: httpx.AsyncClient) -> None:
    response = await skypanel.post(
        "/api/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert envelope_error(response, 400, "VALIDATION_ERROR")["message"] == (
        "Request body must be valid JSON"
    )


async def test_a_banned_account_cannot_log_in_or_use_its_token(
    skypanel: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    token = await login(skypanel)
    async with runtime.database.unit_of_work() as session:
        await moderation.ban(session, user, actor=TEST_ACTOR, reason="abuse")
    response = await skypanel.post(
        "/api/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    envelope_error(response, 403, "FORBIDDEN")
    me = await skypanel.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    envelope_error(me, 403, "FORBIDDEN")


async def test_profile(api: httpx.AsyncClient, user: AccountRef) -> None:
    body = (await api.get("/api/users/me")).json()
    assert body["success"] is True
    data = body["data"]
    created = datetime.fromisoformat(data.pop("createdAt").replace("Z", "+00:00"))
    assert datetime.now(UTC) - created < timedelta(minutes=1)
    assert data == {
        "id": user.id,
        "email": "user@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "role": "user",
    }


def _forge(claims: dict, key: bytes | str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_bad_tokens_are_401(
    skypanel: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    good = await login(skypanel)
    claims = jwt.decode(good, signing_key(runtime), algorithms=["HS256"])
    now = datetime.now(UTC)
    header, payload, signature = good.split(".")
    tampered_payload = _b64({**claims, "role": "admin"})
    candidates = {
        "missing": None,
        "not a jwt": "Bearer not.a.jwt",
        "tampered payload": f"Bearer {header}.{tampered_payload}.{signature}",
        "tampered signature": f"Bearer {header}.{payload}.{signature[:-2]}AA",
        "alg none": "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        "other key": "Bearer " + _forge(claims, b"k" * 32),
        "expired": "Bearer "
        + _forge(
            {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)},
            signing_key(runtime),
        ),
        "no jti": "Bearer "
        + _forge({k: v for k, v in claims.items() if k != "jti"}, signing_key(runtime)),
        "unknown account": "Bearer " + _forge({**claims, "sub": "999999"}, signing_key(runtime)),
        "account id too large for the database": "Bearer "
        + _forge({**claims, "sub": "9" * 20}, signing_key(runtime)),
        "sub not digits": "Bearer " + _forge({**claims, "sub": "²"}, signing_key(runtime)),
        # Equal to the account's token version 0 in Python, but not the version we wrote.
        "version false": "Bearer " + _forge({**claims, "ver": False}, signing_key(runtime)),
        "version 0.0": "Bearer " + _forge({**claims, "ver": 0.0}, signing_key(runtime)),
        "basic scheme": f"Basic {good}",
    }
    for name, header_value in candidates.items():
        headers = {} if header_value is None else {"Authorization": header_value}
        response = await skypanel.get("/api/users/me", headers=headers)
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "UNAUTHORIZED", name
    assert (
        await skypanel.get("/api/users/me", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200


async def test_profile_update_changes_only_the_given_names(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/users/me", json={"firstName": "Johnny"})
    assert response.status_code == 200
    assert (response.json()["data"]["firstName"], response.json()["data"]["lastName"]) == (
        "Johnny",
        "Doe",
    )
    assert "token" not in response.json()["data"]
    assert (await api.get("/api/users/me")).json()["data"]["firstName"] == "Johnny"


async def test_password_change_needs_the_current_one_and_revokes_old_tokens(
    skypanel: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    old_token = api.headers["Authorization"]
    wrong = await api.put(
        "/api/users/me",
        json={"firstName": "X", "currentPassword": "nope nope", "newPassword": "new password"},
    )
    assert envelope_error(wrong, 401, "UNAUTHORIZED")["message"] == "Current password is incorrect"
    assert (await api.get("/api/users/me")).json()["data"]["firstName"] == "John"  # unchanged

    missing = await api.put("/api/users/me", json={"newPassword": "new password"})
    assert [d["field"] for d in envelope_error(missing, 400, "VALIDATION_ERROR")["details"]] == [
        "currentPassword"
    ]
    short = await api.put(
        "/api/users/me", json={"currentPassword": PASSWORD, "newPassword": "short"}
    )
    assert [d["field"] for d in envelope_error(short, 400, "VALIDATION_ERROR")["details"]] == [
        "newPassword"
    ]

    changed = await api.put(
        "/api/users/me", json={"currentPassword": PASSWORD, "newPassword": "a much better one"}
    )
    assert changed.status_code == 200
    new_token = changed.json()["data"]["token"]
    stale = await skypanel.get("/api/users/me", headers={"Authorization": old_token})
    envelope_error(stale, 401, "UNAUTHORIZED")
    fresh = await skypanel.get("/api/users/me", headers={"Authorization": f"Bearer {new_token}"})
    assert fresh.status_code == 200
    relogin = await skypanel.post(
        "/api/auth/login", json={"email": "user@example.com", "password": "a much better one"}
    )
    assert relogin.status_code == 200
    old_password = await skypanel.post(
        "/api/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    envelope_error(old_password, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "application/vnd.skypanel.v1+json",
        "application/json",
        "*/*",
        "text/html, application/json;q=0.9",
    ],
)
async def test_version_one_is_served(api: httpx.AsyncClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    if accept is None:
        api.headers.pop("Accept", None)
    assert (await api.get("/api/users/me", headers=headers)).status_code == 200


@pytest.mark.parametrize("accept", ["application/vnd.skypanel.v2+json", "text/html"])
async def test_an_unknown_version_is_406(api: httpx.AsyncClient, accept: str) -> None:
    for path in ("/api/users/me", "/api/nowhere"):
        response = await api.get(path, headers={"Accept": accept})
        error = envelope_error(response, 406, "NOT_ACCEPTABLE")
        assert error["details"] == {"accept": accept}


async def test_unknown_routes_and_methods_use_the_envelope(api: httpx.AsyncClient) -> None:
    envelope_error(await api.get("/api/nowhere"), 404, "NOT_FOUND")
    envelope_error(await api.delete("/api/servers"), 404, "NOT_FOUND")
    envelope_error(await api.post("/api/users/me"), 404, "NOT_FOUND")


async def test_another_users_token_sees_another_profile(
    skypanel: httpx.AsyncClient, runtime: Runtime, user: AccountRef
) -> None:
    other = await make_user(runtime, "jane", "jane@example.com")
    token = await login(skypanel, "jane@example.com")
    me = await skypanel.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["data"]["id"] == other.id != user.id


async def test_a_configured_jwt_secret_signs_the_tokens(runtime: Runtime) -> None:
    from guildhall.config import ConfigError, Settings, load_settings
    from guildhall.faces.skypanel.app import create_app

    secret = "a configured secret of forty characters!"
    data = runtime.settings.model_dump()
    data["faces"]["skypanel"]["jwt_secret"] = secret
    configured = Runtime(Settings(**data))
    try:
        await make_user(configured)
        transport = httpx.ASGITransport(app=create_app(configured))
        async with httpx.AsyncClient(transport=transport, base_url="http://s.test") as client:
            token = await login(client)
        assert jwt.decode(token, secret, algorithms=["HS256"])["role"] == "user"
    finally:
        await configured.close()
    with pytest.raises(ConfigError, match="jwt_secret: Value error, must be at least 32"):
        load_settings(None, faces={"skypanel": {"jwt_secret": "short"}})
