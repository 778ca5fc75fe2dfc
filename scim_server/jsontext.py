"""JSON text, for the wire and for the database's JSON columns alike.

orjson encodes and decodes several times faster than the standard library, and every
request decodes a body or a stored document and encodes a response or one. It refuses an
integer beyond 64 bits, which can only be in data stored before requests were decoded with it
(orjson reads such a number as a float, which an integer attribute does not accept): that
value goes through ``json``. This is the one module that knows which library does the work:
bodies, JSON columns, filter strings and the access log all come through here.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """UTF-8 JSON; ``default`` turns what JSON has no type for into something it has."""
    try:
        return orjson.dumps(value, default=default)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, default=default).encode()


def dumps_text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """JSON as text (what a JSON column stores, a log line)."""
    return dumps(value, default).decode()
