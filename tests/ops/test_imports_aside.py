"""Long-lived processes set what they imported aside from the cyclic collector (gc.freeze), so
its full collections stop walking it again and again; test processes never do."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from worker import cli, worker_ops


@pytest.fixture
def thawed_afterwards() -> Iterator[None]:
    """Whatever a test freezes goes back to the collector's care (this process runs on)."""
    yield
    gc.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _garbage_cycle() -> weakref.ref:
    """A reference cycle nobody holds: only the cyclic collector frees it."""
    return weakref.ref(_Cycle())


def test_given_a_booted_worker_process_when_it_boots_then_its_objects_are_set_aside_and_its_garbage_freed(
    thawed_afterwards,
) -> None:
    # Given: the middleware a `ptsync worker` process installs, and boot-time garbage in a cycle
    broker = StubBroker()
    broker.add_middleware(worker_ops.ImportsAside())
    garbage = _garbage_cycle()
    kept = {"a module's table": [1, 2, 3]}
    gc.disable()  # no collection of its own may free the cycle meanwhile
    try:
        frozen_before = gc.get_freeze_count()
        # When: dramatiq's CLI signals that the process booted
        broker.emit_after("process_boot")
        # Then: the garbage was collected first, and what lives on is in the permanent generation
        assert garbage() is None
        assert gc.get_freeze_count() > frozen_before
        assert any(item is kept for item in gc.get_objects()) is False  # frozen objects are not listed
        assert kept["a module's table"] == [1, 2, 3]
    finally:
        gc.enable()


@pytest.mark.parametrize(("worker_process", "expected"), [("1", True), (None, False)])
def test_given_the_process_kind_when_the_broker_middleware_is_installed_then_only_worker_processes_freeze(
    monkeypatch, worker_process: str | None, expected: bool
) -> None:
    # Given: a `ptsync worker` process (PTSYNC_WORKER_PROCESS=1, without a metrics port), or any other
    if worker_process is None:
        monkeypatch.delenv("PTSYNC_WORKER_PROCESS", raising=False)
    else:
        monkeypatch.setenv("PTSYNC_WORKER_PROCESS", worker_process)
    monkeypatch.setenv("PTSYNC_WORKER_METRICS_PORT", "0")
    monkeypatch.setattr("worker.logs.configure", lambda level: None)
    broker: dramatiq.Broker = StubBroker()
    # When
    worker_ops.install(broker)
    # Then
    assert any(isinstance(m, worker_ops.ImportsAside) for m in broker.middleware) is expected


@pytest.mark.parametrize("whole_process", [True, False])
def test_given_a_long_lived_command_when_its_imports_are_set_aside_then_start_up_garbage_is_collected_first(
    monkeypatch, thawed_afterwards, whole_process: bool
) -> None:
    # Given: `ptsync web` or `ptsync clock` in their own process, or a command run inside a test
    monkeypatch.setattr(cli, "_whole_process", whole_process)
    garbage = _garbage_cycle()
    gc.disable()  # no collection of its own may free the cycle meanwhile
    try:
        frozen_before = gc.get_freeze_count()
        # When
        cli._set_imports_aside(collect_first=True)
        # Then: in its own process, the garbage is freed and the rest frozen; in a test, nothing
        assert (garbage() is None) is whole_process
        assert (gc.get_freeze_count() > frozen_before) is whole_process
    finally:
        gc.enable()
