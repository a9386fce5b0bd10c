"""Differential check: the current core against the core at a reference commit, on the same inputs.

Two parts, each printing what differs (nothing, when the cores agree):

- `--seeds N`: N random clinics of 1 to 300 practitioners (tests/core/old_core.py draws them),
  each reconciled and reported by both cores, also with the co-access forced into two threads;
- `--patients P ...`: the organisation of `reconcile_scale.py` at P patients (260,000 patients
  make about a million access rows, where the co-access runs in two threads), reconciled by
  both cores; the report JSON, findings, operations, pairs and picture are compared.

The reference core is extracted from this repository's history (`git archive`). Run:
    .venv/bin/python bench/differential_core.py [--seeds 2000] [--patients 260000]
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sharing
import sharing.access
from tests.core.old_core import AS_OF, differences, load_old_core, random_clinic


def to_core(value: Any, core: ModuleType) -> Any:
    """`value` (made of the current core's types) rebuilt from `core`'s types of the same names."""
    if isinstance(value, sharing.AccessLog):
        return core.AccessLog(
            value.practitioner_ids,
            value.patient_ids,
            value.practitioner_codes,
            value.patient_codes,
            value.sources,
            value.statuses,
            value.days,
            value.location_ids,
            value.location_codes,
        )
    if isinstance(value, enum.Enum):
        return getattr(core, type(value).__name__)(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = getattr(core, type(value).__name__)
        return kind(**{f.name: to_core(getattr(value, f.name), core) for f in dataclasses.fields(value)})
    if isinstance(value, tuple):
        return tuple(to_core(item, core) for item in value)
    if isinstance(value, frozenset):
        return frozenset(to_core(item, core) for item in value)
    return value


def large_outputs(core: ModuleType, pms: Any, ptdirect: Any) -> dict[str, str]:
    pms, ptdirect = to_core(pms, core), to_core(ptdirect, core)
    started = time.perf_counter()
    result = core.reconcile(pms, ptdirect, core.Policy(), as_of=AS_OF, pseudonym_key=b"bench")
    report = core.build_report(
        "bench", core.RunInfo("r", "manual", "succeeded", None, None), result, {}, None
    )
    elapsed = time.perf_counter() - started
    encoded = json.dumps(report)
    print(f"  {core.__name__}: reconcile + report {elapsed:.2f} s, {len(result.findings):,} findings")
    return {
        "report": encoded,
        "findings": repr(result.findings),
        "operations": repr(result.operations),
        "shared_pairs": repr(tuple(result.shared_pairs)),
        "picture": repr(result.picture),
        "rest": repr((result.complete, result.suspicious, result.patient_count, len(result.shared_pairs))),
    }


def check_large(old: ModuleType, patients: int) -> bool:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reconcile_scale import generate

    access, practitioners, ptdirect = generate(patients)
    pms = sharing.PmsSnapshot("cliniko", practitioners, access)
    threads = len(access) >= sharing.access.PARALLEL_ROWS
    print(f"{patients:,} patients, {len(access):,} rows (two co-access threads: {threads})")
    before, after = large_outputs(old, pms, ptdirect), large_outputs(sharing, pms, ptdirect)
    differing = [name for name in before if before[name] != after[name]]
    for name in before:
        digest = hashlib.sha256(after[name].encode()).hexdigest()[:16]
        print(f"  {name}: {'DIFFERS' if name in differing else 'same'} ({digest})")
    return not differing


def check_seeds(old: ModuleType, seeds: int, start: int) -> bool:
    failures = 0
    for parallel in (False, True):
        sharing.access.PARALLEL_ROWS = 1 if parallel else 1_000_000
        for seed in range(start, start + seeds):
            rng = random.Random(seed)
            size = rng.choice([1, 2, 3, 5, 8, 13, 30, 60, 120, 300])
            differing = differences(old, sharing, random_clinic(rng, size))
            if differing:
                failures += 1
                print(f"seed {seed} (size {size}, two threads: {parallel}): differs in {differing}")
    sharing.access.PARALLEL_ROWS = 1_000_000
    print(f"{2 * seeds} random clinics: {failures} differ")
    return failures == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--patients", type=int, nargs="*", default=[])
    args = parser.parse_args()
    old = load_old_core(Path(tempfile.mkdtemp(prefix="ptsync-old-core-")))
    if old is None:
        sys.exit("the reference commit is not in this checkout's history")
    same = True
    if args.seeds:
        same &= check_seeds(old, args.seeds, args.start)
    for patients in args.patients:
        same &= check_large(old, patients)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
