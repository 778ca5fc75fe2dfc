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

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..scim import marshal, patch, quirks
from ..scim.errors import ScimError, invalid_syntax
from ..storage import audit
from ..storage.db import commit_write, defer_write_lock
from ..storage.resources import ResourceStore, etag
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

    def commit(self) -> None:
        self.record_events()
        commit_write(self.session)

    def _forget(self) -> None:
        self._stores.clear()

    # ------------------------------------------------------------------ writes
    def create(self, resource_type: str, body: Any, *, provenance: dict[str, Any] | None = None) -> Written:
        store = self.store(resource_type)
        doc = load_resource(store, body)
        row, row_changes = store.create(doc)
        self._event(store, row, "create", None, store.audit_state(row), row_changes, provenance)
        return Written(row, store, 201)

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

    def patch(self, resource_type: str, resource_id: str, body: Any, *, if_match: str | None = None,
              provenance: dict[str, Any] | None = None) -> Written:
        store = self.store(resource_type)
        row = find(store, resource_id, for_update=True)
        check_version(row, if_match)
        raw_operations = patch.parse_operations(body, self.max_patch_operations)
        stored = store.stored_document(row)
        before = store.audit_state(row, stored)
        collections = store.collections(row)
        engine = patch.start(store.rt, stored, collections)  # one copy of the document per request
        for raw in raw_operations:  # each quirk sees the resource as the earlier operations left it
            for operation in quirks.normalise_patch(store.rt, [raw], engine.doc):
                engine.run(patch.to_operation(operation))
        doc = marshal.load(store.rt, engine.doc, stored=stored)
        marshal.check_immutable(store.rt, stored, doc)
        row_changes = store.patch(row, doc, collections)
        self._event(store, row, "patch", before, store.audit_state(row), row_changes, provenance)
        return Written(row, store, 200)

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


def load_resource(store: ResourceStore, body: Any) -> dict[str, Any]:
    """A POST or PUT body as a validated document: IdP quirks rewritten to RFC form, keys in
    their canonical names, values type-checked against the schema."""
    if not isinstance(body, dict):
        raise invalid_syntax("The body must be a JSON object")
    body = quirks.normalise_resource(store.rt, body)
    marshal.check_schemas(store.rt, body)
    return marshal.load(store.rt, marshal.canonicalise(store.rt, body))


def check_version(row, if_match: str | None) -> None:
    """If-Match (or a Bulk operation's ``version``): 412 unless one of the tags is the current one."""
    if not if_match or if_match.strip() == "*":
        return
    wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if etag(row).removeprefix("W/") not in wanted:
        raise ScimError(412, f"The resource has changed: its version is now {etag(row)}")
