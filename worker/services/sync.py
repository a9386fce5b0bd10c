"""Requesting and running a sync: pull, reconcile (pure), store the outcome atomically.

A run is claimed with a lease that its heartbeat renews (services/heartbeat.py). If the worker
dies, the lease lapses and the redelivered message takes the run over; if the old worker was
only slow, its final commit finds the lease gone and changes nothing. So a run completes
exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import PmsPull
from connectors.errors import ConnectorError
from connectors.ptdirect_file import snapshot_document
from sharing import (
    Baseline,
    MasterRecipients,
    Mode,
    Operation,
    PmsSnapshot,
    Policy,
    ProposalInfo,
    PtDirectSnapshot,
    Reconciliation,
    RunInfo,
    SharingScope,
    build_report,
    reconcile,
    state_digest,
)
from sharing.context import detect_drop
from worker import logs, metrics
from worker.clock import iso, utcnow
from worker.connections import (
    missing_api_path_hint,
    physitrack_clients,
    pms_connector,
    ptdirect_adapter,
)
from worker.errors import Conflict, InvalidInput, PtsyncError, Retryable
from worker.lifecycle import failed_attempt
from worker.runtime import Runtime
from worker.services import notify_delivery, notify_events, org_scope, poll, shared_pull
from worker.services.heartbeat import Heartbeat, RunTakenOver
from worker.services.proposals import verify_applied
from worker.services.settle import (
    NewPlan,
    cleared_to_apply,
    policy_digest,
    policy_document,
    policy_of,
    settle,
)
from worker.store import repositories as repo
from worker.store.models import Organisation, Proposal, Run
from worker.store.run_memory import SharedReadQuestion, run_memory

log = logging.getLogger(__name__)


class OrganisationBusy(Conflict):
    """Another run of the organisation holds the lease; try again after `delay_seconds`."""

    def __init__(self, delay_seconds: float) -> None:
        super().__init__(f"organisation busy; retry in {delay_seconds:.1f}s", delay_seconds)


class OrganisationPaused(InvalidInput):
    """A paused organisation is not synced: not by the clock, webhooks or a person."""

    def __init__(self, message: str, slug: str) -> None:
        super().__init__(message)
        self.slug = slug


class RetryableSyncError(Retryable):
    """A transient failure; the job layer retries the whole sync."""


@dataclass(frozen=True)
class SyncOutcome:
    run_id: str
    status: str
    auto_apply_proposal: str | None = None
    finished_now: bool = True
    """False when the message found the run already finished (a redelivered or postponed
    message): what follows a run (counting it, starting the next) was done by the one that ran it."""
    after: AfterRun | None = None
    """What follows the run (`after_run`), read by the transaction that finished it, after its
    closing UPDATE: one transaction fewer per run. None: ask `after_run`."""


def request_sync(
    runtime: Runtime,
    slug: str,
    trigger: str,
    *,
    accept_drop: bool = False,
    audit_token: tuple[str, int] | None = None,
) -> tuple[str, bool]:
    """Queue a run for the organisation, or join the one already queued. Returns (run id, new).

    `accept_drop`: the admin confirms that practitioners missing from the PMS really left, so
    this run may treat them as departed even though the read lost many people at once.
    `audit_token`: (origin, token id) of the admin token that asked, named in the audit log as
    the audit trail names tokens (`api:token N "LABEL"`); otherwise the trigger is the actor.
    """
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        if org.paused_at is not None:
            raise OrganisationPaused(
                f"organisation {slug} is paused (since {iso(org.paused_at)}): nothing is synced until "
                "it is resumed",
                slug,
            )
        who = trigger
        if audit_token is not None:
            from worker.services.audit import token_actor

            who = token_actor(session, *audit_token)
        run, created = poll.request_run(session, org, trigger, who, now)
        if accept_drop and not run.accept_drop:
            run.accept_drop = True
            repo.audit(session, run.org_id, who, "pms_drop_accepted", now, run_id=run.id)
        return run.id, created


@dataclass(frozen=True)
class _Claimed:
    """A run this worker holds, with what it read in the claiming transaction."""

    claim: repo.Claim
    org: Organisation
    trigger: str
    full: bool
    may_keep: bool
    started_at: datetime
    stored: _Stored | PtsyncError
    """A stored secret or state it could not read: the claim still commits, and the run fails
    (or is retried) like any other error."""


def run_sync(runtime: Runtime, run_id: str) -> SyncOutcome:
    lease = timedelta(seconds=runtime.settings.run_lease_seconds)
    try:
        claimed = _claim_and_read(runtime, run_id, lease, savepoint=False)
    except IntegrityError:
        # Another run of this organisation is running (or was, and its worker vanished): that
        # transaction is lost, so claim again where a refusal leaves the transaction usable.
        claimed = _claim_and_read(runtime, run_id, lease, savepoint=True)
    if isinstance(claimed, SyncOutcome):
        return claimed
    claim, org = claimed.claim, claimed.org

    heartbeat = Heartbeat(runtime, claim, lease)
    heartbeat.start()
    try:
        stored = claimed.stored
        if isinstance(stored, PtsyncError):
            raise stored
        outcome = _sync_claimed(
            runtime,
            claim,
            org,
            claimed.trigger,
            claimed.started_at,
            heartbeat,
            stored,
            claimed.full,
            claimed.may_keep,
        )
    except RunTakenOver:
        heartbeat.stop()
        log.warning("run %s was taken over by another worker; this attempt stopped", run_id)
        return SyncOutcome(run_id, "lease_lost")
    except PtsyncError as exc:
        heartbeat.stop()
        if isinstance(exc, Retryable):
            with runtime.db.transaction() as session:
                repo.release_for_retry(session, claim, utcnow(), str(exc))
            raise RetryableSyncError(str(exc)) from exc
        hint = missing_api_path_hint(org, exc) if isinstance(exc, ConnectorError) else ""
        return _fail(runtime, claim, str(exc) + hint)
    except BaseException:
        heartbeat.stop()
        with runtime.db.transaction() as session:
            repo.release_for_retry(session, claim, utcnow(), "internal error")
        raise
    heartbeat.stop()
    return outcome


def _claim_and_read(
    runtime: Runtime, run_id: str, lease: timedelta, *, savepoint: bool
) -> _Claimed | SyncOutcome:
    """One transaction claims the run and reads what the run keeps between runs (cursors,
    connector state, baseline, the latest report's digest): a poll is mostly this overhead.

    `savepoint=False`: a claim refused by another running run raises IntegrityError (see
    `repo.claim_and_read_run`); the caller then comes back with `savepoint=True`, which also closes an
    earlier run whose worker vanished, in the same transaction as the claim that follows it.
    """
    with runtime.db.transaction() as session:
        # The second attempt locks the run's row first (PostgreSQL; SQLite has one writer):
        # two workers given the same run, each closing the lapsed run and claiming this one,
        # otherwise each waited for the other (one's claim on this row, the other's on the
        # one-running-run index entry of the run it closed) until PostgreSQL aborted one.
        # The first attempt reads nothing before its claim: `claim_and_read_run` reads it after.
        pending = session.get(Run, run_id, with_for_update={"of": Run}) if savepoint else None
        claimed = repo.claim_and_read_run(session, run_id, utcnow(), lease, savepoint=savepoint)
        if (
            claimed is None
            and savepoint
            and pending is not None
            and _fail_lapsed_runs(session, pending.org_id, run_id, utcnow())
        ):
            claimed = repo.claim_and_read_run(session, run_id, utcnow(), lease)
        if claimed is None:
            return _not_claimed(session, run_id)
        claim, run = claimed
        org = run.organisation
        may_keep = _may_keep_report(run)
        started_at = utcnow()
        try:
            stored: _Stored | PtsyncError = _read_stored(session, runtime, org, run, with_report=not may_keep)
        except PtsyncError as exc:
            stored = exc
        return _Claimed(claim, org, run.trigger, bool(run.full_pull), may_keep, started_at, stored)


def _may_keep_report(run: repo.ClaimedRun) -> bool:
    """A poll or a webhook's run may keep an unchanged report, unless a request it serves (a
    person's sync, a re-plan that joined it) needs a new one."""
    return poll.may_keep_report(run.trigger, bool(run.full_pull)) and not run.report_required


def _not_claimed(session, run_id: str) -> SyncOutcome:
    # Read again (not the session's copy from before the claim): what another worker did to the
    # run since (claimed it, finished it) decides the answer.
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        log.warning("run %s does not exist; dropping the message", run_id)
        return SyncOutcome(run_id, "missing")
    if run.status in (repo.SUCCEEDED, repo.FAILED):
        return SyncOutcome(run_id, run.status, finished_now=False)  # a redelivered message
    now = utcnow()
    holder = run if run.status == repo.RUNNING else repo.running_run(session, run.org_id, run_id)
    if holder is not None and holder.lease_expires_at is not None:
        raise OrganisationBusy(max((holder.lease_expires_at - now).total_seconds(), 0.5))
    raise OrganisationBusy(1.0)


def _fail_lapsed_runs(session, org_id: int, run_id: str, now) -> bool:
    """An older run of this organisation whose worker vanished is closed: this run covers it.

    Asked only when the claim failed (one running run per organisation: a lapsed one blocks
    the claim); True when it closed one, so the claim is worth another try.
    """
    other = repo.running_run(session, org_id, run_id)
    if other is not None and other.lease_expires_at is not None and other.lease_expires_at < now:
        return repo.fail_unfinished_run(
            session, other.id, now, f"interrupted (worker lost); run {run_id} covers it", lapsed_only=True
        )
    return False


def _fail(runtime: Runtime, claim: repo.Claim, reason: str) -> SyncOutcome:
    now = utcnow()
    after = None
    with runtime.db.transaction() as session:
        if repo.finish_run(session, claim, repo.FAILED, now, error=reason, complete=False):
            repo.audit(session, claim.org_id, "worker", "sync_failed", now, run_id=claim.run_id, error=reason)
            after = _after_run_in(session, claim.run_id)
    log.warning("run %s failed: %s", claim.run_id, reason)
    return SyncOutcome(claim.run_id, repo.FAILED, after=after)


@dataclass(frozen=True)
class _Inputs:
    """Everything a run read, before deciding anything."""

    pms: PmsPull
    ptdirect: PtDirectSnapshot
    read_at: datetime
    baseline: Baseline | None
    previous_report: dict[str, Any] | None
    previous: poll.ReportSummary | None
    """The latest report's run (its id, policy and input digest)."""
    account: PmsSnapshot | None = None
    """The whole PMS account's read, before the organisation's scope (clinic groups)."""
    stored_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Decision:
    result: Reconciliation
    policy: Policy
    policy_only: frozenset[str]
    """Fingerprints that vanished only because the policy changed (not resolved)."""


def _sync_claimed(
    runtime: Runtime,
    claim: repo.Claim,
    org: Organisation,
    trigger: str,
    started_at: datetime,
    heartbeat: Heartbeat,
    stored: _Stored,
    full: bool = False,
    may_keep: bool = False,
) -> SyncOutcome:
    """Pull, reconcile (pure), save: the three steps of every run (a poll or a webhook's run that
    finds nothing changed stops after the pull: services/poll.py)."""
    inputs = _pull(runtime, claim, org, started_at, heartbeat, stored, full)
    heartbeat.check()
    digest = _input_digest(runtime, org, inputs, started_at)
    if may_keep:
        checked = _save_if_unchanged(runtime, claim, inputs, digest, heartbeat)
        if checked is not None:
            return checked
        inputs = _with_previous_report(runtime, inputs)  # not read yet: it may not have been needed
    decision = _reconcile(runtime, org, inputs, started_at)
    heartbeat.check()
    heartbeat.finishing()
    return _save(runtime, claim, org, trigger, started_at, inputs, decision, digest)


def _input_digest(runtime: Runtime, org: Organisation, inputs: _Inputs, started_at: datetime) -> str:
    policy = policy_of(org)
    return poll.input_digest(
        inputs.pms.snapshot,
        inputs.ptdirect,
        policy=policy_document(policy),
        as_of=_as_of(org, started_at),
        drop=detect_drop(inputs.pms.snapshot, policy, inputs.baseline),  # all `_reconcile` reads of it
        pseudonym_key=runtime.secrets.decrypt(org.pseudonym_key_encrypted),
        timezone=org.timezone or "UTC",
    )


def _with_previous_report(runtime: Runtime, inputs: _Inputs) -> _Inputs:
    if inputs.previous is None:
        return inputs
    with runtime.db.transaction() as session:
        report = session.scalar(select(Run.report).where(Run.id == inputs.previous.id))
    return replace(inputs, previous_report=report)


def _save_if_unchanged(
    runtime: Runtime, claim: repo.Claim, inputs: _Inputs, digest: str, heartbeat: Heartbeat
) -> SyncOutcome | None:
    """A poll or a webhook's run whose inputs are the latest report's: record the check, keep
    the report."""
    complete = inputs.pms.snapshot.complete and inputs.ptdirect.complete
    previous = inputs.previous
    with metrics.phase("store"), runtime.db.transaction() as session:
        if previous is None or not poll.nothing_changed(
            session, claim.org_id, digest, previous.digest, complete, inputs.read_at
        ):
            return None
        heartbeat.finishing()
        if not poll.save_checked(
            session,
            claim,
            utcnow(),
            digest=digest,
            report_run_id=previous.id,
            access_rows=len(inputs.pms.snapshot.access),
            cursors=inputs.pms.cursors,
            state=inputs.pms.state,
            stored_state=inputs.stored_state,
            box=runtime.secrets,
        ):
            session.rollback()
            return SyncOutcome(claim.run_id, "lease_lost")
        after = _after_run_in(session, claim.run_id)
    return SyncOutcome(claim.run_id, repo.SUCCEEDED, after=after)


@dataclass(frozen=True)
class _Stored:
    """What a run reads from the store before it pulls: where the last read left off, the
    baseline, and the latest report's run (its report only when the run will reconcile)."""

    cursors: dict[str, str]
    state: dict[str, Any] | None
    keys: dict[str, str]
    baseline: Baseline | None
    previous_run: poll.ReportSummary | None
    previous_report: dict[str, Any] | None
    requested_at: datetime
    shared_account: str | None
    """The PMS account whose read this run shares (services/shared_pull.py), or None."""


def _read_stored(
    session: Session, runtime: Runtime, org: Organisation, run: repo.ClaimedRun, *, with_report: bool
) -> _Stored:
    # Not the report itself (it can be megabytes): a poll that finds nothing changed never
    # reads it; `_with_previous_report` does when the run reconciles.
    account = shared_pull.account_to_ask(session, runtime, org)
    shared = None if account is None else SharedReadQuestion(account, org.pms_kind, utcnow())
    memory = run_memory(session.connection(), org.id, run.id, with_report=with_report, shared=shared)
    return _Stored(
        cursors=memory.cursors,
        state=repo.decode_pms_state(memory.state_data, runtime.secrets),
        keys=memory.keys,
        baseline=repo.baseline_from(memory.roster, bool(run.accept_drop)),
        previous_run=None if memory.report_run is None else poll.ReportSummary(*memory.report_run),
        previous_report=memory.report,
        # The newest request the run serves: a shared PMS read must have started after it.
        requested_at=run.read_after or run.requested_at,
        shared_account=account if memory.read_wanted else None,
    )


def _pull(
    runtime: Runtime,
    claim: repo.Claim,
    org: Organisation,
    started_at: datetime,
    heartbeat: Heartbeat,
    stored: _Stored,
    full: bool = False,
) -> _Inputs:
    policy = policy_of(org)
    logs.bind(org=org.slug, run_id=claim.run_id)
    window_start = _as_of(org, started_at) - timedelta(days=policy.lookback_days)
    with metrics.phase("pull"):
        pms = _read_pms(runtime, org, stored, window_start, started_at, heartbeat, full=full)
        account = pms.snapshot
        pms = org_scope.scoped(org, pms, window_start)
        read_at = utcnow()
        ptdirect = ptdirect_adapter(org, runtime.secrets).read()
        clients = physitrack_clients(org, runtime.secrets, stored.keys)
    if clients is not None:
        ptdirect = replace(ptdirect, clients=clients)
    return _Inputs(
        pms,
        ptdirect,
        read_at,
        stored.baseline,
        stored.previous_report,
        stored.previous_run,
        account,
        stored.state,
    )


def _read_pms(
    runtime: Runtime,
    org: Organisation,
    stored: _Stored,
    window_start: date,
    started_at: datetime,
    heartbeat: Heartbeat,
    *,
    full: bool,
):
    """The organisation's PMS read from where the last one left off: the full sync re-reads
    everything itself, never another run's shared read; any other run may share one read of the
    account (shared_pull)."""
    connector = pms_connector(org, runtime.secrets)
    if full:
        return connector.pull(
            window_start=window_start,
            cursors={},
            state=None,
            started_at=started_at,
            progress=heartbeat.progress,
        )
    return shared_pull.pull(
        runtime,
        org,
        connector,
        account=stored.shared_account,
        requested_at=stored.requested_at,
        window_start=window_start,
        cursors=stored.cursors,
        state=stored.state,
        started_at=started_at,
        progress=heartbeat.progress,
    )


def _as_of(org: Organisation, moment: datetime) -> date:
    """The run's date in the organisation's time zone (what "today" means to the clinic)."""
    return moment.astimezone(ZoneInfo(org.timezone or "UTC")).date()


def _reconcile(runtime: Runtime, org: Organisation, inputs: _Inputs, started_at: datetime) -> _Decision:
    policy = policy_of(org)
    key = runtime.secrets.decrypt(org.pseudonym_key_encrypted)
    as_of = _as_of(org, started_at)
    snapshot = inputs.pms.snapshot

    def run(rules: Policy, pms: PmsSnapshot = snapshot) -> Reconciliation:
        return reconcile(
            pms, inputs.ptdirect, rules, as_of=as_of, pseudonym_key=key, baseline=inputs.baseline
        )

    with metrics.phase("reconcile"):
        result = run(policy)
    policy_only: frozenset[str] = frozenset()
    previous_policy = inputs.previous.policy if inputs.previous is not None else None
    if previous_policy and previous_policy != policy_document(policy):
        # The same clinic under the previous policy: what vanished only because the rules changed
        # is not "resolved" (nobody fixed anything).
        earlier = run(_policy_from(previous_policy, policy))
        policy_only = frozenset(earlier.findings.fingerprints)  # no Finding made for them
    since = as_of - timedelta(days=policy.lookback_days)
    before = org_scope.previous_scope_view(org, inputs.previous_report, inputs.account, since)
    if before is not None:
        # The same account under the previous scope: findings left behind by a scope change are
        # not "resolved" either.
        policy_only |= frozenset(run(policy, before).findings.fingerprints)
    return _Decision(result, policy, policy_only)


def _policy_from(document: dict[str, Any], current: Policy) -> Policy:
    try:
        return replace(
            current,
            mode=Mode(document["mode"]),
            sharing_scope=SharingScope(document["sharing_scope"]),
            master_recipients=MasterRecipients(document["master_recipients"]),
            lookback_days=int(document["lookback_days"]),
        )
    except (KeyError, ValueError):
        return current


def _save(
    runtime: Runtime,
    claim: repo.Claim,
    org: Organisation,
    trigger: str,
    started_at: datetime,
    inputs: _Inputs,
    decision: _Decision,
    digest: str | None = None,
) -> SyncOutcome:
    """Store the run's outcome in one transaction, only while this worker holds the lease."""
    result = decision.result
    finished_at = utcnow()
    with metrics.phase("store"), runtime.db.transaction() as session:
        proposal = _settle(session, claim, org, inputs, decision, finished_at) if result.complete else None
        report = _report(org, claim, trigger, started_at, finished_at, inputs, decision, proposal)
        stored = repo.save_run_outcome(
            session,
            claim,
            repo.RunOutcome(
                finished_at=finished_at,
                report=report,
                counts=_counts(result, inputs, report) | {"input_digest": digest},
                complete=result.complete,
                roster=sorted(result.active_practitioners) if result.complete else None,
                plan=[[op.op.value, op.email] for op in result.operations] if result.complete else None,
                policy=policy_document(decision.policy),
                cursors=inputs.pms.cursors if result.complete else None,
                pms_state=inputs.pms.state if result.complete else None,
            ),
            runtime.secrets,
        )
        if not stored:
            session.rollback()
            log.warning("run %s lost its lease before finishing; another worker owns it", claim.run_id)
            return SyncOutcome(claim.run_id, "lease_lost")
        if inputs.ptdirect.complete:
            verify_applied(session, org.id, inputs.ptdirect, inputs.read_at)
        to_apply = proposal.id if proposal is not None and cleared_to_apply(proposal) else None
        notifications = notify_events.record_for_run(session, org, report, proposal)
        after = _after_run_in(session, claim.run_id)
    notify_delivery.dispatch(notifications)  # after commit: a rolled-back run announces nothing
    return SyncOutcome(claim.run_id, repo.SUCCEEDED, to_apply, after=after)


def _settle(
    session: Session,
    claim: repo.Claim,
    org: Organisation,
    inputs: _Inputs,
    decision: _Decision,
    now: datetime,
) -> Proposal | None:
    plan = NewPlan(
        org_id=claim.org_id,
        run_id=claim.run_id,
        operations=decision.result.operations,
        state_digest=state_digest(inputs.ptdirect),
        planned_state=snapshot_document(replace(inputs.ptdirect, clients=None)),
        policy_digest=policy_digest(decision.policy, org_scope.scope_of(org)),
    )
    return settle(session, plan, now)


def _report(
    org: Organisation,
    claim: repo.Claim,
    trigger: str,
    started_at: datetime,
    finished_at: datetime,
    inputs: _Inputs,
    decision: _Decision,
    proposal: Proposal | None,
) -> dict[str, Any]:
    previous = {f["fingerprint"]: f for f in (inputs.previous_report or {}).get("findings", [])}
    info = RunInfo(claim.run_id, trigger, repo.SUCCEEDED, iso(started_at), iso(finished_at))
    proposal_info = None
    if proposal is not None:
        operations = tuple(Operation.from_dict(row.document) for row in proposal.operations)
        proposal_info = ProposalInfo(proposal.id, proposal.status, operations)
    return build_report(
        org.slug,
        info,
        decision.result,
        previous,
        proposal_info,
        policy_only=decision.policy_only,
        timezone=org.timezone or "UTC",
        scope=org_scope.scope_document(org, inputs.pms.snapshot),
    )


def _counts(result: Reconciliation, inputs: _Inputs, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "practitioners": result.practitioner_count,
        "patients": result.patient_count,
        "access_rows": len(inputs.pms.snapshot.access),
        "findings": report["summary"]["findings"],
        "operations": len(result.operations),
        "suspicious": result.suspicious,
        "picture": _sharing_picture(result, inputs.pms.snapshot),
        # Pre-fills the PT Direct page of `--ptdirect manual` (names and emails, no patients).
        "pms_practitioners": [[p.id, p.name, p.email, p.active] for p in inputs.pms.snapshot.practitioners],
    }


def _sharing_picture(result, snapshot) -> dict[str, Any]:
    """Each practitioner's state and who shares patients with whom, for the page and HTML report."""
    from worker.picture import picture_document

    return picture_document(result.picture)


def fail_after_retries(runtime: Runtime, run_id: str, reason: str) -> None:
    now = utcnow()
    with runtime.db.transaction() as session:
        run = session.get(Run, run_id)
        last = failed_attempt(run) if run else None
        message = f"gave up after retries: {last or reason}"
        if repo.fail_unfinished_run(session, run_id, now, message) and run is not None:
            repo.audit(session, run.org_id, "worker", "sync_failed", now, run_id=run_id, error=message)


@dataclass(frozen=True)
class AfterRun:
    """What follows a finished run: its trigger (for the metrics) and the organisation's queued
    run, if one waits."""

    trigger: str | None
    queued_run: str | None


def after_run(runtime: Runtime, run_id: str) -> AfterRun:
    """The finished run's trigger and the queued run of its organisation, in one query.

    A run requested while this one worked had its message taken by a worker that found the
    organisation busy and postponed it until this run's lease would end (up to
    `run_lease_seconds`); sending it again now starts it as soon as a worker is free. The
    postponed message, when it comes, finds the run taken and does nothing.
    """
    with runtime.db.transaction() as session:
        return _after_run_in(session, run_id)


def _after_run_in(session: Session, run_id: str) -> AfterRun:
    """`after_run` inside a transaction. The one that finishes a run asks it after its closing
    UPDATE, so nothing falls between: a run queued before this read is named here, and a worker
    claiming one queued after it waits on that UPDATE's row (PostgreSQL's unique check on the
    running run; SQLite's one writer) and finds this run finished, not busy."""
    row = session.connection().execute(_AFTER_RUN, {"run_id": run_id}).first()
    return AfterRun(None, None) if row is None else AfterRun(row[0], row[1])


_RUNS = Run.__table__
_QUEUED = _RUNS.alias("queued")
_AFTER_RUN = (
    select(_RUNS.c.trigger, _QUEUED.c.id)
    .outerjoin(_QUEUED, and_(_QUEUED.c.org_id == _RUNS.c.org_id, _QUEUED.c.status == repo.QUEUED))
    .where(_RUNS.c.id == bindparam("run_id"))
)
"""Built once, Core (on the session's connection): every finished run asks it, and aliasing
`runs` anew each time cost more than the query (a proxy for each of its columns)."""


@dataclass(frozen=True)
class RunResult:
    """How a finished run went, in the terms its one-line summary uses."""

    status: str
    error: str | None
    findings: int
    operations: int
    applied_automatically: int
    suspicious: bool


def run_result(runtime: Runtime, run_id: str) -> RunResult:
    with runtime.db.transaction() as session:
        # Only the figures the summary line needs: a large clinic's report and counts (its
        # sharing picture) are megabytes.
        row = session.execute(
            select(
                Run.status,
                Run.error,
                Run.counts["findings"],
                Run.counts["operations"],
                Run.counts["suspicious"],
                Run.report["proposal"]["id"].as_string(),
            ).where(Run.id == run_id)
        ).first()
        if row is None:
            repo.get_run(session, run_id)  # raises NotFound with the usual message
        status, error, findings, operations, suspicious, proposal_id = row
        counts = {"findings": findings, "operations": operations, "suspicious": suspicious}
        proposal = session.get(Proposal, proposal_id) if proposal_id else None
        automatic = 0
        if proposal is not None:
            automatic = sum(
                1 for row in proposal.operations if row.status == "applied" and not row.requires_approval
            )
        return RunResult(
            status=status,
            error=error,
            findings=sum((counts.get("findings") or {}).values()),
            operations=int(counts.get("operations") or 0),
            applied_automatically=automatic,
            suspicious=bool(counts.get("suspicious")),
        )
