"""A PT Direct form row count that is a digit but not a decimal number is a 400 (found by a review)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from worker.web import create_app


@pytest.fixture
def app_client(runtime, sent):
    """The app answering unhandled errors with a 500, as a real server does (not raising them)."""
    with TestClient(create_app(send=sent, background=False), raise_server_exceptions=False) as client:
        yield client


def test_a_ptdirect_form_whose_row_count_is_a_digit_that_is_not_a_decimal_is_refused_not_a_500(
    runtime, app_client, clinic
):
    """Given an admin on the PT Direct page,
    When the form is posted with `rows=²` (superscript two): `str.isdigit()` accepts it, and
    `int()` then raises ValueError,
    Then the form is refused with a client error, never a 500 (the commit's promise: a row
    count that is not a number is a 400)."""
    _, token = clinic
    answer = app_client.post("/orgs/clinic-a/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303
    csrf = re.search(
        r'name="csrf" value="([0-9a-f]+)"', app_client.get("/orgs/clinic-a/ptdirect").text
    ).group(1)
    answer = app_client.post(
        "/orgs/clinic-a/ptdirect", data={"csrf": csrf, "rows": "²"}, follow_redirects=False
    )
    assert answer.status_code < 500, answer.status_code
