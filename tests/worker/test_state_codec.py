"""A connector's stored state (worker/store/state_codec.py): written by orjson where it writes what
`json` would, read by `json`, in the form earlier versions read, and every older stored form
still read."""

from __future__ import annotations

import enum
import json
import math
import uuid
import zlib

import pytest
from cryptography.fernet import Fernet

from connectors.records import GroupBooking, Visit, revive
from worker.crypto import SecretBox
from worker.errors import ConfigurationError
from worker.store import state_codec


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([Fernet.generate_key().decode()])


def _cliniko_like_state() -> dict:
    return {
        "version": 3,
        "individual_appointments": {
            "1001": Visit("77", "9001", 739_000, 0, None),
            "1002": Visit("78", "Zoë-9002", 739_010, 1, "clinic-2"),
        },
        "group_appointments": {"2001": GroupBooking("77", 739_001, 0)},
        "attendees": {},
    }


def _plain(state: dict) -> dict:
    """What `json` read back from what `json` wrote: records as lists."""
    return json.loads(json.dumps(state))


def _read_as_the_previous_version_did(data: bytes, box: SecretBox) -> dict:
    marker = b"ptsync-fernet:1:"
    assert data.startswith(marker)
    return json.loads(zlib.decompress(box.decrypt(data[len(marker) :].decode("ascii"))))


def test_given_a_state_of_records_when_stored_and_read_then_it_is_what_json_stored_and_read(box) -> None:
    # Given
    state = _cliniko_like_state()
    # When
    stored = state_codec.encode(state, box)
    # Then: the value is json's, records as lists, and the version before this one reads it too
    assert state_codec.decode(stored, box) == _plain(state)
    assert _read_as_the_previous_version_did(stored, box) == _plain(state)
    assert b"9001" not in stored  # encrypted: no PMS patient id in clear text


def test_given_ascii_records_when_orjson_writes_them_then_the_text_is_the_one_json_wrote(box) -> None:
    # Given
    state = {"version": 3, "rows": {"1": Visit("77", "9001", 739_000, 0, None)}}
    # When
    stored = state_codec.encode(state, box)
    inner = zlib.decompress(box.decrypt(stored[len(state_codec.ENCRYPTED) :].decode("ascii")))
    # Then
    assert inner == json.dumps(state, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "awkward",
    [
        {"big": 2**64},  # orjson would read an integer beyond 64 bits as a float
        {"small": -(2**63) - 1},
        {1: "a key that is not a string"},  # json writes "1"; orjson refuses
        {"set": {"a"}},  # neither writes it: json's own error, as before
    ],
)
def test_given_a_state_orjson_would_not_write_as_json_does_when_stored_then_json_writes_it(
    box, awkward
) -> None:
    # Given
    state = {"version": 3, "rows": {"1": Visit("77", "9001", 739_000, 0)}, **awkward}
    if "set" in awkward:
        # When / Then: refused with json's TypeError, nothing stored
        with pytest.raises(TypeError):
            state_codec.encode(state, box)
        return
    # When
    stored = state_codec.encode(state, box)
    # Then: read exactly (no integer turned into a float)
    assert state_codec.decode(stored, box) == _plain(state)


def test_given_states_stored_by_earlier_versions_when_read_then_each_comes_back(box) -> None:
    # Given: json's text at zlib level 6, encrypted (the previous format), and plain zlib (the
    # format before states were encrypted)
    state = _cliniko_like_state()
    text = json.dumps(state, separators=(",", ":")).encode()
    encrypted = state_codec.ENCRYPTED + box.encrypt(zlib.compress(text, 6)).encode("ascii")
    plain = zlib.compress(text, 6)
    # When / Then
    assert state_codec.decode(encrypted, box) == _plain(state)
    assert state_codec.decode(plain, None) == _plain(state)


def test_given_an_encrypted_state_when_read_without_the_keys_then_a_clear_error(box) -> None:
    stored = state_codec.encode(_cliniko_like_state(), box)
    with pytest.raises(ConfigurationError, match="encrypted"):
        state_codec.decode(stored, None)


def test_given_stored_rows_when_revived_then_full_rows_short_rows_and_records_all_become_records() -> None:
    # Given: a full row, a row stored before `location` was added, and a record already
    rows = {
        "a": ["77", "9001", 739_000, 0, "clinic-2"],
        "b": ["77", "9002", 739_001, 1],
        "c": Visit("1", "2", 3, 0),
    }
    # When
    revived = revive(rows, Visit)
    # Then
    assert revived == {
        "a": Visit("77", "9001", 739_000, 0, "clinic-2"),
        "b": Visit("77", "9002", 739_001, 1, None),
        "c": rows["c"],
    }
    assert all(type(record) is Visit for record in revived.values())
    assert revived["b"].location is None


def test_given_a_stored_row_longer_than_its_record_when_revived_then_it_is_refused() -> None:
    with pytest.raises(TypeError):
        revive({"a": ["77", "9001", 739_000, 0, None, "extra"]}, Visit)


class _Kind(enum.Enum):
    A = "a"


@pytest.mark.parametrize(
    ("value", "read_back"),
    [(math.nan, None), (math.inf, None), (uuid.UUID(int=7), str(uuid.UUID(int=7))), (_Kind.A, "a")],
    ids=["nan", "infinity", "uuid", "enum"],
)
def test_given_a_value_no_connector_stores_when_stored_then_the_documented_difference_from_json(
    box, value, read_back
) -> None:
    """The differences the module documents (orjson writes these without reaching the fallback;
    `json` wrote NaN and Infinity and refused UUIDs and enums). States hold strings, integers,
    booleans and None only."""
    # Given
    state = {"version": 3, "value": value}
    # When
    stored = state_codec.decode(state_codec.encode(state, box), box)
    # Then
    assert stored["value"] == read_back
