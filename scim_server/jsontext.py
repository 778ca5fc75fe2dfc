"""JSON text, for the wire and for the database's JSON columns alike.

orjson encodes and decodes several times faster than the standard library, and every
request decodes a body or a stored document and encodes a response or one. It refuses an
integer beyond 64 bits, which can only be in data stored before requests were decoded with it
(orjson reads such a number as a float, which an integer attribute does not accept): that
value goes through ``json``.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False).encode()


def dumps_text(value: Any) -> str:
    """JSON as text (what a JSON column stores)."""
    return dumps(value).decode()
