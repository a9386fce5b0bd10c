"""Text from a PMS or PT Direct, made safe to show in a terminal.

Names, emails and messages come from systems ptsync does not control. Printed through rich,
`[/bold]` in a name is markup (and an unbalanced closing tag crashes the print); an ANSI or
OSC-8 escape sequence would recolour the terminal, rewrite the screen or plant a link. `safe`
drops control characters (C0, C1, DEL and the bidirectional overrides that reorder text) and
escapes rich markup, so what is printed is exactly the text, inert.
"""

from __future__ import annotations

import re
from typing import Any

from rich.markup import escape
from rich.table import Table

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ESCAPE_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-_])")


def strip_controls(text: str) -> str:
    """The text without escape sequences or control characters; line breaks become spaces."""
    text = _ESCAPE_SEQUENCE.sub("", text)
    return _CONTROL.sub("", text.replace("\r\n", " ").replace("\n", " ").replace("\t", " "))


class Inert(str):
    """Text `safe` already made inert: an `InertTable` does not escape it a second time."""

    __slots__ = ()


def safe(value: Any) -> Inert:
    """`value` as inert text for a rich console: no control characters, markup escaped."""
    return Inert(escape(strip_controls("" if value is None else str(value))))


class InertTable(Table):
    """A rich table that shows its text cells as text: each `str` cell (an enum's value
    included) goes through `safe`; cells `safe` made, and rich renderables, are kept as given.

    The commands' tables show names, emails, location names, webhook triggers and audit details
    that come from a PMS, PT Direct or a webhook sender: one cell printed as markup crashes the
    command on a stray `[/bold]`, or puts an escape sequence on the operator's terminal.
    """

    def __init__(self, *headers: Any, **options: Any) -> None:
        super().__init__(*headers, **options)
        folded(self)

    def add_row(self, *renderables: Any, **options: Any) -> None:
        super().add_row(*map(_inert, renderables), **options)


def _inert(cell: Any) -> Any:
    return safe(cell) if isinstance(cell, str) and not isinstance(cell, Inert) else cell


def folded(table: Table) -> Table:
    """`table` with every column folding a word too long for it onto the next line, instead of
    cutting it with an ellipsis: on an 80-column terminal an email such as
    `cara@demo-clinic.example` lost its end, and the admin could not tell who was meant."""
    for column in table.columns:
        column.overflow = "fold"
    return table
