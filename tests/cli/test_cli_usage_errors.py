"""A mistyped command line is answered in one line, like every other ptsync error."""

from __future__ import annotations

import pytest

from tests.cli.test_cli import ptsync


@pytest.mark.parametrize(
    ("args", "command", "problem"),
    [
        (("report", "clinic", "--format", "xml"), "ptsync report", "'xml' is not one of"),
        (("sync", "clinic", "--wiat"), "ptsync sync", "No such option: --wiat"),
        (("org", "add"), "ptsync org add", "Missing argument 'slug'"),
        (("org", "add", "clinic"), "ptsync org add", "Missing option '--pms'"),
        (("bogus",), "ptsync", "No such command 'bogus'"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_command_and_its_help(tmp_path, args, command, problem):
    """Given a command line an admin mistyped; When ptsync runs it; Then stderr is one line that
    names the command, the problem and where its help is, with Click's usage exit code (2)."""
    result = ptsync(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {command}: "), lines
    assert problem in lines[0] and f"`{command} --help`" in lines[0], lines
    assert "Value error" not in lines[0]  # the validator's own prefix says nothing to an admin


def test_a_group_without_its_subcommand_still_shows_its_help(tmp_path):
    """Given `ptsync org` with no subcommand; When it runs; Then the group's help is the answer
    (the commands it offers), as before, with the usage exit code."""
    result = ptsync(tmp_path, "org")
    assert result.returncode == 2
    assert "Manage organisations." in result.stdout + result.stderr
    assert "add" in result.stdout + result.stderr


def test_help_and_version_exit_zero_and_a_command_keeps_its_own_exit_code(tmp_path):
    """Given the help, the version and a command that exits 1 itself (an export mapping check
    with rejected rows); Then each keeps its exit code: the one-line errors change only how
    Click's own errors are shown."""
    assert ptsync(tmp_path, "--help").returncode == 0
    version = ptsync(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("ptsync "), version
    export = tmp_path / "a.csv"
    export.write_text(
        "practitioner_id,practitioner_name,practitioner_email,patient_id,date,status\n"
        "p1,Ann Smith,ann@clinic.example,pat1,soon,booked\n"
    )
    checked = ptsync(tmp_path, "export-mapping", "check", str(export), "--mapping", "generic")
    assert checked.returncode == 1 and "rows rejected" in checked.stdout, checked
    missing = ptsync(tmp_path, "report", "nosuch")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("error: unknown organisation 'nosuch'")
