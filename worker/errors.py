"""The shell's errors: the one tree in `connectors.errors`, re-exported where the shell looks for it."""

from __future__ import annotations

from connectors.errors import ConfigurationError, Conflict, InvalidInput, NotFound, PtsyncError, Retryable

__all__ = ["ConfigurationError", "Conflict", "InvalidInput", "NotFound", "PtsyncError", "Retryable"]
