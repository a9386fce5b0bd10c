"""A quote opened and never closed, in a CSV file read as a whole clinic.

Python's csv reader, at the end of a file inside a quoted value, ends the value there: the rest
of the file becomes one value of one row, and every row after the opening quote is lost without
a word. Those rows are practitioners or appointments; losing them makes people look gone from
the PMS. A properly closed value may hold line breaks (an address, a note), so only a row that
runs to the end of the file inside a quote is refused, named at the line where it starts.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from connectors.errors import InputFileError

Row = TypeVar("Row")


def rows_with_lines(reader: Any, rows: Iterable[Row]) -> Iterator[tuple[int, int, Row, bool]]:
    """(first line, last line, row, is the last row) for each row of `reader`, one row ahead."""
    start = reader.line_num + 1
    held: tuple[int, int, Row] | None = None
    for row in rows:
        if held is not None:
            yield (*held, False)
        held = (start, reader.line_num, row)
        start = reader.line_num + 1
    if held is not None:
        yield (*held, True)


def refuse_runaway_quote(
    connector: str,
    path: Path,
    start: int,
    end: int,
    values: Iterable[Any],
    *,
    encoding: str = "utf-8-sig",
    delimiter: str = ",",
) -> None:
    """For the file's last row: raise when it runs from `start` to the end of the file inside a
    quote (checked again by a strict reader, only when a value of it holds a line break)."""
    if end <= start or not any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in values):
        return
    try:
        with path.open(newline="", encoding=encoding) as handle:
            list(csv.reader(itertools.islice(handle, start - 1, None), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise InputFileError(
                connector,
                str(path),
                f"a quote opened here is never closed: the rest of the file (to line {end}) "
                "would be one value",
                line=start,
            ) from None
    except (OSError, UnicodeDecodeError):
        return  # cannot be read again (a pipe): the row's own checks still apply
