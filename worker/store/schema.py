"""Which schema this release reads: the newest migration, found from the files alone.

Kept apart from the engine (worker/store/db.py) so that checking it imports neither SQLAlchemy
nor Alembic: the CLI checks it before every command that reads the store.
"""

from __future__ import annotations

import re
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_REVISION = re.compile(r'^(revision|down_revision)\s*=\s*["\']([^"\']+)["\']', re.M)


def schema_head() -> str:
    """The newest migration's revision id, read from the files (no Alembic import: the CLI
    checks the schema on every command, and Alembic costs more than the check itself)."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions[found["revision"]] = found.get("down_revision")
    heads = set(revisions) - set(revisions.values())
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must form one chain; heads found: {sorted(heads)}")
    return heads.pop()
