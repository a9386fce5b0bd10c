"""The plain (by columns) reader of patient_access.csv agrees with the row reader, or gives up.

The row reader (CsvPmsConnector._read_access) is the reference: it checks each row and names
the line and field of the first problem. The plain reader must give the same access log and the
same progress for every plain, valid file, and hand anything else back to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from connectors import csv_plain, csv_pms
from connectors.csv_plain import PlainAccessReader
from connectors.csv_pms import ACCESS_FILE, CsvPmsConnector
from connectors.errors import InputFileError

KNOWN = {"101", "102", "103"}
EVERY = 3  # progress every 3 rows, so that small files cross several announcements


@pytest.fixture(autouse=True)
def _progress_every_few_rows(monkeypatch):
    monkeypatch.setattr(csv_pms, "_PROGRESS_EVERY", EVERY)


def _rows(count: int, *, status: bool = True, pad: str = "") -> list[str]:
    sources = ("appointment", "care_team", "APPOINTMENT")
    statuses = ("active", "cancelled", "", "Archived")
    rows = []
    for i in range(count):
        values = [f"{pad}10{1 + i % 3}", f"p{i % 7}{pad}", sources[i % 3], f"2026-0{1 + i % 9}-1{i % 10}"]
        if status:
            values.append(statuses[i % 4])
        rows.append(",".join(values))
    return rows


def _write(folder: Path, text: str) -> Path:
    path = folder / ACCESS_FILE
    path.write_bytes(text.encode())
    return path


def _both(folder: Path, path: Path):
    plain_calls: list[int] = []
    row_calls: list[int] = []
    plain = PlainAccessReader(path, KNOWN, lambda _, rows: plain_calls.append(rows), EVERY).read()
    by_rows = CsvPmsConnector(folder)._read_access(KNOWN, lambda _, rows: row_calls.append(rows))
    return plain, by_rows, plain_calls, row_calls


def _same(plain, by_rows) -> None:
    assert list(plain.practitioner_ids) == list(by_rows.practitioner_ids)
    assert list(plain.patient_ids) == list(by_rows.patient_ids)
    for column in ("practitioner_codes", "patient_codes", "sources", "statuses", "days"):
        mine, reference = getattr(plain, column), getattr(by_rows, column)
        assert mine.dtype == reference.dtype, column
        assert np.array_equal(mine, reference), column


@pytest.mark.parametrize(
    ("header", "rows", "newline", "last_newline"),
    [
        ("practitioner_id,patient_id,source,last_seen,status", _rows(40), "\n", True),
        ("practitioner_id,patient_id,source,last_seen,status", _rows(40), "\r\n", True),
        ("practitioner_id,patient_id,source,last_seen,status", _rows(41), "\r\n", False),
        ("practitioner_id,patient_id,source,last_seen", _rows(30, status=False), "\n", True),
        (" status , last_seen,source,patient_id,practitioner_id", _rows(9), "\n", True),
        ("practitioner_id,patient_id,source,last_seen,status", _rows(25, pad="  "), "\n", True),
        ("practitioner_id,patient_id,source,last_seen,status", [], "\n", True),
    ],
)
def test_a_plain_valid_file_reads_the_same_as_row_by_row(
    tmp_path, monkeypatch, header, rows, newline, last_newline
):
    """Given a plain, valid access file (either line ending, padded values, reordered or
    missing optional columns, read in blocks of a few lines), when both readers read it, then
    they give the same practitioners, patients, codes, dates and progress."""
    monkeypatch.setattr(csv_plain, "BLOCK_CHARS", 97)  # many blocks, lines cut across them
    if header.startswith(" status"):  # the columns in another order: rotate each row to match
        rows = [",".join(reversed(row.split(","))) for row in rows]
    text = newline.join([header, *rows]) + (newline if last_newline else "")
    path = _write(tmp_path, text)
    plain, by_rows, plain_calls, row_calls = _both(tmp_path, path)
    assert plain is not None
    _same(plain, by_rows)
    assert [*plain_calls, len(plain.days)] == row_calls


def test_a_repeated_column_name_uses_its_last_column_as_the_row_reader_does(tmp_path):
    """Given an access file with two `source` columns, when both read it, then both take the last."""
    path = _write(
        tmp_path,
        "practitioner_id,patient_id,source,last_seen,source\n101,p1,bogus,2026-01-01,care_team\n",
    )
    plain, by_rows, _, _ = _both(tmp_path, path)
    assert plain is not None
    _same(plain, by_rows)


@pytest.mark.parametrize(
    "text",
    [
        'practitioner_id,patient_id,source,last_seen\n101,"p1, junior",appointment,2026-01-01\n',
        "practitioner_id,patient_id,source,last_seen\n101,p1,appointment,2026-01-01\n\n",
        "practitioner_id,patient_id,source,last_seen\n101,p1,appointment,2026-01-01\n,,,\n",
        "practitioner_id,patient_id,source,last_seen,status\n101,p1,appointment,2026-01-01\n",
        "practitioner_id,patient_id,source,last_seen\r101,p1,appointment,2026-01-01\r",
        "practitioner_id,patient_id,source,last_seen\n   \n101,p1,appointment,2026-01-01\n",
    ],
    ids=["quoted value", "blank line", "blank row", "short row", "bare carriage returns", "spaces only"],
)
def test_a_file_that_is_not_plain_is_left_to_the_row_reader_which_reads_it(tmp_path, text):
    """Given a valid file that only the csv module reads right, when the plain reader meets it,
    then it gives up, and the pull still reads it (row by row)."""
    path = _write(tmp_path, text)
    assert PlainAccessReader(path, KNOWN, None, EVERY).read() is None
    (tmp_path / "practitioners.csv").write_text(
        "id,name,email,active\n101,Ana,a@c.example,true\n102,Ben,b@c.example,true\n103,Cy,,true\n"
    )
    access = CsvPmsConnector(tmp_path).pull(window_start=None, cursors={}).snapshot.access
    assert len(access.days) == 1


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        (
            "999,p1,appointment,2026-01-01,active",
            "line 32, field 'practitioner_id': unknown practitioner '999'",
        ),
        ("101,p1,phone,2026-01-01,active", "line 32, field 'source': unknown source 'phone'"),
        ("101,p1,appointment,2026-01-01,lost", "line 32, field 'status': unknown status 'lost'"),
        ("101,,appointment,2026-01-01,active", "line 32, field 'patient_id': a value is required"),
        ("101,p1,appointment,1/2/2026,active", "line 32, field 'last_seen': expected an ISO date"),
    ],
)
def test_an_invalid_value_late_in_the_file_fails_with_the_row_readers_message_and_progress_once(
    tmp_path, monkeypatch, bad_row, expected
):
    """Given a plain file with one invalid value after several blocks, when it is pulled, then
    the error names its line and field (the row reader's message), and no progress count is
    announced twice (the plain reader's announcements are not repeated)."""
    monkeypatch.setattr(csv_plain, "BLOCK_CHARS", 120)
    rows = _rows(30)
    text = "\n".join(["practitioner_id,patient_id,source,last_seen,status", *rows, bad_row, *rows]) + "\n"
    (tmp_path / "practitioners.csv").write_text(
        "id,name,email,active\n101,Ana,a@c.example,true\n102,Ben,b@c.example,true\n103,Cy,,true\n"
    )
    _write(tmp_path, text)
    calls: list[int] = []
    connector = CsvPmsConnector(tmp_path)
    with pytest.raises(InputFileError) as raised:
        connector.pull(window_start=None, cursors={}, progress=lambda _, rows: calls.append(rows))
    assert expected in str(raised.value)
    assert calls == sorted(set(calls))
    assert calls[-1] == 30


def test_a_short_row_beside_a_long_one_is_not_mistaken_for_two_plain_rows(tmp_path):
    """Given a row of one value and the next of nine (as many values in all as two good rows,
    and each column still holding valid values if they were taken five by five), when it is
    pulled, then the plain reader gives up and the row reader names the short row's first gap."""
    path = _write(
        tmp_path,
        "practitioner_id,patient_id,source,last_seen,status\n"
        "101\nappointment,2026-01-01,active,x,101,p2,appointment,2026-01-01,active\n",
    )
    assert PlainAccessReader(path, KNOWN, None, EVERY).read() is None
    with pytest.raises(InputFileError, match="line 2, field 'source': a value is required"):
        CsvPmsConnector(tmp_path)._read_access(KNOWN, None)


def test_a_named_pipe_is_left_to_the_row_reader_which_streams_it(tmp_path):
    """Given a named pipe, when the plain reader is asked, then it gives up without opening it
    (a pipe cannot be read twice)."""
    pipe = tmp_path / ACCESS_FILE
    os.mkfifo(pipe)
    assert PlainAccessReader(pipe, KNOWN, None, EVERY).read() is None


def test_a_file_over_the_size_limit_is_left_to_the_row_reader_which_names_the_limit(tmp_path, monkeypatch):
    """Given an access file larger than the limit, when it is pulled, then the error is the
    row reader's: the file is larger than the limit."""
    from connectors import limits

    monkeypatch.setattr(limits, "MAX_CSV_FILE_BYTES", 200)
    path = _write(
        tmp_path, "\n".join(["practitioner_id,patient_id,source,last_seen,status", *_rows(20)]) + "\n"
    )
    assert PlainAccessReader(path, KNOWN, None, EVERY).read() is None
    with pytest.raises(InputFileError, match="larger than the 0 MB limit"):
        CsvPmsConnector(tmp_path)._read_access(KNOWN, None)
