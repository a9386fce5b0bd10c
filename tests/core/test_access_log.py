"""The columnar co-access count agrees with the obvious nested-loop count."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import combinations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sharing import AccessLog, AccessLogBuilder, AccessSource, AccessStatus, PatientAccess, access
from sharing.access import _count_and_latest_by_sort, _count_and_latest_by_table, day_number

SINCE = date(2026, 1, 1)

rows = st.lists(
    st.builds(
        PatientAccess,
        practitioner_id=st.sampled_from(["a", "b", "c", "d", "e", "10", "9"]),
        patient_id=st.sampled_from([f"p{i}" for i in range(8)]),
        source=st.sampled_from(list(AccessSource)),
        last_seen=st.dates(date(2025, 6, 1), date(2027, 1, 1)),
        status=st.sampled_from(list(AccessStatus)),
    ),
    max_size=60,
)


def _naive(access_rows: list[PatientAccess]):
    latest: dict[tuple[str, str], date] = {}
    for row in access_rows:
        if row.status is AccessStatus.ACTIVE and row.last_seen >= SINCE:
            key = (row.patient_id, row.practitioner_id)
            latest[key] = max(latest.get(key, row.last_seen), row.last_seen)
    by_patient: dict[str, dict[str, date]] = {}
    for (patient, practitioner), day in latest.items():
        by_patient.setdefault(patient, {})[practitioner] = day
    pairs: dict[tuple[str, str], tuple[int, int]] = {}
    for seen in by_patient.values():
        for first, second in combinations(sorted(seen), 2):
            shared_day = day_number(min(seen[first], seen[second]))
            count, last = pairs.get((first, second), (0, -(10**9)))
            pairs[(first, second)] = (count + 1, max(last, shared_day))
    return pairs, len(by_patient)


@settings(max_examples=400, deadline=None)
@given(rows)
def test_co_access_matches_a_nested_loop_count(access_rows):
    co_access = AccessLog.from_rows(access_rows).co_access(SINCE)
    expected_pairs, expected_patients = _naive(access_rows)
    got = {pair: (stat.shared_patients, stat.last_shared_day) for pair, stat in co_access.pairs.items()}
    assert got == expected_pairs
    assert list(co_access.pairs) == sorted(co_access.pairs)  # in key order: reports keep it
    assert co_access.distinct_patients == expected_patients


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 48), st.integers(0, 1000)), min_size=1, max_size=80))
def test_counting_pairs_in_a_table_agrees_with_counting_them_by_sort(instances):
    # Given pair instances (pair key, day) among 7 practitioners (49 possible keys)
    keys = np.array([key for key, _ in instances], dtype=np.int64)
    days = np.array([day for _, day in instances], dtype=np.int64)
    # When they are counted in a table indexed by key, and by sorting them
    by_table = _count_and_latest_by_table(keys, days, 49)
    by_sort = _count_and_latest_by_sort(keys, days)
    # Then both find the same keys, counts and latest days
    assert [column.tolist() for column in by_table] == [column.tolist() for column in by_sort]


def test_rows_survive_a_round_trip_through_the_columns():
    builder = AccessLogBuilder()
    row = PatientAccess(
        "1234567890123456789", "p1", AccessSource.CARE_TEAM, SINCE + timedelta(days=3), AccessStatus.ARCHIVED
    )
    builder.add_row(row)
    assert list(builder.build()) == [row]


def test_an_empty_log_has_no_pairs_and_no_patients():
    co_access = AccessLog.empty().co_access(SINCE)
    assert co_access.pairs == {} and co_access.distinct_patients == 0


@settings(max_examples=200, deadline=None)
@given(rows)
def test_co_access_in_two_threads_matches_the_nested_loop_count(access_rows):
    # Given any rows, and a log large enough (here: any log) to be counted in two threads
    log = AccessLog.from_rows(access_rows)
    saved = access.PARALLEL_ROWS
    access.PARALLEL_ROWS = 0
    try:
        # When the co-access is counted
        co_access = log.co_access(SINCE)
    finally:
        access.PARALLEL_ROWS = saved
    # Then it is the nested-loop count, patients per practitioner included
    expected_pairs, expected_patients = _naive(access_rows)
    got = {pair: (stat.shared_patients, stat.last_shared_day) for pair, stat in co_access.pairs.items()}
    assert got == expected_pairs
    assert co_access.distinct_patients == expected_patients
    assert co_access.patients_per_practitioner == log.co_access(SINCE).patients_per_practitioner


def test_pairs_among_more_practitioners_than_a_32_bit_pair_key_can_hold_are_counted():
    # Given 50,000 practitioners (50,000 squared pair keys overflow 32 bits), and one patient
    # seen by the first and the last of them
    ids = [f"p{index:05d}" for index in range(50_000)]
    day = day_number(SINCE) + 10
    log = AccessLog(
        ids,
        ["patient"],
        np.array([0, 49_999]),
        np.array([0, 0]),
        np.zeros(2, dtype=np.int8),
        np.zeros(2, dtype=np.int8),
        np.array([day, day + 5]),
    )
    # When the co-access is counted
    co_access = log.co_access(SINCE)
    # Then the pair is found with its patient and the earlier of the two days
    assert {pair: (stat.shared_patients, stat.last_shared_day) for pair, stat in co_access.pairs.items()} == {
        ("p00000", "p49999"): (1, day)
    }
