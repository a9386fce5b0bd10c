"""Size and depth limits for input files, with errors that name the file.

A snapshot or export file is read whole (JSON) or streamed (CSV) from a path an admin
configured; a runaway export, a wrong file or a hostile one must end in a one-line error,
not an exhausted machine or a traceback. Every file connector reads through these helpers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from connectors.errors import InputFileError


def _megabytes(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    return (int(value) if value.isdigit() and int(value) > 0 else default) * 1024 * 1024


DEFAULT_SNAPSHOT_MB = 256
DEFAULT_EXPORT_MB = 2048
MAX_JSON_FILE_BYTES = _megabytes("PTSYNC_MAX_SNAPSHOT_MB", DEFAULT_SNAPSHOT_MB)
"""A PT Direct snapshot (users, sharing, optional client lists) larger than this is refused."""
MAX_CSV_FILE_BYTES = _megabytes("PTSYNC_MAX_EXPORT_MB", DEFAULT_EXPORT_MB)
"""One PMS export CSV larger than this is refused (4 million access rows take about 200 MB)."""


def _too_large(connector: str, path: Path | str, limit: int) -> InputFileError:
    return InputFileError(
        connector, str(path), f"larger than the {limit // (1024 * 1024)} MB limit: is this the right file?"
    )


def read_json_file(connector: str, path: Path, limit: int | None = None) -> Any:
    """The parsed JSON of `path`, or an InputFileError naming it (missing, a folder, unreadable,
    too large, not UTF-8, invalid, or nested too deeply to parse)."""
    limit = MAX_JSON_FILE_BYTES if limit is None else limit
    if path.is_dir():
        raise InputFileError(connector, str(path), "is a folder, not a file")
    if not path.is_file():
        raise InputFileError(connector, str(path), "file not found")
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputFileError(
            connector, str(path), f"cannot read it: {exc.strerror or 'read error'}"
        ) from None
    return parse_json_bytes(connector, str(path), data, limit)


def read_json_stream(connector: str, where: str, stream: BinaryIO, limit: int | None = None) -> Any:
    """The parsed JSON of a stream (standard input), within the same limits as a file."""
    limit = MAX_JSON_FILE_BYTES if limit is None else limit
    return parse_json_bytes(connector, where, stream.read(limit + 1), limit)


def parse_json_bytes(connector: str, where: str, data: bytes, limit: int | None = None) -> Any:
    """The parsed JSON of `data` read from `where`, or an InputFileError naming it (too large, not
    UTF-8, invalid, or nested too deeply to parse: a hostile file must not be a traceback)."""
    limit = MAX_JSON_FILE_BYTES if limit is None else limit
    if len(data) > limit:
        raise _too_large(connector, where, limit)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputFileError(connector, where, "not UTF-8 text", line=line) from None
    except json.JSONDecodeError as exc:
        raise InputFileError(connector, where, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    except RecursionError:
        raise InputFileError(connector, where, "JSON nested too deeply to read") from None


def limited_lines(
    connector: str, path: Path | str, lines: Iterable[str], limit: int | None = None
) -> Iterator[str]:
    """`lines` as they are read, failing once more than `limit` bytes (as characters) went by:
    works for regular files and named pipes alike, without reading ahead."""
    limit = MAX_CSV_FILE_BYTES if limit is None else limit
    seen = 0
    for line in lines:
        seen += len(line)
        if seen > limit:
            raise _too_large(connector, path, limit)
        yield line


def first_undecodable_line(path: Path, encoding: str = "utf-8") -> int | None:
    """The first line of `path` that is not `encoding` text, for an error that names it (None
    when it cannot be told line by line: a UTF-16 file, or a file that cannot be read again)."""
    if "16" in encoding or "32" in encoding or not path.is_file():  # a pipe can be read only once
        return None
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError:
                    return number
                except LookupError:
                    return None
    except OSError:
        return None
    return None
