"""The reconcile and the report pause the cyclic garbage collector and leave it as they found it."""

from __future__ import annotations

import gc
import sys
import threading

from sharing import Policy, RunInfo, build_report, reconcile
from sharing.collector import collector_paused
from tests.clinic import AS_OF, KEY, Clinic

# `sharing.reconcile` is also the name of the function the package exports.
reconcile_module = sys.modules["sharing.reconcile"]
report_module = sys.modules["sharing.report"]


def _clinic() -> Clinic:
    clinic = Clinic()
    clinic.practitioner("1", "Ana Silva", member=True)
    clinic.practitioner("2", "Ben Okoro")
    clinic.co_treat("1", "2")
    return clinic


def _reconcile_noting_the_collector(monkeypatch) -> list[bool]:
    seen: list[bool] = []
    build_context = reconcile_module.build_context

    def noting(*args, **kwargs):
        seen.append(gc.isenabled())
        return build_context(*args, **kwargs)

    monkeypatch.setattr(reconcile_module, "build_context", noting)
    clinic = _clinic()
    reconcile(clinic.pms(), clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY)
    return seen


def test_the_collector_is_off_while_a_reconcile_works_and_on_again_after(monkeypatch) -> None:
    # Given the collector is on
    assert gc.isenabled()
    # When a reconcile runs
    seen = _reconcile_noting_the_collector(monkeypatch)
    # Then it worked with the collector off, and the collector is on again
    assert seen == [False]
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off_after_a_reconcile(monkeypatch) -> None:
    # Given the collector was turned off by someone else
    gc.disable()
    try:
        # When a reconcile runs
        seen = _reconcile_noting_the_collector(monkeypatch)
        # Then it is still off afterwards
        assert seen == [False]
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_is_off_while_a_report_is_built_and_on_again_after(monkeypatch) -> None:
    # Given a reconciled clinic and the collector on
    clinic = _clinic()
    result = reconcile(clinic.pms(), clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY)
    seen: list[bool] = []
    diff_findings = report_module.diff_findings

    def noting(*args, **kwargs):
        seen.append(gc.isenabled())
        return diff_findings(*args, **kwargs)

    monkeypatch.setattr(report_module, "diff_findings", noting)
    # When its report is built
    report = build_report("org", RunInfo("r", "manual", "succeeded", None, None), result, {}, None)
    # Then it was built with the collector off, and the collector is on again
    assert seen == [False]
    assert gc.isenabled()
    assert report["summary"]["practitioners"] == 2


def test_overlapping_pauses_resume_the_collector_when_the_last_one_ends() -> None:
    # Given one pause under way in another thread
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(10)
    # When a second pause starts and ends before the first
    with collector_paused():
        assert not gc.isenabled()
    # Then the collector stays off until the first ends too
    assert not gc.isenabled()
    release.set()
    thread.join(10)
    assert gc.isenabled()


class _Cycle:
    """Half of a reference cycle: freed only by the cyclic collector, never by reference counts."""

    def __init__(self) -> None:
        self.other: _Cycle | None = None


def test_given_cyclic_garbage_made_between_pauses_when_runs_go_on_then_the_collector_still_frees_it() -> None:
    # Given: a long-running worker makes some cyclic garbage between its runs (database sessions,
    # caught exceptions) and pauses the collector for each run. A pause that ended by moving
    # everything young to the oldest generation (gc.freeze then gc.unfreeze) kept that garbage
    # from every full collection: the worker's memory grew without bound.
    import weakref

    gc.collect()
    alive: weakref.WeakSet[_Cycle] = weakref.WeakSet()
    # When
    for _ in range(3_000):
        first, second = _Cycle(), _Cycle()
        first.other, second.other = second, first
        alive.add(first)
        del first, second
        with collector_paused():
            made = [[number] for number in range(50)]  # the run's own objects
        del made
    # Then: the collector's own young and full collections freed nearly all of it
    assert len(alive) < 300, f"{len(alive)} of 3,000 cycles still alive"
