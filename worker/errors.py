"""Errors the shell reports to people as one clear line (never a traceback)."""

from __future__ import annotations


class PtsyncError(Exception):
    """Base for errors with a message meant for the person at the terminal or in a report."""


class ConfigurationError(PtsyncError):
    pass


class NotFound(PtsyncError):
    pass


class InvalidInput(PtsyncError):
    pass
