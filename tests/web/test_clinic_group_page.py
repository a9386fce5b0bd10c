"""The org page of a clinic-group organisation says which part of the PMS account it covers."""

from __future__ import annotations

import json
from datetime import date

import pytest

from connectors.emulators.cliniko import ClinikoEmulator, generate_group
from tests.web.conftest import chromium
from tests.web.test_pages_at_scale import ARTIFACTS, OVERFLOW_JS, WIDTHS, _log_in
from worker.services.credentials import create_admin_token
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.sync import request_sync, run_sync

KEY = "group-cliniko-key-au1"


def test_the_org_page_shows_the_scope_on_a_laptop_and_a_phone(runtime, tmp_path, server, monkeypatch):
    """Given North, scoped to business 1 and excluding Gus, synced against the group / When its
    page is opened at 1280 and 390 px / Then the summary names North Physio, one excluded and the
    practitioners elsewhere, and nothing is wider than the screen."""
    monkeypatch.setenv("PTSYNC_CLINIKO_REQUESTS_PER_MINUTE", "6000")
    from worker import settings as settings_module

    settings_module.get_settings.cache_clear()
    ptdirect = tmp_path / "north.json"
    ptdirect.write_text(
        json.dumps(
            {
                "schema": "ptsync.ptdirect/1",
                "users": [],
                "master_account": None,
                "practitioner_sharing": {"members": []},
            }
        )
    )
    with ClinikoEmulator(generate_group(today=date.today()), KEY) as emulator:
        add_organisation(
            runtime,
            NewOrganisation(
                slug="north",
                pms="cliniko",
                pms_url=emulator.base_url,
                pms_key=KEY,
                ptdirect="file",
                ptdirect_path=str(ptdirect),
                locations="1",
                exclude_people="106",
            ),
        )
        run_id, _ = request_sync(runtime, "north", "manual")
        assert run_sync(runtime, run_id).status == "succeeded"
    token = create_admin_token(runtime, "north", "test")
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        for width in WIDTHS:
            page = _log_in(browser, server, "north", token, width)
            scope = page.inner_text("#scope")
            assert "at North Physio" in scope and "1 excluded" in scope and "5 elsewhere" in scope
            assert page.evaluate(OVERFLOW_JS)["wide"] == []
            page.screenshot(path=str(ARTIFACTS / f"org-scope-{width}.png"), full_page=True)
            page.close()


pytestmark = pytest.mark.slow
