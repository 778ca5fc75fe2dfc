"""Keyset paging: the statements behind cursor-based pagination (RFC 9865).

A cursor holds the sort key of a row, the sort value(s) and the id, as ``_order`` in
``resources`` orders them. The next page is the rows *after* that key in the list's order,
``WHERE (key) > (:last) ORDER BY key LIMIT :take``; the previous page is the same in the
reversed order, turned round. The database walks from the key straight to the page (on
PostgreSQL an index range scan over ``(tenant_id, created, id)`` for the default order), so a
page costs the same at row 900,000 as at row 1; an offset would walk every row before it.

NULL sort values. ``_order`` puts them last ascending and first descending, and a row
comparison cannot reach them (``(NULL, id) > (:v, :id)`` is not true). Spelling them out with
``OR value IS NULL`` would be correct but would also stop the database from starting at the
key in an index (PostgreSQL then scans from the first row). So a sorted list is read as two
runs, the rows with a value and the rows without, each a plain index-friendly statement, one
after the other in the list's order: a page that runs off the end of one run goes on at the
start of the other. Statements are built once per filter shape, sort, direction and run, like
``_search_plan``'s.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, select, tuple_
from sqlalchemy.sql import operators

from ..scim.cursor import invalid_cursor
from ..scim.filter_parser import lift_values
from ..scim.filters import FilterTemplate, compile_template
from ..scim.schemas import ResourceType
from .resources import ResourceStore, _order, _reversed

#: the labels of the sort key's columns in a page's rows: cursor_key_0, cursor_key_1, ...
KEY_PREFIX = "cursor_key_"
#: the runs of a list: every row (NOT NULL sort keys), or the rows with and without a sort value
ALL, VALUES, NULLS = "all", "values", "nulls"


def page(store: ResourceStore, filter_text: str | None, sort_by: str | None, descending: bool,
         key: Sequence[Any] | None, backward: bool, take: int) -> list[Any]:
    """Up to ``take`` rows, in the list's order, just after the row with sort key ``key`` (the
    first rows when None) or, ``backward``, just before it (the last rows when None).

    Each row carries its own sort key (``row_key``), from which the next cursors are made."""
    shape, values = lift_values(filter_text) if filter_text else (None, ())
    kind = (type(store), store.rt, store.dialect, shape, sort_by, descending, backward)
    runs, width = _runs(*kind)
    if key is not None and len(key) != width:
        raise invalid_cursor("The cursor was made for another sort order")  # e.g. by an older server
    start = 0 if key is None or runs == (ALL,) else runs.index(NULLS if key[0] is None else VALUES)
    connection = store.session.connection()
    found: list[Any] = []
    for index in range(start, len(runs)):
        keyed = key is not None and index == start
        template, statement = _statement(*kind, runs[index], keyed)
        params: dict[str, Any] = {"tid": store.tenant_id, "take": take - len(found),
                                  **(template.bind(values) if template else {})}
        if keyed:
            params.update({f"k{i}": v for i, v in enumerate(key)})
        found += connection.execute(statement, params)
        if len(found) >= take:
            break
    if backward:
        found.reverse()
    return found


def prepare(store: ResourceStore, filter_text: str | None, sort_by: str | None, descending: bool) -> None:
    """Build (and keep) the first page's statements: raises the filter's or the sort's 400 now,
    before any row is read (the root ``/.search`` leaves out a type whose filter does not fit)."""
    shape, values = lift_values(filter_text) if filter_text else (None, ())
    kind = (type(store), store.rt, store.dialect, shape, sort_by, descending, False)
    template, _ = _statement(*kind, _runs(*kind)[0][0], False)
    if template is not None:
        template.bind(values)


def row_key(row) -> tuple[Any, ...]:
    """The sort key a page's row carries (sort values, then the id)."""
    return tuple(value for name, value in row._mapping.items() if name.startswith(KEY_PREFIX))


@lru_cache(maxsize=1024)
def _runs(store_class: type[ResourceStore], rt: ResourceType, dialect: str, shape: str | None,
          sort_by: str | None, descending: bool, backward: bool) -> tuple[tuple[str, ...], int]:
    """The runs of the list in the order they are read (NULLs last or first, as ``_order`` says),
    and the width of its sort key."""
    terms, _ = _terms(store_class, rt, dialect, sort_by, descending, backward, shape is not None)
    where_nulls = terms[0][2]
    if where_nulls is None:
        return (ALL,), len(terms)
    return ((VALUES, NULLS) if where_nulls == "last" else (NULLS, VALUES)), len(terms)


def _terms(store_class: type[ResourceStore], rt: ResourceType, dialect: str, sort_by: str | None,
           descending: bool, backward: bool, filtered: bool) -> tuple[list[tuple[Any, bool, str | None]], list[Any]]:
    """The list's ORDER BY (reversed for a backward read), and each term as ``_parts`` sees it."""
    resolver = store_class.resolver_class(rt, dialect)
    order = _order(store_class.model, rt, resolver, dialect, sort_by, descending, filtered=filtered)
    if backward:
        order = [_reversed(term) for term in order]
    terms = [_parts(term) for term in order]
    if len({descending for _, descending, _ in terms}) != 1 or any(where for _, _, where in terms[1:]):
        raise ValueError("keyset paging needs one direction and at most a leading nullable term")
    return terms, order


@lru_cache(maxsize=1024)
def _statement(store_class: type[ResourceStore], rt: ResourceType, dialect: str, shape: str | None,
               sort_by: str | None, descending: bool, backward: bool, run: str,
               keyed: bool) -> tuple[FilterTemplate | None, Select]:
    """The filter template and the statement for one run of a list, from its start or
    (``keyed``) after the key ``:k0, :k1, ...``."""
    model = store_class.model
    template = compile_template(rt, shape, store_class.resolver_class(rt, dialect)) if shape else None
    terms, order = _terms(store_class, rt, dialect, sort_by, descending, backward, template is not None)
    condition = [model.tenant_id == bindparam("tid")]
    if template is not None:
        condition.append(template.condition)
    condition += _run_condition(terms, run, keyed)
    keys = [expr.label(f"{KEY_PREFIX}{i}") for i, (expr, _, _) in enumerate(terms)]
    # a deferred join, as ``_search_plan``'s: filter, order and limit walk ids, then the page's rows are read
    ids = select(model.id.label("page_id"), *keys).where(*condition).order_by(*order).limit(bindparam("take")).subquery()
    table = model.__table__
    statement = (select(table, *store_class.row_columns(dialect), *(ids.c[k.name] for k in keys))
                 .join(ids, table.c.id == ids.c.page_id).order_by(*order))
    return template, statement


def _run_condition(terms: list[tuple[Any, bool, str | None]], run: str, keyed: bool) -> list[Any]:
    """What keeps a statement to its run and, ``keyed``, to the rows after the key in it: one
    row comparison, which the databases answer from an index range starting at the key."""
    exprs = [expr for expr, _, _ in terms]
    params = [bindparam(f"k{i}", type_=expr.type) for i, expr in enumerate(exprs)]
    if run == NULLS:  # all NULL: the id orders them
        exprs, params = exprs[1:], params[1:]
    conditions = {ALL: [], VALUES: [exprs[0].isnot(None)], NULLS: [terms[0][0].is_(None)]}[run]
    if keyed:
        left, right = (exprs[0], params[0]) if len(exprs) == 1 else (tuple_(*exprs), tuple_(*params))
        conditions.append(left < right if terms[0][1] else left > right)
    return conditions


def _parts(term) -> tuple[Any, bool, str | None]:
    """An ORDER BY term of ``_order`` as (expression, descending, where its NULLs go).

    A term without a NULLs clause is a NOT NULL column (``created``, ``id``): None."""
    nulls = None
    modifier = getattr(term, "modifier", None)
    if modifier in (operators.nulls_first_op, operators.nulls_last_op):
        nulls = "first" if modifier is operators.nulls_first_op else "last"
        term = term.element
        modifier = getattr(term, "modifier", None)
    if modifier in (operators.asc_op, operators.desc_op):
        return term.element, modifier is operators.desc_op, nulls
    return term, False, nulls
