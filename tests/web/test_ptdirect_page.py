"""The PT Direct page and the checklist's "Mark applied", in a real browser and through HTTP."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.clinic_files import write_clinic
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401  (fixtures; server is in conftest)
from worker.services import ptdirect_state
from worker.services.credentials import create_admin_token
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.sync import request_sync, run_sync
from worker.web import create_app


def _manual_clinic(runtime, tmp_path) -> str:
    pms, _ = write_clinic(tmp_path / "clinic-a")
    add_organisation(
        runtime, NewOrganisation(slug="clinic-a", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    return create_admin_token(runtime, "clinic-a", "test")


def _row(page, name: str) -> int:
    """The form row number of a person, from the hidden name field of the Users screen."""
    field = page.locator(f"#users input[type=hidden][value='{name}']").get_attribute("name")
    return int(re.match(r"r(\d+)_name", field).group(1))


@pytest.mark.slow
def test_an_admin_records_pt_direct_and_marks_a_manual_proposal_applied_on_laptop_and_phone(
    runtime,
    tmp_path,
    server,
    browser,  # noqa: F811
):
    # Given a clinic with --ptdirect manual and nothing recorded yet
    token = _manual_clinic(runtime, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/orgs/clinic-a/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    # When the admin opens the PT Direct page
    page.goto(f"{server}/orgs/clinic-a/ptdirect")
    # Then it lists the PMS practitioners, ready to tick
    users = page.inner_text("#users")
    assert "Ana Silva" in users and "cara@clinic.example" in users
    # When they tick what PT Direct shows (three confirmed users; Ana and Ben share both)
    for name in ("Ana Silva", "Ben Ode", "Cara Lim"):
        page.select_option(f"select[name=r{_row(page, name)}_status]", "confirmed")
    for name in ("Ana Silva", "Ben Ode"):
        page.check(f"input[name=r{_row(page, name)}_content]")
        page.check(f"input[name=r{_row(page, name)}_patients]")
    page.screenshot(path=str(ARTIFACTS / "ptdirect-laptop.png"), full_page=True)
    page.click("text=Save as the new PT Direct state")
    # Then version 1 is recorded, with what it holds
    page.wait_for_selector(".notice")
    assert "Recorded version 1" in page.inner_text(".notice")
    recorded = ptdirect_state.latest(runtime, "clinic-a").snapshot
    assert {m.email for m in recorded.sharing_members} == {"ana@clinic.example", "ben@clinic.example"}
    # When a sync proposes adding Cara and the admin approves it
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    run_sync(runtime, run_id)
    page.goto(f"{server}/orgs/clinic-a/")
    page.click("text=Approve and apply")
    page.wait_for_selector(".notice")
    # Then the page says PT Direct has not changed, and the checklist waits for the admin
    assert "PT Direct has not been changed" in page.inner_text(".notice")
    page.click("text=Checklist for PT Direct")
    page.wait_for_selector("#step-1")
    assert "Cara Lim" in page.inner_text("#step-1")
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(page.url)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 400
    phone.screenshot(path=str(ARTIFACTS / "checklist-open-phone.png"), full_page=True)
    # When they tick the step done and press Mark applied
    page.check("#step-1 input[value=done]")
    page.click("button:has-text('Mark applied')")
    page.wait_for_selector(".notice")
    # Then the step shows done, and PT Direct's new state is recorded for the next sync
    assert "Every step is recorded" in page.inner_text(".notice")
    assert "Done" in page.inner_text("#step-1")
    page.screenshot(path=str(ARTIFACTS / "checklist-laptop.png"), full_page=True)
    assert ptdirect_state.latest(runtime, "clinic-a").version == 2
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    assert run_sync(runtime, run_id).status == "succeeded"
    # And both pages read on a phone without sideways scrolling
    for path, shot in (
        (page.url, "checklist-phone.png"),
        (f"{server}/orgs/clinic-a/ptdirect", "ptdirect-phone.png"),
    ):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 400, shot
        phone.screenshot(path=str(ARTIFACTS / shot), full_page=True)


def test_a_sharing_tick_for_someone_without_a_pt_direct_user_is_refused_and_nothing_is_saved(
    runtime, tmp_path
):
    # Given a logged-in admin
    token = _manual_clinic(runtime, tmp_path)
    with TestClient(create_app(background=False)) as client:
        client.post("/orgs/clinic-a/login", data={"token": token})
        page = client.get("/orgs/clinic-a/ptdirect").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        # When they tick practitioner sharing for a person they marked as having no PT Direct user
        response = client.post(
            "/orgs/clinic-a/ptdirect",
            data={
                "csrf": csrf,
                "rows": "1",
                "r0_email": "ana@clinic.example",
                "r0_name": "Ana Silva",
                "r0_status": "none",
                "r0_patients": "on",
            },
        )
        # Then the page says why, and nothing is recorded
        assert response.status_code == 200
        assert (
            "ana@clinic.example is ticked in Practitioner sharing but has no PT Direct user" in response.text
        )
        assert ptdirect_state.latest(runtime, "clinic-a") is None
        # And a form without its CSRF token is refused
        assert client.post("/orgs/clinic-a/ptdirect", data={"rows": "0"}).status_code == 403


def test_a_step_marked_not_possible_on_the_checklist_page_is_recorded_with_its_reason(runtime, tmp_path):
    # Given a manual clinic with a recorded state and a proposal
    import json

    from worker.services import proposals as proposal_service

    token = _manual_clinic(runtime, tmp_path)
    snapshot = json.loads((tmp_path / "clinic-a" / "ptdirect.json").read_text())
    ptdirect_state.record(runtime, "clinic-a", snapshot, "ana", "import", "pt.json")
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    run_sync(runtime, run_id)
    with runtime.db.transaction() as session:
        from worker.store import repositories as repo

        proposal_id = repo.get_run(session, run_id).report["proposal"]["id"]
    with TestClient(create_app(background=False)) as client:
        client.post("/orgs/clinic-a/login", data={"token": token})
        page = client.get(f"/orgs/clinic-a/proposals/{proposal_id}/checklist").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        # When the admin marks step 1 as not possible, saying why
        response = client.post(
            f"/orgs/clinic-a/proposals/{proposal_id}/steps",
            data={"csrf": csrf, "step-0": "could_not", "reason-0": "Cara has no PT Direct login yet"},
        )
    # Then the page says so, the step keeps the reason, and PT Direct's state did not change
    assert "Recorded 0 step(s) as done and 1 as not possible" in response.text
    assert "Could not be done: Cara has no PT Direct login yet" in response.text
    steps = proposal_service.checklist_steps(runtime, proposal_id).steps
    assert steps[0].status == "could_not_do"
    assert ptdirect_state.latest(runtime, "clinic-a").version == 1


def test_a_large_clinics_pt_direct_page_saves_every_person(runtime, tmp_path):
    """Given a logged-in admin of a clinic group's worth of people: 300 rows, every field the
    page sends (11 a row, 3,300 fields) / When the form is saved / Then all 300 are recorded:
    the form parser's default limit of 1,000 fields refused any page of more than about 90
    people ("400 Too many fields"). And a row count that is not a number is a 400, not a 500."""
    token = _manual_clinic(runtime, tmp_path)
    people = 300
    form = {"rows": str(people), "master_email": ""}
    for index in range(people):
        row = f"r{index}_"
        form |= {
            row + "email": f"person{index}@clinic.example",
            row + "name": f"Person {index}",
            row + "status": "confirmed",
            row + "access": "on",
            row + "link_system": "",
            row + "link_id": "",
            row + "content": "on",
            row + "patients": "on",
            row + "recipient": "",
            row + "from_pms": "0",
            row + "fixed": "0",
        }
    with TestClient(create_app(background=False), raise_server_exceptions=False) as client:
        client.post("/orgs/clinic-a/login", data={"token": token})
        page = client.get("/orgs/clinic-a/ptdirect").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        saved = client.post("/orgs/clinic-a/ptdirect", data={"csrf": csrf, **form}, follow_redirects=False)
        assert saved.status_code == 303, saved.text[:300]
        recorded = ptdirect_state.latest(runtime, "clinic-a").snapshot
        assert len(recorded.users) == people and len(recorded.sharing_members) == people
        refused = client.post("/orgs/clinic-a/ptdirect", data={"csrf": csrf, "rows": "abc"})
        assert refused.status_code == 400
