"""Patient-access rows, stored by column, and who shares patients with whom.

A large clinic group has millions of access rows. Holding each as a Python object costs
hundreds of bytes and makes the co-access count (a self-join on patient) the slowest part of a
run, so rows are interned once into integer columns and the join runs as sorts over arrays.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

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


def day_from_number(number: int) -> date:
    return _EPOCH + timedelta(days=int(number))


@dataclass(frozen=True, slots=True)
class PairStat:
    """Two practitioners' overlap: how many patients both can see, and the latest such day."""

    shared_patients: int
    last_shared_day: int


@dataclass(frozen=True, slots=True)
class CoAccess:
    """What the counted access rows say, per practitioner and per practitioner pair.

    Pair keys are (smaller id, larger id) so each pair appears once.
    """

    patients_per_practitioner: dict[str, int]
    distinct_patients: int
    pairs: dict[tuple[str, str], PairStat]


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
        counted = (self.statuses == AccessStatus.ACTIVE) & (self.days >= since_day)
        practitioners = self.practitioner_codes[counted].astype(np.int64)
        patients = self.patient_codes[counted].astype(np.int64)
        days = np.minimum(self.days[counted].astype(np.int64) - since_day, _DAY_SPAN)
        width = max(len(self.practitioner_ids), 1)

        latest = _latest_per_key(patients * width + practitioners, days)
        keys, latest_days = latest
        patients = keys // width
        practitioners = keys % width

        per_practitioner = np.bincount(practitioners, minlength=width) if len(keys) else None
        patients_per_practitioner = {}
        if per_practitioner is not None:
            for code in np.flatnonzero(per_practitioner).tolist():
                patients_per_practitioner[self.practitioner_ids[code]] = int(per_practitioner[code])
        distinct = int(np.count_nonzero(np.diff(patients)) + 1) if len(patients) else 0

        pair_keys, pair_days = _pairs_sharing_a_patient(patients, practitioners, latest_days, width)
        pairs: dict[tuple[str, str], PairStat] = {}
        if len(pair_keys):
            unique_pairs, counts, last_days = _count_and_latest(pair_keys, pair_days)
            for pair_key, count, last_day in zip(
                unique_pairs.tolist(), counts.tolist(), last_days.tolist(), strict=True
            ):
                first = self.practitioner_ids[pair_key // width]
                second = self.practitioner_ids[pair_key % width]
                ordered = (first, second) if first < second else (second, first)
                pairs[ordered] = PairStat(count, last_day + since_day)
        return CoAccess(patients_per_practitioner, distinct, pairs)


def _latest_per_key(keys: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys (sorted) and the greatest day seen for each, by one sort of packed ints."""
    if not len(keys):
        return keys, days
    packed = np.sort((keys << _DAY_BITS) | days)
    unique_keys = packed >> _DAY_BITS
    last_of_group = np.flatnonzero(np.append(unique_keys[1:] != unique_keys[:-1], True))
    return unique_keys[last_of_group], packed[last_of_group] & _DAY_SPAN


def _count_and_latest(keys: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    packed = np.sort((keys << _DAY_BITS) | days)
    sorted_keys = packed >> _DAY_BITS
    last_of_group = np.flatnonzero(np.append(sorted_keys[1:] != sorted_keys[:-1], True))
    counts = np.diff(np.append(-1, last_of_group))
    return sorted_keys[last_of_group], counts, packed[last_of_group] & _DAY_SPAN


def _pairs_sharing_a_patient(
    patients: np.ndarray, practitioners: np.ndarray, days: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every (practitioner, practitioner) instance that meets on one patient.

    Rows are sorted by patient, so rows i and i+k belong to the same patient only if rows i and
    i+k-1 do: each pass keeps just the rows that can still pair further, and the loop ends when
    none remain (after as many passes as the busiest patient has practitioners).
    """
    pair_keys: list[np.ndarray] = []
    pair_days: list[np.ndarray] = []
    candidates = np.arange(len(patients) - 1, dtype=np.int64)
    offset = 1
    while len(candidates):
        partners = candidates + offset
        candidates = candidates[partners < len(patients)]
        partners = candidates + offset
        same = patients[candidates] == patients[partners]
        candidates = candidates[same]
        partners = partners[same]
        if not len(candidates):
            break
        pair_keys.append(practitioners[candidates] * width + practitioners[partners])
        pair_days.append(np.minimum(days[candidates], days[partners]))
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
