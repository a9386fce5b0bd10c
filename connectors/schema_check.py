"""A quick yes to "does this document satisfy this JSON Schema?", or "ask jsonschema".

jsonschema names every violation with its path, which is what an admin needs when a file is
wrong; but importing it and walking a large, valid PT Direct snapshot with it cost about 70 ms
of every sync. `certainly_valid` walks the document once for the few keywords our schemas use
(type, const, enum, required, properties, additionalProperties false, items, minLength) and
says True only when each of them holds. Anything else (a violation, a keyword it does not
know, a value whose JSON type it does not decide, such as 1.0 for an integer) gives False, and
the caller asks jsonschema, whose errors are the ones reported. So it may send a valid document
to jsonschema, never let an invalid one through.
"""

from __future__ import annotations

from typing import Any

_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description"})


def certainly_valid(instance: Any, schema: dict[str, Any]) -> bool:
    for keyword, rule in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "type":
            if not any(_is_type(instance, name) for name in ([rule] if isinstance(rule, str) else rule)):
                return False
        elif keyword == "const":
            if not _same(instance, rule):
                return False
        elif keyword == "enum":
            if not any(_same(instance, option) for option in rule):
                return False
        elif keyword == "required":
            if isinstance(instance, dict) and any(name not in instance for name in rule):
                return False
        elif keyword == "properties":
            if isinstance(instance, dict) and not all(
                certainly_valid(instance[name], sub) for name, sub in rule.items() if name in instance
            ):
                return False
        elif keyword == "additionalProperties":
            if rule is not False:
                return False
            if isinstance(instance, dict) and not instance.keys() <= schema.get("properties", {}).keys():
                return False
        elif keyword == "items":
            if isinstance(instance, list) and not all(certainly_valid(item, rule) for item in instance):
                return False
        elif keyword == "minLength":
            if isinstance(instance, str) and len(instance) < rule:
                return False
        else:
            return False  # a keyword this check does not know: jsonschema decides
    return True


def _is_type(instance: Any, name: str) -> bool:
    if name == "string":
        return isinstance(instance, str)
    if name == "integer":
        return isinstance(instance, int) and not isinstance(instance, bool)
    if name == "boolean":
        return isinstance(instance, bool)
    if name == "object":
        return isinstance(instance, dict)
    if name == "array":
        return isinstance(instance, list)
    if name == "null":
        return instance is None
    return False  # number, or a type name this check does not decide


def _same(instance: Any, expected: Any) -> bool:
    """JSON equality for the scalar constants schemas use (True is not 1, 1 is not 1.0 here)."""
    scalar = (str, int, bool, type(None))
    return type(instance) is type(expected) and isinstance(expected, scalar) and instance == expected
