"""The Cliniko connector against `responses` fixtures: paging, limits, errors, ids, windows, cursors."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime

import pytest
import responses
from responses import matchers

from connectors.cliniko import ClinikoConnector, base_url_for_key, id_from_link
from connectors.errors import ConnectorError
from connectors.http import HttpError
from connectors.ratelimit import InProcessRateLimiter
from sharing import AccessStatus

KEY = "MS0xLWl4SzYYYYsecret-au2"
BASE = "https://api.au2.cliniko.com/v1"
WINDOW = date(2025, 6, 1)
STARTED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PRACTITIONER_ID = "1234567890123456789"


def _link(resource: str, identifier: str) -> dict:
    return {"links": {"self": f"{BASE}/{resource}/{identifier}"}}


def _appointment(identifier: str, patient: str, *, practitioner: str = PRACTITIONER_ID, **extra) -> dict:
    return {
        "id": identifier,
        "starts_at": "2026-11-01T09:00:00Z",
        "practitioner": _link("practitioners", practitioner),
        "patient": _link("patients", patient),
        "cancelled_at": None,
        "archived_at": None,
        "updated_at": "2026-11-01T08:00:00Z",
        **extra,
    }


def _register_basics(appointments: list[dict] | None = None) -> None:
    responses.get(f"{BASE}/users", json={"users": [{"id": "77", "email": "ana@clinic.example"}], "links": {}})
    responses.get(
        f"{BASE}/practitioners",
        json={
            "practitioners": [
                {
                    "id": PRACTITIONER_ID,
                    "first_name": "Ana",
                    "last_name": "Silva",
                    "active": True,
                    "user": _link("users", "77"),
                },
                {"id": "222", "first_name": "Ben", "last_name": "Ode", "active": True, "user": None},
            ],
            "links": {},
        },
    )
    responses.get(
        f"{BASE}/practitioners/inactive",
        json={
            "practitioners": [{"id": "333", "first_name": "Dan", "last_name": "Roe", "active": False}],
            "links": {},
        },
    )
    responses.get(
        f"{BASE}/individual_appointments", json={"individual_appointments": appointments or [], "links": {}}
    )
    responses.get(f"{BASE}/group_appointments", json={"group_appointments": [], "links": {}})
    responses.get(f"{BASE}/attendees", json={"attendees": [], "links": {}})


def _connector(**kwargs) -> ClinikoConnector:
    return ClinikoConnector(KEY, user_agent="ptsync (ops@clinic.example)", sleep=lambda s: None, **kwargs)


def test_the_base_url_comes_from_the_keys_shard():
    assert base_url_for_key("abc-au2") == "https://api.au2.cliniko.com/v1"
    assert base_url_for_key("abc-uk1") == "https://api.uk1.cliniko.com/v1"
    assert base_url_for_key("abc") == "https://api.au1.cliniko.com/v1"
    with pytest.raises(ConnectorError, match="unknown shard '-zz9'"):
        base_url_for_key("abc-zz9")


def test_ids_are_parsed_from_self_links_and_kept_as_strings():
    assert id_from_link(_link("patients", "0012345678901234567"), "x") == "0012345678901234567"
    with pytest.raises(ConnectorError, match=r"expected a reference with links\.self"):
        id_from_link({"id": 5}, "appointment.patient")


@responses.activate
def test_a_full_pull_sends_auth_headers_links_users_and_reads_every_page():
    _register_basics()
    responses.replace(
        responses.GET,
        f"{BASE}/individual_appointments",
        json={
            "individual_appointments": [_appointment("1", "p1")],
            "links": {"next": f"{BASE}/individual_appointments?page=2"},
        },
    )
    responses.get(
        f"{BASE}/individual_appointments?page=2",
        json={"individual_appointments": [_appointment("2", "p2", practitioner="222")], "links": {}},
    )
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    first = responses.calls[0].request
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert first.headers["User-Agent"] == "ptsync (ops@clinic.example)"
    assert first.headers["Accept"] == "application/json"
    practitioners = {p.id: (p.name, p.email, p.active) for p in pulled.snapshot.practitioners}
    assert practitioners == {
        PRACTITIONER_ID: ("Ana Silva", "ana@clinic.example", True),
        "222": ("Ben Ode", None, True),
        "333": ("Dan Roe", None, False),
    }
    rows = sorted((r.practitioner_id, r.patient_id) for r in pulled.snapshot.access)
    assert rows == [(PRACTITIONER_ID, "p1"), ("222", "p2")]
    appointment_calls = [c.request.url for c in responses.calls if "individual_appointments" in c.request.url]
    assert "per_page=100" in appointment_calls[0]
    assert "q%5B%5D=archived_at%3A%2A" in appointment_calls[0]
    assert "starts_at%3A%3E%3D2025-06-01T00%3A00%3A00Z" in appointment_calls[0]


@responses.activate
def test_cancelled_archived_and_deleted_appointments_are_read_with_their_status():
    _register_basics(
        [
            _appointment("1", "p1", cancelled_at="2026-10-31T09:00:00Z"),
            _appointment("2", "p2", archived_at="2026-11-02T09:00:00Z"),
            _appointment("3", "p3", deleted_at="2026-11-02T09:00:00Z"),
            _appointment("4", "p4"),
        ]
    )
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    statuses = {r.patient_id: r.status for r in pulled.snapshot.access}
    assert statuses == {
        "p1": AccessStatus.CANCELLED,
        "p2": AccessStatus.ARCHIVED,
        "p3": AccessStatus.DELETED,
        "p4": AccessStatus.ACTIVE,
    }


@responses.activate
def test_a_repeated_page_url_fails_loudly():
    _register_basics()
    responses.replace(
        responses.GET,
        f"{BASE}/individual_appointments",
        json={
            "individual_appointments": [_appointment("1", "p1")],
            "links": {"next": f"{BASE}/individual_appointments?page=2"},
        },
    )
    responses.get(
        f"{BASE}/individual_appointments?page=2",
        json={"individual_appointments": [], "links": {"next": f"{BASE}/individual_appointments?page=2"}},
    )
    with pytest.raises(ConnectorError, match="repeated a page"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_a_listing_with_fewer_items_than_its_total_entries_fails_the_pull():
    """Given the active practitioners' listing answers 200 with 'total_entries: 3' but two
    practitioners and no next link (a truncated answer) / When the clinic is pulled / Then the
    pull fails naming the listing: a complete read without the third would make them look gone
    from the PMS (a transfer and a removal)."""
    _register_basics()
    cut = {
        "practitioners": [
            {"id": PRACTITIONER_ID, "first_name": "Ana", "last_name": "Silva", "active": True, "user": None},
            {"id": "222", "first_name": "Ben", "last_name": "Ode", "active": True, "user": None},
        ],
        "total_entries": 3,
        "links": {},
    }
    responses.replace(responses.GET, f"{BASE}/practitioners", json=cut)
    with pytest.raises(ConnectorError, match="GET /practitioners: read 2 of the 3 entries"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_a_429_blocks_the_key_until_the_reset_and_then_succeeds(monkeypatch):
    _register_basics()
    reset = 1_900_000_000
    responses.replace(responses.GET, f"{BASE}/users", status=429, headers={"X-RateLimit-Reset": str(reset)})
    responses.add(responses.GET, f"{BASE}/users", json={"users": [], "links": {}})
    blocked: list[float] = []

    class Recorder(InProcessRateLimiter):
        def block_until(self, epoch_seconds: float) -> None:
            blocked.append(epoch_seconds)

    # Wait it out inside the pull (sleep is a no-op here) instead of handing back to the job.
    monkeypatch.setattr("connectors.http.SHORT_WAIT_LIMIT", 10**12)
    _connector(limiter=Recorder(6000)).pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert len(blocked) == 1 and abs(blocked[0] - reset) < 1


@responses.activate
def test_a_server_error_then_success_is_retried():
    _register_basics()
    responses.replace(responses.GET, f"{BASE}/users", status=502)
    responses.add(responses.GET, f"{BASE}/users", json={"users": [], "links": {}})
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert len(pulled.snapshot.practitioners) == 3


@pytest.mark.parametrize("status", [401, 404])
@responses.activate
def test_401_and_404_are_fatal_at_once_and_never_show_the_key(status):
    responses.get(f"{BASE}/users", status=status, json={"errors": ["nope"]})
    with pytest.raises(HttpError) as raised:
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert len(responses.calls) == 1
    assert f"cliniko: GET /v1/users -> {status}" in str(raised.value)
    assert "secret" not in str(raised.value)


@responses.activate
def test_malformed_json_and_missing_fields_fail_with_a_precise_reason():
    _register_basics([{"id": "1", "starts_at": "2026-11-01T09:00:00Z", "patient": _link("patients", "p1")}])
    with pytest.raises(
        ConnectorError, match=r"GET /individual_appointments item 0.practitioner: expected a reference"
    ):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    responses.replace(responses.GET, f"{BASE}/individual_appointments", body="{not json")
    with pytest.raises(HttpError, match="not valid JSON"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_an_incremental_pull_asks_only_for_changes_and_merges_them_into_the_state():
    # Given a first, full pull
    _register_basics([_appointment("1", "p1"), _appointment("2", "p2", practitioner="222")])
    first = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert first.cursors == dict.fromkeys(
        ("individual_appointments", "group_appointments", "attendees"), "2026-11-25T09:59:00Z"
    )  # never past the run's start
    # When a later pull finds appointment 2 cancelled
    responses.reset()
    _register_basics()
    responses.replace(
        responses.GET,
        f"{BASE}/individual_appointments",
        json={
            "individual_appointments": [
                _appointment("2", "p2", practitioner="222", cancelled_at="2026-11-24T10:00:00Z")
            ],
            "links": {},
        },
        match=[
            matchers.query_param_matcher(
                {
                    "per_page": "100",
                    "q[]": [
                        "archived_at:*",
                        "starts_at:>=2025-06-01T00:00:00Z",
                        "updated_at:>2026-11-25T09:59:00Z",
                    ],
                }
            )
        ],
    )
    second = _connector().pull(
        window_start=WINDOW,
        cursors=first.cursors,
        state=first.state,
        started_at=datetime(2026, 11, 25, 11, 0, tzinfo=UTC),
    )
    # Then the unchanged appointment comes from the state and the changed one is updated
    statuses = {r.patient_id: r.status for r in second.snapshot.access}
    assert statuses == {"p1": AccessStatus.ACTIVE, "p2": AccessStatus.CANCELLED}
    assert second.cursors["individual_appointments"] == "2026-11-25T10:59:00Z"


@responses.activate
def test_appointments_outside_the_window_are_dropped_from_the_state():
    _register_basics([_appointment("1", "p1", starts_at="2025-01-01T09:00:00Z"), _appointment("2", "p2")])
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert set(pulled.state["individual_appointments"]) == {"2"}


@responses.activate
def test_group_class_attendees_are_access_rows_of_the_class_practitioner():
    _register_basics()
    responses.replace(
        responses.GET,
        f"{BASE}/group_appointments",
        json={
            "group_appointments": [
                {
                    "id": "g1",
                    "starts_at": "2026-11-10T18:00:00Z",
                    "practitioner": _link("practitioners", "222"),
                    "archived_at": None,
                }
            ],
            "links": {},
        },
    )
    responses.replace(
        responses.GET,
        f"{BASE}/attendees",
        json={
            "attendees": [
                {
                    "id": "a1",
                    "booking": _link("group_appointments", "g1"),
                    "patient": _link("patients", "p9"),
                },
                {
                    "id": "a2",
                    "booking": _link("group_appointments", "g1"),
                    "patient": _link("patients", "p8"),
                    "cancelled_at": "2026-11-09T10:00:00Z",
                },
            ],
            "links": {},
        },
    )
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    rows = {(r.practitioner_id, r.patient_id, r.status) for r in pulled.snapshot.access}
    assert rows == {("222", "p9", AccessStatus.ACTIVE), ("222", "p8", AccessStatus.CANCELLED)}


def test_the_emulator_answers_each_user_of_the_account_with_their_own_key_and_no_one_else() -> None:
    """Given an emulated account with its owner's key and two other users' keys / When each key,
    and a key of no user, lists the practitioners / Then the users' keys are answered (on any
    shard) and the stranger's is refused with 401."""
    import requests

    from connectors.emulators.cliniko import ClinikoEmulator, generate_account

    data = generate_account(patients=4, practitioners=2, appointments=4, today=date(2026, 11, 25), seed=1)
    with ClinikoEmulator(data, "owner-au1", other_keys=["second-au1", "third-uk2"]) as emulator:

        def status(key: str) -> int:
            return requests.get(
                f"{emulator.base_url}/practitioners",
                auth=(key, ""),
                headers={"User-Agent": "tests (ops@example.com)"},
                timeout=5,
            ).status_code

        assert [status(key) for key in ("owner-au1", "second-au2", "third-uk2")] == [200, 200, 200]
        assert status("stranger-au1") == 401
