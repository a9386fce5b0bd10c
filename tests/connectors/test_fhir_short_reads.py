"""The Halaxy (FHIR) connector, adversarially: a 200 searchset that says it is not the whole
answer must never end a complete read (a practitioner missing from the read looks gone)."""

from __future__ import annotations

import pytest
import responses

from connectors.errors import ConnectorError
from connectors.halaxy import TokenSource
from tests.connectors.test_halaxy import BASE, STARTED, WINDOW, _bundle, _connector, _register


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    TokenSource._cache.clear()
    yield
    TokenSource._cache.clear()


def _pull_or_none():
    try:
        return _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    except ConnectorError:
        return None  # failed loudly: no picture, no removal


@responses.activate
def test_a_practitioner_bundle_with_fewer_entries_than_its_total_and_no_next_link_is_never_complete():
    """Given Halaxy answers the Practitioner search 200 with 'total: 2' but one entry and no next
    link (a truncated page) / When the account is pulled / Then the pull says it is incomplete:
    a complete read without Ben would make his linked PT Direct user 'gone_from_pms'."""
    _register()
    cut = _bundle("Practitioner", [{"id": "PR-1", "active": True, "name": [{"given": ["Ana"]}]}])
    cut["total"] = 2
    responses.replace(responses.GET, f"{BASE}/Practitioner", json=cut)
    pulled = _connector().pull(window_start=WINDOW, cursors={}, started_at=STARTED)
    # Not a failure (a FHIR server may give an estimated total): an incomplete read, which
    # proposes no removal and stores nothing, so the next run reads again
    assert not pulled.snapshot.complete, [p.id for p in pulled.snapshot.practitioners]


@responses.activate
def test_a_searchset_carrying_an_error_operation_outcome_is_never_complete():
    """Given Halaxy answers the Practitioner search 200 with Ana and an OperationOutcome entry
    (search.mode 'outcome', severity 'error': the server says the results are not all there) /
    When the account is pulled / Then the pull fails or says it is incomplete: the connector
    today skips the OperationOutcome as if it were an _include'd resource."""
    _register()
    bundle = _bundle("Practitioner", [{"id": "PR-1", "active": True, "name": [{"given": ["Ana"]}]}])
    bundle["entry"].append(
        {
            "search": {"mode": "outcome"},
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "too-costly", "diagnostics": "results truncated"}],
            },
        }
    )
    responses.replace(responses.GET, f"{BASE}/Practitioner", json=bundle)
    pulled = _pull_or_none()
    if pulled is None:
        return
    assert not pulled.snapshot.complete, [p.id for p in pulled.snapshot.practitioners]
