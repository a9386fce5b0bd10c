"""Any PMS through its appointment export (`--pms export`): CSV or XLSX read with a mapping.

Each row is one appointment: a practitioner (id, name and/or email), a patient id, a date and
optionally a status. Rows are checked one by one; every rejected row is reported with its file,
row, column and reason, and a pull with any rejected row fails whole (nothing is stored), so a
half-read export can never pass for the clinic's state. `ptsync export-mapping check` shows the
same reading before an organisation relies on it.

Practitioners come from the export itself unless a staff list is given. Their stable ids are
the practitioner id column when mapped, else the email (lower case), else `name:` and the name
case-folded with runs of spaces collapsed. All of them count as active: an export says nothing
about who left. With a staff list (`--pms-staff`, a CSV `id,name,email,active` as in
`--pms csv`'s practitioners.csv) practitioners and their active flags come from it, and each row
must match one of them by id, else email, else name.

Did-not-arrive rows count as access (the patient is booked with that practitioner);
cancelled and deleted rows are passed to the core as such and never count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.base import PmsPull, Progress
from connectors.csv_pms import CsvPmsConnector
from connectors.errors import ConnectorError, InputFileError
from connectors.export_files import MAX_CELL_CHARS, Cell, export_files, read_rows
from connectors.export_mapping import Mapping, load_mapping
from sharing import (
    AccessLogBuilder,
    AccessSource,
    AccessStatus,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
)

NAME = "export"
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PROGRESS_EVERY = 20_000
MAX_REPORTED = 20


@dataclass(frozen=True)
class ExportRow:
    file: str
    row: int
    practitioner_id: str
    practitioner_name: str
    practitioner_email: str | None
    patient_id: str
    day: date
    status_value: str
    status_class: str
    status: AccessStatus
    location: str | None = None
    """The value of the mapping's `location` column (clinic groups), when it names one."""


@dataclass(frozen=True)
class Rejection:
    file: str
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, row {self.row}, column '{self.column}': {self.reason}"


def normalised_name(name: str) -> str:
    return _SPACES.sub(" ", name).strip().casefold()


class Staff:
    """A staff list: who the practitioners are, and how export rows find them."""

    def __init__(self, practitioners: list[PmsPractitioner]) -> None:
        self.practitioners = practitioners
        self.by_id = {p.id: p for p in practitioners}
        self.by_email = {p.email.strip().lower(): p for p in practitioners if p.email}
        self.by_name: dict[str, PmsPractitioner | None] = {}
        for practitioner in practitioners:
            key = normalised_name(practitioner.name)
            self.by_name[key] = None if key in self.by_name else practitioner  # None: ambiguous

    @classmethod
    def load(cls, path: str | Path) -> Staff:
        path = Path(path)
        if not path.is_file():
            raise InputFileError(NAME, str(path), "staff list not found")
        reader = CsvPmsConnector(path.parent)
        return cls(reader.read_practitioners_file(path.name))


def read_export(
    path: str | Path, mapping: Mapping, staff: Staff | None = None
) -> tuple[list[ExportRow], list[Rejection]]:
    """Every row of the export as ptsync reads it, and every row it rejects with the reason."""
    rows: list[ExportRow] = []
    rejections: list[Rejection] = []
    for file in export_files(path):
        for number, raw in _checked_header(file, mapping):
            outcome = _interpret(file.name, number, raw, mapping, staff)
            if isinstance(outcome, Rejection):
                rejections.append(outcome)
            else:
                rows.append(outcome)
    return rows, rejections


def _checked_header(file: Path, mapping: Mapping) -> Iterator[tuple[int, dict[str, Cell]]]:
    first = True
    for number, raw in read_rows(file, mapping):
        if first:
            missing = [column for column in mapping.columns.values() if column not in raw]
            if missing:
                raise InputFileError(
                    NAME,
                    str(file),
                    f"missing column(s) {', '.join(repr(m) for m in missing)} named in the mapping",
                )
            first = False
        yield number, raw


def _text(raw: dict[str, Cell], column: str | None) -> str:
    if column is None:
        return ""
    value = raw.get(column, "")
    return value if isinstance(value, str) else value.isoformat()


def _interpret(
    file: str, number: int, raw: dict[str, Cell], mapping: Mapping, staff: Staff | None
) -> ExportRow | Rejection:
    columns = mapping.columns

    def reject(key: str, reason: str) -> Rejection:
        return Rejection(file, number, columns.get(key, key), reason)

    for key, column in columns.items():
        text = _text(raw, column)
        if len(text) > MAX_CELL_CHARS:
            return reject(key, f"longer than {MAX_CELL_CHARS} characters")
        if _CONTROL.search(text):
            return reject(key, "contains control characters (a damaged or hostile file?)")
    patient = _text(raw, columns["patient_id"])
    if not patient:
        return reject("patient_id", "a patient id is required")
    when = raw.get(columns["date"], "")
    moment = when if isinstance(when, datetime) else mapping.parse_date(when)
    if moment is None:
        shown = "an empty value" if not when else repr(str(when)[:40])
        return reject("date", f"expected a date ({', '.join(mapping.date_formats)}), got {shown}")
    status_value = _text(raw, columns.get("status")) if "status" in columns else "active"
    classified = mapping.status_of(status_value) if "status" in columns else ("active", AccessStatus.ACTIVE)
    if classified is None:
        return reject(
            "status", f"unknown status {status_value[:40]!r} (not listed in the mapping's [status])"
        )
    practitioner = _practitioner(raw, mapping, staff)
    if isinstance(practitioner, tuple):
        return reject(*practitioner)
    return ExportRow(
        file,
        number,
        practitioner.id,
        practitioner.name,
        practitioner.email,
        patient,
        moment.date(),
        status_value,
        classified[0],
        classified[1],
        _text(raw, columns.get("location")).strip() or None,
    )


def _practitioner(
    raw: dict[str, Cell], mapping: Mapping, staff: Staff | None
) -> PmsPractitioner | tuple[str, str]:
    columns = mapping.columns
    pid = _text(raw, columns.get("practitioner_id"))
    name = _text(raw, columns.get("practitioner_name"))
    email = _text(raw, columns.get("practitioner_email")).lower() or None
    if email is not None and "@" not in email:
        return "practitioner_email", f"not an email address: {email[:60]!r}"
    if staff is not None:
        found = (
            (staff.by_id.get(pid) if pid else None)
            or (staff.by_email.get(email) if email else None)
            or (staff.by_name.get(normalised_name(name)) if name else None)
        )
        if found is None:
            key = "practitioner_id" if pid else "practitioner_email" if email else "practitioner_name"
            shown = pid or email or name
            if not shown:
                return key, "a practitioner is required"
            return (
                key,
                f"practitioner {shown[:60]!r} is not in the staff list (or the name is not unique there)",
            )
        return found
    if pid:
        stable = pid
    elif email:
        stable = email
    elif name:
        stable = "name:" + normalised_name(name)
    else:
        key = next(k for k in ("practitioner_id", "practitioner_email", "practitioner_name") if k in columns)
        return key, "a practitioner is required"
    return PmsPractitioner(stable, name or email or pid, email, True, None, None)


def rejection_summary(rejections: list[Rejection], source: str) -> str:
    """One line: how many rows were rejected, and the first few with their reasons."""
    shown = "; ".join(str(r) for r in rejections[:3])
    more = f"; and {len(rejections) - 3} more" if len(rejections) > 3 else ""
    return (
        f"{source}: {len(rejections)} row(s) rejected, nothing was read: {shown}{more} "
        f"(see them all with `ptsync export-mapping check`)"
    )


class ExportConnector:
    system = "export"

    def __init__(self, path: str | Path, mapping: str, *, staff_path: str | Path | None = None) -> None:
        self.path = Path(path)
        self.mapping_name = mapping
        self.staff_path = staff_path

    def pull(
        self,
        *,
        window_start: date,
        cursors: dict[str, str],
        state: dict[str, Any] | None = None,
        started_at: datetime | None = None,
        progress: Progress | None = None,
    ) -> PmsPull:
        """An export is always read whole: no cursors, no state."""
        mapping = load_mapping(self.mapping_name)
        staff = Staff.load(self.staff_path) if self.staff_path else None
        rows, rejections = read_export(self.path, mapping, staff)
        if rejections:
            raise ConnectorError(NAME, rejection_summary(rejections, str(self.path)))
        practitioners: dict[str, PmsPractitioner] = {}
        if staff is not None:
            practitioners = dict(staff.by_id)
        builder = AccessLogBuilder()
        for index, row in enumerate(rows):
            if staff is None and row.practitioner_id not in practitioners:
                practitioners[row.practitioner_id] = PmsPractitioner(
                    row.practitioner_id, row.practitioner_name, row.practitioner_email, True, None, None
                )
            if row.day >= window_start:  # older rows still name a practitioner, but give no access
                builder.add(
                    row.practitioner_id,
                    row.patient_id,
                    AccessSource.APPOINTMENT,
                    row.day,
                    row.status,
                    row.location,
                )
            if progress is not None and index % _PROGRESS_EVERY == _PROGRESS_EVERY - 1:
                progress("appointments", index + 1)
        people = tuple(practitioners[key] for key in sorted(practitioners))
        locations = None
        if "location" in mapping.columns:  # clinic groups: the column's values are the sites
            names = sorted({row.location for row in rows if row.location})
            locations = tuple(PmsLocation(name, name) for name in names)
        return PmsPull(PmsSnapshot(self.system, people, builder.build(), locations=locations), cursors={})
