"""One parser for the PMSs' dates and timestamps, one day encoding, one timestamp format."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from connectors.dates import day_to_date, iso_timestamp, optional_day, parse_day
from connectors.errors import ConnectorError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-25", date(2026, 11, 25)),
        ("2026-11-25T09:00:00Z", date(2026, 11, 25)),
        ("2026-11-25T23:30:00+11:00", date(2026, 11, 25)),
        ("2026-11-25T00:10:00.000-05:00", date(2026, 11, 25)),
        (" 2026-11-25 ", date(2026, 11, 25)),
    ],
)
def test_a_date_or_a_timestamp_gives_the_calendar_day_written_in_it(value: str, expected: date) -> None:
    """Given an ISO date or timestamp, when parsed, then the day is the one written (not shifted)."""
    assert day_to_date(parse_day(value, "cliniko", "GET /appointments item 0.starts_at")) == expected


@pytest.mark.parametrize("value", [None, "", "25/11/2026", "2026-13-01", 20261125, "2026-11-25T25:00:00Z"])
def test_anything_else_is_an_error_naming_where_it_was(value) -> None:
    """Given a value that is no ISO date, when parsed strictly, then one line says where and what."""
    with pytest.raises(ConnectorError, match=r"nookal: GET /appointments item 3\.date: expected an ISO date"):
        parse_day(value, "nookal", "GET /appointments item 3.date")
    assert optional_day(value) is None


def test_timestamps_are_written_in_utc_with_or_without_milliseconds() -> None:
    """Given a moment in another zone, when formatted, then it is UTC with a Z."""
    moment = datetime(2026, 11, 25, 20, 0, 5, tzinfo=timezone(timedelta(hours=11)))
    assert iso_timestamp(moment) == "2026-11-25T09:00:05Z"
    assert iso_timestamp(moment, milliseconds=True) == "2026-11-25T09:00:05.000Z"
    assert iso_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"
