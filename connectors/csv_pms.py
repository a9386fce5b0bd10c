"""The CSV PMS connector: a folder with practitioners.csv and patient_access.csv.

Formats (docs/csv-folder.md):
- practitioners.csv: id,name,email,active,updated_at (more columns are ignored)
- patient_access.csv: practitioner_id,patient_id,source,last_seen[,status]

Every problem is reported with the file, line and field; the whole pull fails on the first one,
so a half-read folder can never be mistaken for the clinic's real state.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from connectors.base import PmsPull, Progress
from connectors.csv_plain import PlainAccessReader
from connectors.csv_quotes import check_row, tapped
from connectors.dates import day_to_date, optional_day
from connectors.errors import InputFileError
from connectors.limits import first_undecodable_line, limited_lines
from sharing import AccessLog, AccessSource, AccessStatus, PmsPractitioner, PmsSnapshot
from sharing.access import day_number

NAME = "csv"
PRACTITIONERS_FILE = "practitioners.csv"
ACCESS_FILE = "patient_access.csv"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_PROGRESS_EVERY = 20_000


class CsvPmsConnector:
    system = "csv"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def pull(
        self,
        *,
        window_start: date,
        cursors: dict[str, str],
        state: dict[str, Any] | None = None,
        started_at: datetime | None = None,
        progress: Progress | None = None,
    ) -> PmsPull:
        """A folder is always read whole: no cursors, no state."""
        practitioners = self._read_practitioners()
        known = {practitioner.id for practitioner in practitioners}
        plain = PlainAccessReader(self.folder / ACCESS_FILE, known, progress, _PROGRESS_EVERY)
        access = plain.read()
        if access is None:  # not plain, or not valid: the row reader reads it (and names the problem)
            access = self._read_access(known, progress, reported=plain.reported)
        return PmsPull(PmsSnapshot(self.system, tuple(practitioners), access), cursors={})

    def _rows(self, name: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
        path = self.folder / name
        if not path.exists() or path.is_dir():  # not is_file(): a named pipe is a fine source
            raise InputFileError(NAME, str(path), "file not found")
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                pending: list[str] = []
                reader = csv.DictReader(tapped(limited_lines(NAME, path, handle), pending))
                header = [column.strip() for column in (reader.fieldnames or [])]
                pending.clear()
                previous = reader.line_num
                if not header:
                    raise InputFileError(NAME, str(path), "the file is empty (no header row)", line=1)
                missing = [column for column in required if column not in header]
                if missing:
                    raise InputFileError(NAME, str(path), f"missing column(s) {', '.join(missing)}", line=1)
                reader.fieldnames = header
                for row in reader:
                    check_row(NAME, path, pending, previous, reader.line_num)
                    previous = reader.line_num
                    if None in row:
                        raise InputFileError(
                            NAME, str(path), "more values than columns", line=reader.line_num
                        )
                    if all(not (value or "").strip() for value in row.values()):
                        continue
                    yield reader.line_num, {key: (value or "").strip() for key, value in row.items()}
        except UnicodeDecodeError as exc:
            raise InputFileError(
                NAME, str(path), f"not UTF-8 text ({exc.reason})", line=first_undecodable_line(path)
            ) from None
        except csv.Error as exc:
            raise InputFileError(NAME, str(path), f"not valid CSV ({exc})") from None

    def _read_practitioners(self) -> list[PmsPractitioner]:
        return self.read_practitioners_file(PRACTITIONERS_FILE)

    def read_practitioners_file(self, name: str) -> list[PmsPractitioner]:
        """A practitioners.csv-shaped file in the folder (also an export connector's staff list)."""
        path = str(self.folder / name)
        seen: set[str] = set()
        practitioners = []
        for line, row in self._rows(name, ("id", "name", "email", "active")):
            pid = _required(row, "id", path, line)
            if pid in seen:
                raise InputFileError(NAME, path, f"duplicate practitioner id {pid!r}", line=line, field="id")
            seen.add(pid)
            email = row.get("email") or None
            if email is not None and "@" not in email:
                raise InputFileError(NAME, path, f"not an email address: {email!r}", line=line, field="email")
            updated_at = row.get("updated_at") or None
            if updated_at is not None:
                _parse_timestamp(updated_at, path, line, "updated_at")
            practitioners.append(
                PmsPractitioner(
                    id=pid,
                    name=_required(row, "name", path, line),
                    email=email,
                    active=_parse_bool(row.get("active", ""), path, line, "active"),
                    role=row.get("role") or None,
                    updated_at=updated_at,
                )
            )
        return practitioners

    def _lists(self, name: str, required: tuple[str, ...]) -> Iterator[Any]:
        """Like `_rows`, without a dict per row: yields the header's column positions first,
        then (line, stripped values padded to the header's width) per non-blank row."""
        path = self.folder / name
        if not path.exists() or path.is_dir():
            raise InputFileError(NAME, str(path), "file not found")
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                pending: list[str] = []
                reader = csv.reader(tapped(limited_lines(NAME, path, handle), pending))
                header = [column.strip() for column in next(reader, [])]
                pending.clear()
                previous = reader.line_num
                if not header:
                    raise InputFileError(NAME, str(path), "the file is empty (no header row)", line=1)
                missing = [column for column in required if column not in header]
                if missing:
                    raise InputFileError(NAME, str(path), f"missing column(s) {', '.join(missing)}", line=1)
                yield {column: index for index, column in enumerate(header)}  # the last of a repeated name
                width = len(header)
                padding = [""] * width
                for raw in reader:
                    line = reader.line_num
                    if line - previous > 1:
                        check_row(NAME, path, pending, previous, line)
                    else:
                        pending.clear()
                    previous = line
                    if len(raw) > width:
                        raise InputFileError(
                            NAME, str(path), "more values than columns", line=reader.line_num
                        )
                    values = [value.strip() for value in raw]
                    if not any(values):
                        continue
                    if len(values) < width:
                        values += padding[len(values) :]
                    yield reader.line_num, values
        except UnicodeDecodeError as exc:
            raise InputFileError(
                NAME, str(path), f"not UTF-8 text ({exc.reason})", line=first_undecodable_line(path)
            ) from None
        except csv.Error as exc:
            raise InputFileError(NAME, str(path), f"not valid CSV ({exc})") from None

    def _read_access(self, known: set[str], progress: Progress | None, reported: int = 0) -> AccessLog:
        """The access file, checked row by row as docs/csv-folder.md says (the first problem
        fails the pull, naming its line and field), into columns without per-row objects: each
        distinct source, status and date is parsed once. Progress up to `reported` rows was
        already announced (by the plain reader, before it gave up)."""
        path = str(self.folder / ACCESS_FILE)
        rows = self._lists(ACCESS_FILE, ("practitioner_id", "patient_id", "source", "last_seen"))
        columns = next(rows)
        at_practitioner, at_patient = columns["practitioner_id"], columns["patient_id"]
        at_source, at_day, at_status = columns["source"], columns["last_seen"], columns.get("status")
        practitioners: dict[str, int] = {}
        patients: dict[str, int] = {}
        practitioner_codes: list[int] = []
        patient_codes: list[int] = []
        sources: list[int] = []
        statuses: list[int] = []
        days: list[int] = []
        source_of: dict[str, int] = {}
        status_of: dict[str, int] = {}
        day_of: dict[str, int] = {}

        def needed(value: str, field: str, line: int) -> str:
            if not value:
                raise InputFileError(NAME, path, "a value is required", line=line, field=field)
            return value

        for line, values in rows:
            practitioner_id = needed(values[at_practitioner], "practitioner_id", line)
            practitioner = practitioners.get(practitioner_id)
            if practitioner is None:
                if practitioner_id not in known:
                    raise InputFileError(
                        NAME,
                        path,
                        f"unknown practitioner {practitioner_id!r} (not in {PRACTITIONERS_FILE})",
                        line=line,
                        field="practitioner_id",
                    )
                practitioner = practitioners[practitioner_id] = len(practitioners)
            source_text = needed(values[at_source], "source", line)
            source = source_of.get(source_text)
            if source is None:
                try:
                    source = source_of[source_text] = int(AccessSource.parse(source_text))
                except ValueError as exc:
                    raise InputFileError(NAME, path, str(exc), line=line, field="source") from None
            status_text = (values[at_status] if at_status is not None else "") or "active"
            status = status_of.get(status_text)
            if status is None:
                status = status_of[status_text] = _parse_status(status_text, path, line)
            patient_id = needed(values[at_patient], "patient_id", line)
            patient = patients.get(patient_id)
            if patient is None:
                patient = patients[patient_id] = len(patients)
            day_text = needed(values[at_day], "last_seen", line)
            day = day_of.get(day_text)
            if day is None:
                day = day_of[day_text] = day_number(_parse_day(day_text, path, line))
            practitioner_codes.append(practitioner)
            patient_codes.append(patient)
            sources.append(source)
            statuses.append(status)
            days.append(day)
            if progress is not None and len(days) % _PROGRESS_EVERY == 0 and len(days) > reported:
                progress("patient_access", len(days))
        if progress is not None:
            progress("patient_access", len(days))
        return AccessLog(
            list(practitioners),
            list(patients),
            np.array(practitioner_codes, dtype=np.int32),
            np.array(patient_codes, dtype=np.int32),
            np.array(sources, dtype=np.int8),
            np.array(statuses, dtype=np.int8),
            np.array(days, dtype=np.int32),
        )


def _parse_status(text: str, path: str, line: int) -> int:
    try:
        return int(AccessStatus[text.upper()])
    except KeyError:
        allowed = ", ".join(member.label for member in AccessStatus)
        raise InputFileError(
            NAME, path, f"unknown status {text!r} (expected one of: {allowed})", line=line, field="status"
        ) from None


def _required(row: dict[str, str], field: str, path: str, line: int) -> str:
    value = row.get(field, "")
    if not value:
        raise InputFileError(NAME, path, "a value is required", line=line, field=field)
    return value


def _parse_bool(value: str, path: str, line: int, field: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InputFileError(NAME, path, f"expected true or false, got {value!r}", line=line, field=field)


def _parse_day(value: str, path: str, line: int) -> date:
    day = optional_day(value)
    if day is None:
        raise InputFileError(
            NAME, path, f"expected an ISO date like 2026-11-25, got {value!r}", line=line, field="last_seen"
        )
    return day_to_date(day)


def _parse_timestamp(value: str, path: str, line: int, field: str) -> None:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputFileError(
            NAME, path, f"expected an ISO timestamp, got {value!r}", line=line, field=field
        ) from None
