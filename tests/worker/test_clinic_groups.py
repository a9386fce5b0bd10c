"""Clinic groups end to end: three organisations (one per PT Direct account) on one emulated
Cliniko account of three sites, each scoped to its site."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.emulators.cliniko import ClinikoEmulator, generate_group
from worker.errors import InvalidInput
from worker.services import shared_pull
from worker.services.org_admin import add_tested, update_organisation
from worker.services.org_scope import list_locations
from worker.services.orgs import NewOrganisation
from worker.services.sync import request_sync, run_sync
from worker.store.models import Organisation, Run

KEY = "group-cliniko-key-au1"
TODAY = date.today()
SITES = {"north": "1", "south": "2", "east": "3"}
STAFF = {"1": ["ana", "ben", "gus"], "2": ["ben", "cara", "dev"], "3": ["eli", "fay", "gus"]}
IDS = {"ana": "100", "ben": "101", "cara": "102", "dev": "103", "eli": "104", "fay": "105", "gus": "106"}


@pytest.fixture
def group(monkeypatch):
    monkeypatch.setenv("PTSYNC_CLINIKO_REQUESTS_PER_MINUTE", "6000")
    from worker import settings as settings_module

    settings_module.get_settings.cache_clear()
    with ClinikoEmulator(generate_group(today=TODAY), KEY, requests_per_window=10_000) as emulator:
        yield emulator
    settings_module.get_settings.cache_clear()


def _ptdirect(path: Path, people: list[str], sharing: list[str]) -> Path:
    """A site's PT Direct account: its people licensed and linked to Cliniko, `sharing` sharing."""
    path.write_text(
        json.dumps(
            {
                "schema": "ptsync.ptdirect/1",
                "users": [
                    {
                        "email": f"{name}@group.example",
                        "name": name.title(),
                        "status": "confirmed",
                        "practitioner_access": True,
                        "pms_link": {"system": "cliniko", "practitioner_id": IDS[name]},
                    }
                    for name in people
                ],
                "master_account": None,
                "practitioner_sharing": {
                    "members": [
                        {"email": f"{name}@group.example", "share_content": True, "share_patients": True}
                        for name in sharing
                    ]
                },
            }
        )
    )
    return path


def _add(runtime, emulator, tmp_path: Path, slug: str, *, test: bool = True, **scope) -> None:
    site = SITES[slug]
    ptdirect = _ptdirect(tmp_path / f"{slug}.json", STAFF[site], STAFF[site])
    add_tested(
        runtime,
        NewOrganisation(
            slug=slug,
            pms="cliniko",
            pms_url=emulator.base_url,
            pms_key=KEY,
            ptdirect="file",
            ptdirect_path=str(ptdirect),
            **({"locations": site} | scope),
        ),
        test=test,
    )


def _sync_round(runtime, *slugs: str) -> list[Run]:
    """A sync round as the clock makes one: every run requested, then each one run."""
    run_ids = [request_sync(runtime, slug, "schedule")[0] for slug in slugs]
    for run_id in run_ids:
        run_sync(runtime, run_id)
    with runtime.db.transaction() as session:
        runs = [session.get(Run, run_id) for run_id in run_ids]
        for run in runs:
            session.expunge(run)
    return runs


def _people(run: Run) -> set[str]:
    return {row[2].split("@")[0] for row in run.counts["pms_practitioners"]}


def test_the_cliniko_connector_reads_businesses_who_works_there_and_where_each_appointment_was(group):
    """Given the group's Cliniko account / When read with locations / Then three businesses, Ben
    and Gus at two each, and every appointment row carries its business."""
    from connectors.cliniko import ClinikoConnector

    connector = ClinikoConnector(
        KEY, base_url=group.base_url, user_agent="t (t@t.example)", read_locations=True
    )
    snapshot = connector.pull(window_start=TODAY - timedelta(days=540), cursors={}).snapshot
    assert [(loc.id, loc.name) for loc in snapshot.locations] == [
        ("1", "North Physio"),
        ("2", "South Physio"),
        ("3", "East Physio"),
    ]
    where = {p.email.split("@")[0]: p.locations for p in snapshot.practitioners}
    assert where["ben"] == ("1", "2") and where["gus"] == ("1", "3") and where["cara"] == ("2",)
    assert {row.location for row in snapshot.access} == {"1", "2", "3"}
    without = ClinikoConnector(KEY, base_url=group.base_url, user_agent="t (t@t.example)")
    assert without.pull(window_start=TODAY - timedelta(days=540), cursors={}).snapshot.locations is None


def test_three_organisations_on_one_key_read_the_account_once_per_round_each_seeing_its_site(
    runtime, group, tmp_path
):
    """Given North, South and East on one Cliniko key / When a sync round runs all three / Then the
    emulator served exactly one read (the requests of one organisation's run), each report names
    its scope and holds only its site's practitioners."""
    for slug in SITES:
        _add(runtime, group, tmp_path, slug, test=False)
    runs = _sync_round(runtime, "north")
    one_read = len(group.log)
    runs = _sync_round(runtime, *SITES)  # the next round: one incremental read, shared
    assert [run.status for run in runs] == ["succeeded"] * 3
    shared_requests = len(group.log) - one_read
    group.log.clear()
    _sync_round(runtime, "north")  # one organisation alone reads as much as the shared round did
    assert shared_requests == len(group.log)
    assert [_people(run) for run in runs] == [set(STAFF[site]) for site in SITES.values()]
    assert runs[0].report["scope"] == {
        "locations": ["1"],
        "include": [],
        "exclude": [],
        "location_names": {"1": "North Physio"},
        "practitioners_outside": 4,
    }
    assert all(not run.report["findings"] for run in runs)  # each site's own staff share already


def test_a_full_first_round_of_three_is_one_full_read_not_three(runtime, group, tmp_path):
    """Given three new organisations / When their first round runs / Then as many requests as one
    organisation's first (full) read."""
    for slug in SITES:
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, *SITES)
    three = len(group.log)
    with runtime.db.transaction() as session:
        for org in session.scalars(select(Organisation)).all():
            session.delete(org)
    group.log.clear()
    _add(runtime, group, tmp_path, "north", test=False)
    _sync_round(runtime, "north")
    assert three == len(group.log)


def test_a_read_from_before_the_run_was_requested_is_never_used(runtime, group, tmp_path):
    """Given North and East read the account in the last round (a read is stored) / When South's
    run is requested afterwards (a manual sync) / Then South reads the account itself."""
    from worker.store.models import SharedPull

    for slug in SITES:
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north", "east")
    with runtime.db.transaction() as session:
        assert session.scalars(select(SharedPull)).all() != []
    before = len(group.log)
    _sync_round(runtime, "south")
    assert len(group.log) > before


def test_a_lone_sync_of_an_organisation_on_a_shared_key_stores_no_shared_read(runtime, group, tmp_path):
    """Given three organisations on one key and no other run pending / When one syncs alone /
    Then it reads the account itself and stores no shared copy of it."""
    from worker.store.models import SharedPull

    for slug in SITES:
        _add(runtime, group, tmp_path, slug, test=False)
    [run] = _sync_round(runtime, "north")
    assert run.status == "succeeded"
    with runtime.db.transaction() as session:
        assert session.scalars(select(SharedPull)).all() == []


def test_an_incomplete_shared_read_is_incomplete_for_every_organisation_that_uses_it(
    runtime, group, tmp_path
):
    """Given the round's shared read is marked incomplete / When South uses it / Then South's run is
    not complete: its findings are indeterminate and it stores no roster, plan or cursors."""
    for slug in ("north", "south"):
        _add(runtime, group, tmp_path, slug, test=False)
    south_run, _ = request_sync(runtime, "south", "schedule")
    with runtime.db.transaction() as session:
        north = session.scalar(select(Organisation).where(Organisation.slug == "north"))
        session.expunge(north)
    from worker.connections import pms_connector

    pulled = pms_connector(north, runtime.secrets).pull(window_start=TODAY - timedelta(days=600), cursors={})
    incomplete = replace(pulled, snapshot=replace(pulled.snapshot, complete=False))
    key = shared_pull.account_key(north, runtime.secrets)
    shared_pull._store(runtime, key, north.id, datetime.now(UTC), TODAY - timedelta(days=600), incomplete)
    requests = len(group.log)
    run_sync(runtime, south_run)
    assert len(group.log) == requests  # South used the shared read
    with runtime.db.transaction() as session:
        run = session.get(Run, south_run)
        assert run.status == "succeeded" and run.complete is False
        assert run.roster is None and run.plan is None


def test_a_practitioner_who_moves_sites_departs_one_organisation_with_its_safeguards_and_joins_the_other(
    runtime, group, tmp_path
):
    """Given Ana shares patients in North's PT Direct / When Cliniko moves her to South (no longer
    at North, her North appointments gone) / Then North plans transfer-then-remove, both needing
    approval; South (where she has no PT Direct user yet) reports her as unlicensed there."""
    for slug in ("north", "south"):
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north", "south")
    ana = next(i for i, row in enumerate(group.data["practitioners"]) if row["id"] == IDS["ana"])
    group.update_row("practitioners", ana, businesses=["2"])
    for index, row in enumerate(group.data["individual_appointments"]):
        if row["practitioner"] == IDS["ana"]:
            group.update_row(
                "individual_appointments", index, business="2", updated_at=datetime.now(UTC).isoformat()
            )
    north, south = _sync_round(runtime, "north", "south")
    [departed] = [f for f in north.report["findings"] if f["kind"] == "departed_practitioner"]
    assert departed["evidence"] == {"reason": "outside_scope"}
    moves = [op for op in north.report["proposal"]["operations"] if op["email"] == "ana@group.example"]
    assert [op["op"] for op in moves] == ["transfer_patients", "remove_sharing_member"]
    assert all(op["requires_approval"] for op in moves)
    assert "ana" in _people(south) and "ana" not in _people(north)
    assert any(f["kind"] == "no_physitrack_licence" for f in south.report["findings"])


def test_a_location_deleted_since_the_scope_was_set_fails_the_run_with_a_clear_error(
    runtime, group, tmp_path
):
    """Given East is scoped to business 3 / When business 3 is deleted in Cliniko / Then East's run
    fails naming the location and the ones there are; no report replaces the last one."""
    _add(runtime, group, tmp_path, "east", test=False)
    [first] = _sync_round(runtime, "east")
    group.data["businesses"] = group.data["businesses"][:2]
    group.update_row("businesses", 0)
    [second] = _sync_round(runtime, "east")
    assert first.status == "succeeded" and second.status == "failed"
    assert "location 3 is not in cliniko" in second.error
    assert "1 (North Physio); 2 (South Physio)" in second.error
    assert second.report is None


def test_a_scope_that_matches_nothing_is_refused_at_org_add_with_the_list_of_locations(
    runtime, group, tmp_path
):
    """Given the group / When an organisation is added for location 9, or for people who do not
    exist / Then nothing is stored and the error lists the locations, or names the entry."""
    with pytest.raises(InvalidInput, match=r"location 9 is not in cliniko.*1 \(North Physio\)"):
        _add(runtime, group, tmp_path, "north", locations="9")
    with pytest.raises(
        InvalidInput, match=r"--include: include entry nobody@group.example matches no practitioner"
    ):
        _add(runtime, group, tmp_path, "north", locations="", include_people="nobody@group.example")
    with runtime.db.transaction() as session:
        assert session.scalars(select(Organisation)).all() == []


def test_include_and_exclude_lists_change_who_belongs_and_are_checked_on_update(runtime, group, tmp_path):
    """Given North (Ana, Ben, Gus) / When Gus is excluded and Cara included by email / Then the next
    run holds Ana, Ben and Cara; an update naming someone in both lists is refused."""
    _add(runtime, group, tmp_path, "north")
    changed, checks = update_organisation(
        runtime, "north", {"exclude_people": IDS["gus"], "include_people": "CARA@group.example"}
    )
    assert changed == ["include_people", "exclude_people"]
    assert any(check.name == "scope" for check in checks)
    [run] = _sync_round(runtime, "north")
    assert _people(run) == {"ana", "ben", "cara"}
    assert run.report["scope"]["exclude"] == [IDS["gus"]]
    with pytest.raises(InvalidInput, match="both included and excluded"):
        update_organisation(runtime, "north", {"include_people": IDS["gus"]}, test=False)


def test_org_locations_lists_every_site_with_its_practitioners_and_marks_the_chosen_one(
    runtime, group, tmp_path
):
    """Given North scoped to business 1 / When its locations are listed / Then all three, each with
    three practitioners (Ben and Gus work at two), North marked as chosen."""
    _add(runtime, group, tmp_path, "north")
    rows = list_locations(runtime, "north")
    assert [(r.id, r.name, r.practitioners, r.in_scope) for r in rows] == [
        ("1", "North Physio", 3, True),
        ("2", "South Physio", 3, False),
        ("3", "East Physio", 3, False),
    ]


@pytest.mark.parametrize("lock", ["in-process", "redis"])
def test_a_round_run_by_several_workers_at_once_still_reads_the_account_once(
    runtime, group, tmp_path, lock, request
):
    """Given three organisations on one key, their runs requested together / When three workers
    run them at the same moment (threads; across processes the lock is Redis's) / Then the
    account is read once: one worker reads while the others wait for its read."""
    import threading

    if lock == "redis":
        url = request.getfixturevalue("redis_url")
        runtime = dataclasses.replace(
            runtime, settings=runtime.settings.model_copy(update={"broker_url": url})
        )
    for slug in SITES:
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north")
    group.log.clear()
    run_ids = [request_sync(runtime, slug, "schedule")[0] for slug in SITES]
    workers = [threading.Thread(target=run_sync, args=(runtime, run_id)) for run_id in run_ids]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    with runtime.db.transaction() as session:
        assert [session.get(Run, run_id).status for run_id in run_ids] == ["succeeded"] * 3
    together = len(group.log)
    group.log.clear()
    _sync_round(runtime, "south")  # what one organisation's read costs alone
    assert together == len(group.log) > 0


def test_a_shared_read_is_stored_encrypted_and_deleted_once_its_minutes_are_over(runtime, group, tmp_path):
    """Given North and South on one key / When North's run reads the account / Then the shared read
    holds no patient id or email in clear, and once expired the daily prune deletes it (as the next
    sync of any organisation would)."""
    from worker.services.retention import prune
    from worker.store.models import SharedPull

    for slug in ("north", "south"):
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north", "south")
    with runtime.db.transaction() as session:
        [row] = session.scalars(select(SharedPull)).all()
        assert b"51000" not in row.data and b"ana@group.example" not in row.data
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    prune(runtime, days=30)
    with runtime.db.transaction() as session:
        assert session.scalars(select(SharedPull)).all() == []


def _expire_the_shared_read(runtime) -> None:
    from worker.store.models import SharedPull

    with runtime.db.transaction() as session:
        [row] = session.scalars(select(SharedPull)).all()
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)


def _shared_reads(runtime) -> int:
    from worker.store.models import SharedPull

    with runtime.db.transaction() as session:
        return len(session.scalars(select(SharedPull)).all())


def test_an_expired_shared_read_is_deleted_by_the_first_sync_after_a_minute_without_a_look(
    runtime, group, tmp_path, monkeypatch
):
    """Given North and South's shared read, expired, and this process's last look for expired
    reads a minute ago / When South syncs alone / Then the expired read is deleted, and a sync
    within the next minute does not look again (one DELETE statement a minute, not one a run)."""
    from sqlalchemy import event

    for slug in ("north", "south"):
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north", "south")
    _expire_the_shared_read(runtime)
    monkeypatch.setattr(shared_pull, "_expired_checked_at", [float("-inf")])
    deletes: list[str] = []
    event.listen(
        runtime.db.engine,
        "before_cursor_execute",
        lambda *args: (
            deletes.append(args[2]) if args[2].lstrip().startswith("DELETE FROM shared_pulls") else None
        ),
    )
    _sync_round(runtime, "south")
    assert _shared_reads(runtime) == 0
    _sync_round(runtime, "north")
    assert len(deletes) == 1


def test_an_expired_shared_read_not_yet_deleted_is_neither_used_nor_a_reason_to_share(
    runtime, group, tmp_path, monkeypatch
):
    """Given North and South's shared read, expired a moment after this process looked for
    expired reads / When North syncs alone / Then it reads the account itself and stores no new
    shared read: the expired one counts as no read at all (nobody else has a run queued)."""
    for slug in ("north", "south"):
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north", "south")
    _expire_the_shared_read(runtime)
    monkeypatch.setattr(shared_pull, "_expired_checked_at", [float("inf")])  # just looked
    group.log.clear()
    [run] = _sync_round(runtime, "north")
    assert run.status == "succeeded" and len(group.log) > 0  # read itself, not the expired read
    with runtime.db.transaction() as session:
        from worker.store.models import SharedPull

        [row] = session.scalars(select(SharedPull)).all()
        assert row.expires_at < datetime.now(UTC)  # the old, expired one: no new read stored


def test_with_shared_reads_turned_off_each_organisation_reads_the_account_itself(runtime, group, tmp_path):
    """Given PTSYNC_SHARED_PMS_READS=false / When a round of three runs / Then three reads."""
    runtime = dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"shared_pms_reads": False})
    )
    for slug in SITES:
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north")
    one = len(group.log)
    group.log.clear()
    _sync_round(runtime, *SITES)
    assert len(group.log) == 3 * one


def test_findings_about_other_sites_are_not_resolved_when_an_organisation_is_scoped(runtime, group, tmp_path):
    """Given North synced while it still read the whole account (so Cara, Dev, Eli and Fay were
    unlicensed findings) / When it is scoped to business 1 and syncs / Then those findings are
    gone but not listed as resolved: nobody fixed anything, the scope changed."""
    _add(runtime, group, tmp_path, "north", test=False, locations=None)
    [before] = _sync_round(runtime, "north")
    unlicensed = {f["fingerprint"] for f in before.report["findings"] if f["kind"] == "no_physitrack_licence"}
    assert len(unlicensed) == 4
    update_organisation(runtime, "north", {"locations": "1"}, test=False)
    [after] = _sync_round(runtime, "north")
    assert not unlicensed & {f["fingerprint"] for f in after.report["findings"]}
    assert after.report["resolved"] == []


def test_a_pms_that_cannot_tell_locations_apart_refuses_locations_but_takes_people(runtime, tmp_path):
    """Given a CSV-folder PMS (no locations) / When an organisation is added with --locations, or
    its locations are listed / Then one clear error each; scoped by people it is added."""
    from tests.clinic_files import write_clinic

    pms, ptdirect = write_clinic(tmp_path)
    new = NewOrganisation(
        slug="csv-a", pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
    )
    with pytest.raises(InvalidInput, match="the csv connector cannot tell locations apart"):
        add_tested(runtime, dataclasses.replace(new, locations="1"))
    add_tested(runtime, dataclasses.replace(new, exclude_people="103"))
    with pytest.raises(InvalidInput, match="scope csv-a by people instead"):
        list_locations(runtime, "csv-a")
    [run] = _sync_round(runtime, "csv-a")
    assert _people(run) == {"ana", "ben"}


def test_each_run_stores_its_account_fingerprint_and_siblings_are_found_by_it_not_by_their_keys(
    runtime, group, tmp_path, monkeypatch
):
    """Given three organisations on one key and one on another, their fingerprints missing (as
    after the upgrade that added them) / When each has run once / Then every organisation on the
    key holds the account's fingerprint and the other its own; and the next round shares one read
    while decrypting no organisation's key but the running one's."""
    for slug in SITES:
        _add(runtime, group, tmp_path, slug, test=False)
    add_tested(
        runtime,
        NewOrganisation(
            slug="elsewhere",
            pms="cliniko",
            pms_url=group.base_url,
            pms_key="another-key-au1",
            ptdirect="file",
            ptdirect_path=str(_ptdirect(tmp_path / "elsewhere.json", ["ana"], [])),
        ),
        test=False,
    )
    with runtime.db.transaction() as session:
        for org in session.scalars(select(Organisation)).all():
            org.pms_account = None
    for slug in [*SITES, "elsewhere"]:
        _sync_round(runtime, slug)
    with runtime.db.transaction() as session:
        accounts = {org.slug: org.pms_account for org in session.scalars(select(Organisation))}
        north = session.scalar(select(Organisation).where(Organisation.slug == "north"))
        key = shared_pull.account_key(north, runtime.secrets)
    assert {accounts[slug] for slug in SITES} == {key}
    assert accounts["elsewhere"] not in (None, key)

    decrypted: list[str] = []
    real_account_key = shared_pull.account_key
    monkeypatch.setattr(
        shared_pull,
        "account_key",
        lambda org, secrets: decrypted.append(org.slug) or real_account_key(org, secrets),
    )
    group.log.clear()
    runs = _sync_round(runtime, *SITES)
    assert [run.status for run in runs] == ["succeeded"] * 3
    assert decrypted == list(SITES)
    shared_requests = len(group.log)
    group.log.clear()
    _sync_round(runtime, "north")  # one organisation alone reads as much as the shared round did
    assert shared_requests == len(group.log)


def test_org_add_and_a_pms_change_store_the_fingerprint(runtime, group, tmp_path):
    """Given an organisation added on one key / When its PMS key changes / Then its stored
    fingerprint is the new account's, before any run."""
    from worker.services.pms_account import account_key

    _add(runtime, group, tmp_path, "north", test=False)
    with runtime.db.transaction() as session:
        org = session.scalar(select(Organisation).where(Organisation.slug == "north"))
        first = org.pms_account
        assert first == account_key(org, runtime.secrets)
    update_organisation(runtime, "north", {"pms_key": "changed-key-au1"}, test=False)
    with runtime.db.transaction() as session:
        org = session.scalar(select(Organisation).where(Organisation.slug == "north"))
        assert org.pms_account == account_key(org, runtime.secrets) != first


def test_a_stale_fingerprint_never_gives_an_organisation_another_accounts_read(runtime, group, tmp_path):
    """Given North's stored fingerprint claims the account of an organisation that moved to
    another key (a settings change it has not run since) / When both sync in one round / Then each
    reads its own account: the moved one's report holds its new account's people."""
    for slug in ("north", "south"):
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north", "south")
    with ClinikoEmulator(generate_group(today=TODAY), "other-key", requests_per_window=10_000) as other:
        update_organisation(runtime, "south", {"pms_url": other.base_url, "pms_key": "other-key"}, test=False)
        before = len(other.log)
        runs = _sync_round(runtime, "north", "south")
        assert [run.status for run in runs] == ["succeeded"] * 2
        assert len(other.log) > before  # south read its new account itself


def test_a_webhook_that_joins_a_queued_run_is_not_answered_with_a_shared_read_from_before_it_arrived(
    runtime, group, tmp_path
):
    """Given North and South on one PMS account, a sync round requested for both, and North's run
    done (it read the account and stored the read for the round),
    When a webhook for South arrives after that read began and joins South's queued run,
    Then South's run reads the PMS itself: a shared read is used only when it started after the
    newest request the run serves, and a joined webhook is such a request."""
    from datetime import UTC, datetime

    from worker.services.deliveries import accept, relay
    from worker.store import repositories as repo

    for slug in ("north", "south"):
        _add(runtime, group, tmp_path, slug, test=False)
    _sync_round(runtime, "north", "south")
    north, _ = request_sync(runtime, "north", "schedule:tick")
    south, _ = request_sync(runtime, "south", "schedule:tick")
    with runtime.db.transaction() as session:
        session.get(Run, south).enqueued_at = datetime.now(UTC)  # its message went out
    assert run_sync(runtime, north).status == "succeeded"  # the round's shared read
    with runtime.db.transaction() as session:
        south_id = repo.get_org(session, "south").id
    webhook = accept(runtime, south_id, "generic", "evt-after-read", "appointment.created", b"{}")
    assert relay(runtime, lambda run_id: None, only=webhook.delivery) == 1
    before = len(group.log)

    assert run_sync(runtime, south).status == "succeeded"

    assert len(group.log) > before
