"""Routes of the Aurora API face.

Handlers only translate: parse with ``wire``, call the core, render. The
live WebSocket is in ``live.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from guildhall.core.accounts.models import Provider
from guildhall.core.accounts.service import find_by_provider
from guildhall.core.actor import Actor
from guildhall.core.community import service as community
from guildhall.core.community.stats import StatsCache, dashboard
from guildhall.core.economy import service as economy
from guildhall.core.economy.service import EntryType
from guildhall.core.errors import is_digits
from guildhall.core.items import service as items
from guildhall.core.moderation import cases
from guildhall.faces.aurora import errors, live, wire
from guildhall.faces.aurora.auth import authenticate, public
from guildhall.faces.aurora.errors import bad_request
from guildhall.faces.common import ratelimit
from guildhall.faces.common.app import face_app
from guildhall.faces.common.body import (
    TOO_LARGE,
    Form,
    TooDeep,
    is_multipart,
    parse_json,
    read_form,
    read_json,
)
from guildhall.faces.common.origin import LocalOriginGuard
from guildhall.faces.common.responses import JSON
from guildhall.faces.common.session import Handler, action_endpoint, endpoint, runtime_of
from guildhall.runtime import Runtime

CREATED = 201
SORT_ORDERS = ("asc", "desc")


def _currency(request: Request) -> str:
    return runtime_of(request).settings.faces.aurora.currency


def _stats_cache(request: Request) -> StatsCache:
    cache: StatsCache = request.app.state.stats_cache
    return cache


def _no_content() -> Response:
    return Response(status_code=204)


# ---- health, stats -------------------------------------------------------


async def health(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    maintenance = await community.maintenance(session)
    return JSON(
        {
            "status": "ok",
            "timestamp": int(time.time() * 1000),
            "maintenance": maintenance["enabled"],
        }
    )


async def stats(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    counts = await dashboard(session, _currency(request))
    maintenance = await community.maintenance(session)
    return JSON({**counts, "maintenance": maintenance})


async def activity(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON({"activity": await _stats_cache(request).activity(session, _currency(request))})


# ---- users ---------------------------------------------------------------


async def list_users(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    params = request.query_params
    sort_by = params.get("sortBy") or "balance"
    order = (params.get("sortOrder") or "desc").lower()
    if sort_by not in community.SORTS:
        raise bad_request(f"sortBy must be one of {', '.join(community.SORTS)}")
    if order not in SORT_ORDERS:
        raise bad_request("sortOrder must be asc or desc")
    limit, offset = wire.page(params, 50)
    found, total = await community.members(
        session,
        _currency(request),
        search=wire.param(params, "search"),
        sort_by=sort_by,
        descending=order == "desc",
        limit=limit,
        offset=offset,
    )
    return JSON({"users": [wire.user(view) for view in found], "total": total})


async def get_user(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    view = await community.member(session, request.path_params["user_id"], _currency(request))
    return JSON(wire.user(view))


async def update_user(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    change = community.MemberChange(
        username=wire.text(body, "username", 64),
        balance=wire.optional_big(body, "balance"),
        xp=wire.optional_big(body, "xp"),
        level=None if body.get("level") is None else wire.small(body["level"], "level"),
        daily_streak=(
            None
            if body.get("dailyStreak") is None
            else wire.small(body["dailyStreak"], "dailyStreak")
        ),
        is_active=wire.flag(body, "isActive"),
        settings=wire.obj(body, "settings"),
        class_id=wire.text(body, "classId", 32),
        class_given="classId" in body,
    )
    view = await community.update_member(
        session, request.path_params["user_id"], change, _currency(request), caller
    )
    return JSON({"success": True, "user": wire.user(view)})


async def get_inventory(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    user_id = request.path_params["user_id"]
    owner = await community.member_ref(session, user_id)
    return JSON(wire.inventory(user_id, await items.inventory(session, owner.id)))


async def add_inventory(request: Request, session: AsyncSession, caller: Actor) -> Response:
    user_id = request.path_params["user_id"]
    body = wire.json_object(await read_json(request))
    if body.get("itemId") is None:
        raise bad_request("itemId is required")
    item_id = wire.small(body["itemId"], "itemId", 10**15)
    quantity = wire.big(body.get("quantity", "1"), "quantity")
    owner = await community.member_ref(session, user_id)
    held = await items.add(session, owner, item_id, quantity, caller)
    item = await items.get(session, item_id)
    return JSON({"success": True, "inventory": wire.inventory_entry(user_id, item, held)})


async def remove_inventory(request: Request, session: AsyncSession, caller: Actor) -> Response:
    user_id = request.path_params["user_id"]
    item_id = wire.small(request.path_params["item_id"], "itemId", 10**15)
    raw_amount = request.query_params.get("amount")
    amount = 1 if raw_amount in (None, "") else wire.big(raw_amount, "amount")
    owner = await community.member_ref(session, user_id)
    left = await items.remove(session, owner, item_id, amount, caller)
    item = await items.get(session, item_id)
    return JSON({"success": True, "inventory": wire.inventory_entry(user_id, item, left)})


# ---- items ---------------------------------------------------------------


def _item_fields(body: dict[str, Any]) -> items.ItemFields:
    return items.ItemFields(
        name=wire.text(body, "name"),
        description=wire.text(body, "description", 2000),
        type=wire.text(body, "type", 32),
        rarity=wire.text(body, "rarity", 3),
        price=wire.optional_big(body, "price"),
        icon_url=wire.text(body, "iconUrl", 300),
        image_url=wire.text(body, "imageUrl", 300),
        usage_data=wire.obj(body, "usageData"),
    )


async def _image_of(form: Form, required: bool) -> items.CheckedImage | None:
    if "image" not in form.files:
        if required or "image" in form.fields:
            raise bad_request("Send the image as a file in the multipart field 'image'")
        return None
    # Decoding is CPU work: off the event loop, so other requests keep going.
    return await asyncio.to_thread(items.check_image, form.files["image"].file)


async def _form(request: Request) -> Form:
    form = await read_form(request, items.MAX_IMAGE_BYTES)
    if form is TOO_LARGE:
        raise bad_request("The image is larger than 15 MB")
    if not isinstance(form, Form):
        raise bad_request("The multipart body is malformed")
    return form


async def _item_request(request: Request) -> tuple[dict[str, Any], items.CheckedImage | None]:
    """JSON, or multipart with ``data`` (the JSON fields) and ``image``."""
    if not is_multipart(request):
        return wire.json_object(await read_json(request)), None
    form = await _form(request)
    raw = form.fields.get("data")
    body: Any = {}
    if raw is not None:
        try:
            body = parse_json(raw)
        except TooDeep as exc:
            raise bad_request(f"The 'data' field: {exc}") from None
        except ValueError:
            raise bad_request("The 'data' field must be valid JSON") from None
    return wire.json_object(body), await _image_of(form, required=False)


async def list_items(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    params = request.query_params
    limit, offset = wire.page(params, 100, cap=200)
    found, total = await items.search(
        session,
        text=wire.param(params, "search"),
        item_type=wire.param(params, "type"),
        rarity=wire.param(params, "rarity"),
        limit=limit,
        offset=offset,
    )
    return JSON({"items": [wire.item(row) for row in found], "total": total})


def _item_id(request: Request) -> int:
    return wire.small(request.path_params["item_id"], "id", 10**15)


async def get_item(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON(wire.item(await items.get(session, _item_id(request))))


async def create_item(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body, image = await _item_request(request)
    row = await items.create(session, _item_fields(body), caller, image)
    return JSON({"success": True, "item": wire.item(row)}, status_code=CREATED)


async def update_item(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    row = await items.update_item(session, _item_id(request), _item_fields(body), caller)
    return JSON({"success": True, "item": wire.item(row)})


async def delete_item(request: Request, session: AsyncSession, caller: Actor) -> Response:
    await items.delete_item(session, _item_id(request), caller)
    return _no_content()


async def upload_icon(request: Request, session: AsyncSession, caller: Actor) -> Response:
    if not is_multipart(request):
        raise bad_request("Send multipart/form-data with an 'image' file")
    image = await _image_of(await _form(request), required=True)
    assert image is not None
    row = await items.set_image(session, _item_id(request), image, caller)
    return JSON({"success": True, "item": wire.item(row)})


async def asset(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    found = await items.image(session, request.path_params["filename"])
    etag = f'"{found.etag}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=86400",
        # An uploaded image is someone's content: opened directly it runs nothing
        # and loads nothing; its name is the stored one (digits, a known extension).
        "Content-Security-Policy": "default-src 'none'",
        "Content-Disposition": f'inline; filename="{found.filename}"',
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.content_type, headers=headers)


# ---- classes -------------------------------------------------------------


async def list_classes(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    found = await community.classes(session)
    return JSON({"classes": [wire.guild_class(view) for view in found], "total": len(found)})


async def create_class(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    name = wire.text(body, "name")
    if not name or not name.strip():
        raise bad_request("name is required")
    view = await community.create_class(
        session,
        caller,
        name=name.strip(),
        balance=wire.optional_big(body, "balance") or 0,
        role_id=wire.text(body, "roleId", 32),
        class_id=wire.class_id(body),
    )
    return JSON({"success": True, "class": wire.guild_class(view)}, status_code=CREATED)


async def update_class(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    name = wire.text(body, "name")
    if name is not None and not name.strip():
        raise bad_request("name must not be blank")
    view = await community.update_class(
        session,
        request.path_params["class_id"],
        caller,
        name=name.strip() if name is not None else None,
        balance=wire.optional_big(body, "balance"),
        role_id=wire.text(body, "roleId", 32),
        role_given="roleId" in body,
    )
    return JSON({"success": True, "class": wire.guild_class(view)})


async def delete_class(request: Request, session: AsyncSession, caller: Actor) -> Response:
    await community.delete_class(session, request.path_params["class_id"], caller)
    return _no_content()


# ---- moderation ----------------------------------------------------------


async def list_cases(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    params = request.query_params
    case_type = params.get("type") or None
    if case_type is not None and case_type not in cases.TYPES:
        raise bad_request(f"type must be one of {', '.join(cases.TYPES)}")
    limit, offset = wire.page(params, 50)
    found, total = await cases.search(
        session,
        user_id=wire.param(params, "userId"),
        moderator_id=wire.param(params, "moderatorId"),
        case_type=case_type,
        active=wire.boolean_param(params.get("active"), "active"),
        limit=limit,
        offset=offset,
    )
    return JSON({"cases": [wire.case(row) for row in found], "total": total})


async def get_case(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON(wire.case(await cases.get(session, request.path_params["case_id"])))


async def create_case(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    missing = [f for f in ("type", "userId", "moderatorId") if not body.get(f)]
    if missing:
        raise bad_request(f"{', '.join(missing)} required")
    new = cases.NewCase(
        type=wire.text(body, "type", 16) or "",
        user_id=wire.text(body, "userId", 32) or "",
        moderator_id=wire.text(body, "moderatorId", 32) or "",
        username=wire.text(body, "username") or "",
        moderator_name=wire.text(body, "moderatorName") or "",
        reason=wire.text(body, "reason", 1000) or "",
        metadata=wire.obj(body, "metadata"),
    )
    on_discord = runtime_of(request).moderates_on_discord
    row = await cases.create(session, new, caller, on_platform=on_discord)
    return JSON({"success": True, "case": wire.case(row)}, status_code=CREATED)


async def clear_case(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    cleared_by = wire.text(body, "clearedBy", 32)
    if not cleared_by:
        raise bad_request("clearedBy is required")
    row = await cases.clear(
        session,
        request.path_params["case_id"],
        caller,
        cleared_by=cleared_by,
        cleared_by_name=wire.text(body, "clearedByName") or "",
        reason=wire.text(body, "reason", 1000) or "",
        on_platform=runtime_of(request).moderates_on_discord,
    )
    return JSON({"success": True, "case": wire.case(row)})


# ---- transactions --------------------------------------------------------


async def list_transactions(request: Request, session: AsyncSession, _caller: Actor) -> Response:
    params = request.query_params
    entry_type = params.get("type") or None
    types = [kind.value for kind in EntryType]  # as stored and shown, not the enum's names
    if entry_type is not None and entry_type not in types:
        raise bad_request(f"type must be one of {', '.join(types)}")
    limit, offset = wire.page(params, 50)
    account_id = None
    if user_id := params.get("userId"):
        ref = await find_by_provider(session, Provider.DISCORD, user_id)
        if ref is None:
            return JSON({"transactions": [], "total": 0})
        account_id = ref.id
    rows, total = await economy.entries(
        session,
        currency=_currency(request),
        account_id=account_id,
        entry_type=entry_type,
        limit=limit,
        offset=offset,
    )
    return JSON(
        {"transactions": [wire.transaction(e, subject) for e, subject in rows], "total": total}
    )


# ---- quests --------------------------------------------------------------


def _quest_fields(body: dict[str, Any]) -> community.QuestFields:
    return community.QuestFields(
        name=wire.text(body, "name"),
        description=wire.text(body, "description", 2000),
        trigger_event=wire.text(body, "triggerEvent", 64),
        target=None if body.get("target") is None else max(1, wire.big(body["target"], "target")),
        xp_reward=wire.optional_big(body, "xpReward"),
        balance_reward=wire.optional_big(body, "balanceReward"),
    )


async def list_quests(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON({"success": True, "data": [wire.quest(q) for q in await community.quests(session)]})


async def create_quest(request: Request, session: AsyncSession, caller: Actor) -> Response:
    fields = _quest_fields(wire.json_object(await read_json(request)))
    row = await community.create_quest(session, fields, caller)
    return JSON({"success": True, "data": wire.quest(row)}, status_code=CREATED)


def _quest_id(request: Request) -> int:
    return wire.small(request.path_params["quest_id"], "id", 10**15)


async def update_quest(request: Request, session: AsyncSession, caller: Actor) -> Response:
    fields = _quest_fields(wire.json_object(await read_json(request)))
    row = await community.update_quest(session, _quest_id(request), fields, caller)
    return JSON({"success": True, "data": wire.quest(row)})


async def delete_quest(request: Request, session: AsyncSession, caller: Actor) -> Response:
    await community.delete_quest(session, _quest_id(request), caller)
    return _no_content()


# ---- settings and admin actions ------------------------------------------


async def get_settings(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    return JSON(await community.settings(session))


async def update_settings(request: Request, session: AsyncSession, caller: Actor) -> Response:
    update = wire.json_object(await read_json(request))
    return JSON(
        {"success": True, "settings": await community.merge_settings(session, update, caller)}
    )


async def settings_meta(_request: Request, session: AsyncSession, _caller: Actor) -> Response:
    roles = await community.directory(session, "role")
    channels = await community.directory(session, "channel")
    commands = await community.directory(session, "command")
    return JSON(
        {
            "roles": [{"id": r.key, "name": r.name, "color": r.detail or None} for r in roles],
            "channels": [
                {
                    "id": c.key,
                    "name": c.name,
                    "type": int(c.detail) if is_digits(c.detail, 4) else 0,
                }
                for c in channels
            ],
            "commands": [{"name": c.key, "category": c.detail} for c in commands],
        }
    )


async def reload_commands(request: Request, caller: Actor) -> Response:
    """With the Aurora bot on Discord, registers the guild's slash commands there (one
    bulk overwrite, no unit of work open meanwhile) and reports what Discord accepted
    (``registered``) and which listed names are no command of the bot (``refused``);
    without, it re-reads the directory's command list."""
    runtime = runtime_of(request)
    if runtime.aurora_bot is not None:
        commands = await runtime.aurora_bot.register_commands_for_api()
    else:
        async with runtime.database.unit_of_work() as session:
            commands = await community.reload_commands(session, caller)
    return JSON({"success": True, "message": "Commands reloaded", "commands": commands})


async def clear_cache(request: Request, session: AsyncSession, caller: Actor) -> Response:
    cleared = await _stats_cache(request).clear_for(session, caller)
    return JSON({"success": True, "message": "Cache cleared", "cleared": cleared})


async def maintenance_mode(request: Request, session: AsyncSession, caller: Actor) -> Response:
    body = wire.json_object(await read_json(request))
    enabled = wire.flag(body, "enabled")
    if enabled is None:
        raise bad_request("enabled (true or false) is required")
    state = await community.set_maintenance(
        session, enabled, wire.text(body, "reason", 500), caller
    )
    return JSON({"success": True, "maintenance": state})


def create_app(runtime: Runtime) -> FastAPI:
    app = face_app(runtime, "aurora", "Guildhall: Aurora API")
    app.state.stats_cache = StatsCache(ttl=runtime.settings.faces.aurora.activity_cache_seconds)
    errors.install(app)
    get, post, put, delete = ["GET"], ["POST"], ["PUT"], ["DELETE"]
    open_routes: list[tuple[str, Handler, list[str]]] = [
        ("/api/health", health, get),
        ("/assets/items/{filename}", asset, get),
    ]
    routes: list[tuple[str, Handler, list[str]]] = [
        ("/api/stats", stats, get),
        ("/api/stats/activity", activity, get),
        ("/api/users", list_users, get),
        ("/api/users/{user_id}", get_user, get),
        ("/api/users/{user_id}", update_user, put),
        ("/api/users/{user_id}/inventory", get_inventory, get),
        ("/api/users/{user_id}/inventory", add_inventory, post),
        ("/api/users/{user_id}/inventory/{item_id}", remove_inventory, delete),
        ("/api/items", list_items, get),
        ("/api/items", create_item, post),
        ("/api/items/{item_id}", get_item, get),
        ("/api/items/{item_id}", update_item, put),
        ("/api/items/{item_id}", delete_item, delete),
        ("/api/items/{item_id}/icon", upload_icon, post),
        ("/api/classes", list_classes, get),
        ("/api/classes", create_class, post),
        ("/api/classes/{class_id}", update_class, put),
        ("/api/classes/{class_id}", delete_class, delete),
        ("/api/moderation", list_cases, get),
        ("/api/moderation", create_case, post),
        ("/api/moderation/{case_id}", get_case, get),
        ("/api/moderation/{case_id}/clear", clear_case, put),
        ("/api/transactions", list_transactions, get),
        ("/api/quests", list_quests, get),
        ("/api/quests", create_quest, post),
        ("/api/quests/{quest_id}", update_quest, put),
        ("/api/quests/{quest_id}", delete_quest, delete),
        ("/api/settings", get_settings, get),
        ("/api/settings", update_settings, post),
        ("/api/settings/meta", settings_meta, get),
        ("/api/actions/clear-cache", clear_cache, post),
        ("/api/actions/maintenance-mode", maintenance_mode, post),
    ]
    for path, handler, methods in open_routes:
        app.add_route(path, endpoint(handler, public), methods=methods)
    uploads = {create_item, upload_icon}
    for path, handler, methods in routes:
        limit = items.MAX_IMAGE_BYTES if handler in uploads else None
        app.add_route(path, endpoint(handler, authenticate, uploads=limit), methods=methods)
    # Its own units of work: none is open while Discord answers.
    app.add_route(
        "/api/actions/reload-commands", action_endpoint(reload_commands, authenticate), methods=post
    )
    live.install(app, runtime)
    settings = runtime.settings.faces.aurora
    if settings.keyless:
        app.add_middleware(
            LocalOriginGuard, refuse=errors.cross_site, also=settings.allowed_origins
        )
    ratelimit.install(app, runtime, "aurora", errors.too_many)
    return app
