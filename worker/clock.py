"""The one place the shell reads the time (and mints ids), so services stay testable.

The scheduler process that ticks every few seconds is `worker/scheduler.py`, not this module.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from connectors.dates import iso_timestamp


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def iso(moment: datetime | None) -> str | None:
    """`2026-11-25T09:00:00Z` (connectors.dates.iso_timestamp), or None."""
    return None if moment is None else iso_timestamp(moment)
