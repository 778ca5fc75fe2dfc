"""The opaque cursors of cursor-based pagination (RFC 9865), no HTTP and no SQL.

A cursor names a place in a sorted list: the sort key of one row (the sort value(s) and
the id) and which side of it the page lies on (``nextCursor``: after it; ``previousCursor``:
before it). The database then reads the page with a keyset condition, so a page deep in a
million rows costs what the first one does.

A client must be unable to forge one (RFC 9865's Security Considerations), and a cursor must
only ever continue the query it was made for: the token is base64url JSON (opaque, not secret:
it holds the sort values of a row the client has just been sent) with an HMAC-SHA256 over it
*and* over a digest of the query (resource type, tenant, filter, sortBy, sortOrder). A cursor
of another tenant, filter or sort therefore fails the same check as a tampered one:
``invalidCursor``. A cursor older than the timeout is ``expiredCursor``. Only unreserved URL
characters (RFC 3986 §2.3) appear in a token, as RFC 9865 §2 asks.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import ScimError

#: the token layout; a change makes older tokens ``invalidCursor`` rather than misread
VERSION = 1
#: bytes of the HMAC kept in a token: 128 bits is far beyond guessing, and keeps URLs short
MAC_BYTES = 16
#: longer tokens are refused before any decoding (a sort value can be long, but not this long)
MAX_LENGTH = 8192


def invalid_cursor(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidCursor")


def expired_cursor(detail: str) -> ScimError:
    return ScimError(400, detail, "expiredCursor")


@dataclass(frozen=True)
class Position:
    """Where a page lies: just after the row with this sort key, or (``backward``) just before it."""

    key: tuple[Any, ...]
    backward: bool = False


def query_digest(*parts: Any) -> bytes:
    """What a cursor is bound to: every part of the query that decides the rows and their order."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).digest()


class CursorCodec:
    """Makes and checks tokens with one secret (the same in every worker: see ``storage.secrets``)."""

    def __init__(self, secret: bytes, timeout: int, clock: Callable[[], float] = time.time):
        self.secret = secret
        self.timeout = timeout
        self.clock = clock

    def encode(self, position: Position, query: bytes) -> str:
        payload = json.dumps([VERSION, int(self.clock()), int(position.backward),
                              [_encode_value(v) for v in position.key]], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload, query))}"

    def decode(self, token: str, query: bytes) -> Position:
        """The position a token names; 400 invalidCursor or expiredCursor when it cannot be used."""
        payload = self._verified(token, query)
        try:
            version, issued, backward, key = json.loads(payload)
            if version != VERSION or not isinstance(issued, int) or backward not in (0, 1):
                raise ValueError
            values = tuple(_decode_value(v) for v in key)
        except (ValueError, TypeError) as exc:
            raise invalid_cursor("The cursor was not made by this server") from exc
        if self.clock() - issued > self.timeout:
            raise expired_cursor(f"The cursor has expired (cursorTimeout is {self.timeout} s): "
                                 "start again with an empty cursor")
        return Position(values, bool(backward))

    def _verified(self, token: str, query: bytes) -> bytes:
        """The payload of a token whose MAC holds for this query; every other token is invalid
        with the same words, so the answer tells nothing about why (RFC 9865, Security Considerations)."""
        refused = invalid_cursor("The cursor is not valid for this query: use the nextCursor or previousCursor "
                                 "of a response to the same request, or an empty cursor for the first page")
        if len(token) > MAX_LENGTH or token.count(".") != 1:
            raise refused
        body, mac = token.split(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, binascii.Error) as exc:
            raise refused from exc
        if not hmac.compare_digest(given, self._mac(payload, query)):
            raise refused
        return payload

    def _mac(self, payload: bytes, query: bytes) -> bytes:
        return hmac.new(self.secret, query + payload, hashlib.sha256).digest()[:MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_value(value: Any) -> Any:
    """A sort value as JSON: timestamps and decimals are tagged so they come back as themselves
    (bound as text they would compare as text, not in the column's order)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"n": str(value)}
    raise TypeError(f"A sort value of type {type(value).__name__} cannot go into a cursor")


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"t"}:
            return dt.datetime.fromisoformat(value["t"])
        if set(value) == {"n"}:
            return Decimal(value["n"])
        raise ValueError("unknown tag")
    if isinstance(value, list):
        raise ValueError("a sort value is never a list")
    return value
