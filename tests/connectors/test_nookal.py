"""The Nookal connector: envelopes, paging, states, incremental reads, and a key that never leaks."""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.emulators.nookal import NookalEmulator, failure, generate_clinic
from connectors.errors import ConnectorError
from connectors.nookal import NookalConnector
from sharing import AccessStatus

BASE = "https://api.nookal.test/production/v2"
KEY = "nk-9f8e7d6c5b4a-secret-key"
WINDOW = date(2025, 6, 1)
STARTED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _envelope(key: str, rows: list[dict], page: int = 1, next_page: int | None = None) -> dict:
    return {
        "status": "success",
        "data": {"results": {key: rows}},
        "details": {"currentPage": page, "nextPage": next_page, "currentItems": len(rows), "pageLength": 100},
    }


def _appointment(identifier, practitioner, patient, *, cancelled="0", status="Booked", class_id="0"):
    return {
        "ID": identifier,
        "patientID": patient,
        "practitionerID": practitioner,
        "appointmentDate": "2026-11-01",
        "classID": class_id,
        "cancelled": cancelled,
        "status": status,
        "lastModified": "2026-11-01 09:00:00",
    }


def _register(appointments=(), participants=None) -> None:
    people = [
        {"ID": "1", "FirstName": "Ana", "LastName": "Silva", "Email": "ana@clinic.example"},
        {"ID": "2", "FirstName": "Ben", "LastName": "Ode", "Email": ""},
    ]
    responses.get(
        f"{BASE}/getPractitioners",
        match=[
            responses.matchers.query_param_matcher(
                {"include_inactive_practitioners": "true"}, strict_match=False
            )
        ],
        json=_envelope("practitioners", people),
    )
    responses.get(f"{BASE}/getPractitioners", json=_envelope("practitioners", people[:1]))
    responses.get(f"{BASE}/getAppointments", json=_envelope("appointments", list(appointments)))
    for class_id, rows in (participants or {}).items():
        responses.get(
            f"{BASE}/getClassParticipants",
            match=[responses.matchers.query_param_matcher({"appt_id": class_id}, strict_match=False)],
            json=_envelope("participants", rows),
        )


def _connector(**kwargs) -> NookalConnector:
    return NookalConnector(
        KEY, base_url=BASE, user_agent="ptsync (ops@clinic.example)", sleep=lambda s: None, **kwargs
    )


def _query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


@responses.activate
def test_practitioners_active_and_inactive_and_every_state_of_an_appointment_are_read():
    # Given appointments booked, cancelled (by flag or by status), did-not-arrive, and a class
    # with one cancelled booking
    _register(
        [
            _appointment("11", "1", "101"),
            _appointment("12", "1", "102", cancelled="1", status="Cancelled"),
            _appointment("13", "2", "103", status="Cancelled"),
            _appointment("14", "2", "104", status="DNA"),
            _appointment("15", "1", "0", class_id="7"),
        ],
        participants={"15": [{"patientID": "105", "cancelled": "0"}, {"patientID": "106", "cancelled": "1"}]},
    )
    # When the clinic is pulled
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then both practitioners are there (Ben inactive), cancellations never count and a DNA does
    assert [(p.id, p.name, p.email, p.active) for p in pulled.snapshot.practitioners] == [
        ("1", "Ana Silva", "ana@clinic.example", True),
        ("2", "Ben Ode", None, False),
    ]
    assert {(r.practitioner_id, r.patient_id): r.status for r in pulled.snapshot.access} == {
        ("1", "101"): AccessStatus.ACTIVE,
        ("1", "102"): AccessStatus.CANCELLED,
        ("2", "103"): AccessStatus.CANCELLED,
        ("2", "104"): AccessStatus.ACTIVE,
        ("1", "105"): AccessStatus.ACTIVE,
        ("1", "106"): AccessStatus.CANCELLED,
    }
    appointments = next(c for c in responses.calls if "/getAppointments" in c.request.url)
    assert _query(appointments)["date_from"] == ["2025-06-01"]
    assert _query(appointments)["api_key"] == [KEY]
    assert "last_modified" not in _query(appointments)


@responses.activate
def test_pages_are_followed_by_next_page_until_there_is_none():
    _register()
    responses.replace(
        responses.GET,
        f"{BASE}/getAppointments",
        json=_envelope("appointments", [_appointment("11", "1", "101")], 1, 2),
    )
    responses.add(
        responses.GET,
        f"{BASE}/getAppointments",
        json=_envelope("appointments", [_appointment("12", "1", "102")], 2, None),
    )
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    pages = [_query(c)["page"] for c in responses.calls if "/getAppointments" in c.request.url]
    assert pages == [["1"], ["2"]]
    assert {r.patient_id for r in pulled.snapshot.access} == {"101", "102"}


@responses.activate
def test_a_server_that_repeats_a_page_fails_the_pull():
    _register()
    responses.replace(
        responses.GET,
        f"{BASE}/getAppointments",
        json=_envelope("appointments", [_appointment("11", "1", "101")], 1, 1),
    )
    with pytest.raises(ConnectorError, match="repeated page 1"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_a_429_is_waited_out_for_exactly_its_retry_after():
    _register()
    responses.replace(responses.GET, f"{BASE}/getAppointments", status=429, headers={"Retry-After": "4"})
    responses.add(responses.GET, f"{BASE}/getAppointments", json=_envelope("appointments", []))
    sleeps: list[float] = []
    NookalConnector(KEY, base_url=BASE, user_agent="ptsync", sleep=sleeps.append).pull(
        window_start=WINDOW, cursors={}, started_at=STARTED
    )
    assert sleeps == [4.0]


@responses.activate
def test_an_incremental_pull_asks_for_rows_modified_after_the_cursor_and_merges_them():
    # Given a complete first pull
    _register([_appointment("11", "1", "101"), _appointment("12", "1", "102")])
    first = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # When only appointment 12 changed (cancelled)
    responses.reset()
    _register([_appointment("12", "1", "102", cancelled="1")])
    second = _connector().pull(
        window_start=WINDOW, cursors=first.cursors, state=first.state, started_at=STARTED
    )
    # Then the read asked for changes since the cursor, in Nookal's format, and merged them
    appointments = next(c for c in responses.calls if "/getAppointments" in c.request.url)
    assert _query(appointments)["last_modified"] == ["2026-11-25 09:59:00"]
    assert {r.patient_id: r.status for r in second.snapshot.access} == {
        "101": AccessStatus.ACTIVE,
        "102": AccessStatus.CANCELLED,
    }


@responses.activate
def test_the_key_never_appears_in_errors_or_log_lines(caplog):
    caplog.set_level(logging.DEBUG)
    # Given a failure envelope that echoes the key, a server error, a malformed answer and a
    # refused connection
    responses.get(
        f"{BASE}/getPractitioners",
        json=failure("L000_2", f"Invalid API key {KEY}", f"bad key: api_key={KEY}"),
    )
    messages = []
    for setup in (
        lambda: None,
        lambda: responses.replace(responses.GET, f"{BASE}/getPractitioners", status=500, body="oops"),
        lambda: responses.replace(responses.GET, f"{BASE}/getPractitioners", json={"unexpected": KEY}),
        lambda: responses.replace(
            responses.GET,
            f"{BASE}/getPractitioners",
            status=404,
            json={"message": f"no route for GET /getPractitioners?api_key={KEY}&page=1"},
        ),
    ):
        setup()
        with pytest.raises(ConnectorError) as failed:
            _connector(retry_budget_seconds=0.01).pull(window_start=WINDOW, cursors={}, started_at=STARTED)
        messages.append(str(failed.value))
    with pytest.raises(ConnectorError) as refused:
        NookalConnector(
            KEY,
            base_url="http://127.0.0.1:9",
            user_agent="ptsync",
            sleep=lambda s: None,
            retry_budget_seconds=0.01,
        ).pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    messages.append(str(refused.value))
    # Then each error names the connector and the path, and the key is nowhere
    assert (
        messages[0]
        == "nookal: GET /getPractitioners failed: L000_2 Invalid API key [redacted] bad key: api_key=[redacted]"
    )
    assert all(m.startswith("nookal: GET /") for m in messages)
    assert not any(KEY in m for m in messages)
    assert not any(KEY in record.getMessage() for record in caplog.records)


def test_request_lines_logged_by_urllib3_show_no_key_even_when_requests_fail(caplog):
    # Given debug logging (urllib3's own level too: ptsync's logging setup, run by other tests in
    # this process, quiets it), and an emulated Nookal that fails twice and then answers
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    clinic = generate_clinic(patients=5, practitioners=2, appointments=5, today=date.today())
    with NookalEmulator(clinic, KEY) as nookal:
        nookal.fail_next("/production/v2/getAppointments", 500, times=2)
        # When the clinic is pulled (the blips are retried)
        NookalConnector(KEY, base_url=nookal.base_url, user_agent="ptsync", sleep=lambda s: None).pull(
            window_start=WINDOW, cursors={}, started_at=datetime.now(UTC)
        )
    # Then urllib3 logged its request lines, with the key redacted
    lines = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert any("getAppointments" in line and "api_key=[redacted]" in line for line in lines)
    assert not any(KEY in record.getMessage() for record in caplog.records)


def test_the_emulated_clinic_is_read_completely_then_incrementally():
    # Given an emulated Nookal clinic with classes
    today = datetime.now(UTC).date()
    clinic = generate_clinic(patients=150, practitioners=13, appointments=900, classes=3, today=today)
    with NookalEmulator(clinic, KEY) as nookal:
        connector = NookalConnector(KEY, base_url=nookal.base_url, user_agent="ptsync (ops@clinic.example)")
        window = today - timedelta(days=540)
        # When it is read, 50 appointments are cancelled, and it is read again
        first = connector.pull(window_start=window, cursors={}, started_at=datetime.now(UTC))
        full = len(nookal.log)
        changed = set(nookal.update_appointments(50, datetime.now(UTC) + timedelta(minutes=5)))
        second = connector.pull(
            window_start=window, cursors=first.cursors, state=first.state, started_at=datetime.now(UTC)
        )
        incremental = nookal.log[full:]
    # Then: 13 practitioners (one inactive), every page and class read once, a handful of
    # requests the second time, and the changed appointments now cancelled
    assert [p.active for p in first.snapshot.practitioners].count(False) == 1
    assert full == 2 + math.ceil(903 / 100) + 3  # practitioners twice, appointment pages, 3 classes
    assert len(incremental) <= 10
    cancelled_patients = {a["patientID"] for a in clinic["appointments"] if a["ID"] in changed}
    statuses = {r.patient_id: r.status for r in second.snapshot.access if r.patient_id in cancelled_patients}
    assert AccessStatus.CANCELLED in statuses.values()
    assert len({r.patient_id for r in first.snapshot.access}) > 100
