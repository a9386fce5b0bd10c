"""The FHIR R4 connector against `responses` fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import responses

from connectors.errors import ConnectorError
from connectors.fhir import FhirConnector, reference_id
from connectors.http import HttpError
from sharing import AccessSource, AccessStatus

BASE = "https://fhir.example.test/r4"
WINDOW = date(2025, 6, 1)
STARTED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _bundle(resource_type: str, resources: list[dict], next_url: str | None = None) -> dict:
    links = [{"relation": "self", "url": f"{BASE}/{resource_type}"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": {"resourceType": resource_type, **r}} for r in resources],
    }


def _register(appointments=(), encounters=(), care_teams=(), patients=(), roles=()) -> None:
    responses.get(
        f"{BASE}/Practitioner",
        json=_bundle(
            "Practitioner",
            [
                {
                    "id": "pr1",
                    "active": True,
                    "name": [{"given": ["Ana"], "family": "Silva"}],
                    "telecom": [
                        {"system": "phone", "value": "1"},
                        {"system": "email", "value": "ana@clinic.example"},
                    ],
                },
                {"id": "pr2", "active": False, "name": [{"text": "Ben Ode"}]},
            ],
        ),
    )
    responses.get(f"{BASE}/PractitionerRole", json=_bundle("PractitionerRole", list(roles)))
    responses.get(f"{BASE}/Appointment", json=_bundle("Appointment", list(appointments)))
    responses.get(f"{BASE}/Encounter", json=_bundle("Encounter", list(encounters)))
    responses.get(f"{BASE}/CareTeam", json=_bundle("CareTeam", list(care_teams)))
    responses.get(f"{BASE}/Patient", json=_bundle("Patient", list(patients)))


def _connector(**kwargs) -> FhirConnector:
    return FhirConnector(BASE, user_agent="ptsync (ops@clinic.example)", sleep=lambda s: None, **kwargs)


def _appointment(
    identifier, practitioner, patient, status="booked", start="2026-11-01T09:00:00Z", booked="Practitioner"
):
    """An appointment of `patient` with `practitioner`: a Practitioner id, or with
    `booked="PractitionerRole"` a role id."""
    return {
        "id": identifier,
        "status": status,
        "start": start,
        "participant": [
            {"actor": {"reference": f"{booked}/{practitioner}"}},
            {"actor": {"reference": f"Patient/{patient}"}},
        ],
    }


def test_references_are_parsed_from_relative_absolute_and_versioned_forms():
    assert reference_id({"reference": "Practitioner/123"}, "Practitioner") == "123"
    assert reference_id({"reference": f"{BASE}/Patient/9/_history/2"}, "Patient") == "9"
    assert reference_id({"reference": "PractitionerRole/5"}, "Practitioner") is None


@responses.activate
def test_practitioners_and_every_access_source_are_read():
    _register(
        appointments=[_appointment("a1", "pr1", "pt1")],
        encounters=[
            {
                "id": "e1",
                "status": "finished",
                "subject": {"reference": "Patient/pt2"},
                "period": {"start": "2026-10-01T09:00:00Z"},
                "participant": [{"individual": {"reference": "Practitioner/pr2"}}],
            }
        ],
        care_teams=[
            {
                "id": "c1",
                "status": "active",
                "subject": {"reference": "Patient/pt3"},
                "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
                "participant": [{"member": {"reference": "Practitioner/pr1"}}],
            }
        ],
        patients=[
            {
                "id": "pt4",
                "meta": {"lastUpdated": "2026-11-01T00:00:00Z"},
                "generalPractitioner": [{"reference": "Practitioner/pr2"}],
            }
        ],
    )
    pulled = _connector(token="tok").pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert responses.calls[0].request.headers["Authorization"] == "Bearer tok"
    assert {(p.id, p.name, p.email, p.active) for p in pulled.snapshot.practitioners} == {
        ("pr1", "Ana Silva", "ana@clinic.example", True),
        ("pr2", "Ben Ode", None, False),
    }
    rows = {(r.practitioner_id, r.patient_id, r.source) for r in pulled.snapshot.access}
    assert rows == {
        ("pr1", "pt1", AccessSource.APPOINTMENT),
        ("pr2", "pt2", AccessSource.APPOINTMENT),
        ("pr1", "pt3", AccessSource.CARE_TEAM),
        ("pr2", "pt4", AccessSource.ASSIGNMENT),
    }
    assert "date=ge2025-06-01" in next(
        c.request.url for c in responses.calls if "/Appointment" in c.request.url
    )


@responses.activate
def test_cancelled_and_entered_in_error_appointments_are_kept_but_do_not_count():
    _register(
        appointments=[
            _appointment("a1", "pr1", "pt1", status="cancelled"),
            _appointment("a2", "pr1", "pt2", status="entered-in-error"),
            _appointment("a3", "pr1", "pt3", status="noshow"),
        ]
    )
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert {r.patient_id: r.status for r in pulled.snapshot.access} == {
        "pt1": AccessStatus.CANCELLED,
        "pt2": AccessStatus.DELETED,
        "pt3": AccessStatus.ACTIVE,
    }


@responses.activate
def test_bundles_are_followed_by_their_next_link():
    _register()
    responses.replace(
        responses.GET,
        f"{BASE}/Appointment",
        json=_bundle("Appointment", [_appointment("a1", "pr1", "pt1")], f"{BASE}/Appointment?page=2"),
    )
    responses.get(
        f"{BASE}/Appointment?page=2", json=_bundle("Appointment", [_appointment("a2", "pr1", "pt2")])
    )
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert {r.patient_id for r in pulled.snapshot.access} == {"pt1", "pt2"}


@responses.activate
def test_a_503_with_retry_after_is_waited_out():
    _register()
    responses.replace(responses.GET, f"{BASE}/Practitioner", status=503, headers={"Retry-After": "1"})
    responses.add(responses.GET, f"{BASE}/Practitioner", json=_bundle("Practitioner", []))
    _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert len([c for c in responses.calls if "/Practitioner?" in c.request.url]) == 2


@responses.activate
def test_a_response_that_is_not_a_bundle_fails_the_pull():
    _register()
    responses.replace(responses.GET, f"{BASE}/Encounter", json={"resourceType": "OperationOutcome"})
    with pytest.raises(ConnectorError, match="GET /Encounter: expected a Bundle"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_a_bad_token_is_fatal_and_not_retried():
    responses.get(f"{BASE}/Practitioner", status=401, json={"resourceType": "OperationOutcome"})
    with pytest.raises(HttpError):
        _connector(token="bad").pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert len(responses.calls) == 1


@responses.activate
def test_an_incremental_pull_asks_for_last_updated_after_the_cursor_and_merges():
    _register(appointments=[_appointment("a1", "pr1", "pt1"), _appointment("a2", "pr1", "pt2")])
    first = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    responses.reset()
    _register(appointments=[_appointment("a2", "pr1", "pt2", status="cancelled")])
    second = _connector().pull(
        window_start=WINDOW, cursors=first.cursors, state=first.state, started_at=STARTED
    )
    assert all("_lastUpdated=gt2026-11-25T09%3A59%3A00Z" in c.request.url for c in responses.calls)
    assert {r.patient_id: r.status for r in second.snapshot.access} == {
        "pt1": AccessStatus.ACTIVE,
        "pt2": AccessStatus.CANCELLED,
    }


@responses.activate
def test_a_participant_that_references_a_practitioner_role_counts_for_that_roles_practitioner():
    # Given an appointment booked with a role of pr2, an encounter with a role of pr1, and a role
    # that names no practitioner
    _register(
        roles=[
            {"id": "role-2", "practitioner": {"reference": "Practitioner/pr2"}},
            {"id": "role-1", "practitioner": {"reference": f"{BASE}/Practitioner/pr1"}},
            {"id": "role-x"},
        ],
        appointments=[
            _appointment("a1", "role-2", "pt1", booked="PractitionerRole"),
            _appointment("a2", "role-x", "pt9", start="2026-11-01T10:00:00Z", booked="PractitionerRole"),
        ],
        encounters=[
            {
                "id": "e1",
                "status": "finished",
                "subject": {"reference": "Patient/pt2"},
                "period": {"start": "2026-10-01T09:00:00Z"},
                "participant": [{"individual": {"reference": "PractitionerRole/role-1"}}],
            }
        ],
    )
    # When the server is read
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then each row belongs to the role's practitioner, and a role without one gives no row
    assert {(r.practitioner_id, r.patient_id) for r in pulled.snapshot.access} == {
        ("pr2", "pt1"),
        ("pr1", "pt2"),
    }


@responses.activate
def test_a_role_that_moves_to_another_practitioner_is_followed_by_an_incremental_run():
    # Given a first run where role-1 belongs to pr1
    _register(
        roles=[{"id": "role-1", "practitioner": {"reference": "Practitioner/pr1"}}],
        appointments=[_appointment("a1", "role-1", "pt1", booked="PractitionerRole")],
    )
    first = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # When only the role changes (now pr2's)
    responses.reset()
    _register(roles=[{"id": "role-1", "practitioner": {"reference": "Practitioner/pr2"}}])
    second = _connector().pull(
        window_start=WINDOW, cursors=first.cursors, state=first.state, started_at=STARTED
    )
    # Then the stored appointment now counts for pr2
    assert {(r.practitioner_id, r.patient_id) for r in second.snapshot.access} == {("pr2", "pt1")}


@responses.activate
def test_a_server_without_practitioner_roles_is_read_as_having_none():
    # Given a server that answers 404 to a PractitionerRole search
    _register(appointments=[_appointment("a1", "pr1", "pt1")])
    responses.replace(
        responses.GET, f"{BASE}/PractitionerRole", status=404, json={"resourceType": "OperationOutcome"}
    )
    # When it is read, Then the pull completes with the practitioner-referenced rows
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert {(r.practitioner_id, r.patient_id) for r in pulled.snapshot.access} == {("pr1", "pt1")}


@responses.activate
def test_a_404_on_roles_while_appointments_book_roles_makes_the_read_incomplete_not_roleless():
    """Given a server whose appointments book PractitionerRoles, and whose role search answers
    404 once (a passing fault, not a server without roles) / When it is read / Then the read is
    incomplete (no removals, nothing stored): read as "no roles", every booking of a role would
    lose its practitioner, and with clinic groups every practitioner their sites."""
    booked_role = _appointment("a1", "role-1", "pt1", booked="PractitionerRole")
    _register(appointments=[booked_role, _appointment("a2", "pr1", "pt2")])
    responses.replace(
        responses.GET, f"{BASE}/PractitionerRole", status=404, json={"resourceType": "OperationOutcome"}
    )
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert pulled.snapshot.complete is False


@responses.activate
def test_a_404_on_a_resource_every_server_has_still_fails_the_pull():
    _register()
    responses.replace(
        responses.GET, f"{BASE}/Appointment", status=404, json={"resourceType": "OperationOutcome"}
    )
    with pytest.raises(HttpError):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
