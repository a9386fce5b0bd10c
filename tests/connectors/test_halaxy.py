"""The Halaxy connector: OAuth2 tokens, PractitionerRole resolution, attendance states, limits."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import responses

from connectors.emulators.halaxy import STATUS_EXTENSION, HalaxyEmulator, generate_clinic
from connectors.errors import ConnectorError
from connectors.halaxy import HalaxyConnector, TokenSource
from connectors.http import HttpClient, HttpError
from sharing import AccessStatus

BASE = "https://au-api.halaxy.test/main"
TOKEN_URL = f"{BASE}/oauth/token"
WINDOW = date(2025, 6, 1)
STARTED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SECRET = "s3cret-halaxy-client-secret"


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    TokenSource._cache.clear()
    yield
    TokenSource._cache.clear()


def _bundle(resource_type: str, resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": f"{BASE}/{resource_type}"}],
        "entry": [{"resource": {"resourceType": resource_type, **r}} for r in resources],
    }


def _appointment(identifier: str, role: str, patient: str, attendance: str, status: str = "booked") -> dict:
    return {
        "id": identifier,
        "status": status,
        "start": "2026-11-01T09:00:00Z",
        "participant": [
            {"actor": {"reference": f"/main/PractitionerRole/{role}", "type": "PractitionerRole"}},
            {
                "actor": {"reference": f"/main/Patient/{patient}", "type": "Patient"},
                "extension": [{"url": STATUS_EXTENSION, "valueString": attendance}],
            },
        ],
    }


def _register(appointments: list[dict] = ()) -> None:
    responses.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 3600, "access_token": "tok-1"})
    responses.get(
        f"{BASE}/Practitioner",
        json=_bundle(
            "Practitioner",
            [
                {"id": "PR-1", "active": True, "name": [{"given": ["Ana"], "family": "Silva"}]},
                {"id": "PR-2", "active": False, "name": [{"given": ["Ben"], "family": "Ode"}]},
                {"id": "EP-9", "active": True, "name": [{"given": ["Gill"], "family": "Referrer"}]},
            ],
        ),
    )
    responses.get(
        f"{BASE}/PractitionerRole",
        json=_bundle(
            "PractitionerRole",
            [
                {"id": "PR-11", "practitioner": {"reference": "/main/Practitioner/PR-1"}},
                {"id": "PR-21", "practitioner": {"reference": "/main/Practitioner/PR-2"}},
                {"id": "EP-91", "practitioner": {"reference": "/main/Practitioner/EP-9"}},
            ],
        ),
    )
    responses.get(f"{BASE}/Appointment", json=_bundle("Appointment", list(appointments)))


def _connector(sleeps: list[float] | None = None, **kwargs) -> HalaxyConnector:
    return HalaxyConnector(
        BASE,
        client_id="client-1",
        client_secret=SECRET,
        user_agent="ptsync (ops@clinic.example)",
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        **kwargs,
    )


def _token_calls() -> list:
    return [c for c in responses.calls if c.request.url == TOKEN_URL]


@responses.activate
def test_the_token_is_fetched_once_with_client_credentials_and_sent_as_a_bearer():
    # Given a Halaxy account
    _register([_appointment("1", "PR-11", "101", "attended")])
    # When it is pulled twice
    _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then one token served both pulls, asked for as the docs say
    assert len(_token_calls()) == 1
    assert json.loads(_token_calls()[0].request.body) == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": SECRET,
    }
    reads = [c for c in responses.calls if c.request.method == "GET"]
    assert reads and all(c.request.headers["Authorization"] == "Bearer tok-1" for c in reads)


def test_a_token_is_kept_until_a_minute_before_fifteen_minutes_then_replaced():
    # Given a token source on a fake clock, and a server that says tokens last an hour
    now = [1000.0]
    with responses.RequestsMock() as mocked:
        mocked.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 3600, "access_token": "a"})
        mocked.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 3600, "access_token": "b"})
        tokens = TokenSource(HttpClient("halaxy", BASE), TOKEN_URL, "c", SECRET, clock=lambda: now[0])
        # When it is asked before and after 14 minutes
        first = tokens.get()
        now[0] += 14 * 60 - 1
        still = tokens.get()
        now[0] += 2
        renewed = tokens.get()
    # Then the docs' 15 minutes win over expires_in, less a minute's margin
    assert (first, still, renewed) == ("a", "a", "b")


@responses.activate
def test_a_401_fetches_one_new_token_and_retries_once():
    # Given a token the server has stopped accepting
    _register([_appointment("1", "PR-11", "101", "attended")])
    responses.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 900, "access_token": "tok-2"})
    responses.replace(
        responses.GET, f"{BASE}/Practitioner", status=401, json={"resourceType": "OperationOutcome"}
    )
    responses.add(
        responses.GET,
        f"{BASE}/Practitioner",
        json=_bundle("Practitioner", [{"id": "PR-1", "name": [{"text": "Ana"}]}]),
    )
    # When the account is pulled
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then a second token was fetched and the refused request was sent once more with it
    assert len(_token_calls()) == 2
    practitioner_calls = [c for c in responses.calls if "/Practitioner?" in c.request.url]
    assert [c.request.headers["Authorization"] for c in practitioner_calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert [p.id for p in pulled.snapshot.practitioners] == ["PR-1"]


@responses.activate
def test_a_second_401_is_fatal_and_names_the_path_not_the_secret():
    responses.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 900, "access_token": "t"})
    responses.get(f"{BASE}/Practitioner", status=401, json={"resourceType": "OperationOutcome"})
    with pytest.raises(HttpError) as failure:
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert str(failure.value).startswith("halaxy: GET /main/Practitioner -> 401")
    assert len([c for c in responses.calls if "/Practitioner" in c.request.url]) == 2
    assert SECRET not in str(failure.value)


@responses.activate
def test_a_next_link_to_another_origin_never_receives_the_token():
    # Given an appointment page whose next link points at another host
    _register()
    page = _bundle("Appointment", [])
    page["link"].append({"relation": "next", "url": "https://elsewhere.test/main/Appointment?page=2"})
    responses.replace(responses.GET, f"{BASE}/Appointment", json=page)
    # When the account is pulled, Then the pull fails before anything is sent there
    with pytest.raises(ConnectorError, match="to another origin"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert not any("elsewhere.test" in c.request.url for c in responses.calls)


@responses.activate
def test_refused_client_credentials_fail_with_the_token_path_and_never_the_secret():
    responses.post(TOKEN_URL, status=401, json={"error": f"invalid_client (secret {SECRET})"})
    with pytest.raises(HttpError) as failure:
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    assert "halaxy: POST /main/oauth/token -> 401" in str(failure.value)
    assert SECRET not in str(failure.value) and "client-1" not in str(failure.value)


@responses.activate
def test_a_429_is_waited_out_for_exactly_the_retry_after_it_gives():
    # Given a 429 that asks for 7 seconds
    _register()
    responses.replace(
        responses.GET,
        f"{BASE}/PractitionerRole",
        status=429,
        headers={"retry-after": "7", "x-ratelimit-limit": "500", "x-ratelimit-remaining": "0"},
    )
    responses.add(responses.GET, f"{BASE}/PractitionerRole", json=_bundle("PractitionerRole", []))
    sleeps: list[float] = []
    # When the account is pulled
    _connector(sleeps).pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then the connector slept 7 seconds, once, and asked again
    assert sleeps == [7.0]


@responses.activate
def test_attendance_states_map_to_what_counts_and_external_practitioners_are_left_out():
    # Given appointments in every attendance state, booked with roles
    _register(
        [
            _appointment("1", "PR-11", "101", "attended"),
            _appointment("2", "PR-11", "102", "cancelled"),
            _appointment("3", "PR-11", "103", "did not attend", status="cancelled"),
            _appointment("4", "PR-21", "104", "booked", status="entered-in-error"),
            _appointment("5", "PR-21", "105", "rejected"),
            _appointment("6", "EP-91", "106", "attended"),
        ]
    )
    # When the account is pulled
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then roles resolve to practitioners, a no-show counts, cancellations and errors do not,
    # and the external referrer is neither a practitioner nor given access
    assert [(p.id, p.name, p.active) for p in pulled.snapshot.practitioners] == [
        ("PR-1", "Ana Silva", True),
        ("PR-2", "Ben Ode", False),
    ]
    assert {(r.practitioner_id, r.patient_id): r.status for r in pulled.snapshot.access} == {
        ("PR-1", "101"): AccessStatus.ACTIVE,
        ("PR-1", "102"): AccessStatus.CANCELLED,
        ("PR-1", "103"): AccessStatus.ACTIVE,
        ("PR-2", "104"): AccessStatus.DELETED,
        ("PR-2", "105"): AccessStatus.CANCELLED,
    }
    assert pulled.snapshot.system == "halaxy"


@responses.activate
def test_in_a_group_session_each_patients_own_attendance_decides_for_that_patient():
    # Given one session with three patients: one came, one cancelled, one did not attend
    session = _appointment("7", "PR-11", "201", "attended")
    for patient, state in (("202", "cancelled"), ("203", "did not attend")):
        session["participant"].append(
            {
                "actor": {"reference": f"/main/Patient/{patient}", "type": "Patient"},
                "extension": [{"url": STATUS_EXTENSION, "valueString": state}],
            }
        )
    _register([session])
    # When the account is pulled
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then the cancelled booking does not count, and the others do
    assert {r.patient_id: r.status for r in pulled.snapshot.access} == {
        "201": AccessStatus.ACTIVE,
        "202": AccessStatus.CANCELLED,
        "203": AccessStatus.ACTIVE,
    }


def test_the_emulated_account_is_read_completely_then_incrementally_with_a_token_refresh():
    # Given an emulated Halaxy practice group
    today = datetime.now(UTC).date()
    clinic = generate_clinic(patients=120, practitioners=12, appointments=700, today=today)
    with HalaxyEmulator(clinic, client_id="cid", client_secret=SECRET, requests_per_window=10_000) as halaxy:
        connector = HalaxyConnector(
            halaxy.base_url, client_id="cid", client_secret=SECRET, user_agent="ptsync (ops@clinic.example)"
        )
        # When it is read, tokens go stale, 50 appointments change and it is read again
        first = connector.pull(window_start=today - timedelta(days=540), cursors={}, started_at=STARTED)
        full = len(halaxy.log)
        halaxy.expire_tokens()
        changed = halaxy.update_appointments(50, datetime.now(UTC))
        second = connector.pull(
            window_start=today - timedelta(days=540),
            cursors=first.cursors,
            state=first.state,
            started_at=datetime.now(UTC),
        )
        incremental = halaxy.log[full:]
    # Then every PR- practitioner is there, the second read was a handful of requests with one
    # new token, and the changed appointments are now cancelled
    assert len(first.snapshot.practitioners) == 12
    assert full >= 700 // 200
    assert len(incremental) <= 10
    assert sum(1 for r in incremental if r.path == "/main/oauth/token") == 1
    assert all(
        any(v.startswith("gt") for v in r.query.get("_lastUpdated", []))
        for r in incremental
        if r.method == "GET"
    )
    assert halaxy.rate_limited == 0
    patients = {
        a["participant"][1]["actor"]["reference"].rsplit("/", 1)[-1]
        for a in clinic["Appointment"]
        if a["id"] in changed
    }
    assert any(r.status is AccessStatus.CANCELLED for r in second.snapshot.access if r.patient_id in patients)


def test_the_emulators_429_is_waited_out_for_exactly_its_retry_after_and_the_pull_completes():
    # Given an emulated Halaxy that allows 4 requests a second, and no client-side limiter
    today = datetime.now(UTC).date()
    clinic = generate_clinic(patients=30, practitioners=4, appointments=900, today=today)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    with HalaxyEmulator(
        clinic, client_id="cid", client_secret=SECRET, requests_per_window=4, window_seconds=1
    ) as halaxy:
        connector = HalaxyConnector(
            halaxy.base_url, client_id="cid", client_secret=SECRET, user_agent="ptsync", sleep=sleep
        )
        connector.page_size = 100
        # When it is read (12 requests: the token, 2 listings, 9 appointment pages)
        pulled = connector.pull(window_start=today - timedelta(days=540), cursors={}, started_at=STARTED)
        throttled = halaxy.rate_limited
    # Then every 429 was waited out for the whole second it asked, and nothing was lost
    assert throttled >= 1 and sleeps == [1.0] * throttled
    assert len(pulled.snapshot.practitioners) == 4
