"""Lease heartbeats: the runs a worker process works on keep their leases while they work.

A run is claimed with a lease. While it works, its lease is renewed every third of the lease
(between 0.5 and 2 s): if the worker dies, renewals stop, the lease lapses and another worker
takes the run over. A renewal that finds the lease gone (another worker took the run over
after this one stalled) tells the run to stop at its next check.

One thread per process renews every run's lease, each when it falls due. A thread per run,
started and joined around every sync, cost about 0.4 ms of CPU per run on a 2-core machine:
a twentieth of a webhook's run that finds nothing changed. The keeper thread starts with the
first run of a process (a forked worker process starts its own) and waits on a condition
while no run is under way. Renewals run one after another (a worker's few threads: a few runs
at most, each one UPDATE), so each gives up after one interval: one run's renewal waiting on
a lock or a slow database must not hold the others' until their leases lapse (it is tried
again at its next beat).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from worker.clock import utcnow
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.db import short_statements

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 5.0
"""How long `Heartbeat.stop` waits for a renewal under way to end (a database that hangs)."""


class RunTakenOver(Exception):
    """This worker's lease on the run lapsed and another worker took the run over."""


class Heartbeat:
    """Renews one run's lease while it works, and records how far its pull has got."""

    def __init__(self, runtime: Runtime, claim: repo.Claim, lease: timedelta) -> None:
        self._runtime = runtime
        self._claim = claim
        self._lease = lease
        # Often enough for a live progress line in `ptsync sync --wait`; cheap (one UPDATE).
        self.interval = min(max(lease.total_seconds() / 3, 0.5), 2.0)
        self._timeout_ms = int(self.interval * 1000)
        self._lost = threading.Event()
        self._progress: dict[str, Any] | None = None
        self._renewing = threading.Lock()
        self._stopped = False
        self._finishing = False

    def progress(self, resource: str, rows: int) -> None:
        self.check()
        self._progress = {"progress": {"resource": resource, "rows": rows}}

    def check(self) -> None:
        """Stop working on a run another worker has taken over (its lease lapsed while we worked)."""
        if self._lost.is_set():
            raise RunTakenOver(self._claim.run_id)

    def start(self) -> None:
        _keeper().add(self)

    def finishing(self) -> None:
        """The run's final statement comes next: from now on a renewal the database refuses is
        that commit ending the lease (or the commit will find the lease gone and store nothing),
        not a takeover to stop for.

        Said by the worker rather than read from the run: a run another worker took over and
        finished looks the same in its row as one this worker finished, and taking the other's
        finish for its own would let this worker go on working without a lease.
        """
        self._finishing = True

    def stop(self) -> None:
        """No renewal after this returns (one under way is waited for, up to STOP_WAIT_SECONDS)."""
        self._stopped = True
        _keeper().remove(self)
        if self._renewing.acquire(timeout=STOP_WAIT_SECONDS):
            self._renewing.release()

    def beat(self) -> bool:
        """Renew the lease once (the keeper calls it when due); False: stop beating."""
        with self._renewing:
            if self._stopped:
                return False
            try:
                with self._runtime.db.transaction() as session, short_statements(session, self._timeout_ms):
                    # A renewal that waits (a lock on the run's row, a slow database) gives up
                    # after one interval: the one keeper thread renews every run's lease, and
                    # must not hold the others' renewals behind it until they lapse.
                    if repo.renew_lease(session, self._claim, utcnow(), self._lease, self._progress):
                        return True
                    if self._finishing:
                        return False  # the final commit ended the lease, or will find it lost
                    log.warning("run %s: lease lost; stopping work on it", self._claim.run_id)
                    self._lost.set()
                    return False
            except DBAPIError as exc:  # timed out (see above), or the database blinked
                log.warning(
                    "run %s: lease not renewed this time (%s); trying again at the next beat",
                    self._claim.run_id,
                    exc.orig.__class__.__name__ if exc.orig is not None else exc.__class__.__name__,
                )
                return True
            except Exception:  # not the database's doing: a bug, worth its traceback
                log.exception("run %s: could not renew the lease", self._claim.run_id)
                return True


class _Keeper:
    """The process's one renewing thread and the heartbeats it renews, each with its due time."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: dict[Heartbeat, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, heartbeat: Heartbeat) -> None:
        with self._changed:
            self._due[heartbeat] = time.monotonic() + heartbeat.interval
            if self._thread is None or not self._thread.is_alive():  # never started, or died
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()
            self._changed.notify()

    def remove(self, heartbeat: Heartbeat) -> None:
        with self._changed:
            self._due.pop(heartbeat, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [heartbeat for heartbeat, at in self._due.items() if at <= now]
                if not due:
                    self._changed.wait(min(self._due.values(), default=now + 60) - now)
                    continue
                for heartbeat in due:  # the next beat counts from this one's start
                    self._due[heartbeat] = now + heartbeat.interval
            for heartbeat in due:
                if not heartbeat.beat():
                    self.remove(heartbeat)


_the_keeper: _Keeper | None = None
_making_keeper = threading.Lock()


def _keeper() -> _Keeper:
    """This process's keeper, made on first use."""
    global _the_keeper
    if _the_keeper is None:
        with _making_keeper:
            if _the_keeper is None:
                _the_keeper = _Keeper()
    return _the_keeper


def _forget_the_parents_keeper() -> None:
    """A forked child makes its own keeper: the parent's thread is not in it, and a lock another
    thread held at the fork would never be released."""
    global _the_keeper, _making_keeper
    _the_keeper = None
    _making_keeper = threading.Lock()


os.register_at_fork(after_in_child=_forget_the_parents_keeper)
