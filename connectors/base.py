"""The protocols every connector and adapter implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from sharing import Operation, PmsSnapshot, PtDirectSnapshot

Progress = Callable[[str, int], None]
"""Called as (resource name, rows read so far) while a pull is under way."""


@dataclass(frozen=True)
class PmsPull:
    """A PMS snapshot plus the cursors to store if (and only if) the run completes."""

    snapshot: PmsSnapshot
    cursors: dict[str, str] = field(default_factory=dict)


class PmsConnector(Protocol):
    system: str

    def pull(
        self, *, window_start: date, cursors: dict[str, str], progress: Progress | None = None
    ) -> PmsPull:
        """Read practitioners and access rows. Raise ConnectorError on any failure."""
        ...


class PtDirectAdapter(Protocol):
    def read(self) -> PtDirectSnapshot:
        """Read users, the master account and practitioner sharing."""
        ...

    def apply(self, operation: Operation, *, idempotency_key: str) -> None:
        """Make one change; a change already in effect is a no-op."""
        ...
