"""patient_access.csv read by columns when it is plain: the fast path of the CSV connector.

The row reader in csv_pms checks each row in Python, about 1.8 µs a row: most of a large
clinic's sync (0.37 s of 200,000 rows). Most exports are plain: no quotes, one row per line,
every row as wide as the header, every value valid. Such a file is split with one `str.split`
per 64 KB block, each column's distinct values are checked once, and the rows become codes
through dictionary look-ups that run in C (0.19 s against the row reader's 0.36 s for the same
file, side by side at load 3.8).

At the first thing that is not plain or not valid (a quote, a blank, short or long row, an
unknown practitioner, a date that does not parse, a byte that is not UTF-8, a file over the
size limit, a named pipe...) it gives up, and the row reader reads the file again from the
start. So every error message, line number and edge case stays the row reader's, and this path
only has to agree with it on files that are plain and valid (tests/connectors/test_csv_plain.py
compares the two).
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np

from connectors import limits
from connectors.base import Progress
from connectors.dates import day_to_date, optional_day
from sharing import AccessLog, AccessSource, AccessStatus
from sharing.access import day_number

BLOCK_CHARS = 1 << 16
"""Characters read at a time: enough that per-block costs vanish, few enough that a block's
values are still in the CPU's cache when its columns are coded (1 MB blocks were 15% slower)."""
REQUIRED = ("practitioner_id", "patient_id", "source", "last_seen")
_NEWLINE_FIELD = ",\0,"
"""What each newline becomes before the split: a field of its own, NUL (no plain file has one)."""


class NotPlain(Exception):
    """The file needs the row reader: it is not plain, or something in it is not valid."""


class PlainAccessReader:
    """Reads one access file by columns; `read` returns None when the row reader must read it.

    `reported` counts the rows already announced through `progress` (a multiple of `every`,
    as the row reader announces them), so that a row reader taking over can skip those."""

    def __init__(self, path: Path, known: set[str], progress: Progress | None, every: int) -> None:
        self.path = path
        self.known = known
        self.progress = progress
        self.every = every
        self.reported = 0
        self.practitioners: dict[str, int] = {}
        self.patients: dict[str, int] = {}
        # One per column: each value as written in the file (spaces and all) -> its code.
        self._practitioner_of: dict[str, int] = {}
        self._patient_of: dict[str, int] = {}
        self._source_of: dict[str, int] = {}
        self._status_of: dict[str, int] = {}
        self._day_of: dict[str, int] = {}
        self._practitioner_codes: list[int] = []
        self._patient_codes: list[int] = []
        self._sources: list[int] = []
        self._statuses: list[int] = []
        self._days: list[int] = []
        self._width = 0
        self._at: dict[str, int] = {}

    def read(self) -> AccessLog | None:
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                return None  # a named pipe cannot be read twice: the row reader streams it
            with self.path.open(newline="", encoding="utf-8-sig") as handle:
                self._read(handle)
        except (NotPlain, UnicodeDecodeError, OSError):
            return None
        return AccessLog(
            list(self.practitioners),
            list(self.patients),
            np.array(self._practitioner_codes, dtype=np.int32),
            np.array(self._patient_codes, dtype=np.int32),
            np.array(self._sources, dtype=np.int8),
            np.array(self._statuses, dtype=np.int8),
            np.array(self._days, dtype=np.int32),
        )

    def _read(self, handle: TextIO) -> None:
        limit = limits.MAX_CSV_FILE_BYTES  # read at each call: tests lower it
        field_limit = csv.field_size_limit()
        carry = ""
        read = 0
        header_seen = False
        while True:
            chunk = handle.read(BLOCK_CHARS)
            read += len(chunk)
            if read > limit:
                raise NotPlain("over the size limit")
            block = carry + chunk
            if chunk:
                cut = block.rfind("\n") + 1
                if cut == 0:  # no whole line yet
                    if len(block) > field_limit:
                        raise NotPlain("a line longer than any field may be")
                    carry = block
                    continue
                block, carry = block[:cut], block[cut:]
            elif not block:
                break
            block = _plain_text(block, field_limit)
            if not header_seen:
                header_seen = True
                end = block.index("\n")
                self._header(block[:end])
                block = block[end + 1 :]
            self._block(block)
            if not chunk:
                break
        if not header_seen:
            raise NotPlain("empty file")

    def _header(self, line: str) -> None:
        header = [column.strip() for column in line.split(",")]
        if any(column not in header for column in REQUIRED):
            raise NotPlain("missing columns")
        self._width = len(header)
        self._at = {column: index for index, column in enumerate(header)}  # the last of a repeated name

    def _block(self, text: str) -> None:
        """Whole lines, each ending with its newline. Each newline becomes a field of its own
        (NUL, which no plain file contains), so the file's values come out of one `split`,
        and the rows are all as wide as the header exactly when every (width + 1)th field
        is that newline mark."""
        if not text:
            return
        rows = text.count("\n")
        width = self._width
        step = width + 1
        fields = text.replace("\n", _NEWLINE_FIELD).split(",")
        if len(fields) != step * rows + 1 or fields[width::step].count("\0") != rows:
            raise NotPlain("a blank, short or long row")
        fields.pop()  # the empty field after the last newline
        at = self._at
        _encode(
            fields[at["practitioner_id"] :: step],
            self._practitioner_of,
            self._practitioner,
            self._practitioner_codes,
        )
        _encode(fields[at["source"] :: step], self._source_of, _source, self._sources)
        if "status" in at:
            _encode(fields[at["status"] :: step], self._status_of, _status, self._statuses)
        else:
            self._statuses.extend([int(AccessStatus.ACTIVE)] * rows)
        _encode(fields[at["patient_id"] :: step], self._patient_of, self._patient, self._patient_codes)
        _encode(fields[at["last_seen"] :: step], self._day_of, _day, self._days)
        if self.progress is not None:
            while self.reported + self.every <= len(self._days):
                self.reported += self.every
                self.progress("patient_access", self.reported)

    def _practitioner(self, value: str) -> int:
        practitioner_id = value.strip()
        if not practitioner_id or practitioner_id not in self.known:
            raise NotPlain("a blank row or an unknown practitioner")
        return self.practitioners.setdefault(practitioner_id, len(self.practitioners))

    def _patient(self, value: str) -> int:
        patient_id = value.strip()
        if not patient_id:
            raise NotPlain("no patient id")
        return self.patients.setdefault(patient_id, len(self.patients))


def _plain_text(block: str, field_limit: int) -> str:
    """A block of whole lines with `\n` endings, when none of them needs the csv module to be
    read (nor fails it: a field longer than the csv module's limit is a csv error)."""
    if '"' in block or "\0" in block:
        raise NotPlain("quotes or NUL characters")
    if "\r" in block:
        block = block.replace("\r\n", "\n")
        if "\r" in block:
            raise NotPlain("a bare carriage return")
    if len(block) > field_limit:
        raise NotPlain("a line that may be longer than any field may be")
    return block if block.endswith("\n") else block + "\n"  # the file's last line, unended


def _encode(
    values: list[str], code_of: dict[str, int], decode: Callable[[str], int], codes: list[int]
) -> None:
    """Append each value's code, decoding (and so checking) each distinct value once, in the
    order of first appearance (the order the row reader gives practitioners and patients)."""
    start = len(codes)
    try:
        codes.extend(map(code_of.__getitem__, values))  # most blocks bring no new practitioner, date...
        return
    except KeyError:
        del codes[start:]  # the codes appended before the first new value
    for value in dict.fromkeys(values):
        if value not in code_of:
            code_of[value] = decode(value)
    codes.extend(map(code_of.__getitem__, values))


def _source(value: str) -> int:
    text = value.strip()
    if not text:
        raise NotPlain("no source")
    try:
        return int(AccessSource.parse(text))
    except ValueError:
        raise NotPlain("unknown source") from None


def _status(value: str) -> int:
    try:
        return int(AccessStatus[(value.strip() or "active").upper()])
    except KeyError:
        raise NotPlain("unknown status") from None


def _day(value: str) -> int:
    day = optional_day(value.strip()) if value.strip() else None
    if day is None:
        raise NotPlain("no date or not an ISO date")
    return day_number(day_to_date(day))
