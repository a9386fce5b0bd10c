"""What incremental connectors share: trusting the last complete run's state, and new cursors."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.dates import iso_timestamp

CURSOR_OVERLAP = timedelta(minutes=1)
"""New cursors start a minute before the run: clock skew must not skip a row; repeats are harmless."""


def previous_records(
    state: dict[str, Any] | None, cursors: dict[str, str], resources: Iterable[str], version: int
) -> dict[str, dict[str, Any]] | None:
    """The rows the last complete run stored, or None when a full pull is needed.

    Only trusted when the state has this connector's version and every resource has a cursor
    (both are written in the same transaction, so they either match or are both missing).
    """
    resources = tuple(resources)
    if not state or state.get("version") != version or not all(r in cursors for r in resources):
        return None
    return {resource: dict(state.get(resource) or {}) for resource in resources}


def next_cursor(started_at: datetime | None) -> str:
    """The cursor a complete run leaves behind: never past the run's start."""
    start = started_at or datetime.now(UTC)
    return iso_timestamp(start - CURSOR_OVERLAP)
