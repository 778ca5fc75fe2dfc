"""Reading and writing SCIM resources: what Users and Groups share.

A store is made per request for one tenant. Every query it runs carries the
tenant condition, so another tenant's id is simply "not found". Lists load a
page of ids with the filter and sort in SQL, then the page's rows, then one
query each for the page's related rows: the number of queries does not grow
with the page size (no N+1). ``users`` and ``groups`` hold the two stores.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators

from ..scim.errors import ScimError, invalid_value
from ..scim.filter_parser import lift_values
from ..scim.filters import FilterTemplate, compile_template
from ..scim.marshal import format_datetime
from ..scim.projection import Projection
from ..scim.schemas import ResourceType
from ..scim.validators import P2L_GROUP, P2L_USER
from .models import utcnow


class ResourceStore:
    model: Any
    resolver_class: Any
    #: attribute name (canonical) -> column attribute name on the model
    column_attributes: dict[str, str] = {"externalId": "external_id"}

    def __init__(self, session: Session, tenant_id: int, rt: ResourceType, base_url: str,
                 tenant_settings: dict[str, Any] | None = None, source_id: int | None = None):
        self.session = session
        self.tenant_id = tenant_id
        #: the source (a sync) that owns what this store creates; None: no source (an IdP, a client)
        self.source_id = source_id
        #: the tenant's settings as authentication saw them (None: read them when needed)
        self.tenant_settings = tenant_settings
        self.rt = rt
        self.base_url = base_url
        self.dialect = session.get_bind().dialect.name
        self.resolver = self.resolver_class(rt, self.dialect)
        #: plan2learn's master-data extension is offered to this tenant (see ``tenant set --no-master-data``)
        self.master_data = any(e.id in (P2L_USER, P2L_GROUP) for e in rt.extensions)

    # ------------------------------------------------------------------ reads
    def get(self, resource_id: str, *, for_update: bool = False):
        """The resource's row, or None. A write gets the ORM object (locked on PostgreSQL); a read
        gets a plain row, which renders the same and costs less than an ORM object."""
        read, write, locked = _by_id(self.model)
        params = {"rid": resource_id, "tid": self.tenant_id}
        if not for_update:
            return self.session.connection().execute(read, params).first()
        return self.session.scalars(locked if self.dialect == "postgresql" else write, params).first()

    def search(self, filter_text: str | None, sort_by: str | None, descending: bool,
               start_index: int, count: int) -> tuple[int, list[Any]]:
        """One page and the exact total. A short page tells the total by itself (the usual
        answer to an IdP's matching query), so the count query runs only when it must.

        A page past the middle is read from the far end (the order reversed, then the page
        turned round): the database walks at most half the results to reach any offset, so the
        last page of an import costs what the first does."""
        shape, values = lift_values(filter_text) if filter_text else (None, ())
        plan = _search_plan(type(self), self.rt, self.dialect, shape, sort_by, descending)
        params = {"tid": self.tenant_id, **(plan.filter.bind(values) if plan.filter else {})}
        connection = self.session.connection()
        rows: list[Any] = []
        if count > 0 and start_index > 1:  # paging on: the total says from which end to read
            total = connection.scalar(plan.count, params)
            skip = start_index - 1
            take = min(count, total - skip)
            if take <= 0:
                return total, rows
            if skip <= total // 2:
                return total, list(connection.execute(plan.page, {**params, "skip": skip, "take": take}))
            rows = list(connection.execute(plan.page_from_end, {**params, "skip": total - skip - take, "take": take}))
            rows.reverse()
            return total, rows
        if count > 0:
            rows = list(connection.execute(plan.page, {**params, "skip": start_index - 1, "take": count}))
            if 0 < len(rows) < count or (not rows and start_index == 1):
                return start_index - 1 + len(rows), rows
        return connection.scalar(plan.count, params), rows

    @classmethod
    def row_columns(cls, dialect: str) -> tuple[Any, ...]:
        """Columns a page of rows carries beside the table's own (what ``documents`` needs)."""
        return ()

    # --------------------------------------------------------------- documents
    def location(self, resource_id: str) -> str:
        return f"{self.base_url}{self.rt.endpoint}/{resource_id}"

    def meta(self, row) -> dict[str, Any]:
        return {
            "resourceType": self.rt.name,
            "created": format_datetime(row.created),
            "lastModified": format_datetime(row.last_modified),
            "location": self.location(row.id),
            "version": etag(row),
        }

    def stored_document(self, row) -> dict[str, Any]:
        """The client-writable state of a resource, as PATCH and PUT start from."""
        doc = dict(row.attributes or {})
        for name, column in self.column_attributes.items():
            value = getattr(row, column)
            if value is not None:
                doc[name] = value
        return doc

    def documents(self, rows: list[Any], projection: Projection) -> list[dict[str, Any]]:
        raise NotImplementedError

    def schemas_of(self, doc: dict[str, Any]) -> list[str]:
        return [self.rt.core.id] + [e.id for e in self.rt.extensions if doc.get(e.id)]

    # ------------------------------------------------------------------ writes
    def _split(self, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split a validated document into column values and the JSON document."""
        columns = {column: doc.get(name) for name, column in self.column_attributes.items()}
        for name, column in self.column_attributes.items():
            check_fits(self.model.__table__.c[column], name, columns[column])
        rest = {k: v for k, v in doc.items() if k not in self.column_attributes and k not in ("schemas", "id", "meta")}
        return columns, rest

    def _touch(self, row) -> None:
        row.last_modified = utcnow()
        row.version = (row.version or 0) + 1

    def collections(self, row) -> dict[str, Any]:
        """Multi-valued attributes kept as rows, for the PATCH engine to write through. The
        same dict goes back to ``patch``, which reads what they changed."""
        return {}

    # The three writes of the write service (``provisioning``): each returns the changes to
    # row-backed attributes (members added and removed) for the audit trail.

    def create(self, doc: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def replace(self, row, doc: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def creates_together(self, doc: dict[str, Any]) -> bool:
        """Can ``create_many`` write this new resource with others in one statement?"""
        return False

    def create_many(self, docs: list[dict[str, Any]]) -> list[Any]:
        """New resources in multi-row statements: per document its row, or the ScimError that
        refused it alone."""
        raise NotImplementedError

    def patches_together(self) -> bool:
        """Can PATCHes of this type be written together (``get_many``, ``update_many``)?"""
        return False

    def replaces_together(self) -> bool:
        """Can PUTs of this type be written together (``get_many``, ``replace_many``)?"""
        return False

    def updates_together(self, row, doc: dict[str, Any]) -> bool:
        """Can ``update_many`` write this change with others? Not when a check of it must see
        the writes before it (a store says which)."""
        return True

    def patch(self, row, doc: dict[str, Any], collections: dict[str, Any]) -> dict[str, Any]:
        """Write the document a PATCH made, after the PATCH engine wrote through ``collections``."""
        raise NotImplementedError

    def audit_state(self, row, stored: dict[str, Any] | None = None) -> dict[str, Any]:
        """The resource as the audit trail compares it before and after a write
        (``stored``: its stored document, when the caller has it already)."""
        return dict(stored) if stored is not None else self.stored_document(row)

    def delete(self, row) -> None:
        self.session.delete(row)
        self.session.flush()

    def _flush(self) -> None:
        with self._write_errors():
            self.session.flush()

    @contextmanager
    def _write_errors(self) -> Iterator[None]:
        """The database's refusals of a write, as SCIM errors (a clash, a value that does not fit)."""
        try:
            yield
        except IntegrityError as exc:
            raise self._integrity_error(exc) from exc
        except DataError as exc:  # a value the column type cannot hold
            raise invalid_value("A value does not fit its attribute (too long or malformed)") from exc

    def _integrity_error(self, exc: IntegrityError) -> ScimError:
        return ScimError(409, "The change conflicts with an existing resource", "uniqueness")


@dataclass(frozen=True)
class SearchPlan:
    """The statements of one kind of search, built once: the page of rows (counted from the
    start, or from the end in the opposite order) and the count."""

    filter: FilterTemplate | None
    page: Select
    page_from_end: Select
    count: Select


@lru_cache(maxsize=1024)
def _search_plan(store_class: type[ResourceStore], rt: ResourceType, dialect: str, shape: str | None,
                 sort_by: str | None, descending: bool) -> SearchPlan:
    """Statements for a filter shape and sort order, with the tenant, the filter's values, the
    offset and the page size as bind parameters. Building a statement and its cache key costs
    more than running it, and IdPs repeat the same few searches with new values."""
    model = store_class.model
    resolver = store_class.resolver_class(rt, dialect)
    template = compile_template(rt, shape, resolver) if shape else None
    condition = [model.tenant_id == bindparam("tid")]
    if template is not None:
        condition.append(template.condition)
    order = _order(model, rt, resolver, dialect, sort_by, descending, filtered=template is not None)
    table = model.__table__

    def page(order: list[Any]) -> Select:
        # a deferred join: the filter, sort and offset walk ids only, then the page's rows are read
        ids = (select(model.id).where(*condition).order_by(*order)
               .offset(bindparam("skip")).limit(bindparam("take")).subquery())
        return (select(table, *store_class.row_columns(dialect))
                .join(ids, table.c.id == ids.c.id).order_by(*order))

    count = select(func.count()).select_from(table).where(*condition)
    # from the end: the exact opposite order, ties and NULLs included
    return SearchPlan(template, page(order), page([_reversed(term) for term in order]), count)


def _reversed(term):
    """``x`` / ``x ASC NULLS LAST`` <-> ``x DESC NULLS FIRST`` (SQL's defaults put NULLs last
    ascending on PostgreSQL and first on SQLite, so the NULLs clause is always spelled out)."""
    modifier = getattr(term, "modifier", None)
    if modifier is operators.nulls_last_op:
        return term.element.element.desc().nulls_first()
    if modifier is operators.nulls_first_op:
        return term.element.element.asc().nulls_last()
    if modifier is operators.desc_op:
        return term.element.asc()
    return term.desc()


def _order(model, rt: ResourceType, resolver, dialect: str, sort_by: str | None, descending: bool,
           filtered: bool) -> list[Any]:
    if not sort_by:
        if filtered and dialect == "sqlite":
            # Without statistics SQLite prefers the (tenant, created) index to avoid a sort and
            # then scans every row for the filter; an expression keeps it on the filter's index
            # (userName, externalId eq ...). The order is the same.
            return [func.coalesce(model.created, model.created), model.id]
        return [model.created, model.id]
    resolved = rt.resolve(sort_by)
    if resolved is None:
        raise invalid_value(f"Unknown sortBy attribute '{sort_by}'")
    attr, sub = resolved
    target = sub or attr
    if attr.multi_valued or target.is_complex or not target.filterable:
        raise invalid_value(f"sortBy must name a singular attribute, not '{sort_by}'")
    expr = resolver.scalar(attr, sub)
    if expr is None:
        raise invalid_value(f"Cannot sort by '{sort_by}'")
    if target.type in ("string", "reference") and not target.case_exact:
        expr = func.lower(expr)
    expr = expr.desc().nulls_first() if descending else expr.asc().nulls_last()
    return [expr, model.id.desc() if descending else model.id]


@cache
def _by_id(model):
    query = select(model).where(model.id == bindparam("rid"), model.tenant_id == bindparam("tid"))
    table = model.__table__
    read = select(table).where(table.c.id == bindparam("rid"), table.c.tenant_id == bindparam("tid"))
    # FOR NO KEY UPDATE: a concurrent request that only references this row (a foreign key
    # to it: a new manager link, a membership) need not wait for it, nor deadlock with it.
    return read, query, query.with_for_update(key_share=True)


def new_row(table) -> dict[str, Any]:
    """A new row of ``table`` with every column set (so none is read back after a Core INSERT):
    the model's plain default, or None (a callable default such as the time is the writer's)."""
    return {c.key: c.default.arg if c.default is not None and c.default.is_scalar else None for c in table.columns}


def of_tenant(column, tenant: Any):
    """``column == tenant`` for a statement that picks rows by a list of ids. SQLite keeps no
    statistics, and with a plain comparison it walks the tenant's whole (tenant, created) index
    instead of looking the ids up by primary key: ``+ 0`` makes the tenant a filter only."""
    return (column + 0) == tenant


def check_fits(column, name: str, value: Any) -> None:
    """400 invalidValue for a string longer than its column: PostgreSQL would refuse it with an
    error, and SQLite would keep it."""
    limit = getattr(column.type, "length", None)
    if isinstance(value, str) and limit and len(value) > limit:
        raise invalid_value(f"'{name}' is longer than {limit} characters")


def is_foreign_key_violation(exc: IntegrityError) -> bool:
    """Did the database refuse a reference to a row that is gone (rather than a duplicate)?"""
    return (getattr(exc.orig, "sqlstate", None) == "23503"  # PostgreSQL's foreign_key_violation
            or "FOREIGN KEY constraint failed" in str(exc.orig))  # SQLite's


def check_version(row, if_match: str | None) -> None:
    """If-Match (or a Bulk operation's ``version``): 412 unless one of the tags is the current one."""
    if not if_match or if_match.strip() == "*":
        return
    wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if etag(row).removeprefix("W/") not in wanted:
        raise ScimError(412, f"The resource has changed: its version is now {etag(row)}")


def etag(row) -> str:
    return f'W/"{row.version}"'
