"""Time formats the documents show (JavaScript's ``toISOString()`` above all)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def iso_millis(moment: datetime | date | None) -> str | None:
    """``2024-01-15T12:30:00.000Z``, as JavaScript's ``toISOString()``; a date is its midnight."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
