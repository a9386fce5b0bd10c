"""Logging setup: text for people (the default) or one JSON object per line for machines.

`PTSYNC_LOG_FORMAT=json` uses python-json-logger. Each line carries the timestamp, level,
logger and message, plus what is known of the context it ran in: organisation slug (`org`),
`run_id`, `actor` and dramatiq `message_id`, bound with `bound(...)` / `bind(...)` below.

Nothing secret is logged by ptsync itself; urllib3's DEBUG lines (full request URLs, which can
carry query parameters) are kept at WARNING so a DEBUG level cannot leak them either, and
apprise (whose messages quote channel URLs, tokens included) is silenced.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from connectors.errors import ConfigurationError

CONTEXT_FIELDS = ("org", "run_id", "actor", "message_id")
_context: ContextVar[dict[str, Any]] = ContextVar("ptsync_log_context", default={})  # noqa: B039
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("urllib3", "requests", "httpx", "httpcore", "alembic")


def bind(**fields: Any) -> None:
    """Add fields to the current context (a dramatiq message's, or a thread's)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def clear() -> None:
    _context.set({})


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (as attributes the formatters can show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with the context appended as `[org=... run_id=...]` when known."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        known = [f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if getattr(record, key, None)]
        return f"{line} [{' '.join(known)}]" if known else line


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure(level: str | int | None = None, fmt: str | None = None, stream: TextIO | None = None) -> None:
    """Install one stderr handler on the root logger, in the chosen format."""
    fmt = (fmt or os.environ.get("PTSYNC_LOG_FORMAT") or "text").lower()
    level = level or os.environ.get("PTSYNC_LOG_LEVEL") or "WARNING"
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else _level_named(level))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    silence_apprise()


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The levels a message suggests (`logging` also knows WARN, FATAL and NOTSET, and takes them)."""


def _level_named(name: str) -> str:
    """`PTSYNC_LOG_LEVEL`, any level `logging` knows, in any case; anything else is a one-line
    configuration error rather than `logging`'s ValueError."""
    if name.upper() not in logging.getLevelNamesMapping():
        raise ConfigurationError(
            f"configuration: PTSYNC_LOG_LEVEL={name[:40]!r}: should be one of {', '.join(_LEVELS)}"
        )
    return name.upper()


def silence_apprise() -> None:
    """apprise logs the URLs it fails on (e.g. `Unparseable URL ...`), tokens and all: ptsync
    records and reports its failures itself."""
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
