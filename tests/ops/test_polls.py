"""Short incremental polls and the nightly full sync (README "Polls and the full sync")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from worker.clock import utcnow
from worker.runtime import Runtime
from worker.services.deliveries import relay
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.schedule import record_due_syncs
from worker.services.sync import request_sync, run_sync
from worker.store import repositories as repo
from worker.store.models import Delivery, FindingRecord, PmsState, Run, SyncCursor
from worker.web.sync_pages import _described


@pytest.fixture
def clinic(cliniko_emulator) -> str:
    return "clinic-c"


@pytest.fixture
def cliniko(cliniko_emulator):
    return cliniko_emulator


def _sync(runtime: Runtime, slug: str, trigger: str) -> str:
    run_id, _ = request_sync(runtime, slug, trigger)
    assert run_sync(runtime, run_id).status == "succeeded"
    return run_id


def _cursors(runtime: Runtime) -> dict[str, str]:
    with runtime.db.transaction() as session:
        return {row.resource: row.cursor for row in session.scalars(select(SyncCursor))}


def test_a_poll_that_finds_nothing_changed_records_the_check_and_writes_no_report(runtime, clinic):
    """Given an organisation whose latest sync wrote a report (a second manual sync: one a person
    asks for always writes one),
    When a poll finds nothing changed in the PMS or PT Direct,
    Then the poll's run succeeds without a report or findings, the first report stays the latest,
    the run says which report it checked against (staleness counts it as a success), and the
    stored cursors and connector state are not rewritten (they still describe the same rows)."""
    _sync(runtime, clinic, "manual")
    first = _sync(runtime, clinic, "manual")
    with runtime.db.transaction() as session:
        findings_before = session.scalar(select(func.count()).select_from(FindingRecord))
        stored = [(row.resource, row.updated_at) for row in session.scalars(select(SyncCursor))]
        state_written = session.scalar(select(PmsState.updated_at))
    assert stored and state_written is not None

    polled = _sync(runtime, clinic, "schedule:tick")

    with runtime.db.transaction() as session:
        run = session.get(Run, polled)
        assert run.report is None
        assert run.counts["unchanged_since"] == first
        assert run.status == "succeeded" and run.finished_at is not None
        assert repo.latest_report_run(session, run.org_id).id == first
        assert session.scalar(select(func.count()).select_from(FindingRecord)) == findings_before
        assert [(row.resource, row.updated_at) for row in session.scalars(select(SyncCursor))] == stored
        assert session.scalar(select(PmsState.updated_at)) == state_written
        assert "nothing changed" in _described(run)  # the run's page does not say "0 findings"


def test_a_poll_that_finds_a_change_rebuilds_the_report(runtime, clinic, cliniko):
    """Given an organisation synced once and then polled with nothing changed,
    When appointments change in the PMS and the next poll runs,
    Then that poll reconciles and writes a new report, built on the previous one."""
    _sync(runtime, clinic, "manual")
    _sync(runtime, clinic, "manual")
    with runtime.db.transaction() as session:
        assert session.get(Run, _sync(runtime, clinic, "schedule:tick")).report is None
    cliniko.update_appointments(3, utcnow() + timedelta(minutes=5))

    polled = _sync(runtime, clinic, "schedule:tick")

    with runtime.db.transaction() as session:
        run = session.get(Run, polled)
        assert run.report is not None
        assert "unchanged_since" not in run.counts
        assert repo.latest_report_run(session, run.org_id).id == polled
        # the previous report was read: findings seen before are ongoing, not new again
        assert any(finding["state"] == "ongoing" for finding in run.report["findings"])


@pytest.mark.parametrize("trigger", ["generic:appointment.updated", "physitrack:client_updated", "fhir:x"])
def test_a_webhook_run_that_finds_nothing_changed_keeps_the_report_and_one_that_finds_a_change_rebuilds_it(
    runtime, clinic, cliniko, trigger
):
    """Given an organisation with a report built from the current PMS and PT Direct,
    When a webhook's run finds nothing changed, and later one finds changed appointments,
    Then the first keeps the report (its run names the report it checked against), and the second
    reconciles and writes a new report."""
    _sync(runtime, clinic, "manual")
    first = _sync(runtime, clinic, "manual")

    kept = _sync(runtime, clinic, trigger)
    cliniko.update_appointments(3, utcnow() + timedelta(minutes=5))
    rebuilt = _sync(runtime, clinic, trigger)

    with runtime.db.transaction() as session:
        kept_run, rebuilt_run = session.get(Run, kept), session.get(Run, rebuilt)
        assert kept_run.report is None and kept_run.counts["unchanged_since"] == first
        assert rebuilt_run.report is not None and "unchanged_since" not in rebuilt_run.counts
        assert repo.latest_report_run(session, rebuilt_run.org_id).id == rebuilt


@pytest.mark.parametrize("trigger", ["manual", "api", "page", "replan", "schedule:full"])
def test_a_sync_a_person_asked_for_and_the_full_sync_always_write_a_report(runtime, clinic, trigger):
    """Given an organisation synced twice with nothing changed since,
    When a person's sync, a re-plan or the full sync runs,
    Then it reconciles and writes a report (only polls and webhook runs keep the last one)."""
    _sync(runtime, clinic, "manual")
    _sync(runtime, clinic, "manual")
    again = _sync(runtime, clinic, trigger)
    with runtime.db.transaction() as session:
        assert session.get(Run, again).report is not None


def test_a_manual_sync_always_writes_a_report_even_when_nothing_changed(runtime, clinic):
    """Given an organisation synced once,
    When a person asks for a sync and nothing changed,
    Then the run still reconciles and writes a report (only polls and webhook runs keep the last one)."""
    _sync(runtime, clinic, "manual")
    again = _sync(runtime, clinic, "manual")
    with runtime.db.transaction() as session:
        assert session.get(Run, again).report is not None


def test_the_full_sync_runs_on_its_schedule_and_re_reads_everything(runtime, clinic, cliniko):
    """Given an organisation synced once, with the default nightly full sync at 02:30 UTC,
    When the clock ticks just after 02:30 and the relay turns its deliveries into a run,
    Then one run (poll and full sync coalesced) is marked as a full pull, re-reads every row
    from the PMS (many more requests than a poll), and writes a report although nothing changed."""
    _sync(runtime, clinic, "manual")
    _sync(runtime, clinic, "manual")
    polled_requests = len(cliniko._recent)
    _sync(runtime, clinic, "schedule:tick")
    poll_cost = len(cliniko._recent) - polled_requests
    today = utcnow().date()
    tick = datetime(today.year, today.month, today.day, 2, 30, 3, tzinfo=UTC)

    created = record_due_syncs(runtime, tick)
    assert record_due_syncs(runtime, tick) == []  # a second tick records nothing more
    assert relay(runtime, lambda run_id: None) == len(created) == 2

    with runtime.db.transaction() as session:
        events = sorted(session.scalars(select(Delivery.event)))
        queued = session.scalar(select(Run).where(Run.status == "queued"))
        assert events == ["full", "tick"]
        assert queued.full_pull is True
        run_id = queued.id
    before = len(cliniko._recent)
    assert run_sync(runtime, run_id).status == "succeeded"
    full_cost = len(cliniko._recent) - before
    with runtime.db.transaction() as session:
        assert session.get(Run, run_id).report is not None
    assert full_cost > poll_cost


def test_a_full_sync_schedule_that_is_not_cron_is_refused_naming_the_option(runtime):
    """Given an organisation being added,
    When its --full-sync is not a 5-field cron expression,
    Then it is refused with a one-line reason naming --full-sync."""
    from worker.errors import InvalidInput

    with pytest.raises(InvalidInput, match="--full-sync 'nightly'"):
        add_organisation(
            runtime,
            NewOrganisation(slug="x", pms="csv", ptdirect="manual", pms_path=".", full_sync="nightly"),
        )


def test_a_poll_that_found_nothing_changed_counts_as_a_success_for_monitoring(runtime, clinic):
    """Given an organisation whose last report was written an hour ago, then a failed run,
    When a poll half a minute ago found nothing changed,
    Then the seconds-since-last-success gauge counts the poll and no failure is left in a row."""
    from datetime import timedelta

    from sqlalchemy import update

    from worker.ops_collector import OpsCollector

    first = _sync(runtime, clinic, "manual")
    report_run = _sync(runtime, clinic, "manual")
    failed = _sync(runtime, clinic, "manual")
    with runtime.db.transaction() as session:
        session.execute(update(Run).where(Run.id == failed).values(status="failed", report=None))
    polled = _sync(runtime, clinic, "schedule:tick")
    with runtime.db.transaction() as session:
        assert session.get(Run, polled).counts["unchanged_since"] == report_run
    now = utcnow()
    with runtime.db.transaction() as session:
        for run_id, ago in ((first, 3700), (report_run, 3600), (failed, 1800), (polled, 30)):
            session.execute(
                update(Run).where(Run.id == run_id).values(finished_at=now - timedelta(seconds=ago))
            )

    families = {family.name: family for family in OpsCollector(lambda: runtime).collect()}

    [since] = families["ptsync_org_seconds_since_last_success"].samples
    [failures] = families["ptsync_org_consecutive_failures"].samples
    assert since.value < 120
    assert failures.value == 0


def test_org_show_names_both_schedules_and_when_each_runs_next(runtime, clinic):
    """Given an organisation on the default schedules,
    When it is described (`ptsync org show`),
    Then it shows the 2-minute poll and the nightly full sync, each with its next due time."""
    from worker.services.org_admin import describe

    schedule = describe(runtime, clinic)["schedule"]

    assert schedule["cron"] == "*/2 * * * *"
    assert schedule["full_sync"] == "30 2 * * *"
    assert schedule["next_due"] is not None
    assert schedule["full_sync_next_due"].endswith("T02:30:00Z")


def test_the_full_sync_reads_the_pms_itself_even_when_a_shared_read_of_the_round_exists(
    runtime, clinic, cliniko, tmp_path
):
    """Given two organisations on one Cliniko account, and a shared read of the account that
    another organisation's run made after this organisation's run was requested,
    When this organisation's run is an ordinary one, it uses that read (no request of its own);
    When it is the full sync, it reads the whole account itself however fresh the shared read."""
    from sqlalchemy import update

    from tests.ops.conftest import KEY

    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-d",
            pms="cliniko",
            pms_url=cliniko.base_url,
            pms_key=KEY,
            ptdirect="file",
            ptdirect_path=str(tmp_path / "ptdirect.json"),
        ),
    )

    def round_(full: bool) -> int:
        waiting, _ = request_sync(runtime, "clinic-d", "manual")
        with runtime.db.transaction() as session:
            session.execute(update(Run).where(Run.id == waiting).values(full_pull=full))
        _sync(runtime, clinic, "manual")  # reads the account and stores the read for clinic-d
        before = len(cliniko._recent)
        assert run_sync(runtime, waiting).status == "succeeded"
        return len(cliniko._recent) - before

    assert round_(full=False) == 0
    assert round_(full=True) > 0


def test_a_run_whose_stored_state_cannot_be_decrypted_fails_with_the_reason_and_is_not_left_queued(
    runtime, clinic
):
    """Given an organisation whose stored connector state no longer decrypts (the secret key was
    changed without keeping the old one),
    When its next run is claimed,
    Then the run fails with the one-line reason (the claim is kept: it is not left queued for the
    re-driver to send again and again)."""
    _sync(runtime, clinic, "manual")
    with runtime.db.transaction() as session:
        session.scalar(select(PmsState)).data = b"ptsync-fernet:1:" + b"x" * 60
    run_id, _ = request_sync(runtime, clinic, "schedule:tick")

    outcome = run_sync(runtime, run_id)

    with runtime.db.transaction() as session:
        run = session.get(Run, run_id)
        assert outcome.status == run.status == "failed"
        assert "PTSYNC_SECRET_KEY" in run.error


def test_a_person_s_sync_that_joins_a_queued_webhook_run_still_writes_a_report(runtime, clinic):
    """Given an organisation whose latest report was built from the current PMS and PT Direct,
    and a webhook's run queued for it,
    When a person asks for a sync (it joins the queued run) and that run works,
    Then the run writes a report: a person's sync always does, whichever run serves it."""
    _sync(runtime, clinic, "manual")
    _sync(runtime, clinic, "manual")
    queued, created = request_sync(runtime, clinic, "generic:appointment.updated")
    assert created

    joined, created = request_sync(runtime, clinic, "manual")

    assert joined == queued and not created
    assert run_sync(runtime, queued).status == "succeeded"
    with runtime.db.transaction() as session:
        assert session.get(Run, queued).report is not None


def test_the_clock_s_polls_leave_no_audit_entry_but_the_full_sync_and_a_person_s_sync_do(runtime, clinic):
    """Given an organisation,
    When the clock's incremental poll, the full sync and a person's sync are each requested,
    Then only the full sync and the person's sync are in the audit log as `sync_requested`: a
    poll every 2 minutes would add 720 entries a day per organisation, which the retention job
    never deletes (the polls' runs are listed by `ptsync runs`)."""
    from worker.store.models import AuditEntry

    for slug_trigger in ("schedule:tick", "manual"):
        _sync(runtime, clinic, slug_trigger)
    with runtime.db.transaction() as session:
        org_id = repo.get_org(session, clinic).id
    from worker.services.deliveries import accept

    ran: list[str] = []
    accept(runtime, org_id, "schedule", "tick-1", "tick", b"")
    relay(runtime, ran.append)
    run_sync(runtime, ran[0])
    accept(runtime, org_id, "schedule", "full-1", "full", b"")
    relay(runtime, ran.append)
    assert len(ran) == 2
    with runtime.db.transaction() as session:
        requested = session.scalars(
            select(Run.trigger)
            .join(AuditEntry, AuditEntry.detail["run_id"].as_string() == Run.id)
            .where(AuditEntry.action == "sync_requested")
        ).all()
    assert sorted(requested) == ["manual", "schedule:full"]


def test_the_run_after_an_organisations_first_sync_keeps_its_report_when_nothing_changed(runtime, clinic):
    """Given an organisation synced once (that first run had no baseline roster; the next has
    the roster it stored, which finds no drop of practitioners),
    When a poll finds nothing changed in the PMS or PT Direct,
    Then the poll keeps the first report: the baseline is read only to detect a drop, and the
    drop it finds (none) is the same."""
    first = _sync(runtime, clinic, "manual")

    polled = _sync(runtime, clinic, "schedule:tick")

    with runtime.db.transaction() as session:
        run = session.get(Run, polled)
        assert run.report is None
        assert run.counts["unchanged_since"] == first


def _digest(practitioners, baseline, policy=None) -> str:
    from datetime import date

    from sharing import AccessLog, PmsSnapshot, Policy, PtDirectSnapshot
    from sharing.context import detect_drop
    from worker.services.poll import input_digest

    pms = PmsSnapshot("csv", tuple(practitioners), AccessLog.empty())
    rules = policy or Policy()
    return input_digest(
        pms,
        PtDirectSnapshot(),
        policy={"mode": rules.mode.value},
        as_of=date(2026, 11, 25),
        drop=detect_drop(pms, rules, baseline),
        pseudonym_key=b"key",
        timezone="UTC",
    )


def test_the_input_digest_follows_the_drop_the_baseline_decides_not_the_roster_itself():
    """Given one PMS read of 3 active practitioners,
    When the baseline is missing, equal to the read, or a roster the read lost one of (no drop by
    the default thresholds), or one the read lost 7 of 10 from (a drop), accepted or not,
    Then the first three digest alike (the reconcile decides the same) and the drop, and the
    accepted drop, each digest differently: a run keeps its report only when the reconcile
    would decide exactly the same."""
    from sharing import PmsPractitioner
    from sharing.context import Baseline

    read = [PmsPractitioner(f"p{n}", f"Person {n}", f"p{n}@clinic.example") for n in range(3)]
    ids = frozenset(p.id for p in read)
    lost_seven = frozenset(f"p{n}" for n in range(10))

    alike = {
        _digest(read, None),
        _digest(read, Baseline(ids)),
        _digest(read, Baseline(ids | {"p9"})),
    }
    dropped = _digest(read, Baseline(lost_seven))
    accepted = _digest(read, Baseline(lost_seven, accept_drop=True))

    assert len(alike) == 1
    assert len({*alike, dropped, accepted}) == 3
