"""Where orjson would store or read a value other than `json` did (found by review).

Each test states what `json` (the store's codec before orjson) did; orjson, left to itself,
read integers beyond 64 bits as floats, spelled float keys its own way (two infinite keys
became one), and stored date keys and UUID keys as strings where `json` refused them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest

from worker.store import json_codec

# Integers beyond 64 bits (json writes and reads them exactly; orjson refuses to write them, so
# the codec falls back to json for the write, but orjson *reads* them as floats).
_BIG = {"above_u64": 2**64 + 1, "below_i64": -(2**63) - 1, "huge": 10**30 + 7, "exact_float": 2**70}


def test_given_integers_beyond_64_bits_when_encoded_and_read_back_then_they_are_the_same_ints() -> None:
    # Given: a document with integers json keeps exactly (the existing test's 2**70 is exactly
    # representable as a float, so comparing with == cannot tell an int from a float)
    # When
    read = json_codec.loads(json_codec.dumps(_BIG))
    # Then: what json.loads(json.dumps(...)) gives, ints as ints, no digit lost
    expected = json.loads(json.dumps(_BIG))
    assert {key: (type(value), value) for key, value in read.items()} == {
        key: (type(value), value) for key, value in expected.items()
    }


def test_given_an_old_row_with_a_big_integer_when_read_then_json_loads_reads_it_exactly() -> None:
    # Given: text the store wrote before orjson (json.dumps: spaces, a >64-bit integer)
    old_row = '{"pms_id": 18446744073709551617, "n": 1}'
    # When
    read = json_codec.loads(old_row)
    # Then
    assert read == json.loads(old_row)
    assert isinstance(read["pms_id"], int) and read["pms_id"] == 18446744073709551617


def test_given_float_keys_when_encoded_then_they_become_the_strings_json_made_of_them() -> None:
    # Given: non-string keys json turned into repr-style strings (the docstring: "keys that are
    # not strings become strings, as json makes them")
    document = {1e-05: "a", 1e-07: "b", float("inf"): "c", float("-inf"): "d"}
    # When
    encoded = json_codec.dumps(document)
    # Then: the same keys json wrote ('1e-05', '1e-07', 'Infinity', '-Infinity'), not
    # orjson's '0.00001', '1e-7' and 'null' twice (two keys collapsing into one on read)
    assert list(json_codec.loads(encoded)) == list(json.loads(json.dumps(document)))


@pytest.mark.parametrize(
    "value",
    [
        {date(2026, 11, 26): 1},
        {datetime(2026, 11, 26, 9, 30, tzinfo=UTC): 1},
        {uuid.UUID(int=1): 1},
    ],
    ids=["date-key", "datetime-key", "uuid-key"],
)
def test_given_a_value_json_refused_when_encoded_then_it_raises_the_type_error_json_raised(value) -> None:
    # Given: what json.dumps refuses (a caller's bug: the claim is "the same TypeError for
    # datetimes"; only datetime *values* are passed through to json, keys and UUIDs are not)
    with pytest.raises(TypeError):
        json.dumps(value)
    # When / Then: the codec refuses it too, instead of silently storing a string
    with pytest.raises(TypeError):
        json_codec.dumps(value)


def test_given_a_uuid_value_when_encoded_then_it_becomes_its_string_as_the_codec_documents() -> None:
    # Given: a UUID value (json refused it; orjson has no way to pass one through to json)
    # When
    encoded = json_codec.dumps({"id": uuid.UUID(int=1)})
    # Then: one of the codec's three documented differences, none in anything ptsync stores
    assert encoded == '{"id":"00000000-0000-0000-0000-000000000001"}'
