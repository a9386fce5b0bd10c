"""Polls (and webhook runs) that find nothing changed: record the check, keep the report.

A scheduled incremental poll (README "Polls and the full sync") reads only what changed since
the cursor. When everything the reconcile depends on is exactly what the latest report was built
from, the reconcile (a pure function) would decide exactly the same again, so the poll does not
rebuild or rewrite the report: it closes its run as succeeded with `counts.unchanged_since` (so
staleness and health stay honest), advances the cursors, and rewrites the connector state only
if it differs. "Exactly" is a digest of every input: the PMS snapshot, the PT Direct snapshot
(and client lists), the policy, the run's date in the clinic's time zone, what the baseline
decides, the pseudonym key and the time zone. The reconcile reads the baseline (the roster of the
last trusted run) only to detect a drop of practitioners (`sharing.detect_drop`), so the digest
holds the drop it finds (none, or who was lost and whether an admin accepted it), not the roster:
a new roster that changes no drop, such as the first run's after a run with no baseline at all,
changes nothing the reconcile decides.

A poll and a webhook-triggered run take this path (`may_keep_report`); a full sync or a sync a
person asked for always reconciles and writes a report. An incomplete read never takes it (and
stores no cursors), nor a run while an applied proposal waits to be verified against PT Direct.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from sharing import PmsSnapshot, PtDirectSnapshot
from sharing.context import Drop
from worker.store import repositories as repo
from worker.store.models import Run

POLL_TRIGGER = "schedule:tick"
"""What the clock's incremental poll is called on its run (source "schedule", event "tick")."""


WEBHOOK_SOURCES = ("physitrack", "fhir", "generic", "halaxy")
"""Where a webhook-triggered run's trigger comes from (`source:event`, services/deliveries.py)."""


def is_poll(trigger: str, full_pull: bool) -> bool:
    return trigger == POLL_TRIGGER and not full_pull


def may_keep_report(trigger: str, full_pull: bool) -> bool:
    """Whether a run whose inputs are the latest report's may keep that report: the clock's poll
    and a webhook-triggered run (nobody waits on a new report; an event that changed nothing the
    reconcile reads, a Physitrack `client_updated` about a field ptsync ignores, say, leaves the
    report as it is). A full sync and a sync a person asked for always write one."""
    return is_poll(trigger, full_pull) or (not full_pull and trigger.split(":", 1)[0] in WEBHOOK_SOURCES)


def request_run(
    session: Session,
    org: repo.OrgRef,
    trigger: str,
    actor: str,
    now: datetime,
    *,
    full: bool = False,
    queued: Run | None = repo.LOOK,
    **detail: Any,
) -> tuple[Run, bool]:
    """`repo.request_run` with what `trigger` needs: a report even if nothing changed unless it
    may keep one, and an audit entry unless it is the clock's incremental poll (every 2 minutes
    by default: 720 entries a day per organisation that retention never deletes)."""
    needs = repo.Needs(full_pull=full, report=not may_keep_report(trigger, full))
    return repo.request_run(
        session, org, trigger, actor, now, needs, audited=not is_poll(trigger, full), queued=queued, **detail
    )


def input_digest(
    pms: PmsSnapshot,
    ptdirect: PtDirectSnapshot,
    *,
    policy: dict[str, Any],
    as_of: date,
    drop: Drop | None,
    pseudonym_key: bytes,
    timezone: str,
) -> str:
    """A SHA-256 of everything a run's reconcile and report depend on (see the module doc)."""
    digest = hashlib.sha256()

    def text(value: Any) -> None:
        encoded = value if isinstance(value, bytes) else str(value).encode()
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)

    access = pms.access
    text(pms.system)
    text(pms.complete)
    text(repr(pms.practitioners))
    text(repr(pms.access_groups))
    text("\0".join(access.practitioner_ids))
    text("\0".join(access.patient_ids))
    columns = (access.practitioner_codes, access.patient_codes, access.sources, access.statuses, access.days)
    for column in columns:
        text(column.tobytes())
    text(repr(ptdirect))
    text(json.dumps(policy, sort_keys=True))
    text(as_of.isoformat())
    text("none" if drop is None else repr(drop))
    text(hashlib.sha256(pseudonym_key).hexdigest())
    text(timezone)
    return digest.hexdigest()


@dataclass(frozen=True)
class ReportSummary:
    """The latest report's run, without its report or counts (they can be megabytes): what a
    run reads of it before it pulls (`worker.store.run_memory`)."""

    id: str
    policy: dict[str, Any] | None
    digest: str | None


def nothing_changed(
    session: Session, org_id: int, digest: str, previous: str | None, complete: bool, read_at: datetime
) -> bool:
    """Whether a poll may keep the latest report: same inputs, a complete read, nothing to verify."""
    return (
        complete
        and previous is not None
        and digest == previous
        and not repo.any_unverified_applied_proposal(session, org_id, before=read_at)
    )


def save_checked(
    session: Session,
    claim: repo.Claim,
    now: datetime,
    *,
    digest: str,
    report_run_id: str,
    access_rows: int,
    cursors: dict[str, str],
    state: dict[str, Any] | None,
    stored_state: dict[str, Any] | None,
    box,
) -> bool:
    """Close the poll's run as succeeded without a report. False: the lease was lost.

    The cursors and the connector state move on together, and only when the state changed:
    while it did not, the stored cursors still point at rows the stored state holds (the next
    poll re-reads a few rows, never misses one), and the store writes nothing it already has.
    """
    if not repo.finish_run(
        session,
        claim,
        repo.SUCCEEDED,
        now,
        counts={"unchanged_since": report_run_id, "input_digest": digest, "access_rows": access_rows},
        complete=True,
        error=None,
    ):
        return False
    if state is None or not same_state(state, stored_state):
        repo.store_cursors(session, claim.org_id, cursors, now)
        if state is not None:
            repo.store_pms_state(session, claim.org_id, state, now, box)
    return True


def same_state(new: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """Whether a connector's new state holds what the stored one does (rows read again in this
    run are tuples, stored rows came back from JSON as lists: equal when their items are)."""
    if stored is None or new.keys() != stored.keys():
        return False
    for key, value in new.items():
        old = stored[key]
        if value == old:
            continue
        if not isinstance(value, dict) or not isinstance(old, dict) or value.keys() != old.keys():
            return False
        for row_id, row in value.items():
            previous = old[row_id]
            if row != previous and not (isinstance(row, tuple) and list(row) == previous):
                return False
    return True
