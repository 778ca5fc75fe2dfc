"""JSON text, for the wire and for the database's JSON columns alike.

orjson encodes and decodes several times faster than the standard library, and every
request decodes a body or a stored document and encodes a response or one. It refuses an
integer beyond 64 bits, which can only be in data stored before requests were decoded with it
(orjson reads such a number as a float, which an integer attribute does not accept): that
value goes through ``json``. This is the one module that knows which library does the work:
bodies, JSON columns, filter strings and the access log all come through here.

JSON from clients (request bodies, and JSON text inside a value such as Entra's app roles) is
read with ``loads_bounded``: arrays and objects at most ``MAX_DEPTH`` inside each other. Every
layer after parsing (the PATCH engine, marshmallow, comparisons of values) walks a value
recursively, so an unbounded one would exhaust Python's recursion limit there; a SCIM
resource is five levels deep, a Bulk or PATCH request around ten.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError

#: the deepest nesting of arrays and objects that JSON from a client may have
MAX_DEPTH = 32
_CONTAINERS = (dict, list)


class TooDeep(ValueError):
    """Valid JSON, nested deeper than ``MAX_DEPTH``."""


def loads_bounded(text: bytes | str) -> Any:
    """JSON from a client: raises JSONDecodeError when it is not JSON, TooDeep when it nests
    arrays and objects more than ``MAX_DEPTH`` deep."""
    value = orjson.loads(text)
    if isinstance(value, _CONTAINERS) and _may_be_deep(text) and _depth_exceeds(value, MAX_DEPTH):
        raise TooDeep(f"JSON may nest arrays and objects at most {MAX_DEPTH} deep")
    return value


def _may_be_deep(text: bytes | str) -> bool:
    """Cheap: fewer brackets than the limit cannot nest deeper than it."""
    opening = (b"{", b"[") if isinstance(text, bytes) else ("{", "[")
    return text.count(opening[0]) + text.count(opening[1]) > MAX_DEPTH


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Does ``value`` nest arrays and objects more than ``limit`` deep? Level by level,
    without recursion (the point is not to recurse)."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [item for container in level
                 for item in (container.values() if isinstance(container, dict) else container)
                 if isinstance(item, _CONTAINERS)]
    return False


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """UTF-8 JSON; ``default`` turns what JSON has no type for into something it has."""
    try:
        return orjson.dumps(value, default=default)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, default=default).encode()


def dumps_text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """JSON as text (what a JSON column stores, a log line)."""
    return dumps(value, default).decode()
