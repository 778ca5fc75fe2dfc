"""Query parameters of list and search requests (RFC 7644 §3.4.2, §3.4.3).

The same parameters arrive in a GET's query string or in a POST /.search body;
both are read into one ``ListQuery``. Parameter names are case-insensitive.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..scim.errors import ScimError, invalid_value

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: Beyond any real result set, and within every database's integer range (an empty page answers it).
MAX_START_INDEX = 2**31 - 1


@dataclass(frozen=True)
class ListQuery:
    filter: str | None
    sort_by: str | None
    descending: bool
    start_index: int
    count: int
    attributes: str | None
    excluded_attributes: str | None
    #: cursor-based paging (RFC 9865): None for index paging, "" for the first page, else a
    #: ``nextCursor`` or ``previousCursor`` of an earlier response
    cursor: str | None = None


def _lower_keys(source: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in source.items()}


def _as_list_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _integer(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise invalid_value(f"'{name}' must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise invalid_value(f"'{name}' must be an integer, not {value!r}") from exc


def _cursor(params: dict[str, Any]) -> str | None:
    """The ``cursor`` parameter. ``?cursor`` and ``?cursor=`` (and ``"cursor": ""`` in a search
    body) ask for the first page with cursors; without it paging is by index, as before RFC 9865,
    so clients that know nothing of cursors see no change."""
    cursor = params.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise ScimError(400, "'cursor' must be a string", "invalidCursor")
    if cursor is not None and params.get("startindex") not in (None, ""):
        raise invalid_value("Send either startIndex (index paging) or cursor (cursor paging), not both")
    return cursor


def list_query(source: Mapping[str, Any], settings: Settings) -> ListQuery:
    params = _lower_keys(source)
    cursor = _cursor(params)
    start = _integer(params.get("startindex"), "startIndex")
    count = _integer(params.get("count"), "count")
    start = 1 if start is None or start < 1 else min(start, MAX_START_INDEX)  # RFC 7644 §3.4.2.4: < 1 means 1
    count = settings.default_page_size if count is None else max(count, 0)
    count = min(count, settings.max_page_size)
    order = params.get("sortorder")
    if order is not None and str(order).lower() not in ("ascending", "descending"):
        raise invalid_value("sortOrder must be 'ascending' or 'descending'")
    sort_by = params.get("sortby")
    if sort_by is not None and not isinstance(sort_by, str):
        raise invalid_value("sortBy must be an attribute name (a string)")
    filter_text = params.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise ScimError(400, "'filter' must be a string", "invalidFilter")
    return ListQuery(
        filter=filter_text or None,
        sort_by=sort_by or None,
        descending=str(order or "").lower() == "descending",
        start_index=start,
        count=count,
        attributes=_as_list_text(params.get("attributes")),
        excluded_attributes=_as_list_text(params.get("excludedattributes")),
        cursor=cursor,
    )
