"""Moderation carried out on Discord, and Discord's own moderation recorded as cases.

A timeout, kick or ban case made through Aurora's ``POST /api/moderation``
records a platform job (``core/moderation/cases.py``); ``carry_out`` runs it
after commit: a member timeout until the case's expiry (its creation plus
``metadata.duration``), a kick, or a ban, each with ``CASE-0001: reason`` as
the audit-log reason. Clearing a ban or timeout case lifts it (``lift``).
Discord refusing (403 Missing Permissions, 404 a member who left) is an
outcome, recorded in the case and the audit log; anything else is retried by
the job worker.

A ban, kick or timeout a moderator makes inside Discord arrives as a guild
audit-log entry (GUILD_AUDIT_LOG_ENTRY_CREATE, the GUILD_MODERATION intent)
and becomes a case, once per entry (``platform_ref``); the bot's own actions
are skipped, as they came from a case already.
"""

from __future__ import annotations

import logging
from typing import Any

from guildhall.connectors.discord.connection import DiscordConnection
from guildhall.core.actor import Actor
from guildhall.core.moderation import cases
from guildhall.core.moderation.models import ModerationCase
from guildhall.db.engine import Database
from guildhall.events import jobs

logger = logging.getLogger("guildhall.discord.moderation")

BOT = Actor("system", "discord bot")


class Moderation:
    def __init__(self, connection: DiscordConnection, database: Database) -> None:
        self.connection = connection
        self.database = database
        self.guild_id = int(connection.settings.guild_id)
        connection.subscribe(connection.hikari.AuditLogEntryCreateEvent, self.on_audit_entry)

    async def _case(self, number: int) -> Any:
        async with self.database.unit_of_work(write=False) as session:
            return await session.get(ModerationCase, number)

    async def _record(self, number: int, what: str, outcome: str, detail: str) -> None:
        async with self.database.unit_of_work() as session:
            await cases.record_outcome(session, number, what, outcome, detail, BOT)

    async def _act(self, number: int, what: str, action: Any) -> None:
        """Run one Discord call for a case and record what came of it: Discord's refusal
        (any 4xx: a missing permission, a member gone, a timeout already past) is an
        outcome; its failures (5xx, no answer) are retried by the job worker."""
        try:
            await action
        except self.connection.hikari.ClientHTTPResponseError as exc:
            await self._record(number, what, "failed", f"{exc.message} ({exc.code})")
            return
        await self._record(number, what, "done", "Discord accepted it")

    async def gave_up(self, payload: dict[str, Any], error: str) -> None:
        """The worker's last try failed too: say so in the case."""
        what = "lifted" if payload.get("lift") else "carried out"
        await self._record(int(payload["case"]), what, "failed", f"gave up: {error}")

    async def carry_out(self, payload: dict[str, Any]) -> None:
        row = await self._case(int(payload["case"]))
        if row is None:
            raise jobs.Permanent("the case is gone")
        rest = await self.connection.rest()
        label = cases.case_label(row.id)
        reason = f"{label}: {row.reason or 'no reason'}"[:512]
        user = int(row.user_id)
        if row.type == "timeout":
            until = row.created_at + cases.timeout_length(row.details)
            call = rest.edit_member(
                self.guild_id, user, communication_disabled_until=until, reason=reason
            )
        elif row.type == "kick":
            call = rest.kick_user(self.guild_id, user, reason=reason)
        else:
            call = rest.ban_user(self.guild_id, user, reason=reason)
        await self._act(row.id, "carried out", call)

    async def lift(self, payload: dict[str, Any]) -> None:
        row = await self._case(int(payload["case"]))
        if row is None:
            raise jobs.Permanent("the case is gone")
        rest = await self.connection.rest()
        reason = f"{cases.case_label(row.id)} cleared: {row.resolved_reason or 'no reason'}"[:512]
        user = int(row.user_id)
        if row.type == "timeout":
            call = rest.edit_member(
                self.guild_id, user, communication_disabled_until=None, reason=reason
            )
        else:
            call = rest.unban_user(self.guild_id, user, reason=reason)
        await self._act(row.id, "lifted", call)

    async def on_audit_entry(self, event: Any) -> None:
        if int(event.guild_id) != self.guild_id:
            return
        try:
            await self.record_from_discord(event.entry)
        except Exception:
            logger.exception("moderation: audit-log entry %s could not be recorded", event.entry.id)

    async def record_from_discord(self, entry: Any) -> None:
        hikari = self.connection.hikari
        kinds = {
            hikari.AuditLogEventType.MEMBER_BAN_ADD: "ban",
            hikari.AuditLogEventType.MEMBER_KICK: "kick",
        }
        case_type = kinds.get(entry.action_type)
        metadata: dict[str, Any] = {"source": "discord"}
        if entry.action_type == hikari.AuditLogEventType.MEMBER_UPDATE:
            for change in entry.changes:
                if change.key == hikari.AuditLogChangeKey.COMMUNICATION_DISABLED_UNTIL:
                    if change.new_value is None:
                        return  # a timeout lifted by hand: no new case
                    case_type = "timeout"
                    until = change.new_value
                    length = until - entry.created_at
                    seconds = max(int(length.total_seconds()), 1)
                    metadata["duration"] = f"{seconds}s"
        if case_type is None or entry.user_id is None or entry.target_id is None:
            return
        if str(entry.user_id) == str(self.connection.bot_user_id()):
            return  # the bot's own action: it came from a case
        ref = f"discord:audit:{entry.id}"
        moderator = await self._name_of(entry.user_id)
        target = await self._name_of(entry.target_id)
        async with self.database.unit_of_work() as session:
            if await cases.from_platform(session, ref) is not None:
                return
            await cases.create(
                session,
                cases.NewCase(
                    type=case_type,
                    user_id=str(entry.target_id),
                    moderator_id=str(entry.user_id),
                    username=target,
                    moderator_name=moderator,
                    reason=entry.reason or "",
                    metadata=metadata,
                    platform_ref=ref,
                ),
                BOT,
            )

    async def _name_of(self, user_id: Any) -> str:
        try:
            user = await (await self.connection.rest()).fetch_user(int(user_id))
        except Exception:  # a name is a nicety; the id is what the case needs
            return ""
        return str(user.username)


def job_handlers(moderation: Moderation) -> dict[str, jobs.Handler]:
    return {cases.ACTION_JOB: moderation.carry_out, cases.LIFT_JOB: moderation.lift}


def give_up_handlers(moderation: Moderation) -> dict[str, jobs.GiveUp]:
    return {cases.ACTION_JOB: moderation.gave_up, cases.LIFT_JOB: moderation.gave_up}
