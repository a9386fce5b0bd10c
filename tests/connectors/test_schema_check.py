"""The quick schema check never calls a document valid that jsonschema rejects.

Given the PT Direct snapshot schema and documents derived from a valid one by every small
change we can think of at every place (another JSON type, an empty string, an unknown key, a
missing key), when both judge them, then the quick check says valid only where jsonschema finds
no error, and it does say valid for the valid documents (else it would save nothing).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from connectors.ptdirect_file import SCHEMA_FILE
from connectors.schema_check import certainly_valid

SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALID = {
    "schema": "ptsync.ptdirect/1",
    "users": [
        {
            "email": "a@clinic.example",
            "name": "Ana Silva",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": {"system": "cliniko", "practitioner_id": "101"},
        },
        {
            "email": "b@c.example",
            "name": "B",
            "status": "unconfirmed",
            "practitioner_access": False,
            "pms_link": None,
        },
        {"email": "c@c.example", "name": "C", "status": "confirmed", "practitioner_access": True},
    ],
    "master_account": {"email": "content@clinic.example", "recipients": ["a@clinic.example"]},
    "practitioner_sharing": {
        "members": [{"email": "a@clinic.example", "share_content": True, "share_patients": False}]
    },
    "clients": [
        {
            "practitioner_email": "a@clinic.example",
            "client_id": 7,
            "external_id": None,
            "name": "X",
            "year_of_birth": 1980,
            "email": None,
        },
        {"practitioner_email": "a@clinic.example", "client_id": "c8", "external_id": "p1"},
    ],
}
REPLACEMENTS: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    1,
    1.0,
    2.5,
    "",
    "ab",
    "abc",
    "confirmed",
    [],
    [1],
    {},
    {"x": 1},
)


def _places(node: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _places(value, (*path, index))


def _variants(document: dict) -> Iterator[dict]:
    for path in _places(document):
        for replacement in REPLACEMENTS:
            changed = copy.deepcopy(document)
            if not path:
                yield replacement  # the whole document replaced
                continue
            parent = changed
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = replacement
            yield changed
        target = copy.deepcopy(document)
        parent = target
        for step in path:
            parent = parent[step]
        if isinstance(parent, dict):
            for key in list(parent):
                removed = copy.deepcopy(target)
                node = removed
                for step in path:
                    node = node[step]
                del node[key]
                yield removed
            parent["unexpected"] = 1
            yield target


def test_the_valid_documents_are_certainly_valid():
    """Given documents jsonschema accepts, when checked quickly, then they are valid."""
    assert not list(Draft202012Validator(SCHEMA).iter_errors(VALID))
    assert certainly_valid(VALID, SCHEMA)
    assert certainly_valid({"schema": "ptsync.ptdirect/1", "users": []}, SCHEMA)


def test_no_variant_that_jsonschema_rejects_is_called_valid():
    """Given hundreds of small changes to a valid document, when both judge each, then every
    one the quick check calls valid has no jsonschema error, and it rejects most invalid ones."""
    validator = Draft202012Validator(SCHEMA)
    judged = rejected = 0
    for variant in _variants(VALID):
        invalid = next(iter(validator.iter_errors(variant)), None) is not None
        quick = certainly_valid(variant, SCHEMA)
        assert not (quick and invalid), json.dumps(variant)[:300]
        judged += 1
        rejected += invalid
    assert judged > 500 and rejected > 200


@pytest.mark.parametrize(
    "keyword", [{"pattern": "^a"}, {"maxLength": 2}, {"additionalProperties": {"type": "string"}}]
)
def test_a_keyword_the_check_does_not_know_leaves_the_verdict_to_jsonschema(keyword):
    """Given a schema with a keyword outside the quick check's few, when it checks a document
    that satisfies it, then it still answers not certainly valid."""
    assert not certainly_valid("ab", {"type": "string", **keyword})


def test_true_is_not_taken_for_one_in_a_constant_or_an_enum():
    """Given constants 1 and false, when true or 0 is checked against them, then not valid
    (Python's True == 1 is not JSON's)."""
    assert not certainly_valid(True, {"enum": [1]})
    assert not certainly_valid(0, {"const": False})
    assert certainly_valid(1, {"enum": [1]})
