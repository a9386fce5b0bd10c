"""Text from a PMS, PT Direct or a webhook is printed as text in the commands' tables."""

from __future__ import annotations

from rich.console import Console

from worker.terminal import InertTable, safe


def _printed(table: InertTable) -> str:
    console = Console(width=200, force_terminal=True, color_system=None, record=True)
    console.print(table)
    return console.export_text()


def test_a_table_cell_with_markup_and_escapes_prints_as_its_text_and_a_safe_cell_is_not_escaped_twice():
    """Given a name with an unbalanced markup tag and an ANSI escape, and a cell already made
    safe / When both are printed in an InertTable / Then the name reads as typed without the
    escape sequence (no crash on `[/bold]`), and the safe cell shows no doubled backslash."""
    table = InertTable("name", "trigger")
    table.add_row("Ann [/bold] Lee\x1b[31m", safe("webhook:[appointment]"))
    printed = _printed(table)
    assert "Ann [/bold] Lee" in printed and "\x1b[31m" not in printed
    assert "webhook:[appointment]" in printed and "\\[" not in printed


def test_an_email_too_long_for_its_column_is_folded_not_cut_on_an_80_column_terminal():
    """Given a proposal's table on an 80-column terminal and an email longer than its column /
    When it is printed / Then every character of the email is there (folded onto the next line),
    never cut with an ellipsis: the admin must be able to tell who is meant."""
    table = InertTable("operation", "practitioner", "needs approval", "status")
    email = "cara.longname@demo-clinic-with-a-long-domain.example"
    table.add_row("add_master_recipient", email, "yes", "pending")
    console = Console(width=80, force_terminal=True, color_system=None, record=True)
    console.print(table)
    printed = console.export_text()
    assert "…" not in printed
    cells = "".join(line.split("│")[2].strip() for line in printed.splitlines() if line.count("│") >= 4)
    assert cells == email
