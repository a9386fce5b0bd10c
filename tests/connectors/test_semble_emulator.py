"""The Semble connector against the Semble emulator: real sockets, real GraphQL validation."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.emulators.semble import SembleEmulator, generate_practice
from connectors.errors import ConnectorError
from connectors.semble import PAGE_SIZE, SembleConnector
from sharing import AccessStatus

TOKEN = "emulated-semble-token"
TODAY = date.today()
WINDOW = TODAY - timedelta(days=540)


@pytest.fixture
def practice():
    return generate_practice(patients=200, clinicians=12, bookings=650, today=TODAY)


def _connector(emulator: SembleEmulator, **http) -> SembleConnector:
    return SembleConnector(
        TOKEN, url=emulator.graphql_url, user_agent="ptsync-test (ops@example.invalid)", **http
    )


def test_a_full_pull_uses_one_request_per_page_and_an_incremental_one_only_the_changed_bookings(practice):
    with SembleEmulator(practice, TOKEN, requests_per_window=10_000) as emulator:
        # Given a practice of 650 bookings; When the connector pulls it
        started = datetime.now(UTC)
        first = _connector(emulator).pull(window_start=WINDOW, cursors={}, started_at=started)
        # Then it made the minimum: one users page and one request per started page of bookings
        in_window = sum(1 for b in practice["bookings"] if b["start"] >= f"{WINDOW.isoformat()}T00:00:00")
        assert len(emulator.log) == 1 + math.ceil(in_window / PAGE_SIZE)
        assert {p.id for p in first.snapshot.practitioners} == {
            u["id"] for u in practice["users"] if u["isClinician"]
        }
        # When 5 bookings are cancelled (deleted) and the next run starts
        changed = emulator.change_bookings(5, datetime.now(UTC) + timedelta(seconds=1))
        before = len(emulator.log)
        second = _connector(emulator).pull(
            window_start=WINDOW,
            cursors=first.cursors,
            state=first.state,
            started_at=datetime.now(UTC) + timedelta(seconds=2),
        )
        # Then it sent two requests, and the deleted bookings are excluded on purpose
        assert len(emulator.log) - before == 2
        assert len(changed) == 5
        assert second.state["bookings"].keys() == first.state["bookings"].keys()
        assert {second.state["bookings"][booking][3] for booking in changed} == {int(AccessStatus.DELETED)}


def test_a_query_semble_would_reject_fails_with_the_validation_message(practice):
    with SembleEmulator(practice, TOKEN) as emulator:
        connector = _connector(emulator)
        with pytest.raises(ConnectorError, match="Cannot query field 'nonsense'"):
            connector.query("{ users { nonsense } }", {}, "users")


def test_a_429_stops_the_connector_for_exactly_the_time_semble_asked(practice):
    # Given an emulator that allows 4 requests per second
    with SembleEmulator(practice, TOKEN, requests_per_window=4, window_seconds=1.0) as emulator:
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            import time

            time.sleep(seconds)

        # When the connector (without a limiter) pulls 8 pages
        _connector(emulator, sleep=sleep).pull(window_start=WINDOW, cursors={}, started_at=datetime.now(UTC))
        # Then each 429 was followed by a wait of exactly its Retry-After
        assert emulator.rate_limited >= 1
        assert waits == [float(value) for value in emulator.retry_afters]
