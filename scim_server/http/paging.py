"""Cursor-based pagination of list and search responses (RFC 9865).

A request with a ``cursor`` parameter (empty for the first page) is answered from the keyset
statements of ``storage.keyset``: each page reads ``count`` + 1 rows next to the cursor's row,
the extra one telling whether another page follows. The response carries ``nextCursor``
unless it is the last page and ``previousCursor`` unless it is the first, and no
``startIndex``.

``totalResults`` is left out of cursor pages. RFC 9865 §2 repeats RFC 7644's advice to return
an accurate totalResults and lets a provider that cannot estimate it omit it; this one could
count, but an exact count walks every match, on every page, which is the cost cursor paging
exists to avoid (at a million users it is most of a page's time). ``count=0`` asks for the
total alone (RFC 9865 §2), and gets it, counted.

A list may span several resource types (the root ``/.search``: Users, then Groups). A
cursor's key therefore starts with the resource type of its row, and a page that runs off the
end of one type goes on at the start of the next.
"""
from __future__ import annotations

import time
from itertools import groupby
from typing import Any

from ..scim import marshal
from ..scim.cursor import CursorCodec, Position, invalid_cursor, query_digest
from ..scim.errors import ScimError
from ..scim.projection import Projection
from ..storage import keyset
from ..storage.resources import ResourceStore
from ..storage.secrets import server_secret
from .params import ListQuery

#: what cursors are dated by; tests replace it to make a cursor old without waiting
clock = time.time


def cursor_page(stores: list[ResourceStore], query: ListQuery, timeout: int) -> dict[str, Any]:
    """The ListResponse members (all but ``schemas``) of one cursor page over ``stores``, in order.

    ``timeout`` is the cursors' lifetime in seconds (``cursorTimeout``)."""
    stores = _searchable(stores, query)
    codec = CursorCodec(server_secret(stores[0].session.get_bind(), "cursor"), timeout, clock)
    digest = binding([s.rt.name for s in stores], stores[0].tenant_id, query)
    position = codec.decode(query.cursor, digest) if query.cursor else None
    if query.count == 0:
        total = sum(store.search(query.filter, None, False, 1, 0)[0] for store in stores)
        return {"totalResults": total, "itemsPerPage": 0, "Resources": []}
    rows, before, after = _rows(stores, query, position)
    body: dict[str, Any] = {"itemsPerPage": len(rows)}
    if before is not None:
        body["previousCursor"] = codec.encode(Position(_key(*before), backward=True), digest)
    if after is not None:
        body["nextCursor"] = codec.encode(Position(_key(*after)), digest)
    body["Resources"] = _render(rows, query)
    return body


def binding(type_names: list[str], tenant_id: int, query: ListQuery) -> bytes:
    """What a cursor is bound to: the resource types, the tenant, the filter and the sort.
    ``count`` and ``attributes`` may change from page to page: they move no row."""
    return query_digest(type_names, tenant_id, query.filter, (query.sort_by or "").lower(), query.descending)


def _searchable(stores: list[ResourceStore], query: ListQuery) -> list[ResourceStore]:
    """The stores the filter applies to. Over several types, a type that lacks a filtered
    attribute has no matches (RFC 7644 §3.4.3), as in index paging; when none is left, or
    the sort is wrong, that is the client's 400."""
    usable, errors = [], []
    for store in stores:
        try:
            keyset.prepare(store, query.filter, query.sort_by, query.descending)
        except ScimError as exc:
            if exc.scim_type != "invalidFilter" or len(stores) == 1:
                raise
            errors.append(exc)
            continue
        usable.append(store)
    if not usable:
        raise errors[0]
    return usable


def _rows(stores: list[ResourceStore], query: ListQuery,
          position: Position | None) -> tuple[list[tuple[ResourceStore, Any]], Any, Any]:
    """The page's (store, row) pairs, the row the previous page ends before (or None: this is the
    first page) and the row the next page starts after (or None: this is the last page)."""
    count = query.count
    if position is None or not position.backward:
        found = _forward(stores, query, position, count + 1)
        page = found[:count]
        more = len(found) > count
        return page, page[0] if position is not None and page else None, page[-1] if more else None
    found = _backward(stores, query, position, count + 1)
    if len(found) <= count:  # back at the start: the first page, the same as an empty cursor gives
        return _rows(stores, query, None)
    page = found[1:]
    return page, page[0], page[-1]


def _forward(stores: list[ResourceStore], query: ListQuery, position: Position | None,
             take: int) -> list[tuple[ResourceStore, Any]]:
    """Up to ``take`` rows after the position (from the start when None), across the stores."""
    start, key = _place(stores, position)
    found: list[tuple[ResourceStore, Any]] = []
    for index in range(start, len(stores)):
        store = stores[index]
        rows = keyset.page(store, query.filter, query.sort_by, query.descending,
                           key if index == start else None, False, take - len(found))
        found += [(store, row) for row in rows]
        if len(found) >= take:
            break
    return found


def _backward(stores: list[ResourceStore], query: ListQuery, position: Position,
              take: int) -> list[tuple[ResourceStore, Any]]:
    """Up to ``take`` rows before the position, across the stores, in the list's order."""
    start, key = _place(stores, position)
    found: list[tuple[ResourceStore, Any]] = []
    for index in range(start, -1, -1):
        store = stores[index]
        rows = keyset.page(store, query.filter, query.sort_by, query.descending,
                           key if index == start else None, True, take - len(found))
        found = [(store, row) for row in rows] + found
        if len(found) >= take:
            break
    return found


def _place(stores: list[ResourceStore], position: Position | None) -> tuple[int, tuple[Any, ...] | None]:
    """Which store a position is in, and the row's sort key there."""
    if position is None:
        return 0, None
    names = [store.rt.name for store in stores]
    if not position.key or position.key[0] not in names:
        raise invalid_cursor("The cursor was made for another resource type")
    return names.index(position.key[0]), position.key[1:]


def _key(store: ResourceStore, row) -> tuple[Any, ...]:
    return (store.rt.name, *keyset.row_key(row))


def _render(rows: list[tuple[ResourceStore, Any]], query: ListQuery) -> list[dict[str, Any]]:
    """The page's resources, each store's rows rendered together (its related rows in one query)."""
    resources: list[dict[str, Any]] = []
    for store, pairs in groupby(rows, key=lambda pair: pair[0]):
        projection = Projection(store.rt, query.attributes, query.excluded_attributes)
        docs = store.documents([row for _, row in pairs], projection)
        resources += [projection.apply(marshal.dump(store.rt, doc)) for doc in docs]
    return resources
