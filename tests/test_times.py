"""The timestamp format JavaScript clients parse: ``toISOString()``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from guildhall.times import iso_millis


def test_utc_moments_keep_milliseconds_and_drop_the_rest() -> None:
    moment = datetime(2024, 1, 15, 12, 30, 0, 987_654, tzinfo=UTC)
    assert iso_millis(moment) == "2024-01-15T12:30:00.987Z"
    assert iso_millis(moment.replace(microsecond=0)) == "2024-01-15T12:30:00.000Z"


def test_other_zones_are_shown_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert iso_millis(datetime(2024, 1, 1, 0, 30, tzinfo=paris)) == "2023-12-31T23:30:00.000Z"


def test_a_date_is_its_midnight_and_none_stays_none() -> None:
    assert iso_millis(date(2024, 2, 29)) == "2024-02-29T00:00:00.000Z"
    assert iso_millis(None) is None


def test_early_years_are_padded_to_four_digits_as_javascript_does() -> None:
    assert iso_millis(datetime(33, 4, 3, tzinfo=UTC)) == "0033-04-03T00:00:00.000Z"
