"""The Nookal connector, adversarially: listings cut short must never read as a complete clinic.

An active listing that loses a row makes a working practitioner look inactive (a departure, so
a transfer and a removal); an appointment listing that skips a page loses the shared patients
that hold a removal back. Either way the pull must fail (or say it is incomplete).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import responses

from connectors.errors import ConnectorError
from connectors.nookal import NookalConnector

BASE = "https://api.nookal.test/production/v2"
KEY = "nk-adversary-key"
WINDOW = date(2025, 6, 1)
STARTED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ANA = {"ID": "1", "FirstName": "Ana", "LastName": "Silva", "Email": "ana@clinic.example"}
BEN = {"ID": "2", "FirstName": "Ben", "LastName": "Ode", "Email": "ben@clinic.example"}


def _envelope(key: str, rows: list[dict], *, page: int = 1, next_page: int | None = None, total=None) -> dict:
    return {
        "status": "success",
        "data": {"results": {key: rows}},
        "details": {
            "totalItems": len(rows) if total is None else total,
            "currentItems": len(rows),
            "currentPage": page,
            "nextPage": next_page,
            "pageLength": 100,
        },
    }


def _appointment(identifier: str, practitioner: str, patient: str) -> dict:
    return {
        "ID": identifier,
        "patientID": patient,
        "practitionerID": practitioner,
        "appointmentDate": "2026-11-01",
        "classID": "0",
        "cancelled": "0",
        "status": "Booked",
        "lastModified": "2026-11-01 09:00:00",
    }


def _everyone(rows: list[dict]) -> None:
    responses.get(
        f"{BASE}/getPractitioners",
        match=[
            responses.matchers.query_param_matcher(
                {"include_inactive_practitioners": "true"}, strict_match=False
            )
        ],
        json=_envelope("practitioners", rows),
    )


def _pull_or_none():
    connector = NookalConnector(KEY, base_url=BASE, user_agent="ptsync-test", sleep=lambda s: None)
    try:
        return connector.pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    except ConnectorError:
        return None  # failed loudly: no picture, no removal


@responses.activate
def test_an_active_listing_cut_short_never_makes_a_working_practitioner_look_inactive():
    """Given the full practitioner listing has Ana and Ben, and the active listing answers 200 with
    'totalItems: 2' but only Ana and no next page (a truncated answer) / When the clinic is pulled /
    Then the pull fails or says it is incomplete: a complete picture with Ben inactive would propose
    his transfer and removal, though Nookal said two practitioners are active."""
    _everyone([ANA, BEN])
    responses.get(f"{BASE}/getPractitioners", json=_envelope("practitioners", [ANA], total=2))
    responses.get(f"{BASE}/getAppointments", json=_envelope("appointments", []))
    pulled = _pull_or_none()
    if pulled is None:
        return
    ben = next(p for p in pulled.snapshot.practitioners if p.id == "2")
    assert not pulled.snapshot.complete or ben.active


@responses.activate
def test_an_appointment_listing_whose_next_page_skips_a_page_is_never_complete():
    """Given the appointment listing's page 1 says 'nextPage: 3' (page 2, with Ben's shared
    patient, is never asked for) and page 3 ends it, while totalItems counts all three rows /
    When the clinic is pulled / Then the pull fails or says it is incomplete: the rows of the
    skipped page are what shows Ana and Ben share a patient."""
    _everyone([ANA, BEN])
    responses.get(
        f"{BASE}/getPractitioners",
        json=_envelope("practitioners", [ANA, BEN]),
    )
    responses.get(
        f"{BASE}/getAppointments",
        match=[responses.matchers.query_param_matcher({"page": "1"}, strict_match=False)],
        json=_envelope("appointments", [_appointment("11", "1", "101")], page=1, next_page=3, total=3),
    )
    responses.get(
        f"{BASE}/getAppointments",
        match=[responses.matchers.query_param_matcher({"page": "2"}, strict_match=False)],
        json=_envelope("appointments", [_appointment("12", "2", "101")], page=2, next_page=3, total=3),
    )
    responses.get(
        f"{BASE}/getAppointments",
        match=[responses.matchers.query_param_matcher({"page": "3"}, strict_match=False)],
        json=_envelope("appointments", [_appointment("13", "1", "102")], page=3, next_page=None, total=3),
    )
    pulled = _pull_or_none()
    if pulled is None:
        return
    assert not pulled.snapshot.complete or len(pulled.snapshot.access) == 3
