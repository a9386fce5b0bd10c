"""The one error tree every layer raises and every entry point maps.

Connectors and services raise one of the few kinds the shell needs to tell apart; the CLI
(`worker.cli.main`), the API (`worker.web.app`) and the actors (`worker.actors`) each map
those kinds in one place: an exit line, an HTTP status, retry or not. Messages are for the
person reading them, worded without CLI flags (the pages and the API show them too), and never
carry a credential or a patient's name.

This module is pure (no I/O), so the core, the connectors and the shell can all import it.
"""

from __future__ import annotations


class PtsyncError(Exception):
    """Base for errors with a message meant for a person: one line, never a traceback."""


class NotFound(PtsyncError):
    """The organisation, run, proposal or file asked for does not exist (or is not yours)."""


class InvalidInput(PtsyncError):
    """What was given is malformed or not allowed now; nothing was changed."""


class Conflict(PtsyncError):
    """Someone else holds the thing right now (a run's or an apply's lease): try after a delay."""

    def __init__(self, message: str, delay_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class Retryable(PtsyncError):
    """A transient failure (timeout, 5xx, rate limit, a database blink): the same call may succeed later."""


class ConfigurationError(PtsyncError):
    """The organisation or the deployment is set up wrongly; retrying will not help until it is fixed."""
