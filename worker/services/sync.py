"""Requesting and running a sync: pull, reconcile (pure), store the outcome atomically.

A run is claimed with a lease that a heartbeat thread renews. If the worker dies, the lease
lapses and the redelivered message takes the run over; if the old worker was only slow, its
final commit finds the lease gone and changes nothing. So a run completes exactly once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from connectors.errors import ConnectorError
from connectors.ptdirect_file import snapshot_document
from sharing import (
    MasterRecipients,
    Mode,
    Policy,
    ProposalInfo,
    RunInfo,
    SharingScope,
    build_report,
    reconcile,
    state_digest,
)
from worker.clock import iso, new_id, utcnow
from worker.connections import (
    missing_api_path_hint,
    physitrack_clients,
    pms_connector,
    ptdirect_adapter,
)
from worker.errors import InvalidInput, PtsyncError
from worker.runtime import Runtime
from worker.services.proposals import verify_applied
from worker.store import repositories as repo
from worker.store.models import FindingRecord, Organisation, Proposal, ProposalOperation, Run

log = logging.getLogger(__name__)


class OrganisationBusy(Exception):
    """Another run of the organisation holds the lease; try again after `delay_seconds`."""

    def __init__(self, delay_seconds: float) -> None:
        super().__init__(f"organisation busy; retry in {delay_seconds:.1f}s")
        self.delay_seconds = delay_seconds


class OrganisationPaused(InvalidInput):
    """A paused organisation is not synced: not by the clock, webhooks or a person."""


class RetryableSyncError(Exception):
    """A transient failure; the job layer retries the whole sync."""


@dataclass(frozen=True)
class SyncOutcome:
    run_id: str
    status: str
    auto_apply_proposal: str | None = None


def request_sync(runtime: Runtime, slug: str, trigger: str) -> tuple[str, bool]:
    """Queue a run for the organisation, or join the one already queued. Returns (run id, new)."""
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        if org.paused_at is not None:
            raise OrganisationPaused(
                f"organisation {slug} is paused (since {iso(org.paused_at)}): nothing is synced until "
                f"`ptsync org resume {slug}`"
            )
        run, created = repo.request_run(session, org, trigger, trigger, now)
        return run.id, created


def policy_of(org: Organisation) -> Policy:
    return Policy(
        mode=Mode(org.mode),
        sharing_scope=SharingScope(org.sharing_scope),
        master_recipients=MasterRecipients(org.master_recipients),
        schedule=org.schedule,
        lookback_days=org.lookback_days,
    )


def run_sync(runtime: Runtime, run_id: str) -> SyncOutcome:
    lease = timedelta(seconds=runtime.settings.run_lease_seconds)
    with runtime.db.transaction() as session:
        pending = session.get(Run, run_id)
        if pending is not None:
            _fail_lapsed_runs(session, pending.org_id, run_id, utcnow())
        claim = repo.claim_run(session, run_id, utcnow(), lease)
        if claim is None:
            return _not_claimed(session, run_id)
        run = repo.get_run(session, run_id)
        org = run.organisation
        session.expunge(org)
        trigger = run.trigger
        started_at = utcnow()

    heartbeat = _Heartbeat(runtime, claim, lease)
    heartbeat.start()
    try:
        outcome = _sync_claimed(runtime, claim, org, trigger, started_at, heartbeat)
    except ConnectorError as exc:
        heartbeat.stop()
        if exc.retryable:
            with runtime.db.transaction() as session:
                repo.release_for_retry(session, claim, utcnow(), f"attempt failed: {exc}")
            raise RetryableSyncError(str(exc)) from exc
        return _fail(runtime, claim, str(exc) + missing_api_path_hint(org, exc))
    except PtsyncError as exc:
        heartbeat.stop()
        return _fail(runtime, claim, str(exc))
    except BaseException:
        heartbeat.stop()
        with runtime.db.transaction() as session:
            repo.release_for_retry(session, claim, utcnow(), "attempt failed: internal error")
        raise
    heartbeat.stop()
    return outcome


def _not_claimed(session, run_id: str) -> SyncOutcome:
    run = session.get(Run, run_id)
    if run is None:
        log.warning("run %s does not exist; dropping the message", run_id)
        return SyncOutcome(run_id, "missing")
    if run.status in (repo.SUCCEEDED, repo.FAILED):
        return SyncOutcome(run_id, run.status)  # a redelivered message for a finished run
    now = utcnow()
    holder = run if run.status == repo.RUNNING else repo.running_run(session, run.org_id, run_id)
    if holder is not None and holder.lease_expires_at is not None:
        raise OrganisationBusy(max((holder.lease_expires_at - now).total_seconds(), 0.5))
    raise OrganisationBusy(1.0)


def _fail_lapsed_runs(session, org_id: int, run_id: str, now) -> None:
    """Older runs of this organisation whose worker vanished are closed: this run covers them."""
    other = repo.running_run(session, org_id, run_id)
    if other is not None and other.lease_expires_at is not None and other.lease_expires_at < now:
        repo.fail_unfinished_run(session, other.id, now, f"interrupted (worker lost); run {run_id} covers it")


def _fail(runtime: Runtime, claim: repo.Claim, reason: str) -> SyncOutcome:
    now = utcnow()
    with runtime.db.transaction() as session:
        if repo.finish_run(session, claim, repo.FAILED, now, error=reason, complete=False):
            repo.audit(session, claim.org_id, "worker", "sync_failed", now, run_id=claim.run_id, error=reason)
    log.warning("run %s failed: %s", claim.run_id, reason)
    return SyncOutcome(claim.run_id, repo.FAILED)


def _sync_claimed(
    runtime: Runtime, claim, org: Organisation, trigger: str, started_at, heartbeat
) -> SyncOutcome:
    policy = policy_of(org)
    as_of = started_at.date()
    window_start = as_of - timedelta(days=policy.lookback_days)
    with runtime.db.transaction() as session:
        cursors = repo.cursors_of(session, org.id)
        state = repo.pms_state_of(session, org.id)
    pms = pms_connector(org, runtime.secrets).pull(
        window_start=window_start,
        cursors=cursors,
        state=state,
        started_at=started_at,
        progress=heartbeat.progress,
    )
    read_at = utcnow()
    ptdirect = ptdirect_adapter(org, runtime.secrets).read()
    with runtime.db.transaction() as session:
        keys = repo.physitrack_keys_of(session, org.id)
    clients = physitrack_clients(org, runtime.secrets, keys)
    if clients is not None:
        ptdirect = replace(ptdirect, clients=clients)
    key = runtime.secrets.decrypt(org.pseudonym_key_encrypted)
    result = reconcile(pms.snapshot, ptdirect, policy, as_of=as_of, pseudonym_key=key)
    finished_at = utcnow()

    with runtime.db.transaction() as session:
        previous_run = repo.latest_report_run(session, org.id)
        previous = {}
        if previous_run is not None and previous_run.report:
            previous = {f["fingerprint"]: f for f in previous_run.report.get("findings", [])}
        proposal = None
        if result.operations:
            proposal = Proposal(
                id=new_id(),
                org_id=org.id,
                run_id=claim.run_id,
                status="proposed",
                state_digest=state_digest(ptdirect),
                planned_state=snapshot_document(replace(ptdirect, clients=None)),
                created_at=finished_at,
            )
            proposal.operations = [
                ProposalOperation(
                    position=position,
                    op=operation.op.value,
                    email=operation.email,
                    requires_approval=operation.requires_approval,
                    status="pending",
                    document=operation.as_dict(),
                )
                for position, operation in enumerate(result.operations)
            ]
        info = RunInfo(claim.run_id, trigger, repo.SUCCEEDED, iso(started_at), iso(finished_at))
        proposal_info = ProposalInfo(proposal.id, proposal.status, result.operations) if proposal else None
        report = build_report(org.slug, info, result, previous, proposal_info)
        counts: dict[str, Any] = {
            "practitioners": result.practitioner_count,
            "patients": result.patient_count,
            "access_rows": len(pms.snapshot.access),
            "findings": report["summary"]["findings"],
            "operations": len(result.operations),
            "picture": _sharing_picture(result, pms.snapshot),
            # Pre-fills the PT Direct page of `--ptdirect manual` (names and emails, no patients).
            "pms_practitioners": [[p.id, p.name, p.email, p.active] for p in pms.snapshot.practitioners],
        }
        if not repo.finish_run(
            session,
            claim,
            repo.SUCCEEDED,
            finished_at,
            report=report,
            counts=counts,
            complete=result.complete,
            error=None,
        ):
            session.rollback()
            log.warning("run %s lost its lease before finishing; another worker owns it", claim.run_id)
            return SyncOutcome(claim.run_id, "lease_lost")
        for finding in report["findings"]:
            session.add(
                FindingRecord(
                    run_id=claim.run_id,
                    org_id=org.id,
                    fingerprint=finding["fingerprint"],
                    kind=finding["kind"],
                    severity=finding["severity"],
                    state=finding["state"],
                    document=finding,
                )
            )
        if proposal is not None:
            session.add(proposal)
            session.flush()
            superseded = repo.supersede_open_proposals(session, org.id, by=proposal.id)
            repo.audit(
                session,
                org.id,
                "worker",
                "proposal_created",
                finished_at,
                proposal_id=proposal.id,
                operations=len(result.operations),
                superseded=superseded,
            )
        if result.complete:
            repo.store_cursors(session, org.id, pms.cursors, finished_at)
            if pms.state is not None:
                repo.store_pms_state(session, org.id, pms.state, finished_at)
        if ptdirect.complete:
            verify_applied(session, org.id, ptdirect, read_at)
        repo.audit(
            session,
            org.id,
            "worker",
            "sync_succeeded",
            finished_at,
            run_id=claim.run_id,
            findings=len(report["findings"]),
        )
    automatic = proposal is not None and any(not op.requires_approval for op in result.operations)
    return SyncOutcome(claim.run_id, repo.SUCCEEDED, proposal.id if automatic and proposal else None)


PICTURE_EDGES = 150


def _sharing_picture(result, snapshot) -> dict[str, Any]:
    """Who shares patients with whom (the busiest pairs, at-risk first), for the report page."""
    pairs = sorted(result.shared_pairs, key=lambda p: (not p.at_risk, -p.shared_patients, p.first, p.second))
    edges = [[p.first, p.second, p.shared_patients, p.at_risk] for p in pairs[:PICTURE_EDGES]]
    names = {practitioner.id: practitioner.name for practitioner in snapshot.practitioners}
    nodes = sorted({pid for edge in edges for pid in edge[:2]})
    return {
        "nodes": [[pid, names.get(pid, pid)] for pid in nodes],
        "edges": edges,
        "total_pairs": len(result.shared_pairs),
    }


class _Heartbeat:
    """Renews the run's lease while a sync works, and records how far the pull has got."""

    def __init__(self, runtime: Runtime, claim: repo.Claim, lease: timedelta) -> None:
        self._runtime = runtime
        self._claim = claim
        self._lease = lease
        self._stop = threading.Event()
        self._progress: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._beat, name=f"lease-{claim.run_id[:8]}", daemon=True)

    def progress(self, resource: str, rows: int) -> None:
        self._progress = {"progress": {"resource": resource, "rows": rows}}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        # Often enough for a live progress line in `ptsync sync --wait`; cheap (one UPDATE).
        interval = min(max(self._lease.total_seconds() / 3, 0.5), 2.0)
        while not self._stop.wait(interval):
            try:
                with self._runtime.db.transaction() as session:
                    if not repo.renew_lease(session, self._claim, utcnow(), self._lease, self._progress):
                        log.warning("run %s: lease lost", self._claim.run_id)
                        return
            except Exception:  # the database blinked; the next beat tries again
                log.exception("run %s: could not renew the lease", self._claim.run_id)


def fail_after_retries(runtime: Runtime, run_id: str, reason: str) -> None:
    now = utcnow()
    with runtime.db.transaction() as session:
        run = session.get(Run, run_id)
        last = (run.error or "").removeprefix("attempt failed: ") if run else ""
        message = f"gave up after retries: {last or reason}"
        if repo.fail_unfinished_run(session, run_id, now, message) and run is not None:
            repo.audit(session, run.org_id, "worker", "sync_failed", now, run_id=run_id, error=message)
