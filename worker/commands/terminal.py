"""What every command shares at the terminal: secrets without the command line, quiet retries."""

from __future__ import annotations

import logging
import os
import sys
from getpass import getpass

from worker.errors import InvalidInput

SECRET_HELP = "'-' reads it from standard input, 'env:NAME' from the environment variable NAME"


def read_secret(value: str | None, option: str) -> str | None:
    """A key option's value: as given, from stdin ('-') or from an environment variable ('env:NAME').

    So no secret ever has to be typed on the command line (shell history, `ps`).
    """
    if value is None:
        return None
    if value == "-":
        if sys.stdin.isatty():
            return getpass(f"{option}: ").strip() or None
        return sys.stdin.readline().strip() or None
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        secret = os.environ.get(name, "").strip()
        if not secret:
            raise InvalidInput(f"{option} env:{name}: the environment variable {name} is not set or empty")
        return secret
    return value


class ExpectedFailures(logging.Filter):
    """Drops the queue's logs about failures the command itself reports in one line.

    On the in-process broker the worker runs inside `ptsync sync`/`approve`; a PMS that cannot
    be reached must read as one clear line from the command, not a traceback per attempt.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "worker.services.sync" and record.msg == "run %s failed: %s":
            return False  # `sync` and `demo` print the run's result themselves
        if not record.name.startswith("dramatiq"):
            return True
        if record.getMessage().startswith("Retries exceeded"):
            return False
        if record.exc_info and record.exc_info[1] is not None:
            from worker.errors import PtsyncError

            return not isinstance(record.exc_info[1], PtsyncError)
        return True
