"""Pausing Python's cyclic garbage collector while the core builds a run's results.

A reconcile makes tens of thousands of small containers (findings and their evidence, the
picture's pairs, the report's documents) that all live until the run is written, and makes no
reference cycles. CPython starts a collection every 700 net new containers, and every tenth
of those a larger one, walking objects the run still holds: at 100,000 access rows those walks
were about a fifth of the reconcile.

When the pause ends, the objects made meanwhile are moved straight to the oldest generation
(`gc.freeze()` then `gc.unfreeze()`: two list splices, whatever the number of objects) instead
of being left young. Left young, the first collection after the pause walked them all (about
50,000 containers at 100,000 access rows: 5 ms of a 55 ms reconcile), and a later one walked
them again on their way to the oldest generation, though they live until the run is written and
then go by reference counting. The oldest generation is walked only by full collections, which
CPython starts when its long-lived objects have grown by a quarter through young collections,
not through this move.

When something else in the process has frozen objects (`ptsync sync --wait` freezes its imports,
a server may freeze before forking), the move is skipped: `gc.unfreeze` would thaw theirs too.
Finding that out walks every frozen object (`gc.get_freeze_count`: about 5 ms for the 145,000
of `ptsync sync --wait`), so once it has found some, the process is not asked again and the move
is never tried there (frozen objects stay frozen; if they are thawed, only the move is missed).

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
_frozen_elsewhere = False
"""Whether the process was once found to have frozen objects (see the module's docstring)."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic garbage collector off (see the module's docstring)."""
    global _pauses, _resume, _frozen_elsewhere
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
                if not _frozen_elsewhere:
                    _frozen_elsewhere = gc.get_freeze_count() > 0
                if not _frozen_elsewhere:
                    gc.freeze()  # everything tracked, the pause's objects included ...
                    gc.unfreeze()  # ... back, into the oldest generation (see the docstring)
                gc.enable()
