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

from connectors.base import PmsPull, Progress
from connectors.dates import day_to_date, optional_day
from connectors.errors import InputFileError
from connectors.limits import limited_lines
from sharing import AccessLogBuilder, AccessSource, AccessStatus, PmsPractitioner, PmsSnapshot

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
        access = self._read_access(known, progress)
        return PmsPull(PmsSnapshot(self.system, tuple(practitioners), access), cursors={})

    def _rows(self, name: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
        path = self.folder / name
        if not path.exists() or path.is_dir():  # not is_file(): a named pipe is a fine source
            raise InputFileError(NAME, str(path), "file not found")
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(limited_lines(NAME, path, handle))
                header = [column.strip() for column in (reader.fieldnames or [])]
                if not header:
                    raise InputFileError(NAME, str(path), "the file is empty (no header row)", line=1)
                missing = [column for column in required if column not in header]
                if missing:
                    raise InputFileError(NAME, str(path), f"missing column(s) {', '.join(missing)}", line=1)
                reader.fieldnames = header
                for row in reader:
                    if None in row:
                        raise InputFileError(
                            NAME, str(path), "more values than columns", line=reader.line_num
                        )
                    if all(not (value or "").strip() for value in row.values()):
                        continue
                    yield reader.line_num, {key: (value or "").strip() for key, value in row.items()}
        except UnicodeDecodeError as exc:
            raise InputFileError(NAME, str(path), f"not UTF-8 text ({exc.reason})") from None
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

    def _read_access(self, known: set[str], progress: Progress | None):
        path = str(self.folder / ACCESS_FILE)
        builder = AccessLogBuilder()
        required = ("practitioner_id", "patient_id", "source", "last_seen")
        for line, row in self._rows(ACCESS_FILE, required):
            practitioner_id = _required(row, "practitioner_id", path, line)
            if practitioner_id not in known:
                raise InputFileError(
                    NAME,
                    path,
                    f"unknown practitioner {practitioner_id!r} (not in {PRACTITIONERS_FILE})",
                    line=line,
                    field="practitioner_id",
                )
            try:
                source = AccessSource.parse(_required(row, "source", path, line))
            except ValueError as exc:
                raise InputFileError(NAME, path, str(exc), line=line, field="source") from None
            status_text = row.get("status") or "active"
            try:
                status = AccessStatus[status_text.upper()]
            except KeyError:
                allowed = ", ".join(member.label for member in AccessStatus)
                raise InputFileError(
                    NAME,
                    path,
                    f"unknown status {status_text!r} (expected one of: {allowed})",
                    line=line,
                    field="status",
                ) from None
            builder.add(
                practitioner_id,
                _required(row, "patient_id", path, line),
                source,
                _parse_day(_required(row, "last_seen", path, line), path, line),
                status,
            )
            if progress is not None and len(builder) % _PROGRESS_EVERY == 0:
                progress("patient_access", len(builder))
        if progress is not None:
            progress("patient_access", len(builder))
        return builder.build()


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
