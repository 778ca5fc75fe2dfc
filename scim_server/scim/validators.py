"""Value rules that a SCIM schema cannot express, keyed by attribute.

RFC 7643 schemas give an attribute a type but no format; plan2learn needs a few
formats (an EAN must be a GS1 number with a valid check digit). The checks are
python-stdnum's; this file only says which attribute gets which check.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stdnum import ean as gs1_ean
from stdnum.exceptions import ValidationError as StdnumError

from .errors import invalid_value

P2L_USER = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User"
P2L_GROUP = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:Group"


def gln(value: Any, name: str) -> str:
    """A 13-digit GS1 number (EAN-13 / GLN, as used for Danish e-invoicing) with a valid check digit."""
    if not isinstance(value, str):
        raise invalid_value(f"'{name}' must be a string of 13 digits")
    compact = gs1_ean.compact(value)
    if len(compact) != 13 or not compact.isdigit():
        raise invalid_value(f"'{name}' must be a 13-digit EAN (GLN), not {value!r}")
    try:
        return gs1_ean.validate(compact)
    except StdnumError as exc:
        raise invalid_value(f"'{name}' {value!r} is not a valid EAN: {exc}") from exc


#: (schema URN, attribute name) -> check returning the normalised value
RULES: dict[tuple[str, str], Callable[[Any, str], Any]] = {
    (P2L_USER, "ean"): gln,
    (P2L_GROUP, "ean"): gln,
}


def apply(document: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise every attribute that has a rule; returns the document."""
    for (urn, name), check in RULES.items():
        ext = document.get(urn)
        if isinstance(ext, dict) and ext.get(name) is not None:
            ext[name] = check(ext[name], f"{urn}:{name}")
    return document
