"""Discord: the one connection both bots share (modmail behind Rustmail, and Aurora's).

``connection.DiscordConnection`` holds the gateway session (in one process per
installation, under a lease) and a REST client (in every process). On top of
it: ``modmail.Modmail`` (the modmail bot), ``directory.DirectorySync`` (the
guild directory), ``moderation.Moderation`` (cases carried out) and
``aurora.AuroraBot`` (commands, quests, lootdrops). hikari is an optional
extra: ``load_hikari`` says in one sentence what to install when it is missing.
"""

from __future__ import annotations

from types import ModuleType

from guildhall.config import ConfigError

MISSING = (
    "Connecting to Discord needs the discord extra: "
    "pip install 'guildhall[discord]' (or leave [discord] token empty)."
)


def load_hikari() -> ModuleType:
    try:
        # Optional: imported only when Discord is configured.
        import hikari
    except ImportError:
        raise ConfigError(MISSING) from None
    return hikari
