"""Actors on dramatiq's StubBroker with a real worker thread, against a real SQLite database."""

from __future__ import annotations

import json
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import func, select

from connectors.errors import TransientConnectorError
from tests.clinic_files import add_departed_member, write_clinic
from worker import actors
from worker.clock import utcnow
from worker.services import proposals as proposal_service
from worker.services.orgs import NewOrganisation, add_organisation
from worker.store import repositories as repo
from worker.store.models import AuditEntry, FindingRecord, Proposal, Run


@pytest.fixture
def stub_worker(runtime):
    broker = actors.broker
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield broker
    worker.stop()
    broker.flush_all()


def _join(broker) -> None:
    broker.join("default", fail_fast=False, timeout=30_000)


def _add_org(runtime, tmp_path, policy="propose", **clinic):
    pms, ptdirect = write_clinic(tmp_path, **clinic)
    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-a",
            pms="csv",
            pms_path=str(pms),
            ptdirect="file",
            ptdirect_path=str(ptdirect),
            policy=policy,
        ),
    )
    return pms, ptdirect


def _runs(runtime) -> list[Run]:
    with runtime.db.transaction() as session:
        return list(session.scalars(select(Run).order_by(Run.requested_at)))


def _count(runtime, model, *where) -> int:
    with runtime.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_requested_sync_runs_and_stores_its_report_findings_and_proposal(runtime, stub_worker, tmp_path):
    # Given an organisation where Cara co-treats with Ana but does not share
    _add_org(runtime, tmp_path)
    # When a sync is requested through the actor
    actors.request_sync.send("clinic-a", "manual")
    _join(stub_worker)
    # Then one run succeeded with a contract report, findings rows and a proposal
    [run] = _runs(runtime)
    assert run.status == "succeeded" and run.attempts == 1
    assert run.report["schema"] == "ptsync.report/1"
    assert run.report["summary"]["findings"] == {"duplicate_patient_risk": 1, "missing_new_user": 1}
    assert _count(runtime, FindingRecord) == 2
    assert _count(runtime, Proposal) == 1


def test_duplicate_triggers_while_queued_coalesce_into_one_run(runtime, stub_worker, tmp_path):
    _add_org(runtime, tmp_path)
    stub_worker.flush_all()
    for trigger in ("schedule", "webhook", "manual"):
        actors.request_sync.send("clinic-a", trigger)
    _join(stub_worker)
    assert len(_runs(runtime)) <= 2  # the later triggers join the queued run, or run after it
    assert all(run.status == "succeeded" for run in _runs(runtime))


def test_a_redelivered_sync_message_completes_the_run_exactly_once(runtime, stub_worker, tmp_path):
    _add_org(runtime, tmp_path)
    from worker.services.sync import request_sync

    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    for _ in range(3):  # at-least-once delivery: the same message three times
        actors.sync_org.send(run_id)
    _join(stub_worker)
    [run] = _runs(runtime)
    assert run.status == "succeeded" and run.attempts == 1
    assert _count(runtime, Proposal) == 1
    assert _count(runtime, AuditEntry, AuditEntry.action == "sync_succeeded") == 1


def test_a_bad_csv_fails_the_run_with_file_and_line_and_stores_no_findings(runtime, stub_worker, tmp_path):
    pms, _ = _add_org(runtime, tmp_path)
    with (pms / "patient_access.csv").open("a") as handle:
        handle.write("101,p99,appointment,not-a-date\n")
    actors.request_sync.send("clinic-a", "manual")
    _join(stub_worker)
    [run] = _runs(runtime)
    assert run.status == "failed"
    assert "patient_access.csv, line 18, field 'last_seen'" in run.error
    assert run.attempts == 1  # a bad file is not retried
    assert run.report is None
    assert _count(runtime, FindingRecord) == 0 and _count(runtime, Proposal) == 0


def test_a_transient_failure_is_retried_and_the_run_fails_when_retries_run_out(
    runtime, stub_worker, tmp_path, monkeypatch
):
    _add_org(runtime, tmp_path)

    class FlakyPms:
        system = "csv"

        def pull(self, **_):
            raise TransientConnectorError("csv", "the share is not mounted (try again)")

    monkeypatch.setattr("worker.services.sync.pms_connector", lambda org, secrets: FlakyPms())
    from worker.services.sync import request_sync

    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    actors.sync_org.send_with_options(args=(run_id,), max_retries=2, min_backoff=10, max_backoff=20)
    _join(stub_worker)
    [run] = _runs(runtime)
    assert run.status == "failed"
    assert run.attempts == 3
    assert run.error == "gave up after retries: csv: the share is not mounted (try again)"


def test_a_sync_waits_while_another_run_of_the_organisation_holds_the_lease(runtime, stub_worker, tmp_path):
    # Given a run whose worker vanished mid-sync (its lease lapses after 3 s)
    _add_org(runtime, tmp_path)
    now = utcnow()
    with runtime.db.transaction() as session:
        lost, _ = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", now)
    with runtime.db.transaction() as session:
        assert repo.claim_run(session, lost.id, now, timedelta(seconds=3))
    # When another sync is requested
    actors.request_sync.send("clinic-a", "schedule")
    _join(stub_worker)
    # Then it runs once the lease lapses, and the lost run is closed as interrupted
    runs = {run.trigger: run for run in _runs(runtime)}
    assert runs["schedule"].status == "succeeded"
    assert runs["manual"].status == "failed" and "interrupted" in runs["manual"].error


def test_apply_safe_applies_safe_additions_automatically(runtime, stub_worker, tmp_path):
    _, ptdirect = _add_org(runtime, tmp_path, policy="apply-safe")
    actors.request_sync.send("clinic-a", "schedule")
    _join(stub_worker)
    members = json.loads(ptdirect.read_text())["practitioner_sharing"]["members"]
    assert {"email": "cara@clinic.example", "share_content": True, "share_patients": True} in members
    with runtime.db.transaction() as session:
        proposal = session.scalar(select(Proposal))
        assert proposal.status == "applied"


def test_an_approved_proposal_is_applied_and_the_next_run_proposes_nothing(runtime, stub_worker, tmp_path):
    _add_org(runtime, tmp_path)
    actors.request_sync.send("clinic-a", "manual")
    _join(stub_worker)
    with runtime.db.transaction() as session:
        proposal_id = session.scalar(select(Proposal.id))
    proposal_service.approve(runtime, proposal_id, "test-admin")
    actors.apply_proposal.send(proposal_id)
    actors.apply_proposal.send(proposal_id)  # redelivered: no second change
    _join(stub_worker)
    actors.request_sync.send("clinic-a", "manual")
    _join(stub_worker)
    latest = _runs(runtime)[-1]
    assert latest.report["proposal"] is None
    assert latest.report["findings"] == []
    assert {f["kind"] for f in latest.report["resolved"]} == {"duplicate_patient_risk", "missing_new_user"}
    assert _count(runtime, AuditEntry, AuditEntry.action == "proposal_approved") == 1
    assert _count(runtime, AuditEntry, AuditEntry.action == "operation_applied") == 1


def test_a_plan_is_superseded_when_pt_direct_changed_since_planning(runtime, stub_worker, tmp_path):
    _, ptdirect = _add_org(runtime, tmp_path)
    actors.request_sync.send("clinic-a", "manual")
    _join(stub_worker)
    with runtime.db.transaction() as session:
        proposal_id = session.scalar(select(Proposal.id))
    document = json.loads(ptdirect.read_text())
    document["practitioner_sharing"]["members"].pop(0)  # an admin removed Ana by hand
    ptdirect.write_text(json.dumps(document))
    proposal_service.approve(runtime, proposal_id, "test-admin")
    actors.apply_proposal.send(proposal_id)
    _join(stub_worker)
    with runtime.db.transaction() as session:
        assert session.get(Proposal, proposal_id).status == "superseded"
    replan = _runs(runtime)[-1]
    assert replan.trigger == "replan" and replan.status == "succeeded"
    assert "cara@clinic.example" in json.dumps(replan.report["proposal"])


def test_apply_safe_leaves_removals_waiting_for_approval(runtime, stub_worker, tmp_path):
    # Given an apply-safe organisation with a newcomer (Cara) and a leaver (Dan) who shares patients
    pms, ptdirect = _add_org(runtime, tmp_path, policy="apply-safe")
    add_departed_member(pms, ptdirect)
    # When a scheduled sync runs
    actors.request_sync.send("clinic-a", "schedule")
    _join(stub_worker)
    # Then Cara was added automatically, Dan is still a member, and the proposal waits for a person
    members = {m["email"] for m in json.loads(ptdirect.read_text())["practitioner_sharing"]["members"]}
    assert "cara@clinic.example" in members and "dan@clinic.example" in members
    with runtime.db.transaction() as session:
        proposal = session.scalar(select(Proposal))
        statuses = {op.op: op.status for op in proposal.operations}
        assert proposal.status == "proposed"
    assert statuses == {
        "add_sharing_member": "applied",
        "transfer_patients": "pending",
        "remove_sharing_member": "pending",
    }


def test_a_run_requested_while_another_worked_starts_when_that_one_finishes_not_after_its_lease(
    runtime, tmp_path
):
    """Given a run of the organisation finished while another of its runs waits queued (its
    message came while the first worked, so a worker postponed it until the first run's lease
    would end) / When the first run's actor wraps up / Then the queued run's message is sent again
    at once, and the queued run is what `after_run` names with the finished run's trigger."""
    from worker.services import sync

    broker = actors.broker
    broker.flush_all()
    _add_org(runtime, tmp_path)
    first, _ = sync.request_sync(runtime, "clinic-a", "manual")
    assert sync.run_sync(runtime, first).status == "succeeded"
    queued, created = sync.request_sync(runtime, "clinic-a", "webhook")
    assert created
    assert sync.after_run(runtime, first) == sync.AfterRun("manual", queued)

    actors._finished(first, "succeeded")

    sent = [dramatiq.Message.decode(data) for data in broker.queues["default"].queue]
    assert [(message.actor_name, tuple(message.args)) for message in sent] == [("ptsync.sync_org", (queued,))]
    broker.flush_all()


def test_after_a_run_with_nothing_queued_no_message_is_sent(runtime, tmp_path):
    """Given an organisation with one finished run and nothing queued / When its actor wraps up /
    Then no message is sent."""
    from worker.services import sync

    broker = actors.broker
    broker.flush_all()
    _add_org(runtime, tmp_path)
    first, _ = sync.request_sync(runtime, "clinic-a", "manual")
    sync.run_sync(runtime, first)
    assert sync.after_run(runtime, first) == sync.AfterRun("manual", None)
    actors._finished(first, "succeeded")
    assert broker.queues["default"].qsize() == 0


@pytest.mark.parametrize("second_run_changes_nothing", [False, True])
def test_a_run_finishing_while_another_was_requested_names_it_from_its_own_closing_transaction(
    runtime, tmp_path, monkeypatch, second_run_changes_nothing
):
    """Given a run of the organisation at work (a report to write, or, for a webhook's run after
    the first, nothing changed) and another run requested while it works,
    When the run finishes and its actor wraps up,
    Then the run's outcome already names the queued run and its own trigger (read by the
    transaction that closed it), the actor sends that run at once without asking again, and
    counts the finished run once."""
    from worker.services import sync

    broker = actors.broker
    broker.flush_all()
    _add_org(runtime, tmp_path)
    trigger = "manual"
    if second_run_changes_nothing:
        first, _ = sync.request_sync(runtime, "clinic-a", "manual")
        sync.run_sync(runtime, first)
        trigger = "generic:appointment.updated"
    working, _ = sync.request_sync(runtime, "clinic-a", trigger)
    queued: list[str] = []
    real_digest = sync._input_digest

    def digest_while_a_webhook_comes(*args, **kwargs):
        run_id, created = sync.request_sync(runtime, "clinic-a", "generic:appointment.updated")
        assert created
        queued.append(run_id)
        return real_digest(*args, **kwargs)

    monkeypatch.setattr(sync, "_input_digest", digest_while_a_webhook_comes)

    def no_second_read(runtime, run_id):
        raise AssertionError("the finished run's outcome already said what follows")

    monkeypatch.setattr(sync, "after_run", no_second_read)
    counted = _runs_counted("succeeded", trigger)

    # When
    actors.sync_org(working)

    # Then
    sent = [dramatiq.Message.decode(data) for data in broker.queues["default"].queue]
    broker.flush_all()
    assert [(message.actor_name, tuple(message.args)) for message in sent] == [
        ("ptsync.sync_org", (queued[0],))
    ]
    assert _runs_counted("succeeded", trigger) == counted + 1
    with runtime.db.transaction() as session:
        assert session.get(Run, working).status == "succeeded"
        kept_report = session.get(Run, working).report is None
    assert kept_report == second_run_changes_nothing


def test_a_failed_run_names_the_run_queued_behind_it(runtime, tmp_path, monkeypatch):
    """Given a run that fails for good (its stored state cannot be read) while another run of the
    organisation is requested / When it finishes / Then its outcome names the queued run and its
    own trigger, read by the transaction that recorded the failure."""
    from worker.errors import PtsyncError
    from worker.services import sync

    _add_org(runtime, tmp_path)
    working, _ = sync.request_sync(runtime, "clinic-a", "manual")

    def unreadable(*args, **kwargs):
        raise PtsyncError("the stored PMS state cannot be decrypted")

    monkeypatch.setattr(sync, "_read_stored", unreadable)
    real_fail = sync._fail
    requested: list[str] = []

    def fail_after_a_request(runtime, claim, reason):
        requested.append(sync.request_sync(runtime, "clinic-a", "generic:appointment.updated")[0])
        return real_fail(runtime, claim, reason)

    monkeypatch.setattr(sync, "_fail", fail_after_a_request)

    # When
    outcome = sync.run_sync(runtime, working)

    # Then
    assert outcome.status == "failed"
    assert outcome.after == sync.AfterRun("manual", requested[0])


def _runs_counted(status: str, trigger: str) -> float:
    from worker import metrics

    return metrics.RUNS.labels(status, metrics.trigger_family(trigger))._value.get()


def test_a_late_message_for_a_finished_run_neither_counts_it_again_nor_sends_the_queued_run_again(
    runtime, tmp_path
):
    """Given a run that finished (its actor counted it and started the queued run) while an earlier
    message of it waited postponed, and a newer run of the organisation queued,
    When the postponed message comes back and finds the run finished,
    Then the run is not counted again and no message is sent for the queued run (each such
    message would add a stray message per run that follows, each counting a run again)."""
    from worker.services import sync

    broker = actors.broker
    broker.flush_all()
    _add_org(runtime, tmp_path)
    first, _ = sync.request_sync(runtime, "clinic-a", "manual")
    actors.sync_org(first)
    _, created = sync.request_sync(runtime, "clinic-a", "generic:appointment.updated")
    assert created
    broker.flush_all()
    counted = _runs_counted("succeeded", "manual")

    actors.sync_org(first)

    assert broker.queues["default"].qsize() == 0
    assert _runs_counted("succeeded", "manual") == counted


def test_a_broker_error_starting_the_next_queued_run_neither_drops_the_automatic_apply_nor_fails_the_message(
    runtime, tmp_path, monkeypatch
):
    """Given an apply-safe organisation whose run plans safe additions, and another run of it queued,
    When the run finishes and sending the queued run's message fails (Redis blinks),
    Then the finished run's automatic apply is sent all the same and the message ends normally
    (the queued run's postponed message, or the re-driver, starts it)."""
    from worker.services import sync

    broker = actors.broker
    broker.flush_all()
    _add_org(runtime, tmp_path, policy="apply-safe")
    run_id, _ = sync.request_sync(runtime, "clinic-a", "schedule")
    monkeypatch.setattr(sync, "after_run", lambda runtime, run_id: sync.AfterRun("schedule", "queued-run"))
    real_send = actors.sync_org.send

    def send(run):
        if run == "queued-run":
            raise ConnectionError("redis is restarting")
        return real_send(run)

    monkeypatch.setattr(actors.sync_org, "send", send)
    actors.sync_org(run_id)

    sent = [dramatiq.Message.decode(data).actor_name for data in broker.queues["default"].queue]
    broker.flush_all()
    assert "ptsync.apply_safe_operations" in sent
