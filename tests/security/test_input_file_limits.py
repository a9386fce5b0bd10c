"""Attacks through input files: an export or snapshot too large to hold in memory, and a
snapshot nested deeply enough to blow the parser's stack. Each ends in a one-line error that
names the file, and the run stores nothing."""

from __future__ import annotations

import pytest

from connectors import limits
from connectors.csv_pms import CsvPmsConnector
from connectors.errors import InputFileError
from connectors.ptdirect_file import PtDirectFileAdapter
from tests.clinic_files import write_clinic


def test_a_deeply_nested_snapshot_is_a_one_line_error_naming_the_file(tmp_path):
    # Given a PT Direct snapshot that is valid JSON nested 200,000 levels deep
    snapshot = tmp_path / "ptdirect.json"
    snapshot.write_text('{"schema": "ptsync.ptdirect/1", "users": ' + "[" * 200_000 + "]" * 200_000 + "}")
    # When it is read
    with pytest.raises(InputFileError) as raised:
        PtDirectFileAdapter(snapshot).read()
    # Then the error is one line naming the file and why
    message = str(raised.value)
    assert message == f"ptdirect file: {snapshot}: JSON nested too deeply to read"


def test_a_snapshot_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    # Given a size limit of 1 MB and a snapshot just over it
    monkeypatch.setattr(limits, "MAX_JSON_FILE_BYTES", 1024 * 1024)
    snapshot = tmp_path / "ptdirect.json"
    snapshot.write_text('{"pad": "' + "x" * (1024 * 1024) + '"}')
    # When it is read, Then it is refused with the file and the limit named
    with pytest.raises(InputFileError, match="larger than the 1 MB limit"):
        PtDirectFileAdapter(snapshot).read()


def test_an_export_over_the_size_limit_is_refused_with_the_file_named(tmp_path, monkeypatch):
    # Given a CSV export folder whose access file exceeds a 1 MB limit
    monkeypatch.setattr(limits, "MAX_CSV_FILE_BYTES", 1024 * 1024)
    pms, _ = write_clinic(tmp_path / "clinic")
    with (pms / "patient_access.csv").open("a") as handle:
        for n in range(40_000):
            handle.write(f"101,p{n},appointment,2026-01-01\n")
    # When the connector reads it, Then the pull fails naming the file, before reading it all
    from datetime import date

    with pytest.raises(InputFileError) as raised:
        CsvPmsConnector(pms).pull(window_start=date(2025, 1, 1), cursors={})
    assert str(pms / "patient_access.csv") in str(raised.value)
    assert "larger than the 1 MB limit" in str(raised.value)
