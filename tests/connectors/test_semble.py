"""The Semble connector against `responses` fixtures: paging, the errors envelope, deleted
bookings, incremental reads and the token never leaving the header."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import responses

from connectors.errors import ConnectorError, TransientConnectorError
from connectors.semble import DEFAULT_URL, PAGE_SIZE, SembleConnector
from sharing import AccessStatus

TOKEN = "semble-api-token-0123456789abcdef"
WINDOW = date(2025, 6, 1)
STARTED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DOCTOR = "62e2b7cf0000000000000001"


def _connector() -> SembleConnector:
    return SembleConnector(TOKEN, user_agent="ptsync-test (ops@example.invalid)", sleep=lambda _s: None)


def _user(identifier: str = DOCTOR, **extra) -> dict:
    return {
        "id": identifier,
        "firstName": "Ana",
        "lastName": "Silva",
        "email": "ana@clinic.example",
        "deleted": False,
        **extra,
    }


def _booking(identifier: str, patient: str, **extra) -> dict:
    return {
        "id": identifier,
        "deleted": False,
        "start": "2026-11-01T09:00:00.000Z",
        "updatedAt": "2026-11-01T08:00:00.000Z",
        "patientId": patient,
        "doctor": {"id": DOCTOR},
        **extra,
    }


def _page(field: str, rows: list[dict], page: int, has_more: bool) -> dict:
    return {
        "data": {
            field: {"data": rows, "pageInfo": {"page": page, "pageSize": PAGE_SIZE, "hasMore": has_more}}
        }
    }


def _serve(pages: dict[str, list[dict]]) -> list[dict]:
    """Answer users and bookings queries from `pages` (one answer per request); return the bodies."""
    bodies: list[dict] = []
    queues = {field: list(answers) for field, answers in pages.items()}

    def callback(request):
        body = json.loads(request.body)
        bodies.append(body)
        field = "users" if "users(" in body["query"] else "bookings"
        return 200, {}, json.dumps(queues[field].pop(0))

    responses.add_callback(responses.POST, DEFAULT_URL, callback=callback)
    return bodies


@responses.activate
def test_every_page_is_read_until_has_more_is_false_and_deleted_bookings_are_passed_as_deleted():
    # Given two pages of bookings, one of them deleted (Semble cancels by deleting)
    bodies = _serve(
        {
            "users": [_page("users", [_user(), _user("62e2b7cf0000000000000002", deleted=True)], 1, False)],
            "bookings": [
                _page("bookings", [_booking("b1", "p1"), _booking("b2", "p2", deleted=True)], 1, True),
                _page(
                    "bookings",
                    [_booking("b3", "p3", bookingJourney={"dna": "2026-11-01T09:00:00Z"})],
                    2,
                    False,
                ),
            ],
        }
    )
    # When the connector pulls
    pull = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then it asked page 1 and 2 with the token's header, clinicians only, deleted rows included
    pages = [b["variables"]["pagination"] for b in bodies if "bookings(" in b["query"]]
    assert pages == [{"page": 1, "pageSize": PAGE_SIZE}, {"page": 2, "pageSize": PAGE_SIZE}]
    users_query = next(b for b in bodies if "users(" in b["query"])
    assert users_query["variables"]["filters"] == {"isClinician": True}
    assert all(call.request.headers["x-token"] == TOKEN for call in responses.calls)
    assert all(b["variables"]["options"]["includeDeleted"] is True for b in bodies)
    statuses = {row.patient_id: row.status for row in pull.snapshot.access}
    assert statuses == {"p1": AccessStatus.ACTIVE, "p2": AccessStatus.DELETED, "p3": AccessStatus.ACTIVE}
    # And a deleted clinician is an inactive practitioner
    assert [(p.id, p.active) for p in pull.snapshot.practitioners] == [
        (DOCTOR, True),
        ("62e2b7cf0000000000000002", False),
    ]


@responses.activate
def test_a_graphql_error_in_a_200_answer_fails_the_pull_with_its_message_and_never_the_token():
    # Given Semble answers 200 with an errors envelope that even echoes the token
    responses.post(
        DEFAULT_URL,
        json={
            "data": None,
            "errors": [{"message": f"Invalid token {TOKEN}", "extensions": {"code": "UNAUTHENTICATED"}}],
        },
    )
    # When the connector pulls
    with pytest.raises(ConnectorError) as caught:
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then the error names the connector, the path, the code and the message, without the token
    message = str(caught.value)
    assert message.startswith("semble: POST /graphql users: GraphQL error UNAUTHENTICATED: Invalid token")
    assert TOKEN not in message
    assert not caught.value.retryable


@responses.activate
def test_a_refused_token_is_a_401_that_is_not_retried_and_does_not_show_the_token():
    # Given Semble refuses the token with HTTP 401, as it does for a missing token
    responses.post(
        DEFAULT_URL,
        status=401,
        json={"errors": [{"message": "Missing token.", "extensions": {"code": "UNAUTHENTICATED"}}]},
    )
    # When the connector pulls
    with pytest.raises(ConnectorError) as caught:
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Then one request was made and the error says 401 without the token
    assert len(responses.calls) == 1
    assert "POST /graphql -> 401" in str(caught.value) and TOKEN not in str(caught.value)
    assert str(caught.value).endswith("(check the API token: Semble Settings, API access)")
    assert not caught.value.retryable


@responses.activate
def test_a_server_error_code_is_retryable():
    responses.post(
        DEFAULT_URL, json={"errors": [{"message": "boom", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    )
    with pytest.raises(TransientConnectorError):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_an_empty_page_that_claims_more_stops_the_pull_instead_of_looping():
    # Given a bookings page with no rows that says hasMore
    _serve({"users": [_page("users", [_user()], 1, False)], "bookings": [_page("bookings", [], 1, True)]})
    # When the connector pulls, Then it fails loudly
    with pytest.raises(ConnectorError, match="empty page with hasMore true"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_a_malformed_booking_names_the_item_and_field():
    _serve(
        {
            "users": [_page("users", [_user()], 1, False)],
            "bookings": [_page("bookings", [_booking("b1", "p1", start="soon")], 1, False)],
        }
    )
    with pytest.raises(ConnectorError, match=r"bookings item 0.start: expected an ISO date or timestamp"):
        _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)


@responses.activate
def test_a_second_run_asks_only_for_bookings_updated_since_the_cursor_and_merges_them():
    # Given a complete first run
    _serve(
        {
            "users": [_page("users", [_user()], 1, False)] * 2,
            "bookings": [
                _page("bookings", [_booking("b1", "p1"), _booking("b2", "p2")], 1, False),
                _page("bookings", [_booking("b2", "p2", deleted=True)], 1, False),
            ],
        }
    )
    first = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # When the next run starts an hour later
    second = _connector().pull(
        window_start=WINDOW, cursors=first.cursors, state=first.state, started_at=STARTED + timedelta(hours=1)
    )
    # Then it asked with options.updatedAt from the cursor, and merged the deletion into the first run's rows
    last = json.loads(responses.calls[-1].request.body)
    assert last["variables"]["options"]["updatedAt"]["start"] == "2026-11-25T09:59:00.000Z"
    statuses = {row.patient_id: row.status for row in second.snapshot.access}
    assert statuses == {"p1": AccessStatus.ACTIVE, "p2": AccessStatus.DELETED}


@responses.activate
def test_a_run_a_day_after_the_last_full_read_reads_the_whole_window_again():
    # Given a complete first run a day ago
    _serve(
        {
            "users": [_page("users", [_user()], 1, False)] * 2,
            "bookings": [_page("bookings", [_booking("b1", "p1")], 1, False)] * 2,
        }
    )
    first = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # When the next run starts 25 hours later
    _connector().pull(
        window_start=WINDOW,
        cursors=first.cursors,
        state=first.state,
        started_at=STARTED + timedelta(hours=25),
    )
    # Then it asked without a modification-time filter (a deletion might not move updatedAt)
    last = json.loads(responses.calls[-1].request.body)
    assert "updatedAt" not in last["variables"]["options"]
