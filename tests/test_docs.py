"""The documents a user relies on live in this repository and say what the code does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from connectors.ptdirect_file import SCHEMA_FILE

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_json_schema_is_the_one_the_reader_enforces():
    # Given the schema printed in docs/ptdirect-format.md
    text = (ROOT / "docs" / "ptdirect-format.md").read_text()
    documented = json.loads(re.findall(r"```json\n(\{\n  \"\$schema\".*?)\n```", text, re.S)[0])
    # Then it is exactly the file the reader validates against
    assert documented == json.loads(SCHEMA_FILE.read_text())


def test_nothing_in_the_repository_refers_to_documents_outside_it():
    # Given every tracked text file
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    outside = re.compile(r"DESIGN\.md|/work/shared|pms-apis\.md|pt-direct-sharing\.txt")
    # Then none cites the design notes or research that are not part of the repository
    offenders = [
        name
        for name in files
        if name != "tests/test_docs.py"
        and (ROOT / name).is_file()
        and outside.search((ROOT / name).read_text(errors="ignore"))
    ]
    assert offenders == []


def test_every_doc_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text()
    for name in set(re.findall(r"`(docs/[\w.-]+)`", readme)):
        assert (ROOT / name).is_file(), name


def test_the_emulators_explain_how_to_start_them_with_a_sample_clinic():
    for module in ("connectors.emulators.cliniko", "connectors.emulators.fhir"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT
        )
        assert result.returncode == 0 and "sample clinic" in result.stdout and "--port" in result.stdout


def test_every_emulator_the_readme_says_serves_the_clinic_group_offers_group_and_its_own_port():
    # Given the README's promise that these emulators serve the three-site group with --group
    ports = {}
    for module in ("halaxy", "nookal", "semble"):
        # When each is asked for its options
        result = subprocess.run(
            [sys.executable, "-m", f"connectors.emulators.{module}", "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        # Then it offers --group, and its default port differs from every other emulator's
        assert result.returncode == 0 and "--group" in result.stdout, module
        ports[module] = (ROOT / "connectors" / "emulators" / f"{module}.py").read_text()
    defaults = re.findall(r'"--port", type=int, default=(\d+)', "".join(ports.values()))
    others = re.findall(
        r"arguments\([^)]*?(\d{4})\)",
        "".join((ROOT / "connectors" / "emulators" / f"{m}.py").read_text() for m in ("cliniko", "fhir")),
    )
    bridge = re.findall(
        r'"--port", type=int, default=(\d+)',
        (ROOT / "connectors" / "emulators" / "ptdirect_bridge.py").read_text(),
    )
    everyone = defaults + others + bridge
    assert len(everyone) == 6 and len(set(everyone)) == 6, everyone


def test_the_readme_commands_block_names_every_org_add_option():
    # Given every option `org add` is built from (the organisation's fields)
    from worker.commands.org_options import organisation_fields

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Commands") :]
    block = block[: block.index("```", block.index("```") + 3)]
    # Then the README's Commands block names each (the slug is the positional SLUG)
    missing = [
        f"--{field.name.replace('_', '-')}"
        for field in organisation_fields()
        if field.name != "slug" and f"--{field.name.replace('_', '-')}" not in block
    ]
    assert missing == []
