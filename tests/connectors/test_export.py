"""The appointment-export connector: mappings, presets, CSV and XLSX, rejected rows, limits."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

import connectors.export_files as export_files
from connectors.errors import ConnectorError, InputFileError
from connectors.export import ExportConnector, Staff, read_export
from connectors.export_mapping import load_mapping, parse_mapping, preset_names
from sharing import AccessStatus
from worker.cli import app

WINDOW = date(2025, 1, 1)
GENERIC = (
    "practitioner_id,practitioner_name,practitioner_email,patient_id,date,status\n"
    "p1,Ann Smith,ANN@clinic.example,pat1,2026-10-01,booked\n"
    "p2,Bob Jones,bob@clinic.example,pat1,2026-10-02T09:30:00Z,did not arrive\n"
    "p2,Bob Jones,bob@clinic.example,pat2,2026-10-03,Cancelled\n"
)
SAMPLES = {
    "generic": GENERIC,
    "mirah": (
        "id,status,startDate,endDate,minutesDuration,practitionerId,patientId,treatmentServiceId\n"
        "a1,fulfilled,2026-10-01T09:00:00Z,2026-10-01T10:00:00Z,60,pr-1,pa-1,ts\n"
        "a2,noshow,2026-10-02T09:00:00Z,,60,pr-2,pa-1,ts\n"
        "a3,canceled,2026-10-03T09:00:00Z,,60,pr-2,pa-2,ts\n"
    ),
}


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _pull(path: Path, mapping: str = "generic", **kwargs):
    return ExportConnector(path, mapping, **kwargs).pull(window_start=WINDOW, cursors={})


@pytest.mark.parametrize("preset", sorted(SAMPLES))
def test_every_shipped_preset_reads_its_sample_export(tmp_path, preset):
    # Given a small export in the preset's documented layout
    path = _write(tmp_path, f"{preset}.csv", SAMPLES[preset])
    # When it is read with the preset
    pulled = _pull(path, preset)
    # Then two practitioners share patient 1, and the cancelled row is passed as cancelled
    assert len(pulled.snapshot.practitioners) == 2
    statuses = sorted(row.status for row in pulled.snapshot.access)
    assert statuses == [AccessStatus.ACTIVE, AccessStatus.ACTIVE, AccessStatus.CANCELLED]


def test_every_preset_has_a_sample_here():
    assert sorted(SAMPLES) == preset_names()


def test_practitioner_ids_come_from_the_id_column_else_the_email_else_the_normalised_name(tmp_path):
    # Given an export with only names and emails, and a mapping naming those columns
    path = _write(
        tmp_path,
        "a.csv",
        "who,mail,patient,when\nAnn  Smith,,p1,2026-10-01\n ann smith,,p2,2026-10-02\nBob,BOB@x.example,p1,2026-10-03\n",
    )
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[columns]\npractitioner_name = "who"\npractitioner_email = "mail"\npatient_id = "patient"\ndate = "when"\n'
    )
    # When it is read
    pulled = _pull(path, str(mapping))
    # Then Ann is one practitioner keyed by her normalised name, Bob by his lower-case email
    assert sorted(p.id for p in pulled.snapshot.practitioners) == ["bob@x.example", "name:ann smith"]


def test_an_xlsx_export_with_date_cells_and_numeric_ids_is_read(tmp_path):
    # Given an XLSX export where dates are date cells and patient ids numbers
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(
        ["practitioner_id", "practitioner_name", "practitioner_email", "patient_id", "date", "status"]
    )
    sheet.append(["p1", "Ann", "ann@x.example", 1001, datetime(2026, 10, 1, 9, 0), "booked"])
    sheet.append(["p2", "Bob", "bob@x.example", 1001.0, date(2026, 10, 2), "arrived"])
    workbook.save(tmp_path / "export.xlsx")
    # When the folder is read with the generic preset
    pulled = _pull(tmp_path)
    # Then the two rows share patient "1001"
    assert {(r.practitioner_id, r.patient_id, r.last_seen) for r in pulled.snapshot.access} == {
        ("p1", "1001", date(2026, 10, 1)),
        ("p2", "1001", date(2026, 10, 2)),
    }


def test_every_rejected_row_is_reported_and_the_pull_fails_whole(tmp_path):
    # Given an export with three bad rows among good ones
    path = _write(
        tmp_path,
        "bad.csv",
        GENERIC + "p3,Cy,cy@x.example,,2026-10-01,booked\n"
        "p3,Cy,cy@x.example,pat3,31/12/2026,booked\n"
        "p3,Cy,not-an-email,pat3,2026-10-01,maybe\n",
    )
    # When it is checked
    rows, rejected = read_export(path, load_mapping("generic"))
    # Then each rejection names the file, row, column and reason
    assert [str(r) for r in rejected] == [
        "bad.csv, row 5, column 'patient_id': a patient id is required",
        "bad.csv, row 6, column 'date': expected a date (iso), got '31/12/2026'",
        "bad.csv, row 7, column 'status': unknown status 'maybe' (not listed in the mapping's [status])",
    ]
    assert len(rows) == 3
    # And a pull fails with them, reading nothing
    with pytest.raises(ConnectorError, match=r"3 row\(s\) rejected, nothing was read: bad.csv, row 5"):
        _pull(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"\xff\xfe\x00bad", "not utf-8-sig text"),
        (b"practitioner_id,patient_id\np1,x\n", "missing column(s) 'practitioner_name'"),
        (b"date,date\n1,2\n", "column 'date' appears twice"),
        (b"a\n" + b"x" * 200_000 + b"\n", "not valid CSV (field larger than field limit"),
    ],
)
def test_a_hostile_or_malformed_file_is_refused_with_its_name_and_reason(tmp_path, content, reason):
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as caught:
        _pull(path)
    assert str(path) in str(caught.value) and reason in str(caught.value)


def test_a_quote_never_closed_fails_at_its_line_instead_of_swallowing_the_rows_after_it(tmp_path):
    # Given an export whose status on line 2 opens a quote that is never closed (Python's csv
    # would read Bob's two appointments as part of that value, and Bob would vanish)
    path = _write(tmp_path, "export.csv", GENERIC.replace(",booked\n", ',"booked\n', 1))
    # When it is read; Then it fails naming line 2, and nothing is read
    with pytest.raises(InputFileError, match=r"export.csv, line 2: a quote opened here is never closed"):
        _pull(path)


def test_a_row_with_control_characters_is_rejected(tmp_path):
    path = _write(tmp_path, "a.csv", GENERIC + "p3,Cy,cy@x.example,pat\x003,2026-10-01,booked\n")
    _, rejected = read_export(path, load_mapping("generic"))
    assert [str(r) for r in rejected] == [
        "a.csv, row 5, column 'patient_id': contains control characters (a damaged or hostile file?)"
    ]


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(export_files, "MAX_FILE_BYTES", 100)
    path = _write(tmp_path, "big.csv", GENERIC)
    with pytest.raises(InputFileError, match="over the 0 MiB limit; split the export"):
        _pull(path)


def test_an_xlsx_that_unpacks_too_large_or_is_not_a_workbook_is_refused(tmp_path, monkeypatch):
    (tmp_path / "broken.xlsx").write_bytes(b"PK not really a zip")
    with pytest.raises(InputFileError, match=r"not a valid \.xlsx file"):
        _pull(tmp_path / "broken.xlsx")
    workbook = Workbook()
    workbook.active.append(["a"])
    workbook.save(tmp_path / "ok.xlsx")
    monkeypatch.setattr(export_files, "MAX_XLSX_UNPACKED_BYTES", 10)
    with pytest.raises(InputFileError, match="unpacks to more than"):
        _pull(tmp_path / "ok.xlsx")


@pytest.mark.parametrize(
    ("toml", "reason"),
    [
        ("[columns", "not valid TOML"),
        ('[columns]\npatient_id = "p"\n', "date is required"),
        ('[columns]\npatient_id = "p"\ndate = "d"\n', "name the practitioner_id, practitioner_name or"),
        ('[columns]\npatient_id = "p"\ndate = "d"\npractitioner_id = "x"\nfoo = "y"\n', "unknown key(s) foo"),
        (
            '[columns]\npatient_id = "p"\ndate = "d"\npractitioner_id = "x"\nstatus = "s"\n'
            '[status]\nactive = ["X"]\ncancelled = ["x"]\n',
            "'x' is listed as active and cancelled",
        ),
    ],
)
def test_a_bad_mapping_is_one_line_naming_the_problem(toml, reason):
    with pytest.raises(ConnectorError) as caught:
        parse_mapping(toml, "mapping m.toml")
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_with_a_staff_list_rows_match_staff_by_email_and_unknown_practitioners_are_rejected(tmp_path):
    # Given a staff list with an inactive practitioner, and an export naming one unknown person
    staff = _write(
        tmp_path / "staff",
        "staff.csv",
        "id,name,email,active\ns1,Ann,ann@clinic.example,true\ns2,Bob,bob@clinic.example,false\n",
    )
    mapping = tmp_path / "m.toml"
    mapping.write_text('[columns]\npractitioner_email = "email"\npatient_id = "patient"\ndate = "date"\n')
    export = _write(
        tmp_path / "export",
        "a.csv",
        "email,patient,date\nann@clinic.example,p1,2026-10-01\nBOB@clinic.example,p1,2026-10-01\n",
    )
    # When it is pulled
    pulled = _pull(export, str(mapping), staff_path=staff)
    # Then practitioners (and who is active) come from the staff list
    assert [(p.id, p.active) for p in pulled.snapshot.practitioners] == [("s1", True), ("s2", False)]
    # And a row for someone not on the list is rejected
    _write(tmp_path / "export", "a.csv", "email,patient,date\neve@clinic.example,p1,2026-10-01\n")
    _, rejected = read_export(export, load_mapping(str(mapping)), Staff.load(staff))
    assert "practitioner 'eve@clinic.example' is not in the staff list" in str(rejected[0])


def test_the_check_command_shows_rows_and_rejections_and_exits_non_zero(tmp_path):
    # Given an export with one bad row
    path = _write(tmp_path, "a.csv", GENERIC + "p3,Cy,cy@x.example,pat3,soon,booked\n")
    # When it is checked with the generic preset
    result = CliRunner().invoke(app, ["export-mapping", "check", str(path), "--mapping", "generic"])
    # Then it shows the rows as read (patients as pseudonyms) and the rejection, and exits 1
    assert result.exit_code == 1
    assert "did not arrive" in result.output and "Ann Smith" in result.output
    assert "pat1" not in result.output and "pt_" in result.output
    assert "a.csv, row 5, column 'date': expected a date (iso), got 'soon'" in result.output
    # And a clean export exits 0
    _write(tmp_path, "a.csv", GENERIC)
    assert (
        CliRunner().invoke(app, ["export-mapping", "check", str(path), "--mapping", "generic"]).exit_code == 0
    )


def test_a_practitioner_seen_only_before_the_window_is_known_but_gives_no_access(tmp_path):
    # Given an export where Cy's only appointment is older than the lookback window
    path = _write(tmp_path, "a.csv", GENERIC + "p3,Cy,cy@x.example,pat3,2020-01-01,booked\n")
    # When it is pulled with a window starting in 2025
    pulled = _pull(path)
    # Then Cy is a practitioner (not "gone from the PMS"), with no access row
    assert "p3" in {p.id for p in pulled.snapshot.practitioners}
    assert "p3" not in {r.practitioner_id for r in pulled.snapshot.access}


def test_a_file_over_the_row_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(export_files, "MAX_ROWS", 2)
    path = _write(tmp_path, "a.csv", GENERIC)
    with pytest.raises(InputFileError, match="more than 2 rows"):
        _pull(path)
