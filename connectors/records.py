"""The records a connector keeps of each PMS row between runs, by name instead of by position.

A pull turns each booking into one of these small tuples (a NamedTuple is still a tuple: the
garbage collector does not track it, which matters at tens of thousands of rows) and stores them
as the connector's state, JSON lists in field order. The next incremental run reads them back
with `revive`, changes the rows the PMS says changed, and keeps those inside the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from sharing import AccessLog, AccessSource
from sharing.access import NO_LOCATION, day_number


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
    """Stored rows (JSON lists, or records already) as records of `kind`.

    A stored list with every field becomes a record directly (`tuple.__new__`, as a named
    tuple's `_make` does): calling the record's class, which fills in defaults, took about a
    quarter longer (22 ms against 18 at a 300-practitioner clinic's 45,000 bookings). A row
    stored before a field was added (shorter) still gets its default, and a longer one is
    refused as before.
    """
    fields = len(kind._fields)  # type: ignore[attr-defined]  # every record kind is a NamedTuple
    make = tuple.__new__
    return {
        key: row if isinstance(row, kind) else make(kind, row) if len(row) == fields else kind(*row)
        for key, row in rows.items()
    }


def within_window(records: Mapping[str, D], first_day: int) -> dict[str, D]:
    """The records on or after `first_day`: older bookings have left the lookback window."""
    return {key: record for key, record in records.items() if record.day >= first_day}


_ORDINAL_TO_DAY_NUMBER = date(2000, 1, 1).toordinal() - day_number(date(2000, 1, 1))
"""What to subtract from a record's day (a proleptic ordinal) to get the access log's day number."""


def appointment_log(visits: Iterable[Visit]) -> AccessLog:
    """The access log of appointment rows, built a column at a time.

    The same log an `AccessLogBuilder` makes row by row (ids interned in order of first
    appearance), without turning each record's day and status into a date and an enum and
    back: a poll rebuilds the log of every booking it keeps, most of which did not change.
    """
    rows = tuple(visits)
    if not rows:
        return AccessLog.empty()
    practitioners, patients, days, statuses, locations = zip(*rows, strict=True)
    practitioner_ids: dict[str, int] = {}
    patient_ids: dict[str, int] = {}
    location_ids: dict[str, int] = {}
    practitioner_codes = [practitioner_ids.setdefault(each, len(practitioner_ids)) for each in practitioners]
    patient_codes = [patient_ids.setdefault(value, len(patient_ids)) for value in patients]
    location_codes = [
        NO_LOCATION if value is None else location_ids.setdefault(value, len(location_ids))
        for value in locations
    ]
    return AccessLog(
        list(practitioner_ids),
        list(patient_ids),
        np.array(practitioner_codes, dtype=np.int32),
        np.array(patient_codes, dtype=np.int32),
        np.full(len(rows), int(AccessSource.APPOINTMENT), dtype=np.int8),
        np.array(statuses, dtype=np.int8),
        np.array(days, dtype=np.int64).astype(np.int32) - np.int32(_ORDINAL_TO_DAY_NUMBER),
        list(location_ids),
        np.array(location_codes, dtype=np.int32),
    )
