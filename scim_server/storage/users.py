"""Users: the core and enterprise attributes, and plan2learn's employments, org units,
manager chain and effective EAN (read in a fixed number of queries per page)."""
from __future__ import annotations

import datetime as dt
import uuid
from collections import namedtuple
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from ..scim.errors import ScimError, invalid_value, uniqueness
from ..scim.marshal import format_datetime
from ..scim.projection import Projection
from ..scim.schemas import ENTERPRISE_USER
from ..scim.validators import P2L_USER
from . import audit, derived, emails, employments, hierarchy, passwords, placement
from .employments import EmploymentRows
from .jsonsql import JsonDialect
from .models import Group, Membership, User, utcnow
from .resolvers import UserResolver
from .resources import ResourceStore, is_foreign_key_violation, new_row, of_tenant


class UserStore(ResourceStore):
    model = User
    resolver_class = UserResolver
    column_attributes = {"externalId": "external_id", "userName": "user_name",
                         "displayName": "display_name", "active": "active"}
    #: plan2learn attributes computed on read, never stored from input
    computed = ("orgUnits", "managerChain", "effectiveEan")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: user id -> membership rows read in this request (see ``_membership_rows``)
        self._memberships: dict[str, list[Any]] = {}

    def stored_document(self, row: User) -> dict[str, Any]:
        doc = super().stored_document(row)
        if row.manager_id:
            doc[ENTERPRISE_USER] = {**(doc.get(ENTERPRISE_USER) or {}), "manager": {"value": row.manager_id}}
        if row.ean:
            doc[P2L_USER] = {**(doc.get(P2L_USER) or {}), "ean": row.ean}
        return doc

    def _wants(self, projection: Projection, name: str) -> bool:
        attr = self.rt.resolve(name)
        return attr is not None and projection.wants(attr[0])

    def documents(self, rows: list[User], projection: Projection) -> list[dict[str, Any]]:
        ids = [r.id for r in rows]
        want_groups = projection.wants_name("groups")
        want_employments = self._wants(projection, f"{P2L_USER}:employments")
        want_units = self._wants(projection, f"{P2L_USER}:orgUnits")
        want_ean = self._wants(projection, f"{P2L_USER}:effectiveEan")
        want_chain = self._wants(projection, f"{P2L_USER}:managerChain")
        groups: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        jobs: dict[str, list[Membership]] = {i: [] for i in ids}
        nested: list[str] = []  # users in a group that is a member of a group: they have indirect groups
        if ids and (want_groups or want_employments or want_units):
            self._take_memberships(rows)
            memberships = self._membership_rows(ids)
            for membership in (m for i in ids for m in memberships[i]):
                name = membership.display_name
                groups[membership.user_id].append(self._group(membership.group_id, name, "direct"))
                if membership.nested and membership.user_id not in nested:
                    nested.append(membership.user_id)
                if membership.is_org_unit:
                    jobs[membership.user_id].append((membership, name))
        if want_groups and nested:  # one statement for the page, after the direct groups
            for user_id, found in hierarchy.indirect_groups(self.session, nested).items():
                groups[user_id] += [self._group(group_id, name, "indirect") for group_id, name in found]
        eans = self._effective_eans(rows) if want_ean else {}
        ancestors = {}
        if want_units:
            ancestors = hierarchy.unit_ancestors(self.session, {m.group_id for js in jobs.values() for m, _ in js})
        manager_ids = {r.manager_id for r in rows if r.manager_id}
        chains = hierarchy.manager_chains(self.session, manager_ids) if want_chain else {}
        managers: dict[str, str | None] = {}
        if manager_ids and not want_chain:
            managers = dict(self.session.connection().execute(DISPLAY_NAMES, {"ids": list(manager_ids)}).all())
        for chain in chains.values():
            managers.update({chain[0][0]: chain[0][1]} if chain else {})
        out = []
        for row in rows:
            doc = super().stored_document(row)
            doc["id"] = row.id
            if row.manager_id:
                doc[ENTERPRISE_USER] = {**(doc.get(ENTERPRISE_USER) or {}), "manager": {
                    "value": row.manager_id, "$ref": self.location(row.manager_id),
                    "displayName": managers.get(row.manager_id)}}
            if groups.get(row.id):
                doc["groups"] = groups[row.id]
            p2l = self._plan2learn(row, jobs[row.id], ancestors, chains, eans.get(row.id))
            if p2l:
                doc[P2L_USER] = p2l
            doc["meta"] = self.meta(row)
            doc["schemas"] = self.schemas_of(doc)
            out.append(doc)
        return out

    def _group(self, group_id: str, name: str, kind: str) -> dict[str, Any]:
        """One of a user's ``groups``: ``kind`` is "direct" or "indirect" (RFC 7643 §4.1.2)."""
        return {"value": group_id, "display": name, "$ref": f"{self.base_url}/Groups/{group_id}", "type": kind}

    def _effective_eans(self, rows: list[Any]) -> dict[str, str | None]:
        """Each user's effectiveEan, as SQL computes it for filters (``derived.effective_ean``).

        A read's rows carry it (``row_columns``); a written user (an ORM object, whose ean or
        employments the write may have changed) has it read again, one statement for all."""
        out = {row.id: row.effective_ean for row in rows if hasattr(row, "effective_ean")}
        missing = [row.id for row in rows if row.id not in out]
        if missing:
            out.update(self.session.connection().execute(_statements(self.dialect).effective_eans,
                                                         {"ids": missing}).all())
        return out

    def get(self, resource_id: str, *, for_update: bool = False):
        """The user and its memberships in one statement (the response, and a write's audit
        trail, need both). A write gets an ORM object (its row locked on PostgreSQL), made from
        the statement's row instead of loaded by the ORM, which costs twice as much."""
        statements = _statements(self.dialect)
        statement = statements.by_id_locked if for_update else statements.by_id
        row = self.session.connection().execute(statement, {"rid": resource_id, "tid": self.tenant_id}).first()
        if row is None:
            return None
        self._take_memberships([row])
        if not for_update:
            return row
        # as the ORM's own loader does: a new instance without __init__ (whose per-attribute
        # events cost four times as much), its values set as loaded, then made persistent
        user = _NEW_USER_INSTANCE()
        user.__dict__.update(zip(_USER_COLUMN_KEYS, row))
        make_transient_to_detached(user)
        earlier = self.session.identity_map.get(identity_key(User, row.id))
        if earlier is not None:  # written earlier in this unit of work (a Bulk request): the row just read wins
            self.session.expunge(earlier)
        self.session.add(user)
        return user

    @classmethod
    def row_columns(cls, dialect: str) -> tuple[Any, ...]:
        """A page of users carries each user's memberships (see ``_take_memberships``) and
        effectiveEan (see ``_effective_eans``)."""
        statements = _statements(dialect)
        return (statements.memberships, statements.effective_ean)

    def _take_memberships(self, rows: list[Any]) -> None:
        """Keep the memberships that came with the rows (as JSON, from ``row_columns``)."""
        known = self._memberships
        for row in rows:
            found = getattr(row, "memberships", None)
            if found is not None and row.id not in known:
                # JSON has no timestamps, and SQLite's booleans arrive as 0 and 1
                known[row.id] = _in_order([MembershipRow(**{
                    **m, "start_date": _stored_datetime(m["start_date"]), "end_date": _stored_datetime(m["end_date"]),
                    "is_primary": bool(m["is_primary"]), "is_org_unit": bool(m["is_org_unit"]),
                    "nested": bool(m["nested"])}) for m in found])

    def _membership_rows(self, user_ids: list[str]) -> dict[str, list[Any]]:
        """The users' membership rows (with their groups' names), read once per request.

        A write reads them for the audit trail before it changes anything; unless the write
        changes memberships (``_memberships_changed``), the audit's "after" and the response
        reuse them instead of reading them again."""
        known = self._memberships
        missing = [i for i in user_ids if i not in known]
        if missing:
            for i in missing:
                known[i] = []
            for membership in self.session.connection().execute(MEMBERSHIPS_OF_USERS, {"ids": missing}):
                known[membership.user_id].append(membership)
            for i in missing:
                known[i] = _in_order(known[i])
        return known

    def _memberships_changed(self, user_id: str) -> None:
        self._memberships.pop(user_id, None)

    def _plan2learn(self, row: User, jobs, ancestors, chains, effective_ean: str | None) -> dict[str, Any]:
        """The plan2learn extension as read: derived values are copied from what SQL computed
        (see ``derived``), never computed again here."""
        out: dict[str, Any] = {}
        if row.ean:
            out["ean"] = row.ean
        if jobs:
            out["employments"] = [{
                "value": m.group_id, "$ref": f"{self.base_url}/Groups/{m.group_id}", "display": name,
                "title": m.title, "startDate": _iso(m.start_date), "endDate": _iso(m.end_date),
                "primary": bool(m.is_primary),
            } for m, name in jobs]
            units: dict[str, str] = {}
            for m, name in jobs:
                units.setdefault(m.group_id, name)
                for unit_id, unit_name, _ in ancestors.get(m.group_id, ()):
                    units.setdefault(unit_id, unit_name)
            if ancestors:
                out["orgUnits"] = [{"value": i, "display": n} for i, n in units.items()]
        if row.manager_id and chains.get(row.manager_id):
            out["managerChain"] = [{"value": i, "display": n} for i, n in chains[row.manager_id]]
        if effective_ean:
            out["effectiveEan"] = effective_ean
        return out

    def _values(self, row: User, doc: dict[str, Any], new: bool = False, check_manager: bool = True) -> dict[str, Any]:
        """The column values a validated document gives the user, after the checks a write needs:
        a renamed userName is free (a new user's clash is found by the unique index on insert)
        and the manager exists and closes no cycle (unless the caller checked it already)."""
        if not new and row.user_name.lower() != doc["userName"].lower():
            self._check_user_name(doc["userName"], row.id)
        columns, rest = self._split(doc)
        password = rest.pop("password", None)
        ext = dict(rest.pop(ENTERPRISE_USER, None) or {})
        manager_id = (ext.pop("manager", None) or {}).get("value") or None
        if ext:
            rest[ENTERPRISE_USER] = ext
        p2l = dict(rest.pop(P2L_USER, None) or {})
        rest.pop("groups", None)
        if check_manager and manager_id != row.manager_id:
            hierarchy.check_manager(self.session, self.tenant_id, row, manager_id, new=new)
        values = {**columns, "manager_id": manager_id, "attributes": rest}
        if self.master_data:
            values["ean"] = p2l.get("ean")
        if password is not None:
            values["password_hash"] = passwords.hash_password(password)
        return values

    def _check_user_name(self, user_name: str, own_id: str) -> None:
        clash = self.session.scalar(USER_NAME_TAKEN, {"tid": self.tenant_id, "name": user_name,
                                                      "own": own_id})
        if clash is not None:
            raise uniqueness(f"userName '{user_name}' is already taken")

    # A user is written with one Core statement, not through the ORM's unit of work (a third of
    # a write's time went to its bookkeeping); the ORM object is then told the values as stored.

    def create(self, doc: dict[str, Any]) -> tuple[User, dict[str, Any]]:
        now = utcnow()
        values = {**NEW_USER, "id": str(uuid.uuid4()), "tenant_id": self.tenant_id, "source_id": self.source_id,
                  "created": now, "last_modified": now}
        row = _NEW_USER_INSTANCE()  # see ``get``
        row.__dict__.update(values)
        doc = {"active": True, **doc}  # a new account is active unless the client says otherwise
        values.update(self._values(row, doc, new=True))
        row.__dict__.update(values)
        with self._write_errors():
            self.session.connection().execute(INSERT_USER, values)
        emails.store(self.session, self.tenant_id, [(row.id, frozenset(), emails.work_emails(values["attributes"]))])
        make_transient_to_detached(row)  # as if loaded: later changes (employments, leavers) use the ORM
        self.session.add(row)
        self._memberships[row.id] = []  # a new user is in no group yet
        jobs = (doc.get(P2L_USER) or {}).get("employments")
        if jobs:
            self.employments(row).replace(jobs)
        self._after_write(row, doc, employments_changed=bool(jobs))
        return row, {}

    def creates_together(self, doc: dict[str, Any]) -> bool:
        """Can this new user be written by ``create_many``? Not when the tenant places users by
        department: placement reads and writes memberships user by user (``create``)."""
        return not (self.master_data and placement.tenant_attribute(self.session, self.tenant_id,
                                                                    self.tenant_settings))

    def create_many(self, docs: list[dict[str, Any]]) -> list[User | ScimError]:
        """New users in one multi-row INSERT (a Bulk request's creates), each checked alone:
        a userName taken (in the tenant, or earlier in ``docs``) or a manager that is not a user
        of the tenant is that document's error, and the others are written. A clash the checks
        could not see (a concurrent request) fails the INSERT as a whole: the caller then
        writes them one by one (``create``)."""
        now = utcnow()
        taken = self._names_taken([d["userName"] for d in docs])
        wanted = {((d.get(ENTERPRISE_USER) or {}).get("manager") or {}).get("value") for d in docs} - {None, ""}
        managers = set(self.session.scalars(EXISTING_USERS, {"tid": self.tenant_id, "ids": list(wanted)})) \
            if wanted else set()
        units = self._org_units([(d.get(P2L_USER) or {}).get("employments") for d in docs]) if self.master_data else set()
        out: list[User | ScimError] = []
        rows: list[dict[str, Any]] = []
        jobs: list[dict[str, Any]] = []
        for doc in docs:
            name = doc["userName"].lower()
            manager = ((doc.get(ENTERPRISE_USER) or {}).get("manager") or {}).get("value")
            if name in taken:
                out.append(uniqueness(f"userName '{doc['userName']}' is already taken"))
                continue
            if manager and manager not in managers:
                out.append(invalid_value(f"manager.value '{manager}' is not a user of this tenant"))
                continue
            values = {**NEW_USER, "id": str(uuid.uuid4()), "tenant_id": self.tenant_id,
                      "source_id": self.source_id, "created": now, "last_modified": now}
            row = _NEW_USER_INSTANCE()
            try:
                values.update(self._values(row, {"active": True, **doc}, new=True, check_manager=False))
                employed = self._employment_rows(values["id"], doc, units, now) if self.master_data else []
            except ScimError as exc:
                out.append(exc)
                continue
            jobs += employed
            taken.add(name)
            row.__dict__.update(values)
            self._memberships[row.id] = []
            rows.append(values)
            out.append(row)
        if rows:
            with self._write_errors():
                self.session.connection().execute(INSERT_USER, rows)
            emails.store(self.session, self.tenant_id,
                         [(r["id"], frozenset(), emails.work_emails(r["attributes"])) for r in rows])
        if jobs:
            self.session.connection().execute(employments.INSERT_MEMBERSHIPS, jobs)
            employed_ids = list(dict.fromkeys(j["user_id"] for j in jobs))
            for user_id in employed_ids:
                self._memberships_changed(user_id)
            self._membership_rows(employed_ids)  # read back in one statement, for the audit trail
            changed = {c.user_id: c for c in employments.changed(self.session, employed_ids)}
            for row in out:  # the rows say what the leaver rule wrote (a future starter is inactive)
                change = changed.get(getattr(row, "id", None))
                if change is not None:
                    row.employment_state = change.state
                    if change.active is not None:
                        row.active, row.version = change.active, row.version + 1
        return out

    def _org_units(self, employments: list[list[dict[str, Any]] | None]) -> set[str]:
        """Which of the units these employments name are org units of the tenant (one query)."""
        wanted = list({job.get("value") for jobs in employments for job in jobs or () if job.get("value")})
        if not wanted:
            return set()
        return set(self.session.scalars(select(Group.id).where(
            Group.tenant_id == self.tenant_id, Group.is_org_unit, Group.id.in_(wanted))))

    def _employment_rows(self, user_id: str, doc: dict[str, Any], units: set[str], now: dt.datetime
                         ) -> list[dict[str, Any]]:
        """A new user's employments as membership rows (as ``EmploymentRows.add`` writes them)."""
        wanted: dict[str, dict[str, Any]] = {}
        for job in (doc.get(P2L_USER) or {}).get("employments") or ():
            if not job.get("value"):
                raise invalid_value("Each employment needs a 'value' with the org unit's id")
            wanted[job["value"]] = job
        unknown = [u for u in wanted if u not in units]
        if unknown:
            raise invalid_value(f"employments.value must be an org unit of this tenant: {', '.join(unknown[:10])}")
        return [{"tenant_id": self.tenant_id, "group_id": unit_id, "user_id": user_id, "member_group_id": None,
                 "created": now, **{"is_primary": False, "title": None, "start_date": None, "end_date": None,
                                    **EmploymentRows.columns(job)}}
                for unit_id, job in wanted.items()]

    def _names_taken(self, user_names: list[str]) -> set[str]:
        """Which of these userNames the tenant has already, folded as Python folds them (a name
        the database folds differently is still caught by the unique index)."""
        wanted = list({n.lower() for n in user_names})
        return {n.lower() for n in self.session.scalars(NAMES_TAKEN, {"tid": self.tenant_id, "names": wanted})}

    def patches_together(self) -> bool:
        """Can PATCHes of users be written together (``update_many``)? Not when placement by
        department may follow each one (it reads and writes memberships per user)."""
        return not (self.master_data and placement.tenant_attribute(self.session, self.tenant_id,
                                                                    self.tenant_settings))

    def get_many(self, resource_ids: list[str], *, rows: bool = False) -> dict[str, Any]:
        """Users to write, with their memberships, in one statement (locked on PostgreSQL as
        ``get`` locks one). They are plain objects, outside the ORM session: ``update_many``
        writes them with Core statements. ``rows``: the statement's rows themselves, for a
        caller that only compares them (a sync run), as making objects costs more than reading."""
        users: dict[str, Any] = {}
        found = list(self.session.connection().execute(_many_for_update(self.dialect),
                                                       {"ids": resource_ids, "tid": self.tenant_id}))
        self._take_memberships(found)
        if rows:
            return {row.id: row for row in found}
        for row in found:
            user = users[row.id] = _NEW_USER_INSTANCE()
            user.__dict__.update(zip(_USER_COLUMN_KEYS, row))
        return users

    def updates_together(self, row: User, doc: dict[str, Any]) -> bool:
        """Not a new manager: the check that it closes no cycle reads the stored chain, which
        must hold the writes before it (two people of one batch naming each other, or a chain
        through a third, would each pass against the chain as it was)."""
        return ((doc.get(ENTERPRISE_USER) or {}).get("manager") or {}).get("value") == row.manager_id

    def prepared_update(self, row: User, doc: dict[str, Any]) -> dict[str, Any]:
        """The column values ``update_many`` will write for a validated document, after its
        checks (a renamed userName free, a new manager valid): those that differ from the row's,
        and the next version. SQLite rewrites the entries of every index on a column the UPDATE
        sets, changed or not (a user has eleven): 500 users' new e-mails took 0.18 s with every
        column set."""
        values = {key: value for key, value in self._values(row, doc).items() if getattr(row, key) != value}
        return {**values, "version": row.version + 1}

    def update_many(self, writes: list[tuple[User, dict[str, Any]]]) -> None:
        """Write several users' prepared values in one executemany; each row then holds them."""
        now = utcnow()
        batches: dict[frozenset[str], list[dict[str, Any]]] = {}  # one executemany sets the same columns
        for row, values in writes:
            batches.setdefault(frozenset(values), []).append(
                {**values, "last_modified": now, "b_id": row.id, "b_version": row.version})
        for params in batches.values():
            with self._write_errors():
                result = self.session.connection().execute(UPDATE_USER, params)
            if result.rowcount not in (-1, len(params)):  # the rows are locked, or SQLite's write lock held
                raise StaleDataError("A user changed since it was read")
        emails.store(self.session, self.tenant_id, [
            (row.id, emails.work_emails(row.attributes), emails.work_emails(values["attributes"]))
            for row, values in writes if "attributes" in values])
        for row, values in writes:
            row.__dict__.update(values, last_modified=now)

    def replaces_together(self) -> bool:
        """As ``patches_together``: placement by department follows each write alone."""
        return self.patches_together()

    def replace_many(self, writes: list[tuple[User, dict[str, Any], dict[str, Any]]]) -> list[ScimError | None]:
        """PUTs of several users, as (row from ``get_many``, validated document, its
        ``prepared_update`` values): their columns in one executemany, their employments in one
        statement per kind (``employments.replace_many``), then the rules once for the users
        whose employments changed (as ``replace`` does for one). Per write None, or the
        ScimError that refused it alone (its employments): nothing of that user is written."""
        changed: list[str] = []
        refused: dict[str, ScimError] = {}
        if self.master_data:
            changed, refused = employments.replace_many(self.session, self.tenant_id, {
                row.id: (doc.get(P2L_USER) or {}).get("employments") or [] for row, doc, _ in writes})
        self.update_many([(row, values) for row, _, values in writes if row.id not in refused])
        if changed:
            for user_id in changed:
                self._memberships_changed(user_id)
            self._membership_rows(changed)  # read back in one statement, for the audit trail
            outcome = {c.user_id: c for c in employments.changed(self.session, changed)}
            for row, _, _ in writes:  # the rows say what the leaver rule wrote
                change = outcome.get(row.id)
                if change is not None:
                    row.employment_state = change.state
                    if change.active is not None:
                        row.active, row.version = change.active, row.version + 1
        return [refused.get(row.id) for row, _, _ in writes]

    def update(self, row: User, doc: dict[str, Any]) -> None:
        """Write the user's columns, on condition that its version is still the one read
        (else StaleDataError: the write service runs the write again, see ``provisioning``)."""
        values = {**self._values(row, doc), "last_modified": utcnow(), "version": row.version + 1}
        with self._write_errors():
            result = self.session.connection().execute(UPDATE_USER, {**values, "b_id": row.id, "b_version": row.version})
        if result.rowcount != 1:
            raise StaleDataError(f"User {row.id} changed since it was read")
        emails.store(self.session, self.tenant_id,
                     [(row.id, emails.work_emails(row.attributes), emails.work_emails(values["attributes"]))])
        for key, value in values.items():
            set_committed_value(row, key, value)

    def replace(self, row: User, doc: dict[str, Any]) -> dict[str, Any]:
        self.update(row, doc)
        changed = False
        if self.master_data:
            jobs = self.employments(row)
            jobs.replace((doc.get(P2L_USER) or {}).get("employments") or [])
            changed = jobs.changed
        self._after_write(row, doc, employments_changed=changed)  # the rules follow changes only
        return {}

    def patch(self, row: User, doc: dict[str, Any], collections: dict[str, Any]) -> dict[str, Any]:
        self.update(row, doc)
        employments = collections.get(EMPLOYMENTS)
        self._after_write(row, doc, employments_changed=bool(employments and employments.changed))
        return {}

    def audit_state(self, row: User, stored: dict[str, Any] | None = None) -> dict[str, Any]:
        state = super().audit_state(row, stored)
        if row.password_hash:
            state["password"] = row.password_hash  # compared, then recorded only as "changed"
        if not self.master_data:
            return state
        jobs = sorted((m for m in self._membership_rows([row.id])[row.id] if m.is_org_unit),
                      key=lambda m: m.group_id)
        if jobs:
            state[f"{P2L_USER}"] = {**(state.get(P2L_USER) or {}), "employments": [
                {"value": j.group_id, "title": j.title, "startDate": _iso(j.start_date),
                 "endDate": _iso(j.end_date), "primary": bool(j.is_primary)} for j in jobs]}
        return state

    def employments(self, row: User) -> EmploymentRows:
        return EmploymentRows(self.session, self.tenant_id, self.rt, row)

    def collections(self, row: User) -> dict[str, Any]:
        return {EMPLOYMENTS: self.employments(row)} if self.master_data else {}

    def _after_write(self, row: User, doc: dict[str, Any], employments_changed: bool) -> None:
        """Rules that follow a write: placement by department, then active from employments."""
        placed = self.master_data and placement.place(self.session, self.tenant_id, row, doc, self.tenant_settings)
        if placed or employments_changed:
            self._memberships_changed(row.id)
        if employments_changed:
            employments.changed(self.session, [row.id])
            self.session.refresh(row)
        elif placed:  # placement's employment has no dates: only the choice of unit can change
            derived.store_chosen_units(self.session, user_ids=[row.id])

    def delete(self, row: User) -> None:
        reports = hierarchy.clear_manager_of_reports(self.session, row.id)
        key = f"{ENTERPRISE_USER}:manager"
        audit.record_many(self.session, [
            {"tenant_id": self.tenant_id, "resource_type": "User", "resource_id": report, "operation": "system",
             "changes": {key: {"old": {"value": row.id}, "new": None}, "rule": "manager deleted"}}
            for report in reports])
        super().delete(row)

    def _integrity_error(self, exc: IntegrityError) -> ScimError:
        if is_foreign_key_violation(exc):  # the only reference a user's row holds is its manager
            return invalid_value("The manager was deleted while this user was written: "
                                 "manager.value is no longer a user of this tenant")
        return uniqueness("userName is already taken")


#: the PATCH engine's key of the employments collection (see ``collections``)
EMPLOYMENTS = f"{P2L_USER}:employments".lower()
# Statements run on every read are built once (building costs more than running them).
_MEMBERSHIP_COLUMNS = (Membership.id, Membership.user_id, Membership.group_id, Membership.title,
                       Membership.start_date, Membership.end_date, Membership.is_primary,
                       Group.display_name, Group.is_org_unit,
                       # the group is itself a member of a group: only then has the user indirect groups
                       hierarchy.is_member_group(Membership.group_id).label("nested"))
MembershipRow = namedtuple("MembershipRow", [c.key for c in _MEMBERSHIP_COLUMNS])
MEMBERSHIPS_OF_USERS = (select(*_MEMBERSHIP_COLUMNS)
                        .join(Group, Group.id == Membership.group_id)
                        .where(Membership.user_id.in_(bindparam("ids", expanding=True))))
_users = User.__table__
_USER_COLUMN_KEYS = [c.key for c in _users.columns]  # the first columns of the by-id statements
_NEW_USER_INSTANCE = User.__mapper__.class_manager.new_instance


def _in_order(memberships: list[Any]) -> list[Any]:
    """A user's groups in one order on every database (by name, then id), whichever statement
    read them."""
    return sorted(memberships, key=lambda m: (m.display_name, m.group_id))


def _stored_datetime(value: str | None) -> dt.datetime | None:
    """A timestamp as the JSON aggregate renders it: SQLite's stored text (UTC, no zone) or
    PostgreSQL's ISO 8601 with its offset."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


class _UserStatements(namedtuple("_UserStatements", "memberships effective_ean by_id by_id_locked effective_eans")):
    """Statements that differ by database (the memberships' JSON aggregate), built once each."""


@cache
def _statements(dialect: str) -> _UserStatements:
    # the user's memberships, as one JSON array beside the user's columns: one row per user
    # whatever the number of groups, and no second statement for them
    memberships = (select(JsonDialect(dialect).objects({c.key: c for c in _MEMBERSHIP_COLUMNS}))
                   .select_from(Membership).join(Group, Group.id == Membership.group_id)
                   .where(Membership.user_id == _users.c.id)
                   .scalar_subquery().label("memberships"))
    # effectiveEan: the very expression filters and sortBy compare, selected beside the user
    ean = derived.effective_ean(User).label("effective_ean")
    by_id = select(_users, memberships, ean).where(_users.c.id == bindparam("rid"),
                                                   _users.c.tenant_id == bindparam("tid"))
    # FOR NO KEY UPDATE OF users (PostgreSQL): the user's row only (see resources._by_id)
    locked = by_id.with_for_update(key_share=True, of=_users) if dialect == "postgresql" else by_id
    eans = select(_users.c.id, ean).where(_users.c.id.in_(bindparam("ids", expanding=True)))
    return _UserStatements(memberships, ean, by_id, locked, eans)


@cache
def _many_for_update(dialect: str):
    """Users by ids with their memberships (as ``_statements``' by_id), locked on PostgreSQL."""
    statement = (select(_users, _statements(dialect).memberships)
                 .where(_users.c.id.in_(bindparam("ids", expanding=True)), of_tenant(_users.c.tenant_id, bindparam("tid"))))
    return statement.with_for_update(key_share=True, of=_users) if dialect == "postgresql" else statement


USER_NAME_TAKEN = select(User.id).where(User.tenant_id == bindparam("tid"),
                                        func.lower(User.user_name) == func.lower(bindparam("name")),
                                        User.id != bindparam("own"))
INSERT_USER = insert(_users)
UPDATE_USER = update(_users).where(_users.c.id == bindparam("b_id"), _users.c.version == bindparam("b_version"))
NEW_USER = new_row(_users)
#: one statement whatever the number of names (an expanding list): built and compiled once
NAMES_TAKEN = select(User.user_name).where(User.tenant_id == bindparam("tid"),
                                           func.lower(User.user_name).in_(bindparam("names", expanding=True)))
EXISTING_USERS = select(User.id).where(of_tenant(User.tenant_id, bindparam("tid")),
                                       User.id.in_(bindparam("ids", expanding=True)))
DISPLAY_NAMES = select(User.id, User.display_name).where(User.id.in_(bindparam("ids", expanding=True)))


def _iso(value: dt.datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None
