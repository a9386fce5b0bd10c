"""`org add` validation for --pms semble and --pms export: one line, naming the option."""

from __future__ import annotations

import pytest

from worker.errors import InvalidInput
from worker.services.orgs import NewOrganisation, validate


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "ptdirect.json"
    path.write_text("{}")
    return str(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pms": "semble"}, "--pms semble needs --pms-key (an API token from Semble"),
        ({"pms": "semble", "pms_key": " "}, "--pms semble needs --pms-key"),
        (
            {"pms": "export", "pms_path": "."},
            "--pms export needs --pms-path FILE_OR_DIR (CSV or XLSX) and --pms-format",
        ),
        ({"pms": "export", "pms_path": "/nonexistent", "pms_format": "generic"}, "no such file or folder"),
        (
            {"pms": "export", "pms_path": ".", "pms_format": "nope"},
            "--pms-format: mapping nope: not a preset (generic, mirah)",
        ),
        (
            {"pms": "export", "pms_path": ".", "pms_format": "generic", "pms_staff": "/none.csv"},
            "--pms-staff /none.csv: file not found",
        ),
        (
            {"pms": "semble", "pms_key": "t", "pms_format": "generic"},
            "--pms-format and --pms-staff are only for --pms export",
        ),
    ],
)
def test_semble_and_export_options_are_checked_before_anything_is_stored(snapshot, options, message):
    # Given an organisation with a missing or wrong Semble/export option
    new = NewOrganisation(slug="clinic", ptdirect="file", ptdirect_path=snapshot, **options)
    # When it is validated, Then it is refused in one line naming the option
    with pytest.raises(InvalidInput) as caught:
        validate(new)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_valid_export_organisation_passes(snapshot, tmp_path):
    validate(
        NewOrganisation(
            slug="clinic",
            pms="export",
            pms_path=str(tmp_path),
            pms_format="mirah",
            ptdirect="file",
            ptdirect_path=snapshot,
        )
    )
