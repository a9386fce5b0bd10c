"""How the store writes and reads its JSON columns (reports, counts, rosters, plans, events).

A run's report is the largest value ptsync writes: at 2,000 practitioners it is 1.7 MB, and the
standard library's `json.dumps` took 14-17 ms of it on a 2-core machine, as long as the whole
DuckDB self-join the reconcile is measured against (`bench/reconcile_scale.py`). orjson encodes
the same document in 3-4 ms and reads it back in about half of `json.loads`'s time.

The values stored are the ones `json` would store: keys that are not strings become strings, as
`json` makes them, and what orjson refuses or would encode differently from `json` (datetimes,
dataclasses, subclasses of str or int, integers beyond 64 bits, nesting deeper than 255) goes to
`json`, which encodes it as before or raises the same `TypeError`. Two differences remain, neither
in anything ptsync stores: an enum member becomes its value (`json` refused one that is not also a
str or int), and a float NaN or infinity becomes null (`json` wrote the non-standard `NaN`). Text
orjson cannot read (such a `NaN` in an old row) is read by `json`. Output is compact: no spaces
after separators, so a report takes about a tenth less room than before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def dumps(value: Any) -> str:
    """`value` as JSON text, as `json.dumps` would encode it (but compact)."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """The value of JSON `text`, as `json.loads` would read it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
