"""CSV folder files: a quote never closed fails at its line; a closed one may span lines, and a pipe is read once."""

from __future__ import annotations

import os
import threading

import pytest

from connectors.errors import InputFileError
from tests.connectors.test_csv_pms import ACCESS, _pull

HEADER = "id,name,email,active,notes\n"


def _practitioners(tmp_path, text):
    (tmp_path / "practitioners.csv").write_text(text)
    (tmp_path / "patient_access.csv").write_text(ACCESS.replace("102,p1,care_team,2026-10-01\n", ""))


def test_a_missing_closing_quote_closed_by_a_later_rows_quote_is_refused(tmp_path):
    """Given row 3 opens a quote it never closes, and a later row quotes a name (as exports do
    for 'Lee, Kim') / When read / Then the read fails at line 3. Before the fix, only the file's last row
    is checked, so the stray quote pairs with row 5's, rows 3-5 become one row (102) and Bob
    (103) silently vanishes from the PMS read: he looks departed (a destructive removal)."""
    _practitioners(
        tmp_path,
        HEADER + '101,Ana,a@c.example,true,\n102,"Jones,j@c.example,true,\n'
        '103,Bob,b@c.example,true,\n104,"Smith",s@c.example,true,\n',
    )
    with pytest.raises(InputFileError, match="line 3"):
        _pull(tmp_path)


def test_a_runaway_quote_is_refused_even_after_an_odd_quote_earlier_in_its_row(tmp_path):
    """Given the last row has `"O"Brien` (lenient CSV reads OBrien) and then a quote never
    closed / When read / Then the read fails. Before the fix, the strict re-parse stops at the first
    strict error ("',' expected after '\"'"), which `refuse_runaway_quote` swallows (it only
    raises on 'unexpected end of data'), so Bob (103) is silently lost."""
    _practitioners(
        tmp_path,
        HEADER + '101,Ana,a@c.example,true,\n102,"O"Brien,o@c.example,true,"note\n'
        "103,Bob,b@c.example,true,\n",
    )
    with pytest.raises(InputFileError, match="never closed"):
        _pull(tmp_path)


def test_a_runaway_quote_after_blank_lines_names_the_line_it_starts_on(tmp_path):
    """Given blank lines 3-4 and a quote opened on line 5 never closed / When read / Then the
    error names line 5. Before the fix, DictReader skips blank lines inside one `next`, so
    `rows_with_lines` takes the row's start to be line 3 (a blank line)."""
    _practitioners(
        tmp_path,
        HEADER + '101,Ana,a@c.example,true,\n\n\n102,Bob,b@c.example,true,"note\n103,Cy,c@c.example,true,\n',
    )
    with pytest.raises(InputFileError, match="line 5: a quote opened here"):
        _pull(tmp_path)


def test_a_named_pipe_whose_last_row_holds_a_line_break_does_not_hang(tmp_path):
    """Given patient_access.csv is a named pipe whose last row has a closed multi-line comment
    / When pulled / Then the pull finishes. Before the fix, `refuse_runaway_quote` re-opens the path to
    re-parse it; opening a FIFO whose writer has gone blocks forever (the `except OSError`
    never runs), so the sync hangs."""
    (tmp_path / "practitioners.csv").write_text("id,name,email,active\n101,Ana,a@c.example,true\n")
    pipe = tmp_path / "patient_access.csv"
    os.mkfifo(pipe)

    def write():
        with open(pipe, "w") as handle:
            handle.write(
                'practitioner_id,patient_id,source,last_seen,comment\n101,p1,appointment,2026-11-01,"a\nb"\n'
            )

    result: dict[str, object] = {}

    def read():
        try:
            result["snapshot"] = _pull(tmp_path)
        except Exception as exc:
            result["error"] = exc

    threading.Thread(target=write, daemon=True).start()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    hung = reader.is_alive()
    if hung:  # release the blocked re-open so the thread can end
        with open(pipe, "w"):
            pass
        reader.join(5)
    assert not hung, "the pull blocked re-opening the named pipe"
    assert "snapshot" in result, result
