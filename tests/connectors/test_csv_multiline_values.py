"""CSV folder files: a closed quoted value may hold line breaks in the columns ptsync ignores."""

from __future__ import annotations

from tests.connectors.test_csv_pms import ACCESS, _pull


def test_a_multi_line_value_in_a_column_ptsync_ignores_is_read(tmp_path):
    """Given a practitioners file with an extra `notes` column (docs/csv-folder.md: 'More columns
    are ignored') whose quoted value holds a line break, as a spreadsheet or a PMS export writes
    an address or a note / When it is read / Then the practitioners are read. Today
    `_refuse_runaway_quote` tests every value of the row, ignored columns too, so the closed,
    well-formed quote is called 'a quoted value runs on to line 3' and every sync fails."""
    (tmp_path / "practitioners.csv").write_text(
        'id,name,email,active,notes\r\n101,"Silva, Ana",a@c.example,true,"Mon-Wed\r\nNorth site"\r\n'
        "102,Ben,b@c.example,true,\r\n"
    )
    (tmp_path / "patient_access.csv").write_text(ACCESS)
    snapshot = _pull(tmp_path)
    assert [(p.id, p.name) for p in snapshot.practitioners] == [("101", "Silva, Ana"), ("102", "Ben")]


def test_a_multi_line_value_in_an_ignored_access_column_is_read(tmp_path):
    """Same for patient_access.csv: an extra `comment` column with a line break in a closed quote
    fails the whole read today."""
    (tmp_path / "practitioners.csv").write_text(
        "id,name,email,active\n101,Ana,a@c.example,true\n102,Ben,b@c.example,true\n"
    )
    (tmp_path / "patient_access.csv").write_text(
        "practitioner_id,patient_id,source,last_seen,comment\n"
        '101,p1,appointment,2026-11-01,"rebooked\nby phone"\n102,p1,care_team,2026-10-01,\n'
    )
    assert len(_pull(tmp_path).access) == 2
