"""One PMS read per PMS account per sync round, shared by the organisations on it (clinic groups).

Several organisations on one PMS key (one per PT Direct account of a group) would otherwise each
read the whole account. A run first looks for a read of the same account that *started after
this run was requested*: such a read is at least as current as a read of its own would have been
(a sync round: the clock requests every organisation's run, the first to start reads, the others
use its read). Else it reads under a lock per account (so runs on several workers do not read at
once) and stores the read for the others.

What a shared read keeps and does not weaken:
- it is the whole account, unscoped; each run applies its own scope (`sharing.scope`);
- an incomplete read is incomplete for every organisation that uses it (its `complete` flag
  travels with it), so none of them proposes removals from it;
- a read is used only when it covers the run's lookback window (it started on or before the
  run's window start) and, for a location scope, when it read locations;
- each run stores the read's cursors and connector state as its own, which is correct because
  the state is the account's rows up to the cursors, whoever read them;
- it is used only when another organisation on the account has a run queued or running (or a
  read is stored and not expired), so a lone manual sync reads as before, without a lock or a
  stored copy; `PTSYNC_SHARED_PMS_READS=false` turns sharing off (every organisation reads the
  account itself);
- it is stored encrypted (like the connector state) in `shared_pulls`, one row per account,
  used for `SHARED_PULL_MINUTES`, then deleted by a sync of any organisation within the next
  `EXPIRED_CHECK_SECONDS` (or the daily prune, at the latest), and with the organisation whose
  run read it. Only accounts with more than one active organisation are stored at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, update
from sqlalchemy.orm import Session

from connectors.base import PmsConnector, PmsPull, Progress
from sharing import AccessGroup, AccessLog, PmsLocation, PmsPractitioner, PmsSnapshot
from worker.clock import utcnow
from worker.runtime import Runtime
from worker.services.pms_account import account_key
from worker.store.models import Organisation, SharedPull

log = logging.getLogger(__name__)

SHARED_PULL_MINUTES = 15
LOCK_SECONDS = 30 * 60
"""How long one read may hold an account's lock, and how long another run waits for it (after
that it reads the account itself: a missed share costs requests, never correctness)."""
_locks: dict[str, threading.Lock] = {}
_registry = threading.Lock()


def account_to_ask(session: Session, runtime: Runtime, org: Organisation) -> str | None:
    """The PMS account key whose shared read this run may take part in, or None when reads are
    not shared (the setting). The run takes part when a read of the account is wanted, which
    the run's memory read answers in the same round trip (`run_memory.SharedReadQuestion`): a
    read of the account is stored (and not expired), or another active organisation on the
    account has a run queued or running (who could use this read, or is making one). Called in
    the transaction that claims the run, which it also makes delete expired reads, at most once
    a minute per process (`_delete_expired_now_and_then`).

    Organisations are found by their stored account fingerprint (`pms_account`, indexed), not by
    decrypting every organisation's key at every run: that grew with the fleet (2 ms per hundred
    organisations on one PMS, at every poll of each). `org add` and `org update` store the
    fingerprint and each run refreshes its own, so one is stale or missing only for an
    organisation that has not run since its settings changed outside them (or since the upgrade
    that added it): a stale match makes this run store a read nobody uses, a miss a read not
    shared. Which read a run uses is decided by its own, current key (`_cached`), never by a
    stored fingerprint.
    """
    now = utcnow()
    _delete_expired_now_and_then(session, now)
    key = account_key(org, runtime.secrets)
    if org.pms_account != key:
        session.execute(update(Organisation).where(Organisation.id == org.id).values(pms_account=key))
    return key if runtime.settings.shared_pms_reads else None


_SHARED = SharedPull.__table__  # Core statements on the table, on the session's connection


def pull(
    runtime: Runtime,
    org: Organisation,
    connector: PmsConnector,
    *,
    account: str | None,
    requested_at: datetime,
    window_start: date,
    cursors: dict[str, str],
    state: dict[str, Any] | None,
    started_at: datetime,
    progress: Progress | None,
) -> PmsPull:
    """The PMS read for this run: a shared one of this round, or a new one (shared if useful).
    `account`: the account whose read was wanted when the run was claimed (`account_to_ask`;
    None: read alone)."""

    def read() -> PmsPull:
        return connector.pull(
            window_start=window_start, cursors=cursors, state=state, started_at=started_at, progress=progress
        )

    if account is None:
        return read()
    needs_locations = bool(org.locations)
    with _account_lock(runtime, account):
        cached = _cached(runtime, account, requested_at, window_start, needs_locations)
        if cached is not None:
            log.info(
                "using the shared PMS read of this sync round (%d practitioners)",
                len(cached.snapshot.practitioners),
            )
            return cached
        fresh = read()
        _store(runtime, account, org.id, started_at, window_start, fresh)
        return fresh


def forget_expired(runtime: Runtime) -> int:
    """Delete shared reads past their time: the daily prune (syncs do too, now and then)."""
    with runtime.db.transaction() as session:
        return _delete_expired(session)


def _delete_expired(session: Session, now: datetime | None = None) -> int:
    return session.connection().execute(_DELETE_EXPIRED, {"now": now or utcnow()}).rowcount or 0


EXPIRED_CHECK_SECONDS = 60.0
"""How often a worker process's runs delete expired shared reads: every run did (a DELETE
statement per run, nearly always deleting nothing), while a read expires every 15 minutes at
most once per account. An expired read is never used meanwhile (`_cached`, `run_memory`)."""
_expired_checked_at = [float("-inf")]
"""When this process last deleted expired reads (`time.monotonic()`)."""


def _delete_expired_now_and_then(session: Session, now: datetime) -> int:
    checked = time.monotonic()
    if checked - _expired_checked_at[0] < EXPIRED_CHECK_SECONDS:
        return 0
    _expired_checked_at[0] = checked  # two threads at once both delete: harmless
    return _delete_expired(session, now)


_DELETE_EXPIRED = delete(_SHARED).where(_SHARED.c.expires_at <= bindparam("now"))


@contextmanager
def _account_lock(runtime: Runtime, key: str) -> Iterator[None]:
    """One reader per account at a time: across worker processes through Redis when workers run
    on Redis, else within this process."""
    url = runtime.settings.broker_url
    if url and url.startswith("redis"):
        from redis.exceptions import LockError

        from worker.connections import _redis

        lock = _redis(url).lock(f"ptsync:pms-read:{key}", timeout=LOCK_SECONDS)
        held = lock.acquire(blocking_timeout=LOCK_SECONDS)  # else read anyway: sharing is an economy
        try:
            yield
        finally:
            if held:
                with contextlib.suppress(LockError):  # a read longer than the lock let it lapse
                    lock.release()
        return
    with _registry:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        yield


def _cached(
    runtime: Runtime, key: str, requested_at: datetime, window_start: date, needs_locations: bool
) -> PmsPull | None:
    now = utcnow()
    with runtime.db.transaction() as session:
        row = session.get(SharedPull, key)
        if row is None or row.expires_at <= now or row.started_at < requested_at:
            return None
        if row.window_start > window_start.isoformat():
            return None  # it read a shorter window than this organisation looks back
        data = row.data
    pulled = _decode(runtime, data)
    if needs_locations and pulled.snapshot.locations is None:
        return None
    return pulled


def _store(
    runtime: Runtime, key: str, org_id: int, started_at: datetime, window_start: date, pulled: PmsPull
) -> None:
    now = utcnow()
    data = _encode(runtime, pulled)
    with runtime.db.transaction() as session:
        row = session.get(SharedPull, key)
        if row is None:
            row = SharedPull(key=key)
            session.add(row)
        row.org_id = org_id
        row.started_at = started_at
        row.window_start = window_start.isoformat()
        row.expires_at = now + timedelta(minutes=SHARED_PULL_MINUTES)
        row.data = data


def _encode(runtime: Runtime, pulled: PmsPull) -> bytes:
    snapshot = pulled.snapshot
    access = snapshot.access
    document = {
        "system": snapshot.system,
        "complete": snapshot.complete,
        "practitioners": [
            [p.id, p.name, p.email, p.active, p.role, p.updated_at, list(p.locations)]
            for p in snapshot.practitioners
        ],
        "locations": None
        if snapshot.locations is None
        else [[loc.id, loc.name, loc.archived] for loc in snapshot.locations],
        "access_groups": [[g.id, g.name, list(g.practitioner_ids)] for g in snapshot.access_groups],
        "access": {
            "practitioner_ids": list(access.practitioner_ids),
            "patient_ids": list(access.patient_ids),
            "location_ids": list(access.location_ids),
            **{name: getattr(access, name).tolist() for name in _COLUMNS},
        },
        "cursors": pulled.cursors,
        "state": pulled.state,
    }
    packed = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)
    return runtime.secrets.encrypt(packed).encode("ascii")


_COLUMNS = ("practitioner_codes", "patient_codes", "sources", "statuses", "days", "location_codes")


def _decode(runtime: Runtime, data: bytes) -> PmsPull:
    document = json.loads(zlib.decompress(runtime.secrets.decrypt(bytes(data).decode("ascii"))))
    access = document["access"]
    columns = [np.array(access[name]) for name in _COLUMNS]
    rows = AccessLog(
        access["practitioner_ids"], access["patient_ids"], *columns[:5], access["location_ids"], columns[5]
    )
    snapshot = PmsSnapshot(
        document["system"],
        tuple(
            PmsPractitioner(pid, name, email, active, role, updated, tuple(locations))
            for pid, name, email, active, role, updated, locations in document["practitioners"]
        ),
        rows,
        tuple(AccessGroup(gid, name, tuple(ids)) for gid, name, ids in document["access_groups"]),
        document["complete"],
        None
        if document["locations"] is None
        else tuple(PmsLocation(lid, name, archived) for lid, name, archived in document["locations"]),
    )
    return PmsPull(snapshot, document["cursors"], document["state"])
