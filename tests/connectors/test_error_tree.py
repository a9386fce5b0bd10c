"""The one error tree: connectors raise its kinds, so each entry point can map them in one place."""

from __future__ import annotations

import pytest
import responses

from connectors.errors import (
    ConfigurationError,
    ConnectorError,
    InputFileError,
    InvalidInput,
    PtsyncError,
    Retryable,
)
from connectors.http import ForeignOriginError, HttpError, TransientHttpError
from connectors.physitrack_v2 import pull_clients
from connectors.ptdirect_api import PtDirectApiAdapter

PHYSITRACK = "https://uk.physitrack.com/api/v2"
BRIDGE = "https://bridge.example.test/api"


@responses.activate
def test_a_physitrack_503_is_retryable_so_the_sync_tries_again_instead_of_failing() -> None:
    """Given Physitrack answering 503 without Retry-After, when pulling clients, then the error is retryable."""
    responses.get(f"{PHYSITRACK}/clients?page=1", status=503, json={"error": "maintenance"})
    with pytest.raises(ConnectorError) as raised:
        pull_clients({"ana@clinic.example": "k"}, region="uk", sleep=lambda s: None, retry_budget_seconds=0.0)
    assert isinstance(raised.value, Retryable) and raised.value.retryable
    assert "ana@clinic.example" in str(raised.value)


@responses.activate
def test_a_physitrack_404_stays_a_failure_that_retrying_cannot_fix() -> None:
    """Given Physitrack answering 404, when pulling clients, then the error is not retryable."""
    responses.get(f"{PHYSITRACK}/clients?page=1", status=404, json={"error": "no such path"})
    with pytest.raises(ConnectorError) as raised:
        pull_clients({"ana@clinic.example": "k"}, region="uk", sleep=lambda s: None)
    assert not raised.value.retryable and not isinstance(raised.value, Retryable)


@responses.activate
def test_a_malformed_pt_direct_api_answer_is_labelled_as_the_api_not_the_file_adapter() -> None:
    """Given the PT Direct API returning a user without a status, when read, then the error names the API."""
    responses.get(f"{BRIDGE}/users", json={"users": [{"email": "ana@clinic.example"}]})
    responses.get(f"{BRIDGE}/master-account", json={"master_account": None})
    responses.get(f"{BRIDGE}/practitioner-sharing", json={"members": []})
    with pytest.raises(InputFileError) as raised:
        PtDirectApiAdapter(BRIDGE, "key").read()
    message = str(raised.value)
    assert message.startswith("ptdirect api: ") and "ptdirect file" not in message
    assert "users[0].status" in message


def test_every_connector_error_kind_is_a_kind_of_the_one_tree() -> None:
    """Given the connector errors, when classified, then each is a PtsyncError of the kind the shell maps."""
    assert issubclass(ConnectorError, PtsyncError)
    assert issubclass(TransientHttpError, Retryable) and not issubclass(HttpError, Retryable)
    assert issubclass(InputFileError, InvalidInput)
    assert issubclass(ForeignOriginError, ConfigurationError)
