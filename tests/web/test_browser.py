"""A real browser (Debian's Chromium, driven by Playwright) against the real web server."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.web.conftest import CHROMIUM, add_clinic, chromium
from worker.services.sync import request_sync, run_sync

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    with chromium() as instance:
        yield instance


def test_an_admin_logs_in_reads_the_report_approves_and_sees_the_change_applied(
    runtime, tmp_path, server, browser
):
    # Given a synced clinic where Cara treats Ana's patients but is not in sharing
    _, token = add_clinic(runtime, tmp_path, "clinic-a")
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    run_sync(runtime, run_id)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    # When the admin logs in with the organisation's token
    page.goto(f"{server}/orgs/clinic-a/")
    assert page.url.endswith("/orgs/clinic-a/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    # Then the report shows the new findings, the sharing picture with the at-risk pair, and the proposal
    page.wait_for_selector("#findings")
    assert "Cara Lim is not in practitioner sharing" in page.inner_text("#findings")
    assert page.locator("#picture line.pair.at_risk").count() == 1
    page.screenshot(path=str(ARTIFACTS / "report-laptop.png"), full_page=True)
    # When they approve the proposal
    page.click("text=Approve and apply")
    page.wait_for_selector(".notice")
    # Then, after the worker applies it, the page shows every change applied
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        proposal = page.locator(".proposal").first
        statuses = [text.strip() for text in proposal.locator(".op-status").all_text_contents()]
        status = proposal.get_attribute("data-status")
        if status == "applied" and set(statuses) == {"applied"}:
            break
        time.sleep(0.3)
        page.reload()
    assert (status, set(statuses)) == ("applied", {"applied"})
    page.screenshot(path=str(ARTIFACTS / "applied-laptop.png"), full_page=True)
    members = json.loads((tmp_path / "clinic-a" / "ptdirect.json").read_text())["practitioner_sharing"][
        "members"
    ]
    assert "cara@clinic.example" in {m["email"] for m in members}
    # And the page reads on a phone too
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{server}/orgs/clinic-a/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 400
    phone.screenshot(path=str(ARTIFACTS / "report-phone.png"), full_page=True)


def test_a_form_without_the_csrf_token_is_refused(runtime, tmp_path, server, browser):
    _, token = add_clinic(runtime, tmp_path, "clinic-a")
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    run_sync(runtime, run_id)
    page = browser.new_page()
    page.goto(f"{server}/orgs/clinic-a/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#proposals")
    action = page.locator("#proposals form").first.get_attribute("action")
    status = page.evaluate(
        "async (url) => (await fetch(url, {method: 'POST', body: new URLSearchParams({csrf: 'forged'})})).status",
        f"{server}{action}",
    )
    assert status == 403
    assert shutil.which("chromium") or Path(CHROMIUM).exists()
