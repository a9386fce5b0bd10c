"""The clinic group every emulator can serve (`--group`): three sites on one PMS account.

Seven practitioners: Ana and Ben at North, Ben also at South (two sites), Cara and Dev at South,
Eli and Fay at East, and Gus, who works at North and East. At every site each patient is seen by
two of the site's practitioners within the last 60 days; the first visit at each site is
cancelled. Each emulator renders these facts in its vendor's shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

SITES = (("1", "North Physio"), ("2", "South Physio"), ("3", "East Physio"))
PEOPLE = (
    ("ana", "Ana", ("1",)),
    ("ben", "Ben", ("1", "2")),
    ("cara", "Cara", ("2",)),
    ("dev", "Dev", ("2",)),
    ("eli", "Eli", ("3",)),
    ("fay", "Fay", ("3",)),
    ("gus", "Gus", ("1", "3")),
)
EMAIL_DOMAIN = "group.example"


@dataclass(frozen=True)
class Visit:
    site: str
    patient: str
    person: int
    """Index into PEOPLE."""
    starts: datetime
    cancelled: bool
    number: int
    """Unique within the group (for appointment ids)."""


def visits(today: date, patients_per_site: int = 6) -> Iterator[Visit]:
    number = 0
    for site, _ in SITES:
        staff = [index for index, (_, _, sites) in enumerate(PEOPLE) if site in sites]
        for patient in range(patients_per_site):
            pair = (staff[patient % len(staff)], staff[(patient + 1) % len(staff)])
            for offset, person in enumerate(pair):
                starts = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) - timedelta(
                    days=5 + patient * 7 + offset
                )
                number += 1
                yield Visit(
                    site, f"5{site}{patient:03d}", person, starts, patient == 0 and offset == 0, number
                )
