"""A quote opened and never closed, in a CSV file read as a whole clinic.

Python's csv reader (lenient, as ptsync uses it) lets a quoted value run over line breaks until
it meets another quote, or the end of the file. A quote someone forgot to close therefore joins
the rows after it into one value, and those rows (practitioners, appointments) are lost without
a word: people then look gone from the PMS. A properly closed value may hold line breaks (an
address, a note), so every row that spans several lines is parsed again, strictly, from its own
text: one that does not end where a value should (it met a stray quote, or the end of the file)
is refused at the line where it starts. Rows on one line cost one comparison.

The raw lines come from the reader's own input (`tapped`), never from opening the file again:
a named pipe can be read only once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors.errors import InputFileError


def tapped(lines: Iterable[str], pending: list[str]) -> Iterator[str]:
    """`lines`, each also appended to `pending` (which the reader's consumer clears per row)."""
    keep = pending.append
    for line in lines:
        keep(line)
        yield line


def check_row(
    connector: str,
    path: Path | str,
    pending: list[str],
    previous: int,
    last: int,
    *,
    delimiter: str = ",",
) -> None:
    """Check the row the reader just produced, which ended on line `last` (the row before it on
    line `previous`), from its raw lines in `pending`; then clear them.

    Raises an InputFileError at the row's first line when it spans lines and its text is not
    one well-formed CSV row (a quote never closed, or closed by another row's quote)."""
    if last - previous > 1:  # several lines (or blank lines before it)
        own = pending[-(last - previous) :]
        while len(own) > 1 and not own[0].strip("\r\n"):
            own = own[1:]  # blank lines the reader skipped before the row
        if len(own) > 1:
            try:
                rows = list(csv.reader(own, delimiter=delimiter, strict=True))
            except csv.Error:
                rows = []
            if len(rows) != 1:
                start = last - len(own) + 1
                raise InputFileError(
                    connector,
                    str(path),
                    f"a quote opened here is never closed where a value should end (lines {start} "
                    f"to {last} would be one row)",
                    line=start,
                )
    pending.clear()
