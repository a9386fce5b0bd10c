"""Pausing Python's cyclic garbage collector while the core builds a run's results.

A reconcile makes tens of thousands of small containers (findings and their evidence, the
picture's pairs, the report's documents) that all live until the run is written, and makes no
reference cycles. CPython starts a collection every 700 net new containers, and every tenth
of those a larger one, walking objects the run still holds: at 100,000 access rows those walks
were about a fifth of the reconcile. Paused, the new objects are looked at once, by the first
collection after the pause (which still falls within the run: building the report or its JSON).

The collector is process-wide state, so pauses nest and overlap across threads: it runs again
when the last pause ends, and stays off if it was off before the first began. Reference counting
still frees everything that is not in a cycle the moment it is dropped.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic garbage collector off (see the module's docstring)."""
    global _pauses, _resume
    with _lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
