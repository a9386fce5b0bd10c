"""The protocols every connector and adapter implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sharing import Operation, PmsSnapshot, PtDirectSnapshot

Progress = Callable[[str, int], None]
"""Called as (resource name, rows read so far) while a pull is under way."""


@dataclass(frozen=True)
class PmsPull:
    """A PMS snapshot, plus what to store if (and only if) the run completes: the cursors for
    the next incremental pull, and the connector's state (rows read so far) they rely on."""

    snapshot: PmsSnapshot
    cursors: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] | None = None


class PmsConnector(Protocol):
    system: str

    def pull(
        self,
        *,
        window_start: date,
        cursors: dict[str, str],
        state: dict[str, Any] | None = None,
        started_at: datetime | None = None,
        progress: Progress | None = None,
    ) -> PmsPull:
        """Read practitioners and access rows. Raise ConnectorError on any failure.

        `cursors` and `state` are what the last complete run stored; `started_at` is this run's
        start, which a new cursor must never pass.
        """
        ...


class PtDirectAdapter(Protocol):
    def read(self) -> PtDirectSnapshot:
        """Read users, the master account and practitioner sharing."""
        ...

    def apply(self, operation: Operation, *, idempotency_key: str) -> None:
        """Make one change; a change already in effect is a no-op."""
        ...
