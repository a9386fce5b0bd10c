"""Reading export files: CSV or XLSX, one file or every such file in a folder, within limits.

Yields each data row as (row number, {header: cell}); a CSV row number is its line in the file,
an XLSX row number is the sheet's row. Problems with a whole file (unreadable, no header, over
a limit) raise InputFileError naming the file; problems with one row are the caller's to judge.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.csv_quotes import check_row, tapped
from connectors.errors import InputFileError
from connectors.export_mapping import Mapping
from connectors.limits import first_undecodable_line

NAME = "export"
SUFFIXES = (".csv", ".xlsx")
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_XLSX_UNPACKED_BYTES = 1024 * 1024 * 1024
MAX_FILES = 500
MAX_ROWS = 2_000_000
MAX_CELL_CHARS = 4096

Cell = str | datetime


def export_files(path: str | Path) -> list[Path]:
    """The file itself, or every CSV/XLSX file directly in the folder (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith((".", "~$"))
        )
        if not files:
            raise InputFileError(NAME, str(path), "no .csv or .xlsx file in this folder")
        if len(files) > MAX_FILES:
            raise InputFileError(NAME, str(path), f"more than {MAX_FILES} export files in this folder")
        return files
    if not path.exists():
        raise InputFileError(NAME, str(path), "file not found")
    if path.suffix.lower() not in SUFFIXES:
        raise InputFileError(NAME, str(path), "not a .csv or .xlsx file")
    return [path]


def read_rows(path: Path, mapping: Mapping) -> Iterator[tuple[int, dict[str, Cell]]]:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputFileError(
            NAME,
            str(path),
            f"{size / 1e6:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MiB limit; split the export",
        )
    if path.suffix.lower() == ".xlsx":
        yield from _xlsx_rows(path, mapping)
    else:
        yield from _csv_rows(path, mapping)


def _header(cells: list[Any], path: Path, row: int) -> list[str]:
    header = [("" if cell is None else str(cell)).strip() for cell in cells]
    if not any(header):
        raise InputFileError(NAME, str(path), "the header row is empty", line=row)
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise InputFileError(NAME, str(path), f"column {name!r} appears twice in the header", line=row)
        seen.add(name)
    return header


def _csv_rows(path: Path, mapping: Mapping) -> Iterator[tuple[int, dict[str, Cell]]]:
    try:
        with path.open(newline="", encoding=mapping.encoding) as handle:
            pending: list[str] = []
            reader = csv.reader(tapped(handle, pending), delimiter=mapping.delimiter)
            header: list[str] | None = None
            previous = 0
            for record in reader:
                if reader.line_num > MAX_ROWS + mapping.header_row:
                    raise InputFileError(NAME, str(path), f"more than {MAX_ROWS:,} rows")
                check_row(NAME, path, pending, previous, reader.line_num, delimiter=mapping.delimiter)
                previous = reader.line_num
                if header is None:
                    if reader.line_num >= mapping.header_row:
                        header = _header(record, path, reader.line_num)
                    continue
                if not any(value.strip() for value in record):
                    continue
                yield reader.line_num, _row(header, record)
            if header is None:
                raise InputFileError(NAME, str(path), "the file is empty (no header row)", line=1)
    except UnicodeDecodeError as exc:
        line = first_undecodable_line(path, mapping.encoding)
        raise InputFileError(
            NAME, str(path), f"not {mapping.encoding} text ({exc.reason})", line=line
        ) from None
    except csv.Error as exc:
        raise InputFileError(NAME, str(path), f"not valid CSV ({exc})") from None


def _xlsx_rows(path: Path, mapping: Mapping) -> Iterator[tuple[int, dict[str, Cell]]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise InputFileError(NAME, str(path), "not a valid .xlsx file") from None
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise InputFileError(NAME, str(path), "unpacks to more than 1 GiB; split the export")
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise InputFileError(
            NAME, str(path), f"not a readable .xlsx file ({exc.__class__.__name__})"
        ) from None
    try:
        if mapping.sheet is not None:
            if mapping.sheet not in workbook.sheetnames:
                raise InputFileError(NAME, str(path), f"no sheet named {mapping.sheet!r}")
            sheet = workbook[mapping.sheet]
        else:
            sheet = workbook.worksheets[0]
        header: list[str] | None = None
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > MAX_ROWS + mapping.header_row:
                raise InputFileError(NAME, str(path), f"more than {MAX_ROWS:,} rows")
            if header is None:
                if number >= mapping.header_row:
                    header = _header(list(values), path, number)
                continue
            cells = ["" if v is None else v for v in values]
            if not any(str(cell).strip() for cell in cells):
                continue
            yield number, _row(header, cells)
        if header is None:
            raise InputFileError(NAME, str(path), "the sheet is empty (no header row)", line=1)
    finally:
        workbook.close()


def _row(header: list[str], cells: list[Any]) -> dict[str, Cell]:
    row: dict[str, Cell] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        value = cells[index] if index < len(cells) else ""
        if isinstance(value, datetime):
            row[name] = value
        elif isinstance(value, date):
            row[name] = datetime(value.year, value.month, value.day)
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # an id typed as a number in a spreadsheet
            text = str(value)
            row[name] = text[: MAX_CELL_CHARS + 1].strip()
    return row
