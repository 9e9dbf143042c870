"""The console's application: sign-in, the pages of every area, static assets."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from guildhall.connectors.oauth.provider import OAuthProvider, ProviderError
from guildhall.core.access import console as staff_sessions
from guildhall.core.access import panel
from guildhall.core.accounts.models import Provider
from guildhall.core.errors import CoreError, Invalid
from guildhall.faces.common.app import CloseUnreadBodies
from guildhall.faces.common.clients import parse_networks, request_scheme
from guildhall.faces.common.origin import SameOriginGuard
from guildhall.faces.common.paths import local_path
from guildhall.faces.common.ratelimit import RateLimitMiddleware
from guildhall.faces.console import auth, keys
from guildhall.faces.console.errors import refused
from guildhall.faces.console.pages import PAGES
from guildhall.faces.console.render import SECURITY_HEADERS, html, templates
from guildhall.ratelimit import Limit, Verdict
from guildhall.runtime import Runtime

SIGN_IN_FAILED = "That name and password do not open the console."


def _sign_in_page(
    request: Request,
    *,
    error: str = "",
    status: int = 200,
    sent: dict[str, str] | None = None,
) -> Response:
    """The sign-in form; after a refusal, with what was sent (never the password)."""
    secret, fresh = auth.sign_in_secret(request)
    given = sent if sent is not None else dict(request.query_params)
    body = templates.get_template("sign_in.html").render(
        csrf=keys.keys_of(request).csrf_for(secret),
        next=local_path(given.get("next", "/")),
        login=given.get("login", "")[:320],
        discord=auth.runtime_of(request).settings.console.oauth.configured,
        error=error,
        title="Sign in",
    )
    response = html(body, status)
    if fresh:
        response.set_cookie(
            keys.SIGN_IN_COOKIE,
            secret,
            httponly=True,
            samesite="strict",
            secure=auth.is_secure(request),
        )
    return response


async def sign_in_form(request: Request) -> Response:
    if await auth.find_staff(request) is not None:
        return RedirectResponse(local_path(request.query_params.get("next", "/")), 303)
    return _sign_in_page(request)


async def sign_in(request: Request) -> Response:
    """Check the password (Argon2id, as everywhere) and open a session.

    The password is checked in a read unit of work: on SQLite a guess must never
    hold the one write lock while Argon2 runs. Only a right one opens a short write."""
    try:
        fields, _ = await auth.read_fields(request, None)
    except CoreError as exc:
        return refused(request, None, 400, exc.message)
    secret = request.cookies.get(keys.SIGN_IN_COOKIE, "")
    if not secret or not auth.csrf_matches(
        keys.keys_of(request).csrf_for(secret), fields.get("csrf", "")
    ):
        return refused(
            request,
            None,
            403,
            "This sign-in form was not sent from this console's own page. Open it again.",
        )
    runtime = auth.runtime_of(request)
    async with runtime.database.unit_of_work(write=False) as session:
        member = await staff_sessions.check_password(
            session, fields.get("login", ""), fields.get("password", "")
        )
    if member is None:
        return _sign_in_page(request, error=SIGN_IN_FAILED, status=401, sent=fields)
    return await _signed_in(request, member, fields.get("next", "/"), clear=keys.SIGN_IN_COOKIE)


async def _signed_in(
    request: Request,
    member: staff_sessions.StaffMember,
    target: str,
    *,
    clear: str,
    from_elsewhere: bool = False,
) -> Response:
    """Open the session and send the browser on: to ``target``, or to the member's home.

    Coming back from another site (Discord), the browser is sent on by a page of ours
    rather than a redirect: a redirect would still belong to the trip that started on
    the other site, and the browser would not send the new ``SameSite=Strict`` cookie."""
    runtime = auth.runtime_of(request)
    ttl = timedelta(seconds=runtime.settings.console.session_ttl_seconds)
    async with runtime.database.unit_of_work() as session:
        token = await staff_sessions.open_session(session, member, ttl)
    path = local_path(target)
    path = auth.home_of(member) if path == "/" else path
    response: Response
    if from_elsewhere:
        page = templates.get_template("signed_in.html").render(target=path, title="Signed in")
        response = html(page)
    else:
        response = RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)
    auth.set_session_cookie(response, token, ttl, secure=auth.is_secure(request))
    response.delete_cookie(clear)
    return response


async def sign_out(request: Request) -> Response:
    token = request.cookies.get(keys.SESSION_COOKIE, "")
    staff = await auth.find_staff(request)
    if staff is not None:
        try:
            fields, _ = await auth.read_fields(request, None)
        except CoreError as exc:
            return refused(request, staff, 400, exc.message)
        if not auth.csrf_matches(keys.keys_of(request).csrf_for(token), fields.get("csrf", "")):
            return refused(request, staff, 403, auth.CSRF_REFUSED)
        async with auth.runtime_of(request).database.unit_of_work() as session:
            await staff_sessions.close_session(session, token)
    response = RedirectResponse("/sign-in", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(keys.SESSION_COOKIE, httponly=True, samesite="strict")
    return response


def _discord(request: Request) -> OAuthProvider | None:
    oauth = auth.runtime_of(request).settings.console.oauth
    return OAuthProvider.configured_by(oauth) if oauth.configured else None


async def discord_sign_in(request: Request) -> Response:
    """Off to Discord, with a one-time state tied to this browser (a cookie)."""
    provider = _discord(request)
    if provider is None:
        return refused(request, None, 404, "Signing in with Discord is not configured.")
    runtime = auth.runtime_of(request)
    ttl = runtime.settings.console.login_ttl_seconds
    browser = secrets.token_urlsafe(32)
    async with runtime.database.unit_of_work() as session:
        state = await panel.begin_login(
            session,
            browser,
            local_path(request.query_params.get("next", "/")),
            timedelta(seconds=ttl),
        )
    response = RedirectResponse(provider.authorization_url(state), status_code=302)
    # Lax, not Strict: the browser comes back from Discord's site with it.
    response.set_cookie(
        keys.DISCORD_COOKIE,
        browser,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=auth.is_secure(request),
    )
    return response


async def discord_callback(request: Request) -> Response:
    """Three steps, none across another: consume the state, ask Discord, open the session."""
    provider = _discord(request)
    if provider is None:
        return refused(request, None, 404, "Signing in with Discord is not configured.")
    runtime = auth.runtime_of(request)
    state = request.query_params.get("state", "")
    code = request.query_params.get("code", "")
    browser = request.cookies.get(keys.DISCORD_COOKIE, "")
    if not (state and code and browser):
        return refused(request, None, 400, "The Discord sign-in was cut short; start it again.")
    async with runtime.database.unit_of_work() as session:
        try:
            next_path = await panel.finish_login(session, state, browser)
        except Invalid:
            return refused(request, None, 400, "This Discord sign-in is stale; start it again.")
    try:
        person = await provider.identify(code)
    except ProviderError as exc:
        return refused(request, None, 502, f"Discord did not confirm who you are: {exc}.")
    async with runtime.database.unit_of_work(write=False) as session:
        member = await staff_sessions.staff_of_identity(session, Provider.DISCORD, person.id)
    if member is None:
        return _sign_in_page(
            request,
            error="That Discord account is not linked to an administrator or moderator.",
            status=403,
            sent={"next": next_path},
        )
    return await _signed_in(
        request, member, next_path, clear=keys.DISCORD_COOKIE, from_elsewhere=True
    )


def _too_many(verdict: Verdict) -> Response:
    return PlainTextResponse(
        f"Too many requests; try again in {verdict.reset_seconds} s.",
        status_code=429,
        headers={"Retry-After": str(verdict.reset_seconds)},
    )


def _groups(method: str, path: str) -> Sequence[str]:
    if (method == "POST" and path == "/sign-in") or path.startswith("/sign-in/discord"):
        return ("default", "auth")
    return ("default",)


def _not_found(request: Request, _exc: Exception) -> Response:
    return refused(request, None, 404, "There is no such page in the console.")


def create_app(runtime: Runtime) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/sign-in", sign_in_form, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/sign-in/discord", discord_sign_in, methods=["GET"]),
        Route("/sign-in/discord/callback", discord_callback, methods=["GET"]),
        Mount(
            "/static",
            app=StaticFiles(packages=[("guildhall.faces.console", "static")]),
            name="static",
        ),
        *PAGES,
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found})
    app.state.runtime = runtime
    app.state.console_keys = keys.ConsoleKeys.of(runtime)
    settings = runtime.settings
    trusted = parse_networks(settings.trusted_proxies)
    app.add_middleware(
        SameOriginGuard,
        refuse=lambda: PlainTextResponse("Cross-site request refused.", status_code=403),
        scheme_of=lambda scope: request_scheme(scope, trusted),
    )
    app.add_middleware(
        RateLimitMiddleware,
        face="console",
        limiter=runtime.rate_limiter,
        limits={
            group: Limit(rule.requests, rule.per_seconds)
            for group, rule in settings.console.rate_limits.items()
        },
        groups_of=_groups,
        refuse=_too_many,
        trusted_proxies=trusted,
    )
    app.add_middleware(CloseUnreadBodies)
    return app
