"""Column mappings for appointment exports: a small TOML file, or a preset shipped with ptsync.

The format is documented in docs/export-mappings.md. A mapping names the export's columns
(practitioner id / name / email, patient id, date, status), the date formats, and which status
values mean active, cancelled, did-not-arrive or deleted. Every problem is one line naming the
mapping file and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorError
from sharing import AccessStatus

NAME = "export"
PRESET_PACKAGE = "connectors.export_presets"
STATUS_CLASSES = ("active", "cancelled", "did_not_arrive", "deleted")
_COLUMN_KEYS = (
    "practitioner_id",
    "practitioner_name",
    "practitioner_email",
    "patient_id",
    "date",
    "status",
    "location",
)
_STATUS_OF = {
    "active": AccessStatus.ACTIVE,
    "did_not_arrive": AccessStatus.ACTIVE,  # the patient is still that practitioner's patient
    "cancelled": AccessStatus.CANCELLED,
    "deleted": AccessStatus.DELETED,
}


@dataclass(frozen=True)
class Mapping:
    name: str
    columns: dict[str, str]
    date_formats: tuple[str, ...]
    statuses: dict[str, str]
    """Status value (case-folded, trimmed) -> its class (active, cancelled, did_not_arrive, deleted)."""
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    sheet: str | None = None
    header_row: int = 1

    def status_of(self, value: str) -> tuple[str, AccessStatus] | None:
        """The class and core status of a status value, or None when the mapping does not list it."""
        kind = self.statuses.get(value.strip().casefold())
        return None if kind is None else (kind, _STATUS_OF[kind])

    def parse_date(self, value: str) -> datetime | None:
        text = value.strip()
        for pattern in self.date_formats:
            try:
                if pattern == "iso":
                    return datetime.fromisoformat(text.replace("Z", "+00:00"))
                return datetime.strptime(text, pattern)
            except ValueError:
                continue
        return None


def preset_names() -> list[str]:
    folder = resources.files(PRESET_PACKAGE)
    return sorted(item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml"))


def load_mapping(name_or_path: str) -> Mapping:
    """A preset by name (`generic`, ...) or a mapping TOML file by path."""
    if name_or_path in preset_names():
        text = resources.files(PRESET_PACKAGE).joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
        return parse_mapping(text, f"preset {name_or_path}")
    path = Path(name_or_path)
    if not path.is_file():
        raise ConnectorError(
            NAME,
            f"mapping {name_or_path}: not a preset ({', '.join(preset_names())}) and no such file",
        )
    if path.stat().st_size > 64_000:
        raise ConnectorError(NAME, f"mapping {name_or_path}: larger than 64 kB; a mapping is a small file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConnectorError(NAME, f"mapping {name_or_path}: not UTF-8 text") from None
    return parse_mapping(text, f"mapping {name_or_path}")


def parse_mapping(text: str, where: str) -> Mapping:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConnectorError(NAME, f"{where}: not valid TOML ({exc})") from None
    _only(document, ("name", "description", "columns", "dates", "status", "file"), where)
    columns = _table(document, "columns", where, required=True)
    _only(columns, _COLUMN_KEYS, f"{where} [columns]")
    for key, value in columns.items():
        if not isinstance(value, str) or not value.strip():
            raise ConnectorError(NAME, f"{where} [columns] {key}: expected a column name (text)")
    for key in ("patient_id", "date"):
        if key not in columns:
            raise ConnectorError(NAME, f"{where} [columns]: {key} is required")
    if not any(key in columns for key in ("practitioner_id", "practitioner_name", "practitioner_email")):
        raise ConnectorError(
            NAME,
            f"{where} [columns]: name the practitioner_id, practitioner_name or practitioner_email column",
        )
    dates = _table(document, "dates", where)
    _only(dates, ("formats",), f"{where} [dates]")
    formats = dates.get("formats", ["iso"])
    if not isinstance(formats, list) or not formats or not all(isinstance(f, str) and f for f in formats):
        raise ConnectorError(NAME, f'{where} [dates] formats: expected a list of formats, e.g. ["%d/%m/%Y"]')
    statuses: dict[str, str] = {}
    status_table = _table(document, "status", where)
    _only(status_table, STATUS_CLASSES, f"{where} [status]")
    for kind in STATUS_CLASSES:
        values = status_table.get(kind, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConnectorError(NAME, f"{where} [status] {kind}: expected a list of values")
        for value in values:
            folded = value.strip().casefold()
            if folded in statuses and statuses[folded] != kind:
                raise ConnectorError(
                    NAME, f"{where} [status]: {value!r} is listed as {statuses[folded]} and {kind}"
                )
            statuses[folded] = kind
    if "status" in columns and not statuses:
        raise ConnectorError(NAME, f"{where} [status]: list the status values (active, cancelled, ...)")
    file = _table(document, "file", where)
    _only(file, ("delimiter", "encoding", "sheet", "header_row"), f"{where} [file]")
    delimiter = file.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConnectorError(NAME, f"{where} [file] delimiter: expected one character")
    header_row = file.get("header_row", 1)
    if not isinstance(header_row, int) or not 1 <= header_row <= 100:
        raise ConnectorError(NAME, f"{where} [file] header_row: expected a number from 1 to 100")
    encoding = file.get("encoding", "utf-8-sig")
    try:
        "".encode(str(encoding))
    except LookupError:
        raise ConnectorError(NAME, f"{where} [file] encoding: unknown encoding {encoding!r}") from None
    sheet = file.get("sheet")
    return Mapping(
        name=str(document.get("name") or where),
        columns={key: value.strip() for key, value in columns.items()},
        date_formats=tuple(formats),
        statuses=statuses,
        delimiter=delimiter,
        encoding=str(encoding),
        sheet=str(sheet) if sheet is not None else None,
        header_row=header_row,
    )


def _table(document: dict[str, Any], key: str, where: str, *, required: bool = False) -> dict[str, Any]:
    value = document.get(key)
    if value is None:
        if required:
            raise ConnectorError(NAME, f"{where}: a [{key}] table is required")
        return {}
    if not isinstance(value, dict):
        raise ConnectorError(NAME, f"{where}: {key} must be a table ([{key}])")
    return value


def _only(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConnectorError(
            NAME, f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})"
        )
