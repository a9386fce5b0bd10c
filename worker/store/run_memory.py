"""What a run reads from the store before it pulls, in one statement.

Every run (a webhook's, a poll's, the nightly full sync) starts by reading what the previous
runs left: the PMS cursors, the connector's state, the practitioners' Physitrack keys, the
baseline roster and the latest report's run, and whether a read of its PMS account is worth
sharing (services/shared_pull.py). As six statements these were six round trips to the
database, a third of a run that finds nothing changed, and the database's own work for each is
a single index lookup. Here they are one `UNION ALL` of tagged rows: each branch reads one of
them, and every row says which by its first column (`part`).

The columns are shared by all branches, so each branch fills the ones it has and leaves the
others NULL, cast to the column's type (PostgreSQL types a union's columns from its first
branch, and SQLAlchemy reads every row through the first branch's types: the JSON columns are
decoded as JSON, the state as bytes). A branch with ORDER BY and LIMIT reads from a subquery:
SQLite takes ORDER BY and LIMIT only at the end of a whole compound statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    LargeBinary,
    Text,
    bindparam,
    cast,
    exists,
    literal_column,
    null,
    or_,
    select,
    union_all,
)

from worker.store import repositories as repo
from worker.store.models import Organisation, PhysitrackKey, PmsState, Run, SharedPull, SyncCursor

_RUNS = Run.__table__
_ORGS = Organisation.__table__
_SHARED = SharedPull.__table__
_CURSORS = SyncCursor.__table__
_KEYS = PhysitrackKey.__table__
_STATE = PmsState.__table__


@dataclass(frozen=True)
class RunMemory:
    """What the organisation's earlier runs left for this one (see the module's docstring)."""

    cursors: dict[str, str]
    """PMS resource -> where its last read left off."""
    state_data: bytes | None
    """The connector's stored state, still encrypted (`repo.pms_state_of` decodes it)."""
    keys: dict[str, str]
    """Practitioner email -> encrypted Physitrack v2 key."""
    roster: list[str] | None
    """The active practitioners of the latest trusted complete run before this one; None when
    there is no such run (an empty list is a run that saw nobody)."""
    report_run: tuple[str, dict[str, Any] | None, str | None] | None
    """The latest report's run: (id, policy, input digest), or None when there is no report."""
    report: dict[str, Any] | None
    """That run's report, when asked for (`with_report`) and there is one."""
    read_wanted: bool = False
    """Asked about a PMS account (`shared`): a read of it is stored and not expired, or another
    active organisation on it has a run queued or running (who could use this run's read, or is
    making one). False when not asked."""


@dataclass(frozen=True)
class SharedReadQuestion:
    """The PMS account whose shared read the run may take part in, and the time of asking."""

    key: str
    pms_kind: str
    now: datetime


def _part(tag: str):
    return literal_column(f"'{tag}'", Text).label("part")


def _none(type_: Any):
    return cast(null(), type_)


_SIBLINGS = select(_ORGS.c.id).where(  # the other active organisations on the account
    _ORGS.c.pms_kind == bindparam("pms_kind"),
    _ORGS.c.pms_account == bindparam("key"),
    _ORGS.c.id != bindparam("org_id"),
    _ORGS.c.paused_at.is_(None),
)
_READ_WANTED = or_(
    exists().where(_SHARED.c.key == bindparam("key"), _SHARED.c.expires_at > bindparam("now")),
    # One EXISTS per status, each matching a partial index's condition (one queued and one
    # running run per organisation), with the status written into the SQL, not bound: a
    # prepared statement's generic plan cannot use a partial index for a bound value. A
    # sibling's runs are found by index, never by a scan of every organisation's runs.
    exists().where(_RUNS.c.org_id.in_(_SIBLINGS), _RUNS.c.status == literal_column("'queued'")),
    exists().where(_RUNS.c.org_id.in_(_SIBLINGS), _RUNS.c.status == literal_column("'running'")),
)

_BASELINE_ROSTER = (  # the roster only: not the run's report and counts (megabytes)
    select(_RUNS.c.roster)
    .where(
        _RUNS.c.org_id == bindparam("org_id"),
        _RUNS.c.status == repo.SUCCEEDED,
        _RUNS.c.complete.is_(True),  # an incomplete run's JSON null is no roster (see Run.roster)
        _RUNS.c.roster.is_not(None),
        _RUNS.c.id != bindparam("run_id"),
    )
    .order_by(_RUNS.c.finished_at.desc(), _RUNS.c.id.desc())
    .limit(1)
)


def _statement(with_report: bool, shared: bool):
    org_id = bindparam("org_id")
    cursors = select(
        _part("cursor"),
        _CURSORS.c.resource.label("name"),
        _CURSORS.c.cursor.label("value"),
        _none(LargeBinary).label("data"),
        _none(JSON).label("document"),
        _none(JSON).label("report"),
    ).where(_CURSORS.c.org_id == org_id)
    keys = select(
        _part("key"),
        _KEYS.c.practitioner_email,
        _KEYS.c.key_encrypted,
        _none(LargeBinary),
        _none(JSON),
        _none(JSON),
    ).where(_KEYS.c.org_id == org_id)
    state = select(_part("state"), _none(Text), _none(Text), _STATE.c.data, _none(JSON), _none(JSON)).where(
        _STATE.c.org_id == org_id
    )
    baseline_run = _BASELINE_ROSTER.subquery()
    baseline = select(
        _part("baseline"), _none(Text), _none(Text), _none(LargeBinary), baseline_run.c.roster, _none(JSON)
    )
    report_run = repo.latest_report_query(  # the partial index `runs_with_report` answers it
        _RUNS.c.id,
        _RUNS.c.policy,
        _RUNS.c.counts["input_digest"].as_string().label("digest"),
        *([_RUNS.c.report] if with_report else []),
    ).subquery()
    report = select(
        _part("report"),
        report_run.c.id,
        report_run.c.digest,
        _none(LargeBinary),
        report_run.c.policy,
        report_run.c.report if with_report else _none(JSON),
    )
    parts = [cursors, keys, state, baseline, report]
    if shared:
        parts.append(
            select(
                _part("wanted"), _none(Text), _none(Text), _none(LargeBinary), _none(JSON), _none(JSON)
            ).where(_READ_WANTED)
        )
    return union_all(*parts)


_STATEMENTS = {
    (with_report, shared): _statement(with_report, shared)
    for with_report in (False, True)
    for shared in (False, True)
}
"""Built once each: every run executes one, and building it cost about as much as running it."""


def run_memory(
    connection, org_id: int, run_id: str, *, with_report: bool, shared: SharedReadQuestion | None = None
) -> RunMemory:
    """What the organisation's earlier runs left for run `run_id`, in one round trip.

    `with_report`: also the latest report itself (a run that will reconcile compares its
    findings with it); a run that may keep the report unread leaves it (it can be megabytes).
    `shared`: also whether a read of that PMS account is wanted (`RunMemory.read_wanted`).
    """
    cursors: dict[str, str] = {}
    keys: dict[str, str] = {}
    state_data = roster = report_run = report = None
    read_wanted = False
    values: dict[str, Any] = {"org_id": org_id, "run_id": run_id}
    if shared is not None:
        values |= {"key": shared.key, "pms_kind": shared.pms_kind, "now": shared.now}
    rows = connection.execute(_STATEMENTS[with_report, shared is not None], values)
    for part, name, value, data, document, report_document in rows:
        if part == "cursor":
            cursors[name] = value
        elif part == "key":
            keys[name] = value
        elif part == "state":
            state_data = None if data is None else bytes(data)
        elif part == "baseline":
            roster = list(document or ())
        elif part == "report":
            report_run = (name, document, value)
            report = report_document
        else:
            read_wanted = True
    return RunMemory(cursors, state_data, keys, roster, report_run, report, read_wanted)


__all__ = ["RunMemory", "SharedReadQuestion", "run_memory"]
