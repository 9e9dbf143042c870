"""Time formats the documents show (JavaScript's ``toISOString()`` above all)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def iso_millis(moment: datetime | date | None) -> str | None:
    """``2024-01-15T12:30:00.000Z``, as JavaScript's ``toISOString()``; a date is its midnight.

    Built by ``isoformat``, whose C code pads the year to four digits as JavaScript
    does (``strftime`` on Linux writes year 1 as ``1``) and takes a third of the time:
    a page of 50 Aurora members formats 100 of these."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"
