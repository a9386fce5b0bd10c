"""The web maps the error tree to HTTP statuses in one table."""

from __future__ import annotations

import pytest

from connectors.errors import ConnectorError, InputFileError, TransientConnectorError
from worker.errors import ConfigurationError, Conflict, InvalidInput, NotFound, PtsyncError, Retryable
from worker.web.app import http_status_of


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no organisation acme"), 404),
        (InvalidInput("proposal p1 was rejected"), 409),
        (Conflict("proposal busy", 3.0), 409),
        (ConfigurationError("no PMS key"), 500),
        (Retryable("the database blinked"), 503),
        (ConnectorError("ptdirect api", "GET /users -> 500 upstream said: ..."), 502),
        (TransientConnectorError("cliniko", "timed out"), 503),
        (InputFileError("ptdirect file", "state.json", "expected an object", field="users[0]"), 409),
        (PtsyncError("something else"), 400),
    ],
)
def test_each_kind_of_error_has_one_http_status(error: PtsyncError, status: int) -> None:
    """Given an error of one kind, when the web maps it, then it answers that kind's status."""
    assert http_status_of(error) == status


def test_a_server_side_error_answers_a_generic_line_and_keeps_its_text_for_the_log(runtime, caplog) -> None:
    """Given a route that fails with a configuration error, when called, then 500 without its text."""
    from fastapi.testclient import TestClient

    from worker.web.app import create_app

    app = create_app(lambda: runtime, lambda run_id: None, background=False)

    @app.get("/boom")
    def boom() -> None:
        raise ConfigurationError("a stored secret cannot be decrypted with PTSYNC_SECRET_KEY")

    with TestClient(app) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    assert "PTSYNC_SECRET_KEY" not in answer.text and "operator" in answer.json()["detail"]
    assert "PTSYNC_SECRET_KEY" in caplog.text
