"""The org page's header and "Sync now" through the real app (no browser needed)."""

from __future__ import annotations

import re

from worker.store import repositories as repo
from worker.store.models import Delivery


def _log_in(client, token: str) -> str:
    client.post("/orgs/clinic-a/login", data={"token": token}, follow_redirects=False)
    page = client.get("/orgs/clinic-a/")
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def test_a_never_synced_organisation_shows_no_last_sync_and_its_next_scheduled_one(client, clinic):
    # Given an organisation that has never synced, with the default 2-minute poll
    _, token = clinic
    _log_in(client, token)
    # When its page is opened
    page = client.get("/orgs/clinic-a/")
    # Then the header says so, names the next sync, and offers "Sync now"
    assert page.status_code == 200
    status = page.text.split('id="status"')[1].split("</form>")[0]
    # (a 2-minute poll can be due in under a minute, whatever second the test runs at)
    assert "never" in status and "Next scheduled sync" in status
    assert re.search(r"in (\d+ min|under a minute)", status)
    assert "Sync now" in status


def test_sync_now_records_a_request_sends_the_run_and_opens_its_progress_page(client, clinic, sent, runtime):
    # Given a logged-in admin
    _, token = clinic
    csrf = _log_in(client, token)
    # When they press "Sync now" without, then with, the form's token
    forged = client.post("/orgs/clinic-a/syncs", data={"csrf": "forged"}, follow_redirects=False)
    pressed = client.post("/orgs/clinic-a/syncs", data={"csrf": csrf}, follow_redirects=False)
    # Then the forged form is refused and the real one queues one run through the outbox
    assert forged.status_code == 403
    assert pressed.status_code == 303 and pressed.headers["location"] == f"/orgs/clinic-a/runs/{sent[0]}"
    with runtime.db.transaction() as session:
        sources = [row.source for row in session.query(Delivery)]
        run = repo.get_run(session, sent[0])
        assert (sources, run.status) == (["web"], "queued")
    # And the progress page refreshes itself while the run waits
    progress = client.get(pressed.headers["location"])
    assert 'http-equiv="refresh"' in progress.text and "Waiting for a worker" in progress.text


def test_another_organisations_run_page_is_not_found(client, clinic, runtime, tmp_path):
    # Given a second organisation with a queued run
    from tests.web.conftest import add_clinic
    from worker.services.sync import request_sync

    add_clinic(runtime, tmp_path, "clinic-b")
    other, _ = request_sync(runtime, "clinic-b", "manual")
    _, token = clinic
    _log_in(client, token)
    # When clinic-a's admin asks for it under their own organisation
    page = client.get(f"/orgs/clinic-a/runs/{other}")
    # Then it does not exist for them
    assert page.status_code == 404


def test_a_run_being_retried_says_so_on_its_page_the_history_and_the_api(client, clinic, sent, runtime):
    # Given a run whose first attempt failed and that waits to be tried again
    _, token = clinic
    csrf = _log_in(client, token)
    pressed = client.post("/orgs/clinic-a/syncs", data={"csrf": csrf}, follow_redirects=False)
    with runtime.db.transaction() as session:
        run = repo.get_run(session, sent[0])
        run.attempts, run.error = 1, "cliniko: GET /users -> 503 Service Unavailable"
    # When its page, the organisation's history and the API's run list are read
    progress = client.get(pressed.headers["location"])
    history = client.get("/orgs/clinic-a/").text.split('id="history"')[1]
    listed = client.get("/api/v1/orgs/clinic-a/runs", headers={"Authorization": f"Bearer {token}"}).json()
    # Then each says the run is being retried, and why
    assert "tries again: cliniko: GET /users -&gt; 503" in progress.text
    assert "retrying: cliniko: GET /users -&gt; 503" in history
    assert listed[0]["retrying"] is True and listed[0]["status"] == "queued"
