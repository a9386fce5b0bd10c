"""The pure core's tests stand alone: they pass where the shell's libraries are not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LIBRARIES = ("dramatiq", "sqlalchemy", "alembic", "redis", "cryptography", "requests", "fastapi")

# Importing a name mapped to None in sys.modules raises ImportError: as if it were not installed.
RUNNER = f"""
import sys
for name in {SHELL_LIBRARIES!r}:
    sys.modules[name] = None
import pytest
sys.exit(pytest.main(["tests/core", "-q", "-p", "no:cacheprovider", "-p", "no:schemathesis", "-x",
                      "--deselect", "tests/core/test_standalone.py",
                      "--ignore", "tests/core/test_differential_old_core.py"]))
"""
# The differential tests (the core against an older core of this repository's history) import no
# more than the core's other tests and take most of their time: the main run has them already.


def test_the_core_tests_pass_without_dramatiq_sqlalchemy_or_a_broker() -> None:
    """Given the shell's libraries made unimportable, when the core's tests run, then they all pass."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
