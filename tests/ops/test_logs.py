"""JSON logs: one object per line with context, and nothing secret or identifying in a sync's lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tests.ops.conftest import KEY, sync_and_settle
from worker import logs


@pytest.fixture
def captured_logs():
    """Route every log line through ptsync's JSON configuration into a buffer (restored after)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    logs.configure(level="DEBUG", fmt="json", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_a_sync_logs_json_lines_with_context_and_no_secret_or_patient(
    runtime, cliniko_clinic, worker_thread, captured_logs
):
    # Given JSON logs at DEBUG level and a clinic on the Cliniko emulator
    patients = {row["patient"] for row in cliniko_clinic["individual_appointments"]}
    # When it is synced through the actors
    sync_and_settle(worker_thread, "clinic-c")
    # Then every line is one JSON object with timestamp, level, logger and message
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert lines
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= line.keys()
    # and the sync's lines carry the organisation, run, actor and message id
    [finished] = [
        line for line in lines if line["message"].startswith("run ") and "succeeded" in line["message"]
    ]
    assert finished["org"] == "clinic-c" and finished["actor"] == "ptsync.sync_org"
    assert finished["run_id"] in finished["message"] and finished["message_id"]
    # and no line holds the PMS key or a patient identifier
    text = captured_logs.getvalue()
    assert KEY not in text
    assert not [patient for patient in patients if patient in text]


def test_text_logs_stay_the_default_and_show_known_context():
    # Given the default format
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure(level="INFO", fmt=None, stream=buffer)
        # When a line is logged inside a bound context
        with logs.bound(org="clinic-a", run_id="r1"):
            logging.getLogger("ptsync.test").info("hello")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    # Then it is a readable line with the context appended
    line = buffer.getvalue().strip()
    assert line.endswith("INFO ptsync.test: hello [org=clinic-a run_id=r1]")


def test_a_failing_chat_channel_never_puts_its_token_in_a_log_line(runtime, clinic, captured_logs):
    from tests.ops.conftest import SLUG, free_port
    from worker.errors import InvalidInput
    from worker.services.notifications import NewChannel, add_channel, notification_status
    from worker.services.notify_delivery import send_test

    # Given an apprise channel whose URL carries a password, pointing at a closed port
    add_channel(runtime, SLUG, NewChannel(f"json://ops:s3cret-pass@127.0.0.1:{free_port()}/hook"), "cli:test")
    # When a test message fails to go out
    [result] = send_test(runtime, SLUG, "cli:test")
    # Then the failure is recorded and shown without the URL, and no log line holds the password
    assert not result.ok and result.error == "JSON did not accept the message"
    assert "s3cret-pass" not in notification_status(runtime, SLUG)[0].display
    assert "s3cret-pass" not in captured_logs.getvalue()
    # and neither does a URL apprise cannot parse (apprise itself would log it whole)
    with pytest.raises(InvalidInput):
        add_channel(runtime, SLUG, NewChannel("nosuchservice://ops:s3cret-pass@chat.example/x"), "cli:test")
    assert "s3cret-pass" not in captured_logs.getvalue()
