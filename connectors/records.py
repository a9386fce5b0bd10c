"""The records a connector keeps of each PMS row between runs, by name instead of by position.

A pull turns each booking into one of these small tuples (a NamedTuple is still a tuple: the
garbage collector does not track it, which matters at tens of thousands of rows) and stores them
as the connector's state, JSON lists in field order. The next incremental run reads them back
with `revive`, changes the rows the PMS says changed, and keeps those inside the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, TypeVar


class Visit(NamedTuple):
    """One booking of one patient with one practitioner: the most common record."""

    practitioner: str
    patient: str
    day: int  # connectors.dates day number
    status: int  # sharing.AccessStatus
    location: str | None = None


class GroupBooking(NamedTuple):
    """A class or group appointment: who runs it, when, its state; its attendees come separately."""

    practitioner: str
    day: int
    status: int
    location: str | None = None


class Attendance(NamedTuple):
    """One patient's place in a group booking, with the patient's own state."""

    booking: str
    patient: str
    status: int


class _Dated(Protocol):
    day: int


R = TypeVar("R", bound=tuple)
D = TypeVar("D", bound=_Dated)


def revive(rows: Mapping[str, Any], kind: type[R]) -> dict[str, R]:
    """Stored rows (JSON lists, or records already) as records of `kind`."""
    return {key: row if isinstance(row, kind) else kind(*row) for key, row in rows.items()}


def within_window(records: Mapping[str, D], first_day: int) -> dict[str, D]:
    """The records on or after `first_day`: older bookings have left the lookback window."""
    return {key: record for key, record in records.items() if record.day >= first_day}
