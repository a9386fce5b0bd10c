"""Review of issue 17's state codec (worker/store/state_codec.py): the stored state must be the
value `json` stored before, or json's own TypeError ("Anything orjson refuses or would write
otherwise ... goes, whole state, to `json`"). orjson writes some values without raising, so they
never reach the fallback."""

from __future__ import annotations

import enum
import json
import math
import uuid

import pytest
from cryptography.fernet import Fernet

from connectors.records import Visit
from worker.crypto import SecretBox
from worker.store import state_codec


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([Fernet.generate_key().decode()])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_review_a_float_nan_or_infinity_in_a_state_is_read_back_as_json_stored_it_not_as_none(
    box, value
) -> None:
    # Given a state holding a non-finite float (json wrote NaN / Infinity and read them back)
    state = {"version": 3, "rows": {"1": Visit("77", "9001", 739_000, 0)}, "score": value}
    before = json.loads(json.dumps(state))
    assert before["score"] is not None
    # When it is stored and read by this version
    after = state_codec.decode(state_codec.encode(state, box), box)
    # Then it is the float json kept (orjson writes null without raising, so json's fallback
    # never runs, and the state comes back with None)
    assert isinstance(after["score"], float), after["score"]
    assert repr(after["score"]) == repr(before["score"])


class _Kind(enum.Enum):
    A = "a"


@pytest.mark.parametrize("value", [uuid.UUID(int=7), _Kind.A], ids=["uuid", "enum"])
def test_review_a_state_json_refused_is_still_refused_not_stored_in_another_form(box, value) -> None:
    # Given a value json refuses (the previous version raised TypeError and stored nothing)
    state = {"version": 3, "key": value}
    with pytest.raises(TypeError):
        json.dumps(state)
    # When / Then: refused as before, as the codec's own test expects of a set (orjson writes a
    # UUID as its string and an Enum as its value natively, without the `default` hook)
    with pytest.raises(TypeError):
        state_codec.encode(state, box)
