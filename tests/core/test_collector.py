"""The reconcile and the report pause the cyclic garbage collector and leave it as they found it."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from sharing import Policy, RunInfo, build_report, collector, reconcile
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


def _in_oldest_generation(target: object) -> bool:
    return any(tracked is target for tracked in gc.get_objects(generation=2))


def test_what_a_reconcile_made_goes_to_the_oldest_generation_when_the_pause_ends(monkeypatch) -> None:
    # Given the collector is on and nothing in the process is frozen
    if gc.get_freeze_count():
        pytest.skip("something in this test process froze objects")
    monkeypatch.setattr(collector, "_frozen_elsewhere", False)
    assert gc.isenabled()
    clinic = _clinic()
    # When a reconcile runs
    result = reconcile(clinic.pms(), clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY)
    # Then its findings are already in the oldest generation: no young collection walks them
    assert result.findings
    assert all(_in_oldest_generation(finding) for finding in result.findings)
    assert gc.get_freeze_count() == 0


def test_objects_someone_else_froze_stay_frozen_after_a_pause(monkeypatch) -> None:
    # Given objects frozen by someone else (as a server does before forking), in a process not
    # yet known to have any
    monkeypatch.setattr(collector, "_frozen_elsewhere", False)
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        # When a pause ends
        with collector_paused():
            pass
        # Then they are still frozen, and the process is not asked again
        assert gc.get_freeze_count() == count > 0
        assert collector._frozen_elsewhere
    finally:
        gc.unfreeze()
