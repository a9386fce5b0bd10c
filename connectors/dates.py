"""Dates and timestamps as the connectors read and write them: one parser, one encoding, one format.

Every PMS gives a booking's date as ISO 8601: a date (`2026-11-25`, Nookal, FHIR) or a timestamp
(`2026-11-25T09:00:00Z`, `...+11:00`, Cliniko, Semble, FHIR). A connector keeps it as a day
number, the proleptic ordinal (`date.toordinal()`): an int, which Python's garbage collector does
not track inside the tuples a pull keeps by the ten thousand. The day is the calendar day written
in the value (a 23:00+11:00 booking stays on its local day), so a timestamp is not shifted to UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from connectors.errors import ConnectorError


def parse_day(value: Any, connector: str, where: str) -> int:
    """The day of an ISO date or timestamp, or a ConnectorError naming `where` and the value."""
    day = optional_day(value)
    if day is None:
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise ConnectorError(connector, f"{where}: expected an ISO date or timestamp, got {shown}")
    return day


def optional_day(value: Any) -> int | None:
    """The day of an ISO date or timestamp; None when it is missing or not one (lenient readers)."""
    if not isinstance(value, str) or len(value.strip()) < 10:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).toordinal()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().toordinal()
    except ValueError:
        return None


def day_of(moment: date) -> int:
    """The day number of a date (a window's first day, to compare with records)."""
    return moment.toordinal()


def day_to_date(day: int) -> date:
    return date.fromordinal(day)


def iso_timestamp(moment: datetime, *, milliseconds: bool = False) -> str:
    """`2026-11-25T09:00:00Z` (or `...:00.000Z`) in UTC: cursors, filters and stored times."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.000Z" if milliseconds else f"{text}Z"
