"""Seeding and resetting the benchmark database, directly through SQLAlchemy Core.

The server's own migration creates the schema; users, groups and memberships are
then written with bulk ``INSERT``s into the server's tables (no HTTP, no per-row
ORM work), so 100,000 users take seconds, not minutes.

A small table of the bench's own, ``bench_marker``, records what was seeded
(user count, seed version, group ids). A rerun with the same ``--users`` finds the
marker and reuses the data; anything the previous run added (users created by the
``create`` case, spare users added to groups) is deleted by ``reset``.

Seeded users are named ``bench-0000001@example.dk`` ... and are the only users whose
userName starts with ``bench-``; everything else in the bench tenant is disposable.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, delete, func, insert, select

from scim_server.storage import tenants as tenant_store
from scim_server.storage.db import make_engine, make_session_factory
from scim_server.storage.migrate import upgrade
from scim_server.storage.models import AuditEvent, BearerToken, Group, Membership, Tenant, User, utcnow

SEED_VERSION = 1
TENANT = "bench"
BATCH = 5000
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_1K_SIZE = 1000

_marker_md = MetaData()
marker_table = Table("bench_marker", _marker_md,
                     Column("key", String(50), primary_key=True),
                     Column("value", Text, nullable=False))

GIVEN = ["Anne", "Søren", "Mette", "Jens", "Karen", "Lars", "Birgitte", "Niels", "Åse", "Mikkel",
         "Line", "Rasmus", "Ida", "Frederik", "Camilla", "Ørjan", "Hanne", "Kasper", "Signe", "Jørgen"]
FAMILY = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
          "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Ærø"]
TITLES = ["Sygeplejerske", "Udvikler", "Projektleder", "Konsulent", "Økonomimedarbejder",
          "Lærer", "Pædagog", "HR-partner", "Salgschef", "Tekniker"]
DEPARTMENTS = ["IT", "HR", "Økonomi", "Salg", "Drift", "Kvalitet", "Ledelse", "Kundeservice"]
CITIES = [("København K", "1050"), ("Aarhus C", "8000"), ("Odense C", "5000"), ("Aalborg", "9000"),
          ("Esbjerg", "6700"), ("Vejle", "7100")]
STREETS = ["Vesterbrogade", "Nørregade", "Strandvejen", "Søndergade", "Algade", "Østergade"]


def user_name(i: int) -> str:
    return f"bench-{i:07d}@example.dk"


def user_attributes(i: int, rnd: random.Random) -> tuple[str, dict[str, Any]]:
    """(displayName, the ``attributes`` JSON document) of seeded user i, as the server stores it."""
    given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
    city, postal = rnd.choice(CITIES)
    display = f"{given} {family}"
    attrs = {
        "name": {"formatted": display, "familyName": family, "givenName": given},
        "title": rnd.choice(TITLES),
        "emails": [{"value": user_name(i), "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+45 %08d" % rnd.randrange(10**8), "type": "work"},
                         {"value": "+45 %08d" % rnd.randrange(10**8), "type": "mobile"}],
        "addresses": [{"type": "work", "streetAddress": f"{rnd.choice(STREETS)} {rnd.randrange(1, 200)}",
                       "locality": city, "postalCode": postal, "country": "DK", "primary": True}],
        ENTERPRISE: {"employeeNumber": str(100000 + i), "department": rnd.choice(DEPARTMENTS)},
    }
    return display, attrs


def scim_body(i: int, rnd: random.Random, external_id: str) -> dict[str, Any]:
    """The SCIM document a client would POST for seeded user i (used to check the stored form)."""
    display, attrs = user_attributes(i, rnd)
    return {"schemas": [CORE_USER, ENTERPRISE], "userName": user_name(i), "externalId": external_id,
            "displayName": display, "active": True, **attrs}


COLUMN_ATTRIBUTES = ("externalId", "userName", "displayName", "active", "schemas", "id", "meta")


def server_pipeline():
    """A function body -> attributes JSON exactly as the server stores it when a client POSTs
    ``body`` (its own quirk normaliser, canonicaliser and marshmallow load), or None if the
    server code cannot be imported. Used for every seeded row (about 0.15 ms each), so the
    seed stays identical to API-written data even when the server's stored form changes."""
    try:
        from scim_server.scim import marshal, quirks
        from scim_server.scim.schemas import registry
        rt = registry().resource_type("User")

        def convert(body: dict[str, Any]) -> dict[str, Any]:
            doc = marshal.load(rt, marshal.canonicalise(rt, quirks.normalise_resource(rt, body)))
            return {k: v for k, v in doc.items() if k not in COLUMN_ATTRIBUTES}
        convert(scim_body(1, random.Random(1), "x"))
        return convert
    except Exception as exc:  # the server code is a moving target
        print(f"  WARNING: cannot use the server's input pipeline ({type(exc).__name__}: {exc}); "
              "seeding the canonical form")
        return None


def form_signature(convert) -> str:
    """Identifies the stored form (changes if the server starts storing documents differently)."""
    _, ours = user_attributes(1, random.Random(1))
    doc = convert(scim_body(1, random.Random(1), "x")) if convert else ours
    return json.dumps(doc, sort_keys=True)


def read_marker(engine) -> dict[str, Any] | None:
    _marker_md.create_all(engine)
    with engine.connect() as conn:
        raw = conn.scalar(select(marker_table.c.value).where(marker_table.c.key == "seed"))
    return json.loads(raw) if raw else None


def read_marker_at(url: str) -> dict[str, Any] | None:
    """``read_marker`` for a database URL (an engine of its own, disposed of)."""
    engine = make_engine(url)
    try:
        return read_marker(engine)
    finally:
        engine.dispose()


def _write_marker(conn, value: dict[str, Any]) -> None:
    conn.execute(delete(marker_table).where(marker_table.c.key == "seed"))
    conn.execute(insert(marker_table), [{"key": "seed", "value": json.dumps(value)}])


def _user_rows(tenant_id: int, start: int, stop: int, base: dt.datetime,
               ids: list[str], convert) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for i in range(start, stop + 1):
        rnd = random.Random(i)
        display, attrs = user_attributes(i, rnd)
        if convert is not None:
            attrs = convert(scim_body(i, random.Random(i), "x"))
        created = base + dt.timedelta(milliseconds=i)
        uid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        ids.append(uid)
        batch.append({"id": uid, "tenant_id": tenant_id, "user_name": user_name(i),
                      "external_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                      "display_name": display, "active": i % 97 != 0, "manager_id": None,
                      "password_hash": None, "attributes": attrs, "created": created,
                      "last_modified": created, "version": 1})
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def ensure_database(url: str, users: int, log=print) -> dict[str, Any]:
    """Migrate, seed if needed, and return the marker: tenant id, group ids, timings."""
    t0 = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    try:
        marker = read_marker(engine)
        convert = server_pipeline()
        form = form_signature(convert)
        if (marker and marker.get("users") == users and marker.get("version") == SEED_VERSION
                and marker.get("form") == form):
            with engine.connect() as conn:
                tenant_id = conn.scalar(select(Tenant.id).where(Tenant.name == TENANT))
                have = conn.scalar(select(func.count()).select_from(User).where(
                    User.tenant_id == tenant_id, User.user_name.like("bench-%")))
            if tenant_id == marker.get("tenant_id") and have == users:
                log(f"  reusing seeded database ({users} users)")
                return dict(marker, reused=True, seconds=time.perf_counter() - t0)
        log(f"  seeding {users} users ...")
        with engine.begin() as conn:
            conn.execute(delete(marker_table).where(marker_table.c.key == "seed"))  # not the org marker
            conn.execute(delete(Tenant).where(Tenant.name == TENANT))  # cascades to everything of it
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            tenant_id = tenant_store.create_tenant(session, TENANT).id
        ids: list[str] = []
        base = utcnow().replace(microsecond=0) - dt.timedelta(days=30)
        t_users = time.perf_counter()
        with engine.begin() as conn:
            for batch in _user_rows(tenant_id, 1, users, base, ids, convert):
                conn.execute(insert(User), batch)
        t_users = time.perf_counter() - t_users
        now = utcnow()
        groups = {}
        with engine.begin() as conn:
            for key, size in (("group_1k", min(GROUP_1K_SIZE, users)), ("group_all", users)):
                gid = str(uuid.uuid4())
                groups[key] = gid
                conn.execute(insert(Group), [{"id": gid, "tenant_id": tenant_id,
                                              "display_name": f"bench-{key}-{size}",
                                              "external_id": str(uuid.uuid4()), "attributes": {},
                                              "created": now, "last_modified": now, "version": 1}])
                for s in range(0, size, BATCH):
                    conn.execute(insert(Membership), [
                        {"tenant_id": tenant_id, "group_id": gid, "user_id": uid, "member_group_id": None,
                         "created": now} for uid in ids[s:min(s + BATCH, size)]])
            marker = {"version": SEED_VERSION, "users": users, "tenant_id": tenant_id,
                      "group_1k": groups["group_1k"], "group_1k_size": min(GROUP_1K_SIZE, users),
                      "group_all": groups["group_all"], "group_all_size": users,
                      "seeded_at": now.isoformat(), "form": form,
                      "server_pipeline": convert is not None}
            _write_marker(conn, marker)
        vacuum_analyze(engine)
        took = time.perf_counter() - t0
        log(f"  seeded {users} users in {t_users:.1f}s ({users / max(t_users, 1e-9):.0f} rows/s), "
            f"groups {min(GROUP_1K_SIZE, users)} and {users} members; total {took:.1f}s")
        return dict(marker, reused=False, seconds=took, user_insert_seconds=t_users)
    finally:
        engine.dispose()


def vacuum_analyze(engine, *tables: str) -> None:
    """PostgreSQL: fresh statistics after bulk changes (all tables when none is named)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables or ("",):
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}".strip())


def reset(url: str, tenant_id: int, analyze: bool = False) -> dict[str, Any]:
    """Delete what runs added (non-``bench-`` users, cascading to their memberships, and the
    tenant's audit events: a round of the bulk cases writes tens of thousands)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            n = conn.execute(delete(User).where(User.tenant_id == tenant_id,
                                                ~User.user_name.like("bench-%"))).rowcount
            audit = conn.execute(delete(AuditEvent).where(AuditEvent.tenant_id == tenant_id)).rowcount
        if analyze:
            vacuum_analyze(engine, "users", "memberships", "audit_events")
        return {"deleted_users": n, "deleted_audit_events": audit}
    finally:
        engine.dispose()


def new_token(url: str, tenant_id: int, replace: bool = True) -> str:
    """Create a fresh token for the bench tenant; ``replace`` drops its old tokens first
    (not wanted by a tool that may run beside another one using its own token)."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            if replace:
                session.execute(delete(BearerToken).where(BearerToken.tenant_id == tenant_id))
            tenant = session.get(Tenant, tenant_id)
            return tenant_store.create_token(session, tenant, description="bench/run.py")
    finally:
        engine.dispose()


def seeded_users(url: str, tenant_id: int) -> list[tuple[str, str, str]]:
    """(id, userName, externalId) of the seeded users, in creation order."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                select(User.id, User.user_name, User.external_id)
                .where(User.tenant_id == tenant_id, User.user_name.like("bench-%"))
                .order_by(User.created, User.id))]
    finally:
        engine.dispose()


def add_spare_users(url: str, tenant_id: int, count: int, tag: str) -> list[str]:
    """Insert `count` fresh users (named ``spare-...``) for the member-add cases; returns ids."""
    engine = make_engine(url)
    try:
        now = utcnow()
        rows, ids = [], []
        for k in range(count):
            uid = str(uuid.uuid4())
            ids.append(uid)
            rnd = random.Random(k)
            display, attrs = user_attributes(k, rnd)
            rows.append({"id": uid, "tenant_id": tenant_id, "user_name": f"spare-{tag}-{k:06d}@example.dk",
                         "external_id": str(uuid.uuid4()), "display_name": display, "active": True,
                         "manager_id": None, "password_hash": None, "attributes": attrs,
                         "created": now + dt.timedelta(microseconds=k), "last_modified": now, "version": 1})
        with engine.begin() as conn:
            for s in range(0, len(rows), BATCH):
                conn.execute(insert(User), rows[s:s + BATCH])
        return ids
    finally:
        engine.dispose()


def group_size(url: str, group_id: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Membership).where(Membership.group_id == group_id))
    finally:
        engine.dispose()


if __name__ == "__main__":  # seed only: python bench/seed.py URL [USERS]
    import sys
    print(json.dumps(ensure_database(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000),
                     indent=2, default=str))
