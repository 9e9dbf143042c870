"""Complete Discord API v10 objects, shaped as Discord sends them.

Every builder returns a fresh dict with every field Discord puts in that
object (nullable ones as ``None``), so a client's deserializer that reads
``payload["field"]`` finds it. Snowflakes are strings, timestamps ISO 8601
with microseconds and an explicit UTC offset, as on the wire.
"""

from __future__ import annotations

import datetime
import itertools
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000

# Channel types and the bits of permissions used here.
GUILD_TEXT = 0
DM = 1
GUILD_CATEGORY = 4
ALL_PERMISSIONS = str((1 << 51) - 1)
EVERYONE_PERMISSIONS = "1071698660929"  # Discord's default @everyone set

_increment = itertools.count()


def snowflake(at: datetime.datetime | None = None) -> str:
    """A new snowflake whose timestamp is ``at`` (default: now), unique in this process."""
    moment = at or datetime.datetime.now(datetime.UTC)
    ms = int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (1 << 17) | (next(_increment) & 0xFFF))


def snowflake_days_ago(days: float) -> str:
    """A new snowflake created ``days`` ago (an account of that age, say)."""
    return snowflake(datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days))


def snowflake_time(value: str) -> datetime.datetime:
    ms = (int(value) >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


def timestamp(moment: datetime.datetime | None = None) -> str:
    return (moment or datetime.datetime.now(datetime.UTC)).isoformat(timespec="microseconds")


def user(user_id: str, username: str, *, bot: bool = False, global_name: str | None = None) -> dict:
    """A user object as it appears inside members, messages and DM channels."""
    payload: dict[str, Any] = {
        "id": user_id,
        "username": username,
        "discriminator": "0",
        "global_name": global_name,
        "avatar": None,
        "avatar_decoration_data": None,
        "banner": None,
        "accent_color": None,
        "public_flags": 0,
        "flags": 0,
        "primary_guild": None,
        "clan": None,
        "collectibles": None,
        "display_name_styles": None,
    }
    if bot:
        payload["bot"] = True
    return payload


def own_user(user_id: str, username: str) -> dict:
    """The bot's own user, as GET /users/@me and READY give it."""
    payload = user(user_id, username, bot=True)
    payload.update(
        {
            "mfa_enabled": False,
            "locale": "en-US",
            "premium_type": 0,
            "email": None,
            "verified": True,
            "bio": "",
        }
    )
    return payload


def member(
    member_user: dict,
    *,
    roles: list[str] | None = None,
    joined_at: str | None = None,
    nick: str | None = None,
) -> dict:
    """A guild member object (``user`` included; no ``guild_id``, events add it)."""
    return {
        "user": member_user,
        "nick": nick,
        "avatar": None,
        "banner": None,
        "avatar_decoration_data": None,
        "collectibles": None,
        "roles": list(roles or []),
        "joined_at": joined_at or timestamp(),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
        "unusual_dm_activity_until": None,
    }


def role(
    role_id: str,
    name: str,
    *,
    color: int = 0,
    position: int = 0,
    permissions: str = EVERYONE_PERMISSIONS,
) -> dict:
    return {
        "id": role_id,
        "name": name,
        "description": None,
        "color": color,
        "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": permissions,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def _guild_channel(
    channel_id: str, guild_id: str, name: str, channel_type: int, position: int
) -> dict:
    return {
        "id": channel_id,
        "type": channel_type,
        "guild_id": guild_id,
        "name": name,
        "position": position,
        "flags": 0,
        "parent_id": None,
        "permission_overwrites": [],
        "nsfw": False,
    }


def category(channel_id: str, guild_id: str, name: str, *, position: int = 0) -> dict:
    return _guild_channel(channel_id, guild_id, name, GUILD_CATEGORY, position)


def text_channel(
    channel_id: str,
    guild_id: str,
    name: str,
    *,
    parent_id: str | None = None,
    position: int = 0,
    topic: str | None = None,
) -> dict:
    payload = _guild_channel(channel_id, guild_id, name, GUILD_TEXT, position)
    payload.update(
        {
            "parent_id": parent_id,
            "topic": topic,
            "last_message_id": None,
            "last_pin_timestamp": None,
            "rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
            "default_thread_rate_limit_per_user": 0,
            "icon_emoji": None,
            "theme_color": None,
        }
    )
    return payload


def dm_channel(channel_id: str, recipient: dict) -> dict:
    return {
        "id": channel_id,
        "type": DM,
        "last_message_id": None,
        "flags": 0,
        "recipients": [recipient],
    }


def attachment(**fields: Any) -> dict:
    """A message attachment; ``fields`` override the defaults (a small PNG)."""
    attachment_id = fields.pop("id", None) or snowflake()
    filename = fields.pop("filename", "image.png")
    url = f"https://cdn.discordapp.com/attachments/0/{attachment_id}/{filename}"
    payload: dict[str, Any] = {
        "id": attachment_id,
        "filename": filename,
        "size": 1024,
        "url": url,
        "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
        "content_type": "image/png",
        "width": 16,
        "height": 16,
        "ephemeral": False,
        "placeholder_version": 1,
        "flags": 0,
    }
    payload.update(fields)
    return payload


def message(
    message_id: str,
    channel_id: str,
    author: dict,
    content: str,
    *,
    embeds: list[dict] | None = None,
    attachments: list[dict] | None = None,
    mentions: list[dict] | None = None,
    mention_roles: list[str] | None = None,
    nonce: str | int | None = None,
    tts: bool = False,
) -> dict:
    """A message as the REST API returns it (gateway events add guild_id and member)."""
    payload: dict[str, Any] = {
        "id": message_id,
        "type": 0,
        "content": content,
        "channel_id": channel_id,
        "author": author,
        "attachments": list(attachments or []),
        "embeds": list(embeds or []),
        "mentions": list(mentions or []),
        "mention_roles": list(mention_roles or []),
        "mention_everyone": "@everyone" in content or "@here" in content,
        "pinned": False,
        "tts": tts,
        "timestamp": timestamp(snowflake_time(message_id)),
        "edited_timestamp": None,
        "flags": 0,
        "components": [],
    }
    if nonce is not None:
        payload["nonce"] = nonce
    return payload


def guild(
    guild_id: str,
    name: str,
    *,
    owner_id: str,
    roles: list[dict],
    system_channel_id: str | None = None,
) -> dict:
    """The guild object as GET /guilds/{id} returns it."""
    return {
        "id": guild_id,
        "name": name,
        "icon": None,
        "icon_hash": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": owner_id,
        "region": "deprecated",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "roles": roles,
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": system_channel_id,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "max_presences": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "nsfw_level": 0,
        "nsfw": False,
        "premium_progress_bar_enabled": False,
        "hub_type": None,
        "latest_onboarding_question_id": None,
        "incidents_data": None,
        "inventory_settings": None,
        "home_header": None,
        "version": 0,
    }


def gateway_guild(
    rest_guild: dict,
    *,
    channels: list[dict],
    members: list[dict],
    member_count: int,
    joined_at: str,
) -> dict:
    """The GUILD_CREATE payload: the guild plus the gateway-only fields."""
    payload = dict(rest_guild)
    payload.update(
        {
            "unavailable": False,
            "joined_at": joined_at,
            "large": member_count > 250,
            "member_count": member_count,
            "members": members,
            "channels": channels,
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "activity_instances": [],
            "application_command_counts": {},
            "lazy": True,
        }
    )
    return payload


def application(app_id: str, owner: dict, *, flags: int) -> dict:
    """GET /applications/@me."""
    return {
        "id": app_id,
        "name": owner["username"],
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot": owner,
        "bot_public": False,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": owner,
        "team": None,
        "flags": flags,
        "hook": True,
        "is_monetized": False,
        "is_verified": False,
        "is_discoverable": False,
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "tags": [],
        "approximate_guild_count": 1,
        "approximate_user_install_count": 0,
        "redirect_uris": [],
        "rpc_origins": [],
        "integration_types_config": {"0": {}},
    }


def ready(
    *,
    own: dict,
    guild_ids: list[str],
    session_id: str,
    resume_gateway_url: str,
    application_id: str,
    application_flags: int,
    shard: tuple[int, int] = (0, 1),
) -> dict:
    return {
        "v": 10,
        "user": own,
        "user_settings": {},
        "guilds": [{"id": guild_id, "unavailable": True} for guild_id in guild_ids],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_gateway_url,
        "shard": list(shard),
        "application": {"id": application_id, "flags": application_flags},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": ["rotterdam", "frankfurt"],
        "auth": {},
        "current_location": ["CLIENT"],
        "_trace": ['["gateway-prd-peer-0",{"micros":0}]'],
    }
