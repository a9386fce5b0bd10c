"""An organisation after `org add`: update, pause, resume, test and remove."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.clinic_files import full_sync_far_from_now, write_clinic
from worker.errors import InvalidInput
from worker.services import ptdirect_state
from worker.services.credentials import create_admin_token, rotate_webhook_credentials
from worker.services.deliveries import accept, relay
from worker.services.notifications import NewChannel, add_channel
from worker.services.org_admin import (
    check_organisation,
    describe,
    remove_organisation,
    set_paused,
    update_organisation,
)
from worker.services.orgs import NewOrganisation, add_organisation, set_physitrack_key
from worker.services.schedule import record_due_syncs
from worker.services.sync import OrganisationPaused, request_sync, run_sync
from worker.store import repositories as repo
from worker.store.models import Base, Delivery, Organisation, Run


def _add(runtime, tmp_path, slug: str, **settings) -> None:
    pms, snapshot = write_clinic(tmp_path / slug)
    add_organisation(
        runtime,
        NewOrganisation(
            slug=slug, pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(snapshot), **settings
        ),
    )


def test_a_paused_organisation_is_not_synced_by_the_clock(runtime, tmp_path):
    # Given two organisations due every minute, one of them paused
    _add(runtime, tmp_path, "clinic-a", schedule="* * * * *", full_sync=full_sync_far_from_now())
    _add(runtime, tmp_path, "clinic-b", schedule="* * * * *", full_sync=full_sync_far_from_now())
    assert set_paused(runtime, "clinic-b", True, "ana")
    # When the clock ticks and the relay runs
    record_due_syncs(runtime, datetime.now(UTC))
    sent: list[str] = []
    relay(runtime, sent.append)
    # Then only the active organisation gets a run
    with runtime.db.transaction() as session:
        synced = {
            org.slug for org in session.scalars(select(Organisation).join(Run, Run.org_id == Organisation.id))
        }
    assert synced == {"clinic-a"} and len(sent) == 1


def test_a_paused_organisation_is_not_synced_by_webhooks_until_it_is_resumed(runtime, tmp_path):
    # Given a paused organisation that receives a webhook
    _add(runtime, tmp_path, "clinic-a")
    set_paused(runtime, "clinic-a", True, "ana")
    with runtime.db.transaction() as session:
        org_id = repo.get_org(session, "clinic-a").id
    accept(runtime, org_id, "physitrack", "evt-1", "new_client_created", b"{}")
    # When the relay runs; Then the delivery is kept as skipped and no sync is requested
    sent: list[str] = []
    assert relay(runtime, sent.append) == 0 and sent == []
    with runtime.db.transaction() as session:
        assert session.scalar(select(Delivery.status)) == "skipped"
        assert session.scalar(select(func.count()).select_from(Run)) == 0
    # When it is resumed, the next webhook starts a sync again
    assert set_paused(runtime, "clinic-a", False, "ana")
    accept(runtime, org_id, "physitrack", "evt-2", "new_client_created", b"{}")
    assert relay(runtime, sent.append) == 1


def test_a_manual_sync_of_a_paused_organisation_says_it_is_paused(runtime, tmp_path):
    _add(runtime, tmp_path, "clinic-a")
    set_paused(runtime, "clinic-a", True, "ana")
    with pytest.raises(OrganisationPaused, match=r"organisation clinic-a is paused .*until it is resumed"):
        request_sync(runtime, "clinic-a", "manual")
    assert describe(runtime, "clinic-a")["paused"] is True
    assert describe(runtime, "clinic-a")["schedule"]["next_due"] is None


def test_update_changes_any_setting_of_org_add_and_validates_it_like_org_add(runtime, tmp_path):
    # Given an organisation
    _add(runtime, tmp_path, "clinic-a")
    # When its policy, schedule and PT Direct source change
    changed, checks = update_organisation(
        runtime, "clinic-a", {"policy": "observe", "schedule": "*/15 * * * *", "ptdirect": "manual"}, "ana"
    )
    # Then they are stored, and the connections were tested first
    assert changed == ["ptdirect", "policy", "schedule"]
    assert [check.ok for check in checks] == [True, True]
    settings = describe(runtime, "clinic-a")["settings"]
    assert (settings["policy"], settings["schedule"], settings["ptdirect"]) == (
        "observe",
        "*/15 * * * *",
        "manual",
    )
    # When a change is invalid; Then it is refused with org add's message and nothing changes
    with pytest.raises(InvalidInput, match="--policy must be one of observe, propose, apply-safe"):
        update_organisation(runtime, "clinic-a", {"policy": "yolo"}, "ana")
    with pytest.raises(InvalidInput, match="unknown setting"):
        update_organisation(runtime, "clinic-a", {"colour": "blue"}, "ana")
    assert describe(runtime, "clinic-a")["settings"]["policy"] == "observe"


def test_a_key_changed_by_update_is_stored_encrypted_and_never_shown(runtime, tmp_path):
    _add(runtime, tmp_path, "clinic-a")
    update_organisation(
        runtime,
        "clinic-a",
        {"pms": "fhir", "pms_url": "http://127.0.0.1:9/fhir", "pms_key": "sekret-token"},
        test=False,
    )
    shown = json.dumps(describe(runtime, "clinic-a"))
    assert "sekret-token" not in shown and '"pms_key": "set"' in shown
    with runtime.db.transaction() as session:
        stored = repo.get_org(session, "clinic-a").pms_key_encrypted
    assert runtime.secrets.decrypt(stored) == b"sekret-token"


def test_the_connection_test_names_the_failing_connection_its_host_and_why(runtime, tmp_path):
    # Given an organisation whose FHIR server is not running
    _add(runtime, tmp_path, "clinic-a")
    # When the new URL is tested by update; Then nothing is stored and the error says where and why
    with pytest.raises(InvalidInput) as refused:
        update_organisation(runtime, "clinic-a", {"pms": "fhir", "pms_url": "http://127.0.0.1:9/fhir"})
    assert (
        "PMS (fhir, http://127.0.0.1:9/fhir): fhir: GET /fhir/Practitioner failed: cannot reach 127.0.0.1:9: "
        in str(refused.value)
    )
    assert "connection was refused" in str(refused.value) and "--no-test" in str(refused.value)
    assert describe(runtime, "clinic-a")["settings"]["pms"] == "csv"
    # And `org test` of the stored settings passes
    assert all(check.ok for check in check_organisation(runtime, "clinic-a"))


@pytest.mark.postgres
def test_removing_an_organisation_leaves_no_row_of_it_in_any_table(
    postgres_url, secret_key, tmp_path, monkeypatch
):
    # Given two organisations on PostgreSQL with runs, findings, proposals, deliveries, tokens,
    # keys, cursors, PMS state and recorded PT Direct states
    from worker import runtime as runtime_module
    from worker import settings as settings_module
    from worker.store.db import Database

    Database(postgres_url).migrate()
    monkeypatch.setenv("PTSYNC_DATABASE_URL", postgres_url)
    monkeypatch.setenv("PTSYNC_SECRET_KEY", secret_key)
    settings_module.get_settings.cache_clear()
    runtime_module.get_runtime.cache_clear()
    runtime = runtime_module.get_runtime()
    try:
        for slug in ("clinic-a", "clinic-b"):
            _add(runtime, tmp_path, slug)
            run_id, _ = request_sync(runtime, slug, "manual")
            run_sync(runtime, run_id)
            create_admin_token(runtime, slug, "test")
            rotate_webhook_credentials(runtime, slug)
            set_physitrack_key(runtime, slug, "ana@clinic.example", "v2-key")
            ptdirect_state.record(
                runtime,
                slug,
                json.loads((tmp_path / slug / "ptdirect.json").read_text()),
                "ana",
                "import",
                "x",
            )
            with runtime.db.transaction() as session:
                org = repo.get_org(session, slug)
                repo.store_cursors(session, org.id, {"Practitioner": "2026-01-01"}, datetime.now(UTC))
                repo.store_pms_state(session, org.id, {"version": 1}, datetime.now(UTC), runtime.secrets)
                org_id = org.id
            accept(runtime, org_id, "physitrack", "evt-1", "x", b"{}")
            add_channel(
                runtime, slug, NewChannel(url="https://hooks.example/ptsync", events=("failing",)), "ana"
            )
        with runtime.db.transaction() as session:
            removed_id = repo.get_org(session, "clinic-b").id
        # When clinic-b is removed
        deleted = remove_organisation(runtime, "clinic-b", "ana")
        assert deleted.get("notification_channels") == 1
        # Then no table holds a row of it, nothing points at a missing row, and clinic-a is whole
        assert deleted["proposal_operations"] >= 1 and deleted["ptdirect_states"] == 1
        with runtime.db.transaction() as session:
            for table in Base.metadata.sorted_tables:
                owner = next(
                    (fk.parent for fk in table.foreign_keys if fk.column.table.name == "organisations"), None
                )
                if owner is not None:
                    left = session.scalar(select(func.count()).select_from(table).where(owner == removed_id))
                    assert left == 0, table.name
                    kept = session.scalar(select(func.count()).select_from(table).where(owner != removed_id))
                    # every table the setup filled is still filled for the organisation kept
                    assert kept > 0 or table.name not in deleted or table.name == "findings", table.name
                for fk in table.foreign_keys:
                    orphans = session.scalar(
                        select(func.count())
                        .select_from(table)
                        .where(fk.parent.is_not(None), fk.parent.not_in(select(fk.column)))
                    )
                    assert orphans == 0, f"{table.name}.{fk.parent.name}"
            assert [org.slug for org in session.scalars(select(Organisation))] == ["clinic-a"]
    finally:
        runtime.db.dispose()
        settings_module.get_settings.cache_clear()
        runtime_module.get_runtime.cache_clear()


def test_org_update_has_an_option_for_every_setting_org_add_stores():
    # Given the settings of org add (the fields of NewOrganisation)
    import dataclasses
    import inspect
    import typing

    from worker.commands import org_lifecycle

    fields = {f.name for f in dataclasses.fields(NewOrganisation)} - {"slug"}
    # Then org update offers each of them, changing nothing unless given
    parameters = inspect.signature(org_lifecycle.update).parameters
    assert fields <= set(parameters)
    assert all(parameters[name].default is None for name in fields)
    hints = typing.get_type_hints(NewOrganisation)
    from worker.commands.org_options import organisation_fields

    assert {field.name: field.kind for field in organisation_fields()} == {
        name: next(t for t in (*typing.get_args(hint), hint) if t is not type(None))
        for name, hint in hints.items()
    }


def test_a_sync_that_gets_a_404_from_a_url_without_its_api_path_says_so(runtime, tmp_path):
    # Given a FHIR server whose base is /fhir, added with its bare host name (untested)
    from connectors.emulators.fhir import FhirEmulator

    _, snapshot = write_clinic(tmp_path / "c")
    with FhirEmulator({}) as fhir:
        add_organisation(
            runtime,
            NewOrganisation(
                slug="clinic-f", pms="fhir", pms_url=fhir.url, ptdirect="file", ptdirect_path=str(snapshot)
            ),
        )
        # When it syncs
        run_id, _ = request_sync(runtime, "clinic-f", "manual")
        assert run_sync(runtime, run_id).status == "failed"
    # Then the failure says the URL lacks its API path
    with runtime.db.transaction() as session:
        error = repo.get_run(session, run_id).error
    assert "-> 404" in error and f"the URL {fhir.url} has no API path" in error
