"""How the store writes and reads its JSON columns (reports, counts, rosters, plans, events).

A run's report is the largest value ptsync writes: at 2,000 practitioners it is 1.7 MB, and the
standard library's `json.dumps` took 14-17 ms of it on a 2-core machine, as long as the whole
DuckDB self-join the reconcile is measured against (`bench/reconcile_scale.py`). orjson encodes
the same document in 3-4 ms.

The values stored are the ones `json` would store. What orjson refuses or would encode otherwise
goes, whole document, to `json`, which encodes it as before or raises the same `TypeError`:
keys that are not strings (`json` spells float keys its own way), datetimes, dataclasses,
subclasses of str, int or dict, integers beyond 64 bits, nesting deeper than 255. Three
differences remain, none in anything ptsync stores: an enum member becomes its value and a UUID
its string (`json` refused both), and a float NaN or infinity becomes null (`json` wrote the
non-standard `NaN`). Output is compact: no spaces after separators, so a report takes about a
tenth less room than before. Reading stays with `json` (see `loads`).

PostgreSQL's driver (psycopg) takes the encoded bytes as they are (`dumps_utf8`); SQLite's needs
text (`dumps`), which is the same bytes decoded. For a 1.6 MB report, the text is one more copy to
make and psycopg's encoding of it back to bytes another: 1.5-1.9 ms each on a 2-core machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def dumps(value: Any) -> str:
    """`value` as JSON text, as `json.dumps` would encode it (but compact)."""
    return dumps_utf8(value).decode()


def dumps_utf8(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """`value` as compact JSON in UTF-8 bytes, without making the text first (what psycopg
    sends). `default`: orjson's hook for what it does not write itself; whatever orjson still
    refuses goes, whole value, to `json` (which must then encode it as the hook would)."""
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def loads(text: str | bytes) -> Any:
    """The value of JSON `text`: `json.loads`'s own. orjson reads an integer beyond 64 bits as a
    float (losing digits) without a sign of it, and finding such integers in the text first
    cost as much as reading it; reading is not where the time went (pages, not runs)."""
    return json.loads(text)
