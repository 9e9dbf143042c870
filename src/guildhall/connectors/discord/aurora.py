"""The Aurora bot: slash commands, quests from real events, and lootdrops.

Commands are the built-in ones below. ``POST /api/actions/reload-commands``
registers on the guild (one bulk overwrite) those named in the directory's
command list (``/api/settings/meta`` ``commands``, kept with ``guildhall
directory``), or all of them when that list is empty, and reports what
Discord accepted; the directory then holds exactly what was registered.

Every interaction is answered within Discord's 3 seconds: when the work takes
longer than ``DEFER_AFTER_SECONDS`` the answer is deferred, then edited in.
Refusals (a second daily claim, too few coins, a bot as the receiver) are
ephemeral, so only the member sees them; a refusal after a deferral edits the
deferred answer. Each command runs in its own unit of work; no unit of work is
open while Discord is called. A member's account is made on first use, as the
Rustmail face does.

Quests advance on ``daily``, ``transfer``, ``buy``, ``lootdrop`` and
``message`` (a member's message in the guild); a completed quest is
announced in the channel where it happened. Lootdrops appear after a
member's message in a ``[discord.aurora] lootdrop_channel_ids`` channel with
the settings' chance (``core/community/game.py`` documents the keys), with a
Claim button; the first click wins, and an unclaimed drop's message says it
expired.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from guildhall.config import DiscordAuroraSettings
from guildhall.connectors.discord.connection import DiscordConnection
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider
from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.community import game
from guildhall.core.community import service as community
from guildhall.core.community.models import Profile, Quest
from guildhall.core.economy import service as economy
from guildhall.core.errors import CoreError, Unavailable
from guildhall.core.items import service as items
from guildhall.core.items.models import InventoryEntry, Item
from guildhall.db.engine import Database

T = TypeVar("T")

DEFER_AFTER_SECONDS = 2.0
MESSAGE_LIMIT = 2000
COOLDOWN_ENTRIES = 10_000
LOOTDROP_PREFIX = "lootdrop:"

logger = logging.getLogger("guildhall.discord.aurora")


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    kind: str  # USER, INTEGER or STRING (hikari.OptionType)
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    description: str
    category: str
    options: tuple[Option, ...] = ()


USER = Option("user", "USER", "Whose (yours when left out)")
COMMANDS = (
    Command("daily", "Claim your daily reward", "economy"),
    Command("balance", "Show a balance", "economy", (USER,)),
    Command("profile", "Show level, xp, class and streak", "profile", (USER,)),
    Command(
        "transfer",
        "Send coins to another member",
        "economy",
        (
            Option("user", "USER", "Who receives them", required=True),
            Option("amount", "INTEGER", "How many", required=True),
        ),
    ),
    Command("shop", "What is for sale", "shop"),
    Command(
        "buy",
        "Buy an item from the shop",
        "shop",
        (
            Option("item", "STRING", "The item's name or id", required=True),
            Option("quantity", "INTEGER", "How many (1)"),
        ),
    ),
    Command("inventory", "Show what a member holds", "shop", (USER,)),
    Command("quests", "Your progress on every quest", "quests"),
)
BY_NAME = {command.name: command for command in COMMANDS}


def _fit(text: str) -> str:
    """At most Discord's 2000 characters."""
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


class Refusal(Exception):
    """An ephemeral answer that refuses the command."""


@dataclass
class Answer:
    text: str
    ephemeral: bool = False
    completed: list[Quest] = field(default_factory=list)  # announced after the answer


class AuroraBot:
    def __init__(
        self,
        connection: DiscordConnection,
        settings: DiscordAuroraSettings,
        database: Database,
        currency: str,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.database = database
        self.currency = currency
        self.guild_id = connection.settings.guild_id
        hikari = connection.hikari
        self.actor = Actor("system", "Aurora bot")
        self._last_counted: dict[str, float] = {}
        connection.subscribe(hikari.InteractionCreateEvent, self.on_interaction)
        connection.subscribe(hikari.GuildMessageCreateEvent, self.on_message)

    # ---- registering commands ------------------------------------------------------

    async def register_commands_for_api(self) -> dict[str, Any]:
        """``register_commands`` for a face: Discord's failures as ``Unavailable``."""
        return await self.connection.call(self.register_commands())

    async def register_commands(self) -> dict[str, Any]:
        """Bulk-overwrite the guild's commands; what Discord accepted, and what not."""
        hikari = self.connection.hikari
        async with self.database.unit_of_work(write=False) as session:
            listed = [entry.key for entry in await community.directory(session, "command")]
        wanted = [name for name in listed if name in BY_NAME] or list(BY_NAME)
        unknown = [name for name in listed if name not in BY_NAME]
        rest = await self.connection.rest()
        builders = []
        for name in wanted:
            command = BY_NAME[name]
            builder = rest.slash_command_builder(command.name, command.description)
            for option in command.options:
                builder.add_option(
                    hikari.CommandOption(
                        type=getattr(hikari.OptionType, option.kind),
                        name=option.name,
                        description=option.description,
                        is_required=option.required,
                        min_value=1 if option.kind == "INTEGER" else None,
                    )
                )
            builders.append(builder)
        application = self.connection.bot_user_id()
        if not application.isdigit():
            raise Unavailable("[discord] token is not a Discord bot token")
        accepted = await rest.set_application_commands(
            int(application), builders, int(self.guild_id)
        )
        names = [command.name for command in accepted]
        async with self.database.unit_of_work() as session:
            await community.sync_entries(
                session,
                "command",
                [(name, name, BY_NAME[name].category) for name in names if name in BY_NAME],
                complete=True,
            )
            document = await community.reload_commands(session, self.actor)
        return {**document, "registered": names, "refused": unknown}

    # ---- interactions -----------------------------------------------------------------

    async def on_interaction(self, event: Any) -> None:
        hikari = self.connection.hikari
        interaction = event.interaction
        if str(interaction.guild_id) != self.guild_id:
            return
        try:
            if isinstance(interaction, hikari.CommandInteraction):
                handler = getattr(self, f"command_{interaction.command_name}", None)
                if handler is None or interaction.command_name not in BY_NAME:
                    return
                await self._answer(interaction, lambda: handler(interaction))
            elif isinstance(
                interaction, hikari.ComponentInteraction
            ) and interaction.custom_id.startswith(LOOTDROP_PREFIX):
                await self.claim_click(interaction)
        except Exception:
            logger.exception("aurora: interaction %s failed", interaction.id)

    async def _answer(self, interaction: Any, work: Callable[[], Awaitable[Answer]]) -> None:
        """Answer with what ``work`` gives, deferring first when it is slow; completed
        quests are announced after the answer, outside Discord's 3 seconds."""
        hikari = self.connection.hikari
        task = asyncio.ensure_future(self._outcome(work))
        done, _ = await asyncio.wait({task}, timeout=DEFER_AFTER_SECONDS)
        if done:
            answer = task.result()
            flags = hikari.MessageFlag.EPHEMERAL if answer.ephemeral else hikari.MessageFlag.NONE
            await interaction.create_initial_response(
                hikari.ResponseType.MESSAGE_CREATE, _fit(answer.text), flags=flags
            )
        else:
            await interaction.create_initial_response(hikari.ResponseType.DEFERRED_MESSAGE_CREATE)
            answer = await task
            await interaction.edit_initial_response(_fit(answer.text))
        await self._announce_quests(interaction.channel_id, interaction.user, answer.completed)

    async def _outcome(self, work: Callable[[], Awaitable[Answer]]) -> Answer:
        try:
            return await work()
        except Refusal as refusal:
            return Answer(str(refusal), ephemeral=True)
        except CoreError as error:
            return Answer(error.message[:1].upper() + error.message[1:] + ".", ephemeral=True)
        except Exception:  # a bug or an outage: the member still gets an answer
            logger.exception("aurora: a command failed")
            return Answer("Something went wrong; nothing was changed. Try again.", ephemeral=True)

    async def _account(self, session: Any, user: Any) -> AccountRef:
        return await accounts.ensure_for_identity(
            session, Provider.DISCORD, str(user.id), user.username, self.actor
        )

    def _option(self, interaction: Any, name: str) -> Any:
        for option in interaction.options or ():
            if option.name == name:
                return option.value
        return None

    def _user_option(self, interaction: Any) -> Any:
        chosen = self._option(interaction, "user")
        if chosen is None:
            return interaction.user
        resolved = interaction.resolved
        return resolved.users.get(chosen) if resolved else None

    async def _announce_quests(self, channel_id: Any, user: Any, done: list[Quest]) -> None:
        if not done:
            return
        rest = await self.connection.rest()
        for quest in done:
            rewards = []
            if quest.balance_reward:
                rewards.append(f"{quest.balance_reward} {self.currency}")
            if quest.xp_reward:
                rewards.append(f"{quest.xp_reward} xp")
            paid = f" (+{', '.join(rewards)})" if rewards else ""
            await rest.create_message(
                channel_id, f"<@{user.id}> completed the quest **{quest.name}**{paid}!"
            )

    async def command_daily(self, interaction: Any) -> Answer:
        async with self.database.unit_of_work() as session:
            account = await self._account(session, interaction.user)
            document = await community.settings(session)
            claim = await game.claim_daily(session, account, document, self.actor, self.currency)
            done = await game.note_activity(session, account, self.actor, self.currency)
            done += await game.advance_quests(session, account, "daily", self.actor, self.currency)
        return Answer(
            f"You claimed {claim.amount} {self.currency} (streak {claim.streak}). "
            f"Balance: {claim.balance} {self.currency}.",
            completed=done,
        )

    async def _look_up(
        self, interaction: Any, read: Callable[[Any, AccountRef], Awaitable[T]], empty: T
    ) -> tuple[Any, T]:
        """The member the ``user`` option names (or the caller), and what ``read`` finds
        of their account in a read unit of work (``empty`` when they have none)."""
        user = self._user_option(interaction)
        if user is None:
            raise Refusal("That member could not be found.")
        async with self.database.unit_of_work(write=False) as session:
            account = await accounts.find_by_provider(session, Provider.DISCORD, str(user.id))
            found = await read(session, account) if account else empty
        return user, found

    async def command_balance(self, interaction: Any) -> Answer:
        user, amount = await self._look_up(
            interaction,
            lambda session, account: economy.balance_of(session, account.id, self.currency),
            0,
        )
        return Answer(f"{user.username} has {amount} {self.currency}.")

    async def command_profile(self, interaction: Any) -> Answer:
        async def read(session: Any, account: AccountRef) -> str:
            profile = await session.get(Profile, account.id)
            if profile is None:
                return "level 0, 0 xp, class none, daily streak 0"
            classes = {c.id: c.name for c in await community.classes(session)}
            class_name = classes.get(profile.class_id or "", "none")
            return (
                f"level {profile.level}, {profile.xp} xp, class {class_name}, "
                f"daily streak {profile.daily_streak}"
            )

        user, shown = await self._look_up(
            interaction, read, "level 0, 0 xp, class none, daily streak 0"
        )
        return Answer(f"{user.username}: {shown}.")

    async def command_transfer(self, interaction: Any) -> Answer:
        receiver = self._user_option(interaction)
        amount = self._option(interaction, "amount")
        if receiver is None or self._option(interaction, "user") is None:
            raise Refusal("Choose who receives the coins.")
        if receiver.is_bot:
            raise Refusal("Bots cannot hold coins.")
        if not isinstance(amount, int) or amount <= 0:
            raise Refusal("The amount must be a positive whole number.")
        async with self.database.unit_of_work() as session:
            sender = await self._account(session, interaction.user)
            target = await self._account(session, receiver)
            left = await game.transfer(session, sender, target, amount, self.actor, self.currency)
            done = await game.advance_quests(session, sender, "transfer", self.actor, self.currency)
        return Answer(
            f"You sent {amount} {self.currency} to {receiver.username}. "
            f"Balance: {left} {self.currency}.",
            completed=done,
        )

    async def command_shop(self, interaction: Any) -> Answer:
        async with self.database.unit_of_work(write=False) as session:
            for_sale = await game.shop(session)
        if not for_sale:
            return Answer("The shop is empty.", ephemeral=True)
        lines = [f"#{item.id} {item.name}: {item.price} {self.currency}" for item in for_sale]
        return Answer("For sale:\n" + "\n".join(lines[:50]))

    async def command_buy(self, interaction: Any) -> Answer:
        wanted = self._option(interaction, "item")
        quantity = self._option(interaction, "quantity") or 1
        if not isinstance(wanted, str) or not isinstance(quantity, int):
            raise Refusal("Name the item and a whole number.")
        async with self.database.unit_of_work() as session:
            account = await self._account(session, interaction.user)
            item = await game.find_item(session, wanted)
            bought, held, left = await game.buy(
                session, account, item.id, quantity, self.actor, self.currency
            )
            done = await game.advance_quests(session, account, "buy", self.actor, self.currency)
        return Answer(
            f"You bought {quantity} x {bought.name} (you hold {held}). "
            f"Balance: {left} {self.currency}.",
            completed=done,
        )

    async def command_inventory(self, interaction: Any) -> Answer:
        nothing: list[tuple[InventoryEntry, Item]] = []
        user, held = await self._look_up(
            interaction, lambda session, account: items.inventory(session, account.id), nothing
        )
        if not held:
            return Answer(f"{user.username} holds nothing yet.")
        lines = [f"{entry.quantity} x {item.name}" for entry, item in held]
        return Answer(f"{user.username} holds:\n" + "\n".join(lines[:50]))

    async def command_quests(self, interaction: Any) -> Answer:
        async with self.database.unit_of_work() as session:
            account = await self._account(session, interaction.user)
            states = await game.quests_of(session, account)
        if not states:
            return Answer("There are no quests yet.", ephemeral=True)
        lines = [
            f"{'✅' if state.completed else '▫️'} {state.quest.name}: "
            f"{state.progress}/{state.quest.target}"
            for state in states
        ]
        return Answer("Your quests:\n" + "\n".join(lines), ephemeral=True)

    # ---- messages: quests and lootdrops ---------------------------------------------

    async def on_message(self, event: Any) -> None:
        if event.author.is_bot or str(event.guild_id) != self.guild_id:
            return
        try:
            async with self.database.unit_of_work(write=False) as session:
                document = await community.settings(session)
            if not self._counts(str(event.author.id), document):
                return
            async with self.database.unit_of_work() as session:
                account = await self._account(session, event.author)
                done = await game.note_activity(session, account, self.actor, self.currency)
                done += await game.advance_quests(
                    session, account, "message", self.actor, self.currency
                )
            await self._announce_quests(event.channel_id, event.author, done)
            if str(event.channel_id) in self.settings.lootdrop_channel_ids:
                await self.maybe_drop(event.channel_id, game.lootdrop_settings(document))
        except Exception:
            logger.exception("aurora: a message in %s could not be handled", event.channel_id)

    def _counts(self, member_id: str, document: dict[str, Any]) -> bool:
        """Whether a member's message counts (quests, lootdrops): at most one every
        ``leveling.xpCooldownSeconds`` (60), so chatting fast farms nothing and writes
        nothing. Kept in the process holding the gateway, which alone sees messages."""
        cooldown = game.message_cooldown(document)
        now = asyncio.get_running_loop().time()
        if now - self._last_counted.get(member_id, -cooldown - 1) < cooldown:
            return False
        if len(self._last_counted) > COOLDOWN_ENTRIES:
            self._last_counted = {
                key: at for key, at in self._last_counted.items() if now - at < cooldown
            }
        self._last_counted[member_id] = now
        return True

    async def maybe_drop(self, channel_id: Any, rules: dict[str, Any]) -> None:
        if secrets.randbelow(1_000_000) >= int(rules["chance"] * 1_000_000):
            return
        low, high = int(rules["minAmount"]), int(rules["maxAmount"])
        amount = low + secrets.randbelow(high - low + 1)
        async with self.database.unit_of_work() as session:
            drop = await game.new_lootdrop(
                session, str(channel_id), amount, int(rules["expirySeconds"])
            )
        rest = await self.connection.rest()
        row = rest.build_message_action_row().add_interactive_button(
            self.connection.hikari.ButtonStyle.PRIMARY,
            f"{LOOTDROP_PREFIX}{drop.id}",
            label="Claim",
        )
        message = await rest.create_message(
            channel_id,
            f"A lootdrop of {amount} {self.currency} appeared! First to claim it wins.",
            component=row,
        )
        async with self.database.unit_of_work() as session:
            found = await session.get(type(drop), drop.id)
            if found is not None:
                found.message_id = str(message.id)

    async def claim_click(self, interaction: Any) -> None:
        hikari = self.connection.hikari
        drop_id = interaction.custom_id.removeprefix(LOOTDROP_PREFIX)
        if not drop_id.isdigit():
            return
        try:
            async with self.database.unit_of_work() as session:
                account = await self._account(session, interaction.user)
                drop = await game.claim_lootdrop(
                    session, int(drop_id), account, self.actor, self.currency
                )
                done = await game.advance_quests(
                    session, account, "lootdrop", self.actor, self.currency
                )
        except CoreError:
            await interaction.create_initial_response(
                hikari.ResponseType.MESSAGE_CREATE,
                "Too late: someone else got it first, or it expired.",
                flags=hikari.MessageFlag.EPHEMERAL,
            )
            return
        await interaction.create_initial_response(
            hikari.ResponseType.MESSAGE_UPDATE,
            f"<@{interaction.user.id}> claimed the lootdrop of {drop.amount} {self.currency}!",
            components=[],
        )
        await self._announce_quests(interaction.channel_id, interaction.user, done)

    async def expire_lootdrops(self) -> None:
        """Close the drops whose time is up and say so on their messages."""
        async with self.database.unit_of_work() as session:
            expired = await game.close_expired_lootdrops(session)
        if not expired:
            return
        rest = await self.connection.rest()
        for drop in expired:
            if drop.message_id is None:
                continue
            try:
                await rest.edit_message(
                    int(drop.channel_id),
                    int(drop.message_id),
                    f"This lootdrop of {drop.amount} {self.currency} expired unclaimed.",
                    components=[],
                )
            except self.connection.hikari.NotFoundError:
                pass  # the message was deleted by hand
            except Exception:  # one message's trouble must not keep the others live
                logger.exception("aurora: lootdrop %s's message could not be updated", drop.id)
