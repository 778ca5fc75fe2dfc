"""Create, replace, patch and delete of one resource: the one write sequence.

Each write passes down once and returns a ``Written`` value:

    find -> If-Match -> (IdP quirks -> PATCH engine | quirks -> canonical form) -> validation
         -> immutables -> store write (with the master-data rules: placement, leavers, trees)
         -> audit event

The audit events of a unit of work are kept here and written in one multi-row INSERT
just before the commit, so a Bulk request of 1,000 operations writes its trail in one
statement and a single request in one as well.

Transactions: ``commit_one`` makes one write the whole transaction (a view's request),
``in_savepoint`` makes it a part of the caller's (a Bulk operation: it succeeds or
fails alone and leaves nothing behind when it fails).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..scim import marshal, patch, quirks
from ..scim.errors import ScimError, invalid_syntax
from ..storage import audit
from ..storage.db import commit_write, defer_write_lock
from ..storage.resources import ResourceStore, check_version, etag
from ..storage.stores import TenantScope, find, open_store

T = TypeVar("T")


@dataclass(frozen=True)
class Written:
    """What a write did: the resource's row as written (after a delete, as it was), its store
    (to render it), and the HTTP status the write answers with."""

    row: Any
    store: ResourceStore
    status: int

    @property
    def location(self) -> str:
        return self.store.location(self.row.id)

    @property
    def version(self) -> str | None:
        return etag(self.row) if self.status != 204 else None


class Provisioning:
    """The write service of one tenant, for one unit of work (a request, a Bulk request, a sync)."""

    def __init__(self, session: Session, scope: TenantScope, base_url: str, *, max_patch_operations: int):
        self.session = session
        self.scope = scope
        self.base_url = base_url
        self.max_patch_operations = max_patch_operations
        self._stores: dict[str, ResourceStore] = {}
        #: audit events of the writes done, written by ``record_events`` before the commit
        self._events: list[dict[str, Any]] = []

    def store(self, resource_type: str) -> ResourceStore:
        """The store of a resource type ("User", "Group"), one per unit of work: a store keeps
        what it read (a user's memberships) for the writes and the rendering that follow."""
        store = self._stores.get(resource_type)
        if store is None:
            store = self._stores[resource_type] = open_store(self.session, self.scope, resource_type, self.base_url)
        return store

    # ------------------------------------------------------------ transactions
    def commit_one(self, write: Callable[[], T], *, read_first: bool = False) -> T:
        """Run one write as the whole transaction, then commit.

        ``read_first``: the write reads and validates before it takes SQLite's write lock and
        takes it at its first write statement (``defer_write_lock``); the user's UPDATE checks
        the version it read. If another request changed the user meanwhile (StaleDataError),
        the write runs once more from an empty session, with the lock up front.
        """
        if read_first:
            token = defer_write_lock.set(True)
            try:
                return self._commit(write)
            except StaleDataError:
                self.session.rollback()
                self.session.expunge_all()  # the second run reads everything afresh
                self._forget()
            finally:
                defer_write_lock.reset(token)
        return self._commit(write)

    def _commit(self, write: Callable[[], T]) -> T:
        result = write()
        self.record_events()
        commit_write(self.session)
        return result

    def in_savepoint(self, write: Callable[[], T]) -> T:
        """Run one write as a part of the caller's transaction: when it fails, the savepoint is
        rolled back, so nothing of it is kept, and the caller goes on."""
        events = len(self._events)
        savepoint = self.session.begin_nested()
        try:
            result = write()
            savepoint.commit()
            return result
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            del self._events[events:]
            self._forget()  # what the stores read inside the savepoint may be gone
            raise

    def record_events(self) -> None:
        """Write the audit events of the writes done so far (one INSERT)."""
        audit.record_many(self.session, self._events)
        self._events = []

    def release(self) -> None:
        """Drop what the stores keep for the writes that follow (a long unit of work, a sync run,
        calls it between chunks so memory does not grow with the run)."""
        self._forget()

    def commit(self) -> None:
        self.record_events()
        commit_write(self.session)

    def _forget(self) -> None:
        self._stores.clear()

    # ------------------------------------------------------------------ writes
    def create(self, resource_type: str, body: Any, *, provenance: dict[str, Any] | None = None) -> Written:
        store = self.store(resource_type)
        return self._create(store, load_resource(store, body), provenance)

    def _create(self, store: ResourceStore, doc: dict[str, Any], provenance: dict[str, Any] | None) -> Written:
        row, row_changes = store.create(doc)
        self._event(store, row, "create", None, store.audit_state(row), row_changes, provenance)
        return Written(row, store, 201)

    def create_many(self, resource_type: str, bodies: list[tuple[Any, dict[str, Any] | None]]
                    ) -> list[Written | ScimError]:
        """Many creates, each succeeding or failing alone: per (body, provenance) its Written or
        the ScimError that refused it. Validation is one pass over the bodies; the resources
        the store can write together go in multi-row statements, the others one by one in
        savepoints (as do all of them if the multi-row write is refused as a whole)."""
        store = self.store(resource_type)
        out: list[Written | ScimError | None] = [None] * len(bodies)
        together: list[tuple[int, dict[str, Any]]] = []
        alone: list[tuple[int, dict[str, Any]]] = []
        for i, (body, _) in enumerate(bodies):
            try:
                doc = load_resource(store, body)
            except ScimError as exc:
                out[i] = exc
                continue
            (together if store.creates_together(doc) else alone).append((i, doc))
        if together:
            try:
                rows = self.in_savepoint(lambda: store.create_many([doc for _, doc in together]))
            except ScimError:  # a clash no check saw (a concurrent write): one by one instead
                alone = sorted(alone + together)
                store = self.store(resource_type)  # the savepoint's rollback dropped the old one
            else:
                for (i, _), row in zip(together, rows):
                    if isinstance(row, ScimError):
                        out[i] = row
                        continue
                    self._event(store, row, "create", None, store.audit_state(row), None, bodies[i][1])
                    out[i] = Written(row, store, 201)
        for i, doc in alone:
            try:
                out[i] = self.in_savepoint(lambda doc=doc, i=i: self._create(self.store(resource_type), doc, bodies[i][1]))
            except ScimError as exc:
                out[i] = exc
        return out  # type: ignore[return-value]

    def replace(self, resource_type: str, resource_id: str, body: Any, *, if_match: str | None = None,
                provenance: dict[str, Any] | None = None) -> Written:
        store = self.store(resource_type)
        row = find(store, resource_id, for_update=True)
        check_version(row, if_match)
        doc = load_resource(store, body)
        stored = store.stored_document(row)
        marshal.check_immutable(store.rt, stored, doc)
        before = store.audit_state(row, stored)
        row_changes = store.replace(row, doc)
        self._event(store, row, "replace", before, store.audit_state(row), row_changes, provenance)
        return Written(row, store, 200)

    def replace_many(self, resource_type: str, items: list[WriteItem]) -> list[Written | ScimError]:
        """PUTs of distinct resources (``WriteItem``'s body: the PUT's), each succeeding or
        failing alone, as ``patch_many`` writes PATCHes; the store writes the batch's
        employments too (``ResourceStore.replace_many``)."""
        def prepare(store: ResourceStore, row: Any, item: WriteItem) -> tuple[dict[str, Any], dict[str, Any]]:
            doc = load_resource(store, item.body)
            stored = store.stored_document(row)
            marshal.check_immutable(store.rt, stored, doc)
            return store.audit_state(row, stored), doc

        return self._write_many(resource_type, items, "replace", prepare, lambda store: store.replaces_together(),
                                lambda store, batch: store.replace_many(batch),
                                lambda item: self.replace(resource_type, item.resource_id, item.body,
                                                          if_match=item.if_match, provenance=item.provenance))

    def patch(self, resource_type: str, resource_id: str, body: Any, *, if_match: str | None = None,
              provenance: dict[str, Any] | None = None) -> Written:
        store = self.store(resource_type)
        row = find(store, resource_id, for_update=True)
        check_version(row, if_match)
        stored = store.stored_document(row)
        before = store.audit_state(row, stored)
        collections = store.collections(row)
        doc = self._patched(store, stored, body, collections)
        row_changes = store.patch(row, doc, collections)
        self._event(store, row, "patch", before, store.audit_state(row), row_changes, provenance)
        return Written(row, store, 200)

    def patch_many(self, resource_type: str, items: list[WriteItem]) -> list[Written | ScimError]:
        """PATCHes of distinct resources, each succeeding or failing alone (``_write_many``).

        Each PATCH runs through the quirks and the PATCH engine in Python, so a refused one has
        written nothing; the others are written in one executemany. A PATCH that reaches a
        row-backed attribute (employments, members) writes as it goes, so it runs alone."""
        def prepare(store: ResourceStore, row: Any, item: WriteItem) -> tuple[dict[str, Any], dict[str, Any]]:
            stored = store.stored_document(row)
            before = store.audit_state(row, stored)
            return before, self._patched(store, stored, item.body, {k: _WritesAlone() for k in store.collections(row)})

        def write(store: ResourceStore, batch: list[tuple[Any, dict[str, Any], dict[str, Any]]]) -> list[None]:
            store.update_many([(row, values) for row, _, values in batch])
            return [None] * len(batch)

        return self._write_many(resource_type, items, "patch", prepare, lambda store: store.patches_together(), write,
                                lambda item: self.patch(resource_type, item.resource_id, item.body,
                                                        if_match=item.if_match, provenance=item.provenance))

    def _write_many(self, resource_type: str, items: list[WriteItem], operation: str,
                    prepare: Callable[[ResourceStore, Any, WriteItem], tuple[dict[str, Any], dict[str, Any]]],
                    together: Callable[[ResourceStore], bool],
                    write_together: Callable[[ResourceStore, list[tuple[Any, dict[str, Any], dict[str, Any]]]],
                                             list[ScimError | None]],
                    write_alone: Callable[[WriteItem], Written]) -> list[Written | ScimError]:
        """Writes of distinct resources, each succeeding or failing alone: read in one statement
        (``get_many``), each made into a validated document by ``prepare`` (its audit "before"
        and the document) and written by ``write_together`` in multi-row statements, whose
        answer is per write None or the error that refused it alone. A resource not found (the
        single write then says 404) and one whose checks must see the writes before it (a new
        manager: ``updates_together``) run alone in a savepoint instead, after the batch, as do
        all of them when the store cannot write them ``together`` (``patches_together``,
        ``replaces_together``) or the batch is refused as a whole."""
        store = self.store(resource_type)
        out: list[Written | ScimError | None] = [None] * len(items)
        alone: list[int] = []
        prepared: list[tuple[int, Any, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        rows = store.get_many([item.resource_id for item in items]) if together(store) else {}
        for i, item in enumerate(items):
            row = rows.get(item.resource_id)
            if row is None:
                alone.append(i)
                continue
            try:
                check_version(row, item.if_match)
                before, doc = prepare(store, row, item)
                if not store.updates_together(row, doc):
                    raise _MustWriteAlone
                prepared.append((i, row, before, doc, store.prepared_update(row, doc)))
            except _MustWriteAlone:
                alone.append(i)
            except ScimError as exc:
                out[i] = exc
        if prepared:
            try:
                refused = self.in_savepoint(lambda: write_together(
                    store, [(row, doc, values) for _, row, _, doc, values in prepared]))
            except ScimError:  # refused as a whole: one by one, each alone
                alone = sorted(alone + [i for i, *_ in prepared])
            else:
                for (i, row, before, _, _), error in zip(prepared, refused):
                    if error is not None:
                        out[i] = error
                        continue
                    self._event(store, row, operation, before, store.audit_state(row), None, items[i].provenance)
                    out[i] = Written(row, store, 200)
        for i in alone:
            try:
                out[i] = self.in_savepoint(lambda item=items[i]: write_alone(item))
            except ScimError as exc:
                out[i] = exc
        return out  # type: ignore[return-value]

    def _patch_alone(self, resource_type: str, item: WriteItem) -> Written | ScimError:
        try:
            return self.in_savepoint(lambda: self.patch(resource_type, item.resource_id, item.body,
                                                        if_match=item.if_match, provenance=item.provenance))
        except ScimError as exc:
            return exc

    def _patched(self, store: ResourceStore, stored: dict[str, Any], body: Any,
                 collections: dict[str, Any]) -> dict[str, Any]:
        """The validated document a PATCH body makes of ``stored``."""
        raw_operations = patch.parse_operations(body, self.max_patch_operations)
        engine = patch.start(store.rt, stored, collections)  # one copy of the document per request
        for raw in raw_operations:  # each quirk sees the resource as the earlier operations left it
            for operation in quirks.normalise_patch(store.rt, [raw], engine.doc):
                engine.run(patch.to_operation(operation))
        doc = marshal.load(store.rt, engine.doc, stored=stored)
        marshal.check_immutable(store.rt, stored, doc)
        return doc

    def add_members_many(self, items: list[WriteItem]) -> list[Written | ScimError]:
        """Group PATCHes that only add users (``users_added``), written together: every
        group, member and existing membership is read once, and the new memberships, the
        groups' versions and the audit events are one statement each."""
        store = self.store("Group")
        adds = [(item.resource_id, users_added(item.body) or [], item.if_match) for item in items]
        try:
            results = self.in_savepoint(lambda: store.add_users_many(adds))
        except IntegrityError:  # a member deleted meanwhile (a concurrent request): one by one instead
            return [self._patch_alone("Group", item) for item in items]
        out: list[Written | ScimError] = []
        for item, result in zip(items, results):
            if isinstance(result, ScimError):
                out.append(result)
                continue
            members = {"members": {"added": result.added, "removed": []}} if result.added else {}
            self._event(store, result, "patch", None, None, members, item.provenance)
            out.append(Written(result, store, 200))
        return out

    def delete(self, resource_type: str, resource_id: str, *, if_match: str | None = None,
               provenance: dict[str, Any] | None = None) -> Written:
        store = self.store(resource_type)
        row = find(store, resource_id, for_update=True)
        check_version(row, if_match)
        before = store.audit_state(row)
        store.delete(row)
        self._event(store, row, "delete", before, None, None, provenance)
        return Written(row, store, 204)

    def _event(self, store: ResourceStore, row, operation: str, before: dict[str, Any] | None,
               after: dict[str, Any] | None, row_changes: dict[str, Any] | None,
               provenance: dict[str, Any] | None) -> None:
        changes = audit.diff(before, after)
        changes.update(row_changes or {})
        self._events.append({"tenant_id": self.scope.tenant_id, "resource_type": store.rt.name,
                             "resource_id": row.id, "operation": operation, "changes": changes,
                             **(provenance or {})})


@dataclass(frozen=True)
class WriteItem:
    """One write of ``patch_many`` (``body``: a PATCH's) or ``replace_many`` (a PUT's)."""

    resource_id: str
    body: Any
    if_match: str | None = None
    provenance: dict[str, Any] | None = None


class _MustWriteAlone(Exception):
    """A write of ``_write_many`` must run on its own (a PATCH reached a row-backed attribute, or
    its checks must see the writes before it)."""


class _WritesAlone:
    """Stands in for a row-backed collection while PATCHes are prepared together: the first
    use says the PATCH must run alone (nothing has been written by then)."""

    def _refuse(self, *_args: Any) -> None:
        raise _MustWriteAlone

    add = replace = remove = set_sub = remove_sub = _refuse


def users_added(body: Any) -> list[str] | None:
    """The member ids of a group PATCH that does nothing but add members (``add`` of ``members``
    with a list of ``{"value": id}``), or None for any other PATCH. Such PATCHes can be written
    together (``Provisioning.add_members_many``): there is nothing to validate but the ids."""
    if not isinstance(body, dict):
        return None
    operations = {str(k).lower(): v for k, v in body.items()}.get("operations")
    if not isinstance(operations, list) or not operations:
        return None
    ids: list[str] = []
    for operation in operations:
        if not isinstance(operation, dict):
            return None
        lowered = {str(k).lower(): v for k, v in operation.items()}
        value = lowered.get("value")
        if str(lowered.get("op", "")).lower() != "add" or str(lowered.get("path", "")).lower() != "members" \
                or not isinstance(value, list) or not value or set(lowered) - {"op", "path", "value"}:
            return None
        for member in value:
            if not isinstance(member, dict) or set(member) - {"value", "display", "type", "$ref"} \
                    or not isinstance(member.get("value"), str) or not member["value"] \
                    or member.get("type") not in (None, "User"):
                return None
            ids.append(member["value"])
    return ids


def load_resource(store: ResourceStore, body: Any) -> dict[str, Any]:
    """A POST or PUT body as a validated document: IdP quirks rewritten to RFC form, keys in
    their canonical names, values type-checked against the schema."""
    if not isinstance(body, dict):
        raise invalid_syntax("The body must be a JSON object")
    body = quirks.normalise_resource(store.rt, body)
    marshal.check_schemas(store.rt, body)
    return marshal.load(store.rt, marshal.canonicalise(store.rt, body))


