"""The shell's errors: the one tree in `sharing.errors`, re-exported where the shell looks for it."""

from __future__ import annotations

from sharing.errors import ConfigurationError, Conflict, InvalidInput, NotFound, PtsyncError, Retryable

__all__ = ["ConfigurationError", "Conflict", "InvalidInput", "NotFound", "PtsyncError", "Retryable"]
