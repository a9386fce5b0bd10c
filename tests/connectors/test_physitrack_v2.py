"""Physitrack API v2 client pulls against `responses` fixtures."""

from __future__ import annotations

import pytest
import responses

from connectors.errors import ConnectorError
from connectors.physitrack_v2 import base_url_for, pull_clients

BASE = "https://uk.physitrack.com/api/v2"


def _client(client_id: int, external_id: str | None, first: str = "Pat", last: str = "Doe") -> dict:
    return {
        "id": client_id,
        "external_id": external_id,
        "first_name": first,
        "last_name": last,
        "year_of_birth": 1980,
        "gender": "f",
        "email": None,
        "mobile_phone": None,
    }


@responses.activate
def test_clients_are_read_page_by_page_until_an_empty_page():
    responses.get(f"{BASE}/clients?page=1", json={"clients": [_client(1, "555"), _client(2, "556")]})
    responses.get(f"{BASE}/clients?page=2", json={"clients": [_client(3, None, "Sam", "Kay")]})
    responses.get(f"{BASE}/clients?page=3", json={"clients": []})
    clients = pull_clients({"ana@clinic.example": "key-ana"}, region="uk", sleep=lambda s: None)
    assert [(c.client_id, c.external_id, c.name) for c in clients] == [
        ("1", "555", "Pat Doe"),
        ("2", "556", "Pat Doe"),
        ("3", None, "Sam Kay"),
    ]
    assert {c.practitioner_email for c in clients} == {"ana@clinic.example"}
    assert all(call.request.headers["X-Api-Key"] == "key-ana" for call in responses.calls)


@responses.activate
def test_a_refused_key_names_the_practitioner_but_never_the_key():
    responses.get(f"{BASE}/clients?page=1", status=401, json={"errors": ["Practitioner was not found"]})
    with pytest.raises(ConnectorError) as raised:
        pull_clients({"ben@clinic.example": "sk-ben-very-secret"}, region="uk")
    message = str(raised.value)
    assert "ben@clinic.example" in message and "refused (401)" in message
    assert "sk-ben-very-secret" not in message
    assert len(responses.calls) == 1


@responses.activate
def test_a_page_that_repeats_the_previous_one_fails_loudly():
    page = {"clients": [_client(1, "555")]}
    responses.get(f"{BASE}/clients?page=1", json=page)
    responses.get(f"{BASE}/clients?page=2", json=page)
    with pytest.raises(ConnectorError, match="page 2 repeats page 1"):
        pull_clients({"ana@clinic.example": "k"}, region="uk")


@responses.activate
def test_a_malformed_payload_is_rejected_with_where():
    responses.get(f"{BASE}/clients?page=1", json={"clients": [{"id": 1, "year_of_birth": "1980"}]})
    with pytest.raises(ConnectorError, match="page 1, item 0: year_of_birth must be a whole number"):
        pull_clients({"ana@clinic.example": "k"}, region="uk")


def test_regions_map_to_their_hosts_and_unknown_ones_are_refused():
    assert base_url_for("au") == "https://au.physitrack.com/api/v2"
    with pytest.raises(ConnectorError, match="unknown region 'eu'"):
        base_url_for("eu")
