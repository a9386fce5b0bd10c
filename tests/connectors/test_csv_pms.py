"""The CSV connector: every bad input names the file, the line and the field."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connectors.csv_pms import CsvPmsConnector
from connectors.errors import InputFileError
from sharing import AccessStatus

WINDOW = date(2025, 1, 1)
PRACTITIONERS = "id,name,email,active,updated_at\n101,Ana Silva,ana@c.example,true,\n102,Ben Ode,,FALSE,\n"
ACCESS = "practitioner_id,patient_id,source,last_seen\n101,p1,appointment,2026-11-01\n102,p1,care_team,2026-10-01\n"


def _folder(tmp_path: Path, practitioners: str = PRACTITIONERS, access: str = ACCESS) -> Path:
    (tmp_path / "practitioners.csv").write_text(practitioners)
    (tmp_path / "patient_access.csv").write_text(access)
    return tmp_path


def _pull(folder: Path):
    return CsvPmsConnector(folder).pull(window_start=WINDOW, cursors={}).snapshot


def test_a_well_formed_folder_reads_practitioners_and_access_rows(tmp_path):
    snapshot = _pull(_folder(tmp_path))
    assert [(p.id, p.email, p.active) for p in snapshot.practitioners] == [
        ("101", "ana@c.example", True),
        ("102", None, False),
    ]
    assert [(r.practitioner_id, r.source.label, r.last_seen) for r in snapshot.access] == [
        ("101", "appointment", date(2026, 11, 1)),
        ("102", "care_team", date(2026, 10, 1)),
    ]


def test_extra_columns_are_ignored_and_an_optional_status_column_is_honoured(tmp_path):
    access = (
        "practitioner_id,patient_id,source,last_seen,status,room\n101,p1,appointment,2026-11-01,cancelled,3\n"
    )
    [row] = list(_pull(_folder(tmp_path, access=access)).access)
    assert row.status is AccessStatus.CANCELLED


def test_a_byte_order_mark_from_excel_is_accepted(tmp_path):
    (tmp_path / "practitioners.csv").write_bytes("\ufeff".encode() + PRACTITIONERS.encode())
    (tmp_path / "patient_access.csv").write_text(ACCESS)
    assert len(_pull(tmp_path).practitioners) == 2


@pytest.mark.parametrize(
    ("practitioners", "access", "expected"),
    [
        ("id,name,active\n1,A,true\n", ACCESS, "practitioners.csv, line 1: missing column(s) email"),
        ("", ACCESS, "practitioners.csv, line 1: the file is empty (no header row)"),
        (
            "id,name,email,active\n101,Ana,a@c.example,maybe\n",
            ACCESS,
            "practitioners.csv, line 2, field 'active': expected true or false, got 'maybe'",
        ),
        (
            "id,name,email,active\n101,Ana,a@c.example,true\n101,Ana,a@c.example,true\n",
            ACCESS,
            "practitioners.csv, line 3, field 'id': duplicate practitioner id '101'",
        ),
        (
            "id,name,email,active\n101,,a@c.example,true\n",
            ACCESS,
            "practitioners.csv, line 2, field 'name': a value is required",
        ),
        (
            "id,name,email,active\n101,Ana,not-an-email,true\n",
            ACCESS,
            "practitioners.csv, line 2, field 'email': not an email address: 'not-an-email'",
        ),
        (
            PRACTITIONERS,
            "practitioner_id,patient_id,source,last_seen\n999,p1,appointment,2026-01-01\n",
            "patient_access.csv, line 2, field 'practitioner_id': unknown practitioner '999'",
        ),
        (
            PRACTITIONERS,
            "practitioner_id,patient_id,source,last_seen\n101,p1,phone_call,2026-01-01\n",
            "patient_access.csv, line 2, field 'source': unknown source 'phone_call'",
        ),
        (
            PRACTITIONERS,
            "practitioner_id,patient_id,source,last_seen\n101,p1,appointment,01/02/2026\n",
            "patient_access.csv, line 2, field 'last_seen': expected an ISO date like 2026-11-25, got '01/02/2026'",
        ),
        (
            PRACTITIONERS,
            "practitioner_id,patient_id,source,last_seen\n101,p1,appointment,2026-01-01,x\n",
            "patient_access.csv, line 2: more values than columns",
        ),
    ],
)
def test_a_malformed_file_is_rejected_with_file_line_field_and_reason(
    tmp_path, practitioners, access, expected
):
    with pytest.raises(InputFileError) as raised:
        _pull(_folder(tmp_path, practitioners, access))
    assert expected in str(raised.value)
    assert not raised.value.retryable


def test_a_missing_file_is_named(tmp_path):
    (tmp_path / "practitioners.csv").write_text(PRACTITIONERS)
    with pytest.raises(InputFileError, match=r"patient_access.csv: file not found"):
        _pull(tmp_path)


def test_a_file_that_is_not_utf8_is_rejected_naming_the_line(tmp_path):
    # Given a practitioners file whose second line holds a Latin-1 byte
    (tmp_path / "practitioners.csv").write_bytes(b"id,name,email,active\n101,Ana \xff,a@c.example,true\n")
    (tmp_path / "patient_access.csv").write_text(ACCESS)
    # When it is read; Then the error names the file and that line
    with pytest.raises(InputFileError, match=r"practitioners.csv, line 2: not UTF-8"):
        _pull(tmp_path)


def test_a_quote_never_closed_is_named_where_it_opens_not_as_a_later_odd_field(tmp_path):
    # Given a practitioners file whose third line opens a quote that is never closed
    (tmp_path / "practitioners.csv").write_text(
        'id,name,email,active\n101,Ana,a@c.example,true\n102,"Ben,b@c.example,true\n103,Cara,c@c.example,true\n'
    )
    (tmp_path / "patient_access.csv").write_text(ACCESS)
    # When it is read; Then the error points at line 3 and the quote never closed
    with pytest.raises(
        InputFileError, match=r"practitioners.csv, line 3: a quote opened here is never closed"
    ):
        _pull(tmp_path)


def test_a_quote_never_closed_in_a_column_ptsync_ignores_still_fails_instead_of_losing_rows(tmp_path):
    # Given a practitioners file whose ignored last column opens a quote on line 2 that is never
    # closed: Python's csv would read Ben and Cara as part of Ana's note, and they would vanish
    (tmp_path / "practitioners.csv").write_text(
        'id,name,email,active,notes\n101,Ana,a@c.example,true,"Mon-Wed\n102,Ben,b@c.example,true,\n'
        "103,Cara,c@c.example,true,\n"
    )
    (tmp_path / "patient_access.csv").write_text(ACCESS)
    # When it is read; Then it fails at line 2 instead of reading one practitioner
    with pytest.raises(
        InputFileError, match=r"practitioners.csv, line 2: a quote opened here is never closed"
    ):
        _pull(tmp_path)
