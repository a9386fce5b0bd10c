"""`ptsync notify ...` in process, and the notifications and audit pages in a real Chromium."""

from __future__ import annotations

import re

import pytest
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from tests.ops.conftest import SLUG
from tests.web.conftest import (
    add_clinic,
    server,  # noqa: F401  (fixture)
)
from tests.web.test_browser import browser  # noqa: F401  (fixture)
from worker.cli import app
from worker.services.notifications import notification_status

runner = CliRunner()


def test_notify_add_list_test_and_remove_from_the_command_line(runtime, clinic, receiver):
    # Given a webhook channel added from the command line (its secret printed once)
    added = runner.invoke(
        app, ["notify", "add", SLUG, receiver.url, "--events", "findings,failing", "--by", "erin"]
    )
    assert added.exit_code == 0, added.output
    secret = re.search(r"signing_secret=(whsec_\S+)", added.stdout).group(1)
    # When it is listed and tested
    listed = runner.invoke(app, ["notify", "list", SLUG], env={"COLUMNS": "250"})
    tested = runner.invoke(app, ["notify", "test", SLUG])
    # Then the list shows it (redacted target, events, untested), and the test arrives signed
    assert "findings,failing" in listed.stdout and "untested" in listed.stdout
    assert tested.exit_code == 0 and "sent" in tested.stdout
    [(headers, body)] = receiver.requests
    assert Webhook(secret).verify(body, headers)["type"] == "ptsync.test"
    assert notification_status(runtime, SLUG)[0].state == "ok"
    # When it is removed, it is gone
    channel_id = notification_status(runtime, SLUG)[0].id
    assert runner.invoke(app, ["notify", "remove", SLUG, str(channel_id)]).exit_code == 0
    assert notification_status(runtime, SLUG) == []


def test_notify_test_fails_when_a_channel_cannot_be_reached(runtime, clinic, receiver):
    receiver.status = 503
    runner.invoke(app, ["notify", "add", SLUG, receiver.url])
    result = runner.invoke(app, ["notify", "test", SLUG])
    assert result.exit_code == 1
    assert "FAILED: webhook answered HTTP 503" in result.stdout


def test_bad_notify_options_are_one_clear_line(runtime, clinic):
    from worker.errors import InvalidInput

    result = runner.invoke(app, ["notify", "add", SLUG, "email:a@b.example", "--events", "everything"])
    assert isinstance(result.exception, InvalidInput)
    assert "unknown event 'everything'" in str(result.exception)
    assert notification_status(runtime, SLUG) == []


@pytest.mark.slow
def test_an_admin_adds_and_tests_a_channel_on_the_page_and_reads_the_audit_trail(
    runtime,
    tmp_path,
    server,  # noqa: F811
    browser,  # noqa: F811
    receiver,
):
    # Given an admin logged in to the clinic's page
    _, token = add_clinic(runtime, tmp_path, "clinic-a")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/orgs/clinic-a/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.click("text=Notifications")
    # When they add a webhook channel for failing syncs only
    page.fill("#url", receiver.url)
    for box in page.locator("input[name=events]").all():
        if box.get_attribute("value") != "failing":
            box.uncheck()
    page.click("text=Add channel")
    # Then the signing secret is shown once, and the channel is listed as untested
    secret = page.inner_text("#signing-secret")
    assert secret.startswith("whsec_")
    page.click("text=Back to notifications")
    channel = page.locator(".channel").first
    assert channel.get_attribute("data-state") == "untested" and "failing" in channel.inner_text()
    # When they send a test message, it arrives signed and the channel is ok
    page.click("text=Send a test message")
    assert "sent through 1 channel" in page.inner_text(".notice")
    assert Webhook(secret).verify(receiver.requests[0][1], receiver.requests[0][0])["type"] == "ptsync.test"
    assert page.locator(".channel").first.get_attribute("data-state") == "ok"
    # And the audit page names the page session's token for each change
    page.click("text=Audit trail")
    audit = page.inner_text("#audit")
    assert re.search(r'notification channel added\s+web:token \d+ "test"', audit)
    assert "notification test sent" in audit
    # and reads on a phone without sideways scrolling
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{server}/orgs/clinic-a/audit")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 400
    # When they remove the channel, it is gone
    page.goto(f"{server}/orgs/clinic-a/notifications")
    page.click(".channel >> text=Remove")
    assert "Channel removed" in page.inner_text(".notice")
    assert page.locator(".channel").count() == 0
