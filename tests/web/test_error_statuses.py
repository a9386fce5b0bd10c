"""The web maps the error tree to HTTP statuses in one table."""

from __future__ import annotations

import pytest

from worker.errors import ConfigurationError, Conflict, InvalidInput, NotFound, PtsyncError, Retryable
from worker.web.app import http_status_of


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no organisation acme"), 404),
        (InvalidInput("proposal p1 was rejected"), 409),
        (Conflict("proposal busy", 3.0), 409),
        (ConfigurationError("no PMS key"), 409),
        (Retryable("the database blinked"), 503),
        (PtsyncError("something else"), 400),
    ],
)
def test_each_kind_of_error_has_one_http_status(error: PtsyncError, status: int) -> None:
    """Given an error of one kind, when the web maps it, then it answers that kind's status."""
    assert http_status_of(error) == status
