"""The fast core gives what the core before it gave, byte for byte, on generated clinics.

The reference is `sharing/` at `old_core.REFERENCE_COMMIT`, extracted from this repository's
history; without that history (an exported tree, a shallow clone) these tests skip. They draw a
few hundred clinics to stay quick; `bench/differential_core.py` runs thousands more and the
million-row organisation (two co-access threads).
"""

from __future__ import annotations

import gc
import random
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sharing
import sharing.access
from sharing.identity import SIMILAR_NAME_RATIO
from tests.core.old_core import (
    AS_OF,
    Spec,
    build_inputs,
    differences,
    load_old_core,
    outputs,
    random_clinic,
)


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    core = load_old_core(Path(tmp_path_factory.mktemp("old-core")))
    if core is None:
        pytest.skip("the reference commit is not in this checkout's history")
    return core


SIZES = [1, 2, 3, 5, 8, 13, 30, 60, 120, 300]


def _assert_same(old: ModuleType, spec: Spec, label: str) -> None:
    differing = differences(old, sharing, spec)
    assert differing == [], f"{label}: the cores differ in {differing}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from(SIZES[:7]))
def test_given_a_random_small_clinic_when_both_cores_reconcile_it_then_every_output_is_identical(
    old: ModuleType, seed: int, size: int
) -> None:
    # Given a clinic drawn from the seed; When both cores reconcile and report it
    spec = random_clinic(random.Random(seed), size)
    # Then the reports, findings, operations, pairs, picture and context views are the same
    _assert_same(old, spec, f"seed {seed}, size {size}")


@pytest.mark.parametrize("seed", range(20))
def test_given_a_random_medium_clinic_when_both_cores_reconcile_it_then_every_output_is_identical(
    old: ModuleType, seed: int
) -> None:
    # Given a clinic of 60 to 300 practitioners
    rng = random.Random(1_000_000 + seed)
    spec = random_clinic(rng, rng.choice(SIZES[-3:]))
    # When / Then
    _assert_same(old, spec, f"medium seed {seed}")


@pytest.mark.parametrize("seed", range(30))
def test_given_the_two_thread_co_access_forced_on_small_logs_when_both_cores_reconcile_then_outputs_are_identical(
    old: ModuleType, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the new core splits the co-access count in two threads from the first row on
    monkeypatch.setattr(sharing.access, "PARALLEL_ROWS", 1)
    rng = random.Random(2_000_000 + seed)
    spec = random_clinic(rng, rng.choice(SIZES))
    # When / Then
    _assert_same(old, spec, f"two-thread seed {seed}")


def _edge_cases() -> dict[str, Spec]:
    rng = random.Random(7)
    base = random_clinic(rng, 20)
    cases: dict[str, Spec] = {}
    cases["no access rows"] = Spec(**{**base.__dict__, "rows": []})
    cases["a single practitioner"] = random_clinic(random.Random(8), 1)
    inactive = random_clinic(random.Random(9), 12)
    inactive.practitioners = [
        (pid, name, email, False, locs) for pid, name, email, _, locs in inactive.practitioners
    ]
    cases["all inactive"] = inactive
    huge = random_clinic(random.Random(10), 15)
    mapping = {entry[0]: str(10**30 + index * 104729) for index, entry in enumerate(huge.practitioners)}
    huge.practitioners = [(mapping[entry[0]], *entry[1:]) for entry in huge.practitioners]
    huge.rows = [(mapping.get(row[0], row[0]), *row[1:]) for row in huge.rows]
    if huge.scope is not None:  # the scope names the same people by their new ids
        locations, include, exclude = huge.scope
        huge.scope = (locations, [mapping.get(e, e) for e in include], [mapping.get(e, e) for e in exclude])
    cases["huge practitioner ids"] = huge
    empty = random_clinic(random.Random(11), 5)
    empty.practitioners = []
    cases["an empty PMS read"] = empty
    far = random_clinic(random.Random(12), 10)
    # every row booked 190 years ahead: past the 16 bits a day packs into
    far.rows = [(row[0], row[1], row[2], -70_000, row[4], row[5]) for row in far.rows]
    cases["days beyond the packed day span"] = far
    old_as_of = random_clinic(random.Random(13), 10)
    old_as_of.as_of = AS_OF.replace(year=1970)  # the window starts before day 0
    old_as_of.policy = {**old_as_of.policy, "lookback_days": 540}
    cases["a window that starts before 1970"] = old_as_of
    return cases


EDGE_CASES = _edge_cases()


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_given_an_edge_case_clinic_when_both_cores_reconcile_it_then_every_output_is_identical(
    old: ModuleType, name: str
) -> None:
    _assert_same(old, EDGE_CASES[name], name)


@pytest.mark.parametrize("width", [46_340, 46_341])
def test_given_about_46340_practitioners_in_the_log_when_both_cores_reconcile_then_the_32_and_64_bit_pair_keys_give_the_same_outputs(
    old: ModuleType, width: int
) -> None:
    # Given `width` practitioners in the access log, each sharing a patient with one or two
    # others: 46,340 is the last width whose pair keys fit 32 bits, 46,341 the first that does not
    rng = random.Random(width)
    spec = random_clinic(rng, 60)
    spec.scope, spec.log_style, spec.groups = None, "rows", []
    known = list(dict.fromkeys(entry[0] for entry in spec.practitioners))
    extra = [(f"z{index:06d}", f"Extra {index}", None, True, ()) for index in range(width - len(known))]
    spec.practitioners = spec.practitioners + extra
    ids = known + [entry[0] for entry in extra]
    rng.shuffle(ids)
    spec.rows = []
    for patient, start in enumerate(range(0, len(ids), 2)):
        for pid in ids[start : start + 2] + ([rng.choice(ids)] if patient % 5 == 0 else []):
            spec.rows.append((pid, f"wide-{patient}", 0, rng.randint(0, 400), 0, None))
    pms = build_inputs(sharing, spec)[0]
    assert len(pms.access.practitioner_ids) == width
    # When / Then
    _assert_same(old, spec, f"{width} practitioners")


def _similar_names(rng: random.Random) -> tuple[str, str]:
    alphabet = "abcdeé ñ"
    first = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
    second = list(first)
    for _ in range(rng.randint(0, 3)):
        position = rng.randint(0, len(second))
        roll = rng.random()
        if roll < 0.4:
            second.insert(position, rng.choice(alphabet))
        elif second and roll < 0.8:
            del second[min(position, len(second) - 1)]
        elif second:
            second[min(position, len(second) - 1)] = rng.choice(alphabet)
    return first, "".join(second)


def test_given_many_name_pairs_when_both_cores_compare_them_then_they_agree_on_which_are_similar(
    old: ModuleType,
) -> None:
    # Given names near the similarity threshold (SIMILAR_NAME_RATIO)
    assert SIMILAR_NAME_RATIO == old.identity.SIMILAR_NAME_RATIO
    rng = random.Random(5)
    pairs = [_similar_names(rng) for _ in range(20_000)]
    # When / Then
    disagreements = [
        pair for pair in pairs if old.identity._similar(*pair) != sharing.identity._similar(*pair)
    ]
    assert disagreements == []


def test_given_a_log_with_a_practitioner_id_listed_twice_when_both_cores_count_co_access_then_they_agree(
    old: ModuleType,
) -> None:
    """The constructor does not reject an id listed under two codes (no connector makes one)."""
    # Given codes 0 and 2 both named "a"
    days = np.full(4, 20_000, dtype=np.int32)
    columns = (np.array([0, 1, 2, 1]), np.array([0, 0, 1, 1]), np.zeros(4), np.zeros(4), days)
    logs = [core.AccessLog(["a", "b", "a"], ["p", "q"], *columns) for core in (old, sharing)]
    # When
    before, after = (log.co_access(AS_OF.replace(year=2020)) for log in logs)
    # Then
    assert repr((before.patients_per_practitioner, before.distinct_patients, before.pairs)) == repr(
        (after.patients_per_practitioner, after.distinct_patients, after.pairs)
    )


@pytest.mark.parametrize("parallel_rows", [1_000_000, 1])
def test_given_four_threads_reconciling_at_once_when_compared_with_one_at_a_time_then_outputs_are_identical_and_the_collector_is_back_on(
    monkeypatch: pytest.MonkeyPatch, parallel_rows: int
) -> None:
    """A worker runs syncs in several threads; the collector pause is process-wide and the
    co-access may start a thread of its own (parallel_rows=1 forces it)."""
    # Given
    monkeypatch.setattr(sharing.access, "PARALLEL_ROWS", parallel_rows)
    rngs = [random.Random(9_000 + seed) for seed in range(24)]
    specs = [random_clinic(rng, rng.choice([30, 60, 120])) for rng in rngs]
    one_at_a_time = [outputs(sharing, spec) for spec in specs]
    at_once: list[dict[str, str] | None] = [None] * len(specs)

    def work(indices: range) -> None:
        for index in indices:
            at_once[index] = outputs(sharing, specs[index])

    # When
    threads = [threading.Thread(target=work, args=(range(k, len(specs), 4),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then
    assert at_once == one_at_a_time
    assert gc.isenabled()
