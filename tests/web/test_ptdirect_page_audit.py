"""The PT Direct page records who saved a state as the audit trail says: the session's token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.clinic_files import write_clinic
from worker.services import audit, ptdirect_state
from worker.services.credentials import create_admin_token
from worker.services.orgs import NewOrganisation, add_organisation
from worker.web import create_app


def test_a_pt_direct_state_recorded_on_the_page_is_audited_with_the_session_token(runtime, tmp_path):
    # Given a manual clinic and an admin logged in with a labelled token
    pms, _ = write_clinic(tmp_path / "clinic-a")
    add_organisation(
        runtime, NewOrganisation(slug="clinic-a", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    token = create_admin_token(runtime, "clinic-a", "front desk")
    with TestClient(create_app(background=False)) as client:
        client.post("/orgs/clinic-a/login", data={"token": token})
        page = client.get("/orgs/clinic-a/ptdirect").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        # When they record PT Direct's state on the PT Direct page
        response = client.post(
            "/orgs/clinic-a/ptdirect",
            data={
                "csrf": csrf,
                "rows": "1",
                "r0_email": "ana@clinic.example",
                "r0_name": "Ana Silva",
                "r0_status": "confirmed",
                "r0_access": "on",
            },
        )
        assert response.status_code == 200
    # Then "who" is the session's token, as README's Audit trail says (`web:token N "LABEL"`) and
    # as the page's other actions record it (`page_actor`), not just `web:clinic-a`
    version = ptdirect_state.latest(runtime, "clinic-a")
    assert version is not None
    who = version.recorded_by
    assert who.startswith("web:token") and "front desk" in who, who
    rows = [row for row in audit.entries(runtime, "clinic-a") if row.action == "ptdirect_state_recorded"]
    assert rows and "front desk" in rows[0].actor, [row.actor for row in rows]
