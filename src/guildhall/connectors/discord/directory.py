"""The guild directory, kept true by the gateway.

GUILD_CREATE gives the guild's roles and channels whole (so those it no longer
has are removed) and the members it carries; with the GUILD_MEMBERS intent
hikari then asks for the rest in chunks (op 8), each chunk written as it
arrives. Member, role and channel events keep it current. Aurora's
``/api/settings/meta``, its user names and Rustmail's "member of the
community" rule all read this directory. Only ``[discord] guild_id`` is
mirrored; each event is written in its own short unit of work.
"""

from __future__ import annotations

import logging
from typing import Any

from guildhall.connectors.discord.connection import DiscordConnection
from guildhall.core.community import service as community
from guildhall.core.community.service import MemberFacts
from guildhall.db.engine import Database

logger = logging.getLogger("guildhall.discord.directory")


def member_facts(member: Any) -> MemberFacts:
    return MemberFacts(
        id=str(member.user.id),
        username=member.user.username,
        roles=tuple(str(role) for role in member.role_ids if role != member.guild_id),
        avatar=member.user.avatar_hash,
    )


def _role(role: Any) -> tuple[str, str, str]:
    return (str(role.id), role.name, f"#{int(role.color):06X}")


def _channel(channel: Any) -> tuple[str, str, str]:
    return (str(channel.id), channel.name or "", channel.type.name.lower())


class DirectorySync:
    def __init__(self, connection: DiscordConnection, database: Database) -> None:
        self.connection = connection
        self.database = database
        self.guild_id = connection.settings.guild_id
        hikari = connection.hikari
        for event_type, callback in (
            (hikari.GuildAvailableEvent, self.on_guild),
            (hikari.GuildJoinEvent, self.on_guild),
            (hikari.MemberChunkEvent, self.on_chunk),
            (hikari.MemberCreateEvent, self.on_member),
            (hikari.MemberUpdateEvent, self.on_member),
            (hikari.MemberDeleteEvent, self.on_member_gone),
            (hikari.RoleCreateEvent, self.on_role),
            (hikari.RoleUpdateEvent, self.on_role),
            (hikari.RoleDeleteEvent, self.on_role_gone),
            (hikari.GuildChannelCreateEvent, self.on_channel),
            (hikari.GuildChannelUpdateEvent, self.on_channel),
            (hikari.GuildChannelDeleteEvent, self.on_channel_gone),
        ):
            connection.subscribe(event_type, self._guarded(callback))

    def _guarded(self, callback: Any) -> Any:
        async def handle(event: Any) -> None:
            if str(event.guild_id) != self.guild_id:
                return
            try:
                await callback(event)
            except Exception:
                logger.exception("directory: %s could not be applied", type(event).__name__)

        handle.__name__ = callback.__name__
        return handle

    async def on_guild(self, event: Any) -> None:
        roles = [_role(role) for role in event.roles.values() if role.id != event.guild_id]
        channels = [_channel(channel) for channel in event.channels.values()]
        members = [member_facts(member) for member in event.members.values()]
        async with self.database.unit_of_work() as session:
            await community.sync_entries(session, "role", roles, complete=True)
            await community.sync_entries(session, "channel", channels, complete=True)
            await community.sync_members(session, members)
        logger.info(
            "directory: guild %s has %d roles, %d channels; %d members so far",
            self.guild_id,
            len(roles),
            len(channels),
            len(members),
        )

    async def on_chunk(self, event: Any) -> None:
        members = [member_facts(member) for member in event.members.values()]
        async with self.database.unit_of_work() as session:
            await community.sync_members(session, members)
        logger.info(
            "directory: member chunk %d/%d (%d members)",
            event.chunk_index + 1,
            event.chunk_count,
            len(members),
        )

    async def on_member(self, event: Any) -> None:
        async with self.database.unit_of_work() as session:
            await community.sync_members(session, [member_facts(event.member)])

    async def on_member_gone(self, event: Any) -> None:
        async with self.database.unit_of_work() as session:
            await community.remove_member(session, str(event.user_id))

    async def on_role(self, event: Any) -> None:
        async with self.database.unit_of_work() as session:
            await community.sync_entries(session, "role", [_role(event.role)])

    async def on_role_gone(self, event: Any) -> None:
        async with self.database.unit_of_work() as session:
            await community.remove_directory_entry(session, "role", str(event.role_id))

    async def on_channel(self, event: Any) -> None:
        async with self.database.unit_of_work() as session:
            await community.sync_entries(session, "channel", [_channel(event.channel)])

    async def on_channel_gone(self, event: Any) -> None:
        async with self.database.unit_of_work() as session:
            await community.remove_directory_entry(session, "channel", str(event.channel.id))
