"""Records a connector keeps between runs: read back by name, kept inside the window."""

from __future__ import annotations

import json
import random
from datetime import date

import numpy as np

from connectors.records import Attendance, GroupBooking, Visit, appointment_log, revive, within_window
from sharing import AccessLogBuilder, AccessSource, AccessStatus


def test_records_stored_as_json_lists_come_back_as_the_same_named_records() -> None:
    """Given records written as the connector state (JSON), when revived, then they are equal by field."""
    kept = {"a1": Visit("p1", "pt9", 739_000, 0, "site-1"), "g1": GroupBooking("p2", 739_001, 2)}
    stored = json.loads(json.dumps(kept))
    assert revive({"a1": stored["a1"]}, Visit)["a1"].location == "site-1"
    assert revive({"g1": stored["g1"]}, GroupBooking)["g1"] == kept["g1"]


def test_a_record_from_before_locations_were_read_revives_with_no_location() -> None:
    """Given a stored visit without its location field, when revived, then its location is None."""
    assert revive({"a1": ["p1", "pt9", 739_000, 0]}, Visit)["a1"].location is None


def test_only_records_on_or_after_the_first_day_stay_in_the_window() -> None:
    """Given visits either side of the window's first day, when filtered, then the older one leaves."""
    visits = {"old": Visit("p", "x", 99, 0), "first": Visit("p", "y", 100, 0), "new": Visit("p", "z", 101, 0)}
    assert sorted(within_window(visits, 100)) == ["first", "new"]


def test_an_attendance_names_its_booking_and_patient() -> None:
    """Given a class attendance, when read by name, then booking, patient and status are there."""
    place = Attendance("g1", "pt3", 1)
    assert (place.booking, place.patient, place.status) == ("g1", "pt3", 1)


def test_the_appointment_log_is_the_log_a_builder_makes_row_by_row() -> None:
    """Given visits with repeated ids, statuses and missing locations, when logged a column at a
    time, then every column and id list equals the row-by-row builder's."""
    rng = random.Random(7)
    visits = [
        Visit(
            f"pr{rng.randrange(5)}",
            f"pt{rng.randrange(40)}",
            date(2026, 1, 1).toordinal() + rng.randrange(-400, 30),
            rng.choice([0, 1, 2]),
            rng.choice([None, "site-a", "site-b"]),
        )
        for _ in range(300)
    ]
    builder = AccessLogBuilder()
    for visit in visits:
        builder.add(
            visit.practitioner,
            visit.patient,
            AccessSource.APPOINTMENT,
            date.fromordinal(visit.day),
            AccessStatus(visit.status),
            visit.location,
        )
    expected, logged = builder.build(), appointment_log(visits)
    for name in ("practitioner_ids", "patient_ids", "location_ids"):
        assert getattr(logged, name) == getattr(expected, name)
    for name in ("practitioner_codes", "patient_codes", "sources", "statuses", "days", "location_codes"):
        assert np.array_equal(getattr(logged, name), getattr(expected, name))
        assert getattr(logged, name).dtype == getattr(expected, name).dtype


def test_no_visits_make_an_empty_log() -> None:
    """Given no visits, when logged, then the log is empty."""
    assert len(appointment_log([])) == 0
