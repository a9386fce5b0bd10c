"""Connector errors: what went wrong, where, and whether trying again could help.

Messages name the connector, the file or URL path and the reason, never a credential.
"""

from __future__ import annotations

from sharing.errors import InvalidInput, PtsyncError, Retryable


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
