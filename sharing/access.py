"""Patient-access rows, stored by column, and who shares patients with whom.

A large clinic group has millions of access rows. Holding each as a Python object costs
hundreds of bytes and makes the co-access count (a self-join on patient) the slowest part of a
run, so rows are interned once into integer columns and the join runs as sorts over arrays.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property, lru_cache

import numpy as np

_EPOCH = date(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_DAY_BITS = 16
_DAY_SPAN = (1 << _DAY_BITS) - 1


class AccessSource(enum.IntEnum):
    """Why the PMS says a practitioner can see a patient."""

    APPOINTMENT = 0
    CARE_TEAM = 1
    ASSIGNMENT = 2
    ACCESS_GROUP = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> AccessSource:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(member.label for member in cls)
            raise ValueError(f"unknown source {text!r} (expected one of: {allowed})") from None


class AccessStatus(enum.IntEnum):
    """Whether an access row still counts.

    Connectors pass cancelled, archived and deleted appointments through instead of dropping
    them, so the core excludes them on purpose rather than missing them by accident.
    """

    ACTIVE = 0
    CANCELLED = 1
    ARCHIVED = 2
    DELETED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class PatientAccess:
    """One row of "practitioner X can see patient Y", as a connector reads it."""

    practitioner_id: str
    patient_id: str
    source: AccessSource
    last_seen: date
    status: AccessStatus = AccessStatus.ACTIVE
    location: str | None = None
    """The PMS location (business, clinic, site) the row happened at, when the PMS says."""


NO_LOCATION = -1
"""The location code of a row whose PMS did not say where it happened."""


def _row_key(row: PatientAccess) -> tuple:
    return (row.practitioner_id, row.patient_id, row.source, row.last_seen, row.status, row.location or "")


def day_number(day: date) -> int:
    """Days since 1970-01-01: the integer form dates take inside the access log."""
    return day.toordinal() - _EPOCH_ORDINAL


@lru_cache(maxsize=4096)
def day_from_number(number: int) -> date:
    """Cached: a report names thousands of pairs' days, and they fall on a few hundred dates."""
    return _EPOCH + timedelta(days=int(number))


@lru_cache(maxsize=4096)
def day_text(number: int) -> str:
    """The ISO date (2026-11-25) of a day number, cached like `day_from_number`.

    Straight from the ordinal, not through `day_from_number`: a run's first report misses the
    cache for each of its few hundred days (a second cache and a timedelta per day).
    """
    return date.fromordinal(int(number) + _EPOCH_ORDINAL).isoformat()


@dataclass(frozen=True, slots=True)
class PairStat:
    """Two practitioners' overlap: how many patients both can see, and the latest such day."""

    shared_patients: int
    last_shared_day: int


@dataclass(frozen=True, eq=False)
class CoAccess:
    """What the counted access rows say, per practitioner and per practitioner pair.

    Pairs are held by column, in (first id, second id) order with the smaller id first, so each
    pair appears once: `pair_firsts` and `pair_seconds` index `practitioner_ids`. A run reads
    thousands of pairs and most of them only through array operations (who is at risk, who has
    eligible peers), so no object is made per pair unless `pairs` is asked for.
    """

    patients_per_practitioner: dict[str, int]
    distinct_patients: int
    practitioner_ids: tuple[str, ...] = ()
    pair_firsts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    pair_seconds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    pair_counts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Patients both practitioners could see (at least 1)."""
    pair_days: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """The latest day (a day number) by which both had seen one of those patients."""
    practitioner_ranks: np.ndarray | None = None
    """`id_ranks(practitioner_ids)`, when pairs were counted (they are put in order by it)."""

    @cached_property
    def pairs(self) -> dict[tuple[str, str], PairStat]:
        """The pairs as a dict keyed by (smaller id, larger id), in key order."""
        ids = self.practitioner_ids.__getitem__
        return dict(
            zip(
                zip(map(ids, self.pair_firsts.tolist()), map(ids, self.pair_seconds.tolist()), strict=True),
                map(PairStat, self.pair_counts.tolist(), self.pair_days.tolist()),
                strict=True,
            )
        )


class AccessLog:
    """An immutable, columnar set of access rows with interned ids.

    Build one with `AccessLog.from_rows`, an `AccessLogBuilder`, or the constructor
    when the columns already exist (bulk loads and benchmarks).
    """

    __slots__ = (
        "days",
        "location_codes",
        "location_ids",
        "patient_codes",
        "patient_ids",
        "practitioner_codes",
        "practitioner_ids",
        "sources",
        "statuses",
    )

    def __init__(
        self,
        practitioner_ids: Sequence[str],
        patient_ids: Sequence[str],
        practitioner_codes: np.ndarray,
        patient_codes: np.ndarray,
        sources: np.ndarray,
        statuses: np.ndarray,
        days: np.ndarray,
        location_ids: Sequence[str] = (),
        location_codes: np.ndarray | None = None,
    ) -> None:
        length = len(practitioner_codes)
        if location_codes is None:
            location_codes = np.full(length, NO_LOCATION, dtype=np.int32)
        columns = (practitioner_codes, patient_codes, sources, statuses, days, location_codes)
        if any(len(column) != length for column in columns):
            raise ValueError("access log columns differ in length")
        self.practitioner_ids = tuple(practitioner_ids)
        self.patient_ids = tuple(patient_ids)
        self.location_ids = tuple(location_ids)
        frozen = []
        dtypes = (np.int32, np.int32, np.int8, np.int8, np.int32, np.int32)
        for column, dtype in zip(columns, dtypes, strict=True):
            array = np.array(column, dtype=dtype, copy=True)
            array.setflags(write=False)
            frozen.append(array)
        (
            self.practitioner_codes,
            self.patient_codes,
            self.sources,
            self.statuses,
            self.days,
            self.location_codes,
        ) = frozen
        if length:
            if self.practitioner_codes.min() < 0 or self.practitioner_codes.max() >= len(
                self.practitioner_ids
            ):
                raise ValueError("practitioner code out of range")
            if self.patient_codes.min() < 0 or self.patient_codes.max() >= len(self.patient_ids):
                raise ValueError("patient code out of range")
            if self.location_codes.min() < NO_LOCATION or self.location_codes.max() >= len(self.location_ids):
                raise ValueError("location code out of range")

    @classmethod
    def empty(cls) -> AccessLog:
        return AccessLogBuilder().build()

    @classmethod
    def from_rows(cls, rows: Iterable[PatientAccess]) -> AccessLog:
        builder = AccessLogBuilder()
        for row in rows:
            builder.add_row(row)
        return builder.build()

    def __len__(self) -> int:
        return len(self.practitioner_codes)

    def __iter__(self) -> Iterator[PatientAccess]:
        for prac, patient, source, status, day, location in zip(
            self.practitioner_codes.tolist(),
            self.patient_codes.tolist(),
            self.sources.tolist(),
            self.statuses.tolist(),
            self.days.tolist(),
            self.location_codes.tolist(),
            strict=True,
        ):
            yield PatientAccess(
                practitioner_id=self.practitioner_ids[prac],
                patient_id=self.patient_ids[patient],
                source=AccessSource(source),
                last_seen=day_from_number(day),
                status=AccessStatus(status),
                location=self.location_ids[location] if location != NO_LOCATION else None,
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccessLog):
            return NotImplemented
        return sorted(self, key=_row_key) == sorted(other, key=_row_key)

    def __hash__(self) -> int:
        return hash(len(self))

    def __repr__(self) -> str:
        return f"AccessLog(rows={len(self)}, practitioners={len(self.practitioner_ids)})"

    def select(self, keep: np.ndarray) -> AccessLog:
        """The rows where the boolean mask `keep` is true (ids stay interned as they were)."""
        return AccessLog(
            self.practitioner_ids,
            self.patient_ids,
            self.practitioner_codes[keep],
            self.patient_codes[keep],
            self.sources[keep],
            self.statuses[keep],
            self.days[keep],
            self.location_ids,
            self.location_codes[keep],
        )

    def co_access(self, since: date) -> CoAccess:
        """Count, for every practitioner pair, the patients both could see since `since`.

        Only active rows on or after `since` count. Each (patient, practitioner) is reduced to
        its latest day first; a pair's shared day is the earlier of the two latest days (the
        last day by which both had seen the patient).
        """
        since_day = day_number(since)
        width = max(len(self.practitioner_ids), 1)
        counted = (self.statuses == AccessStatus.ACTIVE) & (self.days >= since_day)
        if len(counted) >= PARALLEL_ROWS and len(self.patient_ids) > 1:
            parts = _in_two_threads(self, counted, since_day, width)
        else:
            parts = [_patients_part(self, counted, since_day, width, None)]
        per_practitioner = parts[0].per_practitioner
        for part in parts[1:]:
            per_practitioner = per_practitioner + part.per_practitioner
        patients_per_practitioner = {
            self.practitioner_ids[code]: count
            for code, count in zip(
                np.flatnonzero(per_practitioner).tolist(),
                per_practitioner[per_practitioner > 0].tolist(),
                strict=True,
            )
        }
        distinct = sum(part.distinct_patients for part in parts)
        if len(parts) == 1:
            pair_keys, pair_days = parts[0].pair_keys, parts[0].pair_days
        else:
            pair_keys = np.concatenate([part.pair_keys for part in parts])
            pair_days = np.concatenate([part.pair_days for part in parts])
        del parts
        if not len(pair_keys):
            return CoAccess(patients_per_practitioner, distinct, self.practitioner_ids)
        unique_pairs, counts, last_days = _count_and_latest(pair_keys, pair_days, width * width)
        ranks = id_ranks(self.practitioner_ids)
        firsts, seconds, order = _in_id_order(unique_pairs, ranks)
        last_days = last_days[order].astype(np.int64)
        last_days += since_day
        return CoAccess(
            patients_per_practitioner,
            distinct,
            self.practitioner_ids,
            firsts,
            seconds,
            counts[order].astype(np.int64, copy=False),
            last_days,
            ranks,
        )


PARALLEL_ROWS = 1_000_000
"""From this many access rows the co-access count runs in two threads (see `_in_two_threads`)."""


@dataclass(frozen=True, eq=False)
class _Part:
    """What the rows of some patients say: patients per practitioner code, distinct patients,
    and every pair instance (pair key, shared day relative to the window's start)."""

    per_practitioner: np.ndarray
    distinct_patients: int
    pair_keys: np.ndarray
    pair_days: np.ndarray


def _patients_part(
    log: AccessLog, counted: np.ndarray, since_day: int, width: int, patients: tuple[int, int] | None
) -> _Part:
    """The co-access of the counted rows (boolean mask) whose patient code lies in `patients`
    (low inclusive, high exclusive; None for all).

    A patient's rows all fall in one part, so parts add up: their pair instances concatenate and
    their counts sum.
    """
    if patients is not None:
        low, high = patients
        codes = log.patient_codes
        counted = counted & (codes >= low) & (codes < high)
    rows = np.flatnonzero(counted)
    # One packed key per counted row, (patient, practitioner, day), built in place: at
    # millions of rows each temporary array is tens of megabytes of memory traffic (and
    # `take` by index reads the columns faster than a boolean mask does, once per column).
    packed = log.patient_codes.take(rows).astype(np.int64)
    packed *= width
    packed += log.practitioner_codes.take(rows)
    packed <<= _DAY_BITS
    days = log.days.take(rows)
    del rows
    days -= since_day
    np.minimum(days, _DAY_SPAN, out=days)
    packed |= days
    del days

    keys, latest_days = _latest_per_key(packed)
    patients_of_keys, practitioners = np.divmod(keys, width)
    per_practitioner = np.bincount(practitioners, minlength=width)
    if len(patients_of_keys):
        distinct = int(np.count_nonzero(patients_of_keys[1:] != patients_of_keys[:-1]) + 1)
    else:
        distinct = 0
    pair_keys, pair_days = _pairs_sharing_a_patient(patients_of_keys, practitioners, latest_days, width)
    return _Part(per_practitioner, distinct, pair_keys, pair_days)


def _in_two_threads(log: AccessLog, counted: np.ndarray, since_day: int, width: int) -> list[_Part]:
    """`_patients_part` for each half of the counted rows (by patient), one in a second thread.

    At millions of rows the count is a few large numpy operations (the sort above all) that run
    without the GIL, and a machine with two cores finishes them in about two thirds of the time.
    The halves are split by patient code, so the result does not depend on which finishes first:
    the parts are combined in patient order, and a count or a latest day is the same whatever
    the order its instances arrive in. Pure still: no I/O, no clock, and the thread ends before
    this returns.
    """
    # Split at the median patient code of every 64th counted row, so each half has about as many
    # rows however the codes were handed out (a builder numbers patients as they first appear,
    # so the window's rows can crowd into the later codes).
    sample = log.patient_codes[::64][counted[::64]]
    middle = int(np.partition(sample, len(sample) // 2)[len(sample) // 2]) if len(sample) else 0
    middle = middle or len(log.patient_ids) // 2
    results: list[_Part | BaseException] = []

    def lower_half() -> None:
        try:
            results.append(_patients_part(log, counted, since_day, width, (0, middle)))
        except BaseException as error:  # re-raised in the calling thread
            results.append(error)

    helper = threading.Thread(target=lower_half, name="ptsync-co-access", daemon=True)
    helper.start()
    try:
        upper = _patients_part(log, counted, since_day, width, (middle, len(log.patient_ids)))
    finally:
        helper.join()
    (lower,) = results
    if isinstance(lower, BaseException):
        raise lower
    return [lower, upper]


def _in_id_order(pair_keys: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pair key's (first * len(rank) + second) two practitioner codes, smaller id first,
    and the order that sorts the pairs by (first id, second id).

    `rank`: the ids' `id_ranks`, worked out once (the context's pair table reads them again):
    every pair is then put in order by array operations instead of comparing ids in Python,
    and reports list pairs in this order without sorting them again.
    """
    width = len(rank)
    firsts, seconds = np.divmod(pair_keys, width)
    first_ranks, second_ranks = rank[firsts], rank[seconds]
    swap = first_ranks > second_ranks
    low, high = np.where(swap, seconds, firsts), np.where(swap, firsts, seconds)
    order = np.argsort(np.minimum(first_ranks, second_ranks) * width + np.maximum(first_ranks, second_ranks))
    return low[order], high[order], order


def id_ranks(ids: Sequence[str]) -> np.ndarray:
    """Each id's position among the ids sorted as strings: comparing ranks compares the ids."""
    rank = np.empty(len(ids), dtype=np.int64)
    rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return rank


def _latest_per_key(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys (sorted) and the greatest day seen for each, from (key << _DAY_BITS) | day.

    One sort of the packed ints, in place (`packed` is the caller's scratch array).
    """
    if not len(packed):
        return packed, packed
    packed.sort()
    keys = packed >> _DAY_BITS
    last_of_group = np.append(np.flatnonzero(keys[1:] != keys[:-1]), len(keys) - 1)
    return keys[last_of_group], packed[last_of_group] & _DAY_SPAN


_DENSE_COUNT_SPREAD = 4
"""Count pairs in a table indexed by pair key when it has at most this many slots per pair
instance; past that a sort of the instances costs less than the table."""


def _count_and_latest(
    keys: np.ndarray, days: np.ndarray, key_space: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique keys (ascending), how often each occurs and its greatest day.

    Keys lie in [0, key_space). Millions of pair instances among a few thousand practitioners
    are counted in tables indexed by key (no sort); fewer instances spread over a large key
    space are sorted instead.
    """
    if key_space <= _DENSE_COUNT_SPREAD * len(keys):
        return _count_and_latest_by_table(keys, days, key_space)
    return _count_and_latest_by_sort(keys, days)


def _count_and_latest_by_sort(
    keys: np.ndarray, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sort of (key << day bits) | day. In 32 bits when the largest key and day fit, as they
    do at 100,000 access rows (the days of a window need 10 bits, not _DAY_BITS): a 32-bit sort
    of the 33,000 pair instances there takes 0.5 ms less than a 64-bit one."""
    day_bits = max(int(days.max()).bit_length(), 1)
    if int(keys.max()).bit_length() + day_bits <= 32:
        packed = keys.astype(np.uint32) << np.uint32(day_bits)
        packed |= days.astype(np.uint32)
    else:
        day_bits = _DAY_BITS
        packed = keys.astype(np.int64) << _DAY_BITS
        packed |= days
    packed.sort()
    sorted_keys = packed >> packed.dtype.type(day_bits)
    last_of_group = np.append(np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]), len(sorted_keys) - 1)
    counts = np.diff(np.append(-1, last_of_group))
    latest = packed[last_of_group] & packed.dtype.type((1 << day_bits) - 1)
    return sorted_keys[last_of_group].astype(np.int64), counts, latest.astype(np.int64)


def _count_and_latest_by_table(
    keys: np.ndarray, days: np.ndarray, key_space: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.bincount(keys, minlength=key_space)
    found = np.flatnonzero(counts)
    latest = np.zeros(key_space, dtype=np.int32)  # days fit _DAY_BITS; half the table's memory
    np.maximum.at(latest, keys, days.astype(np.int32))
    return found, counts[found], latest[found]


def _pairs_sharing_a_patient(
    patients: np.ndarray, practitioners: np.ndarray, days: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every (practitioner, practitioner) instance that meets on one patient.

    Rows are sorted by patient, so rows i and i+k belong to the same patient only if rows i and
    i+k-1 do and row i+k continues row i+k-1's patient: each pass keeps just the rows that can
    still pair further, and the loop ends when none remain (after as many passes as the busiest
    patient has practitioners).
    """
    # Narrow types (a pair key fits 32 bits below 46,341 practitioners, a day in the window
    # always does) halve the memory each pass reads and writes.
    key_type = np.int32 if width * width <= np.iinfo(np.int32).max else np.int64
    practitioners = practitioners.astype(key_type)
    days = days.astype(np.int32)
    pair_keys: list[np.ndarray] = []
    pair_days: list[np.ndarray] = []
    continues = np.zeros(len(patients), dtype=bool)  # row i+1 has row i's patient; last row False
    np.equal(patients[1:], patients[:-1], out=continues[:-1])
    candidates = np.flatnonzero(continues)
    offset = 1
    while len(candidates):
        partners = candidates + offset
        keys = practitioners.take(candidates)
        keys *= width
        keys += practitioners.take(partners)
        pair_keys.append(keys)
        pair_days.append(np.minimum(days.take(candidates), days.take(partners)))
        candidates = candidates[continues.take(partners)]
        offset += 1
    if not pair_keys:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(pair_keys), np.concatenate(pair_days)


class AccessLogBuilder:
    """Accumulates rows one at a time (as a connector pages through an API)."""

    def __init__(self) -> None:
        self._practitioners: dict[str, int] = {}
        self._patients: dict[str, int] = {}
        self._locations: dict[str, int] = {}
        self._location_codes: list[int] = []
        self._practitioner_codes: list[int] = []
        self._patient_codes: list[int] = []
        self._sources: list[int] = []
        self._statuses: list[int] = []
        self._days: list[int] = []

    def __len__(self) -> int:
        return len(self._days)

    def add(
        self,
        practitioner_id: str,
        patient_id: str,
        source: AccessSource,
        last_seen: date,
        status: AccessStatus = AccessStatus.ACTIVE,
        location: str | None = None,
    ) -> None:
        practitioners = self._practitioners
        patients = self._patients
        self._practitioner_codes.append(practitioners.setdefault(practitioner_id, len(practitioners)))
        self._patient_codes.append(patients.setdefault(patient_id, len(patients)))
        self._sources.append(int(source))
        self._statuses.append(int(status))
        self._days.append(day_number(last_seen))
        locations = self._locations
        self._location_codes.append(
            NO_LOCATION if location is None else locations.setdefault(location, len(locations))
        )

    def add_row(self, row: PatientAccess) -> None:
        self.add(row.practitioner_id, row.patient_id, row.source, row.last_seen, row.status, row.location)

    def build(self) -> AccessLog:
        return AccessLog(
            list(self._practitioners),
            list(self._patients),
            np.array(self._practitioner_codes, dtype=np.int32),
            np.array(self._patient_codes, dtype=np.int32),
            np.array(self._sources, dtype=np.int8),
            np.array(self._statuses, dtype=np.int8),
            np.array(self._days, dtype=np.int32),
            list(self._locations),
            np.array(self._location_codes, dtype=np.int32),
        )
