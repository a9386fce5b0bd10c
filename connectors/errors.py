"""The one error tree every layer of the shell raises and every entry point maps.

Connectors and services raise one of the few kinds the shell needs to tell apart: NotFound,
InvalidInput, Conflict, Retryable, ConfigurationError (all PtsyncError). The CLI
(`worker.cli.main`), the API (`worker.web.app`) and the actors (`worker.actors`) each map those
kinds in one place: an exit line, an HTTP status, retry or not. Messages are for the person
reading them and never carry a credential or a patient's name; those the pages and the API can
show are worded without CLI flags (the CLI adds its own hints); a 5xx answer never shows
the text. Connector errors name the connector, the file or URL path and the reason;
`retryable` says whether the job should try again.

The pure core (`sharing/`) raises none of these: it has no failures of the outside world.
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


class ConnectorError(PtsyncError):
    """A fetch or write that failed. `retryable` says whether the job should try again."""

    @property
    def retryable(self) -> bool:
        return isinstance(self, Retryable)

    def __init__(self, connector: str, reason: str) -> None:
        super().__init__(f"{connector}: {reason}")
        self.connector = connector
        self.reason = reason


class TransientConnectorError(ConnectorError, Retryable):
    """A timeout, a 5xx or a rate limit: the job tries again later."""


class InputFileError(ConnectorError, InvalidInput):
    """A malformed input file, located to the file, line and field."""

    def __init__(
        self, connector: str, path: str, reason: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        where = path
        if line is not None:
            where += f", line {line}"
        if field:
            where += f", field '{field}'"
        super().__init__(connector, f"{where}: {reason}")
        self.path = path
        self.line = line
        self.field = field
