"""The modmail bot behind the Rustmail face.

A member's DM opens a ticket (the first one) or joins their open ticket: the
bot makes a text channel for it in a modmail category, posts a header (who,
account age, roles, earlier tickets), relays the message and DMs the
configured ``welcome_message``. Someone who is not a member of the guild gets
the document's refusal ("User not found in community server") and no ticket.

In a ticket channel, staff (a role in ``[discord.modmail] staff_role_ids`` or
the panel permission ``manage_tickets``) use ``<prefix>reply TEXT`` (``r``),
``<prefix>anonreply TEXT`` (``ar``) and ``<prefix>close [reason]``; anything
else there is an internal note. A reply that cannot reach the member (their
DMs are closed: Discord error 50007) is reported in the channel and not
counted as delivered.

Closing, from the bot or elsewhere (``guildhall tickets close``), commits the
close with a platform job; ``close_on_discord`` carries it out after commit:
the ``close_message`` by DM, the transcript to ``log_channel_id``, the channel
deleted.

No unit of work is open during a Discord call: each step reads or writes in
its own short one, with the calls between them. Inbound messages are
idempotent on Discord's message id (a resumed session may replay them).
A ticket channel goes in the first configured category with room (Discord
allows 50 channels in one); when all are full, or none is configured, the bot
uses (or creates) a category named ``Modmail``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any

from guildhall.config import DiscordModmailSettings
from guildhall.connectors.discord.connection import DiscordConnection
from guildhall.connectors.discord.directory import member_facts
from guildhall.core.access import panel
from guildhall.core.actor import Actor
from guildhall.core.community import service as community
from guildhall.core.errors import Conflict, NotFound
from guildhall.core.support import service as support
from guildhall.core.support.models import INBOUND, NOTE, OUTBOUND, Ticket
from guildhall.db.engine import Database
from guildhall.events import jobs

NOT_A_MEMBER = "User not found in community server"
CATEGORY_NAME = "Modmail"
CATEGORY_LIMIT = 50
MESSAGE_LIMIT = 2000
DMS_CLOSED = 50007
TRANSCRIPT_MESSAGES = 10
_TRUNCATED = "(longer than this: `guildhall tickets transcript {}` prints all of it)"

logger = logging.getLogger("guildhall.discord.modmail")

BOT = Actor("system", "modmail bot")


def _staff_actor(author: Any) -> Actor:
    return Actor("discord", f"{author.username} ({author.id})")


def _chunks(text: str, size: int = MESSAGE_LIMIT - 100) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


def _header(member: Any, roles: list[str], role_names: dict[str, str], earlier: int) -> str:
    """The ticket channel's first message: who wrote, how old their account is, their
    roles (named from the directory) and how many tickets they had before."""
    created = member.user.created_at
    age_days = (datetime.now(UTC) - created).days
    held = ", ".join(role_names.get(role, role) for role in roles) or "none"
    return (
        f"New ticket from <@{member.user.id}> ({member.user.username}, {member.user.id})\n"
        f"Account age: {age_days} days (created {created:%Y-%m-%d})\n"
        f"Roles: {held}\n"
        f"Earlier tickets: {earlier}"
    )


def _channel_name(username: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", username.lower()).strip("-") or "member"
    return f"ticket-{slug}"[:100]


class Modmail:
    def __init__(
        self, connection: DiscordConnection, settings: DiscordModmailSettings, database: Database
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.database = database
        self.guild_id = connection.settings.guild_id
        hikari = connection.hikari
        connection.subscribe(hikari.DMMessageCreateEvent, self.on_dm)
        connection.subscribe(hikari.GuildMessageCreateEvent, self.on_guild_message)

    # ---- a member writes ---------------------------------------------------------

    async def on_dm(self, event: Any) -> None:
        if event.author.is_bot:
            return
        try:
            await self.relay_from_member(event.message)
        except Exception:
            logger.exception("modmail: a DM from %s could not be relayed", event.author.id)

    async def relay_from_member(self, message: Any) -> None:
        user_id, message_id = str(message.author.id), str(message.id)
        async with self.database.unit_of_work(write=False) as session:
            if await support.message_stored(session, message_id):
                return  # replayed after a resume
            ticket = await support.open_ticket_of(session, user_id)
        if ticket is None:
            ticket = await self.open_for(user_id, greet=True)
            if ticket is None:
                return
        text = message.content or ""
        links = [attachment.url for attachment in message.attachments]
        content = "\n".join([text, *links]).strip()
        relayed = f"**{message.author.username}**: {content}"
        try:
            await self._post(ticket.channel_id, relayed)
        except self.connection.hikari.NotFoundError:
            # The channel was deleted by hand: that ticket is over; this message opens the next.
            async with self.database.unit_of_work() as session:
                await support.close_ticket(
                    session, ticket.public_id, BOT, reason="its channel was deleted on Discord"
                )
            ticket = await self.open_for(user_id, greet=False)
            assert ticket is not None
            await self._post(ticket.channel_id, relayed)
        async with self.database.unit_of_work() as session:
            await support.record_message(
                session,
                ticket,
                INBOUND,
                (user_id, message.author.username),
                content,
                platform_id=message_id,
            )

    async def _post(self, channel_id: str | int, text: str) -> None:
        """Post ``text`` in as many messages as Discord's 2000 characters need."""
        rest = await self.connection.rest()
        for part in _chunks(text):
            await rest.create_message(int(channel_id), part)

    async def open_for_api(self, user_id: str, actor: Actor) -> Ticket:
        """``POST /api/externals/tickets/create``: NotFound for someone who is not a member,
        Conflict when one is open, Unavailable when Discord fails."""
        ticket = await self.connection.call(self.open_for(user_id, greet=False, actor=actor))
        assert ticket is not None
        return ticket

    async def open_for(self, user_id: str, *, greet: bool, actor: Actor = BOT) -> Ticket | None:
        """Open a ticket on Discord for a member: None (and the refusal by DM when
        ``greet``) for someone who is not one; Conflict when one is open already."""
        hikari = self.connection.hikari
        rest = await self.connection.rest()
        try:
            member = await rest.fetch_member(int(self.guild_id), int(user_id))
        except hikari.NotFoundError:
            if greet:
                await self.send_dm(user_id, NOT_A_MEMBER)
                return None
            raise NotFound("user not found in community server", code="member_not_found") from None
        username = member.user.username
        roles = [str(role) for role in member.role_ids if str(role) != self.guild_id]
        async with self.database.unit_of_work() as session:
            await community.sync_members(session, [member_facts(member)])
            already = await support.open_ticket_of(session, user_id)
            earlier = await support.earlier_tickets(session, user_id)
            role_names = {e.key: e.name for e in await community.directory(session, "role")}
        if already is not None:
            if greet:
                return already
            raise Conflict(f"{username} already has an open ticket", code="ticket_open")
        channel = await self._create_channel(rest, username)
        try:
            async with self.database.unit_of_work() as session:
                ticket = await support.open_ticket_for_member(
                    session, user_id, actor, channel_id=str(channel.id)
                )
        except Conflict:
            # Another DM (or an API call) opened one meanwhile: give back the channel.
            await rest.delete_channel(channel.id)
            if not greet:
                raise
            async with self.database.unit_of_work(write=False) as session:
                return await support.open_ticket_of(session, user_id)
        # The ticket exists from here on: the header and the welcome are courtesies, and a
        # failure of either must not stop the member's message from being relayed.
        try:
            await self._post(channel.id, _header(member, roles, role_names, earlier))
            if greet:
                async with self.database.unit_of_work(write=False) as session:
                    document = await community.settings(session, support.CONFIG)
                await self.send_dm(user_id, document["bot"]["welcome_message"])
        except Exception as exc:
            logger.warning(
                "modmail: ticket %s opened without its greeting: %s", ticket.public_id, exc
            )
        return ticket

    async def _create_channel(self, rest: Any, username: str) -> Any:
        hikari = self.connection.hikari
        guild = int(self.guild_id)
        channels = await rest.fetch_guild_channels(guild)
        children: dict[str, int] = {}
        for channel in channels:
            if channel.parent_id is not None:
                children[str(channel.parent_id)] = children.get(str(channel.parent_id), 0) + 1
        named = [
            str(channel.id)
            for channel in channels
            if channel.type == hikari.ChannelType.GUILD_CATEGORY and channel.name == CATEGORY_NAME
        ]
        candidates = [*self.settings.category_ids, *named]
        for category in candidates:
            if children.get(category, 0) >= CATEGORY_LIMIT:
                continue
            try:
                return await rest.create_guild_text_channel(
                    guild, _channel_name(username), category=int(category)
                )
            except hikari.BadRequestError as exc:
                if "CHANNEL_PARENT_MAX_CHANNELS" not in str(exc.errors):
                    raise
        category = await rest.create_guild_category(guild, CATEGORY_NAME)
        return await rest.create_guild_text_channel(
            guild, _channel_name(username), category=category.id
        )

    async def send_dm(self, user_id: str, text: str) -> None:
        """DM ``text``; raises hikari.ForbiddenError (code 50007) when their DMs are closed."""
        rest = await self.connection.rest()
        channel = await rest.create_dm_channel(int(user_id))
        for part in _chunks(text):
            await rest.create_message(channel.id, part)

    # ---- staff answer ------------------------------------------------------------

    async def on_guild_message(self, event: Any) -> None:
        if event.author.is_bot or str(event.guild_id) != self.guild_id:
            return
        try:
            await self.handle_staff_message(event.message, event.member)
        except Exception:
            logger.exception("modmail: a message in channel %s failed", event.channel_id)

    async def handle_staff_message(self, message: Any, member: Any) -> None:
        channel_id, message_id = str(message.channel_id), str(message.id)
        async with self.database.unit_of_work(write=False) as session:
            ticket = await support.ticket_in_channel(session, channel_id)
            if ticket is None or await support.message_stored(session, message_id):
                return
        author = (str(message.author.id), message.author.username)
        text = message.content or ""
        command, _, rest_text = text.removeprefix(self.settings.prefix).partition(" ")
        is_command = text.startswith(self.settings.prefix) and command in {
            "reply",
            "r",
            "anonreply",
            "ar",
            "close",
        }
        if not is_command:
            async with self.database.unit_of_work() as session:
                await support.record_message(
                    session, ticket, NOTE, author, text, platform_id=message_id
                )
            return
        rest = await self.connection.rest()
        if not await self._is_staff(member):
            await rest.create_message(
                message.channel_id, "Only staff may use the modmail commands here."
            )
            return
        if command == "close":
            reason = rest_text.strip() or None
            async with self.database.unit_of_work() as session:
                await support.close_ticket(
                    session,
                    ticket.public_id,
                    _staff_actor(message.author),
                    reason=reason,
                    on_platform=True,
                )
            return
        anonymous = command in {"anonreply", "ar"}
        await self.reply(ticket, message, rest_text.strip(), anonymous=anonymous)

    async def reply(self, ticket: Ticket, message: Any, text: str, *, anonymous: bool) -> None:
        hikari = self.connection.hikari
        rest = await self.connection.rest()
        if not text:
            await rest.create_message(message.channel_id, "Nothing to send: write the reply.")
            return
        shown = "Staff" if anonymous else message.author.username
        try:
            await self.send_dm(ticket.user_id, f"**{shown}**: {text}")
        except hikari.ForbiddenError as exc:
            if exc.code != DMS_CLOSED:
                raise
            await rest.create_message(
                message.channel_id,
                f"Not delivered: {ticket.user_name} does not accept DMs from this server "
                "(Discord error 50007). The reply was kept as a note.",
            )
            direction = NOTE
        else:
            label = "anonymous reply" if anonymous else "reply"
            await self._post(message.channel_id, f"**{message.author.username}** ({label}): {text}")
            direction = OUTBOUND
        async with self.database.unit_of_work() as session:
            await support.record_message(
                session,
                ticket,
                direction,
                (str(message.author.id), message.author.username),
                text,
                platform_id=str(message.id),
            )

    async def _is_staff(self, member: Any) -> bool:
        if member is None:
            return False
        roles = [str(role) for role in member.role_ids]
        if set(roles) & set(self.settings.staff_role_ids):
            return True
        async with self.database.unit_of_work(write=False) as session:
            return "manage_tickets" in await panel.held(session, str(member.user.id), roles)

    # ---- closing on Discord (a platform job, after commit) ---------------------------

    async def close_on_discord(self, payload: dict[str, Any]) -> None:
        hikari = self.connection.hikari
        async with self.database.unit_of_work(write=False) as session:
            ticket, messages = await support.transcript(session, payload["ticket"])
            close_message = (await community.settings(session, support.CONFIG))["bot"][
                "close_message"
            ]
        rest = await self.connection.rest()
        try:
            await self.send_dm(ticket.user_id, close_message)
        except hikari.ForbiddenError as exc:
            if exc.code != DMS_CLOSED:
                raise
            logger.info("modmail: %s does not accept DMs; no close message", ticket.user_id)
        if self.settings.log_channel_id:
            text = support.render_transcript(ticket, messages)
            parts = _chunks(text, MESSAGE_LIMIT - 20)
            if len(parts) > TRANSCRIPT_MESSAGES:  # the whole one stays in Guildhall
                parts = [*parts[: TRANSCRIPT_MESSAGES - 1], _TRUNCATED.format(ticket.public_id)]
            for part in parts:
                await rest.create_message(int(self.settings.log_channel_id), f"```\n{part}\n```")
        with contextlib.suppress(hikari.NotFoundError):  # deleted by hand already
            await rest.delete_channel(int(ticket.channel_id))


def job_handlers(modmail: Modmail) -> dict[str, jobs.Handler]:
    return {support.CLOSE_JOB: modmail.close_on_discord}
