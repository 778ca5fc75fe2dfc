"""The floor under two throughput targets: what the rows alone cost to write.

Two targets of issues 12 and 13 were missed in every session that measured them: a first
sync of 100,000 people at >= 8 x the ``POST /Users`` req/s, and a BulkRequest of 1,000
group member adds at <= 5 x a single add's p50. This bench asks whether any code could
reach them on this stack and schema: it writes only the rows such a run must leave behind,
in multi-row statements, with no reading of a file or a request, no checks, no decisions,
and compares that time with the target's budget, measured side by side in the same run.

* ``sync`` (called by ``bench/sync.py --floor`` in a child process, after each round's first
  sync): reads the rows that first sync wrote (units, users, employments, work e-mails, sync
  digests, audit events), deletes them, and writes them again, timing only the INSERTs (1,000
  rows per statement, as the server's batches write them) and the commit; on PostgreSQL it
  then deletes them once more and writes them by ``COPY`` (psycopg's), the fastest way in.
  The rows are the real ones, with their ids: same widths, same indexes, same foreign keys,
  the same database around them, and final values (a sync that knew everything up front
  would need no UPDATE afterwards). With the users file it also times reading the file and
  validating every person against the schema, the least a sync must do before it may write.
* ``member-add`` (the default): on each database, the real server answers single
  ``PATCH /Groups/{id}`` member adds and BulkRequests of 1,000 such adds (bench/run.py's
  ``bulk_member_add``, interleaved, one connection); then, on the same group, in this process,
  the floor of one BulkRequest: ``json.loads`` of its body, one INSERT of the 1,000
  memberships, the group's version, one INSERT of the 1,000 audit events (one per operation,
  as the issue asks), the commit and ``json.dumps`` of a 1,000-entry BulkResponse. No HTTP
  and no authentication: the floor leaves out costs the single add pays.

    python bench/floor.py --sqlite --pg-dsn postgresql://postgres@127.0.0.1:5432/scim_bench_floor
    python bench/sync.py --sqlite --pg-dsn ... --floor --json sync.json       # the sync floor

A floor above the budget means the target cannot be met by any code that keeps these
rows, whatever else it does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as runbench  # noqa: E402  (bench/run.py: Server, bulk_member_add, ...)
import seed  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from scim_server.storage import audit, tenants  # noqa: E402
from scim_server.storage.db import make_engine, make_session_factory  # noqa: E402
from scim_server.storage.models import AuditEvent, Group, Membership, Source, SyncDigest, User, WorkEmail, utcnow  # noqa: E402

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CHUNK = 1000
#: the tables a first sync writes, in the order their foreign keys need
SYNC_TABLES = (Group, User, Membership, WorkEmail, SyncDigest, AuditEvent)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ the sync floor
def _parents_first(rows: list[dict], key: str) -> list[dict]:
    """Rows ordered so that the row a row names by ``key`` (its parent, its manager) comes first."""
    by_id = {r["id"]: r for r in rows}
    depth: dict[str, int] = {}

    def depth_of(row_id: str) -> int:
        chain, seen = [], set()
        while row_id in by_id and row_id not in depth and row_id not in seen:
            seen.add(row_id)
            chain.append(row_id)
            row_id = by_id[row_id][key]
        d = depth.get(row_id, -1) if row_id in by_id else -1
        for r in reversed(chain):
            d += 1
            depth[r] = d
        return depth[chain[0]] if chain else d

    return sorted(rows, key=lambda r: depth_of(r["id"]))


def sync_rows(url: str, tenant_name: str) -> tuple[int, dict[str, list[dict]]]:
    """The rows a tenant holds (after its first sync: what that sync wrote), read in full."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tenant_id = conn.scalar(text("SELECT id FROM tenants WHERE name = :n"), {"n": tenant_name})
            if tenant_id is None:
                raise SystemExit(f"no tenant {tenant_name!r}")
            source_ids = [r[0] for r in conn.execute(select(Source.id).where(Source.tenant_id == tenant_id))]
            rows: dict[str, list[dict]] = {}
            for model in SYNC_TABLES:
                table = model.__table__
                where = (table.c.source_id.in_(source_ids) if model is SyncDigest
                         else table.c.tenant_id == tenant_id)
                rows[table.name] = [dict(r._mapping) for r in conn.execute(select(table).where(where))]
        return tenant_id, rows
    finally:
        engine.dispose()


def read_and_validate(url: str, users_file: str) -> dict:
    """The least a sync must do in Python before it may write a person: read the users file
    (``Roster``, then every person's record, as a first sync reads everyone) and validate each
    person's resource against the schema (``load_resource``, the check every write path makes),
    with the manager and employments named by ids as the engine names them. Timed apart."""
    from scim_server.provisioning.service import load_resource
    from scim_server.scim.schemas import ENTERPRISE_USER
    from scim_server.scim.validators import P2L_USER
    from scim_server.storage.stores import TenantScope, open_store
    from scim_server.sync.mapping import load_mapping
    from scim_server.sync.readers import read_table
    from scim_server.sync.roster import Roster

    t0 = time.perf_counter()
    roster = Roster.read_from(read_table(users_file, None, load_mapping(None).table("users")))
    people, errors = roster.records(leave_out=set())
    t1 = time.perf_counter()
    unit_ids: dict[str, str] = {}
    manager_ids: dict[str, str] = {}
    documents = []
    for person in people:  # (as ``SnapshotSync._desired`` makes them; not timed)
        resource = dict(person.resource)
        if person.manager_external_id:
            manager = manager_ids.setdefault(person.manager_external_id, str(uuid.uuid4()))
            resource[ENTERPRISE_USER] = {**resource.get(ENTERPRISE_USER, {}), "manager": {"value": manager}}
        jobs = [{k: v for k, v in {"value": unit_ids.setdefault(job.unit_code, str(uuid.uuid4())), "title": job.title,
                                   "startDate": job.start_date, "endDate": job.end_date, "primary": job.primary}.items()
                 if v is not None} for job in person.employments]
        if jobs:
            resource[P2L_USER] = {**resource.get(P2L_USER, {}), "employments": jobs}
        resource["schemas"] = [*resource["schemas"], *[u for u in (ENTERPRISE_USER, P2L_USER)
                                                       if resource.get(u) and u not in resource["schemas"]]]
        documents.append(resource)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            store = open_store(session, TenantScope(0, {}), "User", "http://127.0.0.1/scim/v2")
            t2 = time.perf_counter()
            for document in documents:
                load_resource(store, document)
            t3 = time.perf_counter()
    finally:
        engine.dispose()
    return {"read_s": t1 - t0, "validate_s": t3 - t2, "people": len(people), "row_errors": len(errors)}


def _forget_rows(engine, tenant_id: int, rows: dict[str, list[dict]]) -> None:
    """Delete the rows (children first; the unit tree and the manager links cut first), then
    VACUUM ANALYZE on PostgreSQL: the database is as it was before the sync wrote them, so the
    floor writes into the state the sync wrote into."""
    with engine.begin() as conn:
        conn.execute(Group.__table__.update().where(Group.tenant_id == tenant_id).values(parent_id=None))
        conn.execute(User.__table__.update().where(User.tenant_id == tenant_id).values(manager_id=None))
        for model in reversed(SYNC_TABLES):
            table = model.__table__
            if model is SyncDigest:
                ids = [r["user_id"] for r in rows[table.name]]
                for start in range(0, len(ids), CHUNK):
                    conn.execute(table.delete().where(table.c.user_id.in_(ids[start:start + CHUNK])))
            else:
                conn.execute(table.delete().where(table.c.tenant_id == tenant_id))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


def copy_sync(url: str, tenant_name: str, users_file: str | None = None) -> dict:
    """Time writing the rows the tenant's first sync wrote once more: read them, delete them,
    INSERT them again (on PostgreSQL, then delete them and COPY them again). The database ends
    as the sync left it. Given the users file, also time reading and validating its people."""
    tenant_id, rows = sync_rows(url, tenant_name)
    rows = {**rows, "groups": _parents_first(rows["groups"], "parent_id"),
            "users": _parents_first(rows["users"], "manager_id")}
    engine = make_engine(url)
    out: dict = {"rows": {name: len(r) for name, r in rows.items()}, "people": len(rows["users"])}
    try:
        _forget_rows(engine, tenant_id, rows)
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        with engine.begin() as conn:
            written, analyzed_at = 0, 500
            for model in SYNC_TABLES:
                table = model.__table__
                t = time.perf_counter()
                statement = insert(table)
                data = rows[table.name]
                for start in range(0, len(data), CHUNK):
                    conn.execute(statement, data[start:start + CHUNK])
                    if model in (Group, User):
                        written += len(data[start:start + CHUNK])
                    if written >= 2 * analyzed_at and engine.dialect.name == "postgresql":
                        # as the sync does (``SnapshotSync._as_tables_grow``): PostgreSQL's foreign
                        # key checks keep plans made for tables as empty as at their first INSERT;
                        # without this the users alone took 370 s instead of 10 at 100,000
                        conn.exec_driver_sql("ANALYZE users, groups, memberships")
                        analyzed_at = written
                seconds[table.name] = time.perf_counter() - t
            t = time.perf_counter()
        seconds["commit"] = time.perf_counter() - t
        out["insert_s"] = time.perf_counter() - t0
        out["insert_tables_s"] = seconds
        if engine.dialect.name == "postgresql":
            _forget_rows(engine, tenant_id, rows)
            out["copy_s"], out["copy_tables_s"] = _copy_in(engine, rows)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")  # (b) and (c) find the tables as a sync leaves them
    finally:
        engine.dispose()
    if users_file:
        out.update(read_and_validate(url, users_file))
    return out


def _copy_in(engine, data: dict[str, list[dict]]) -> tuple[float, dict[str, float]]:
    """The same rows by PostgreSQL's COPY FROM STDIN, in one transaction."""
    from psycopg.types.json import Json

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for model in SYNC_TABLES:
            table = model.__table__
            rows = data[table.name]
            if not rows:
                continue
            columns = list(rows[0])
            t = time.perf_counter()
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([Json(v) if isinstance(v, (dict, list)) else v for v in row.values()])
            seconds[table.name] = time.perf_counter() - t
        t = time.perf_counter()
        raw.commit()
        seconds["commit"] = time.perf_counter() - t
    finally:
        raw.close()
    return time.perf_counter() - t0, seconds


# ------------------------------------------------------------------------- the member-add floor
def member_add_floor(factory, tenant_id: int, group_id: str, users: list[str], base_url: str) -> dict:
    """One BulkRequest's worth of member adds, written with nothing but the rows: the parts
    timed. ``factory``: sessions of an engine whose connection is open already (a server's is)."""
    body = json.dumps({"schemas": [BULK_REQUEST], "Operations": [
        {"method": "PATCH", "path": f"/Groups/{group_id}",
         "data": {"schemas": [PATCH_OP], "Operations": [runbench.member_add_op(u)]}} for u in users]})
    t0 = time.perf_counter()
    operations = json.loads(body)["Operations"]
    t1 = time.perf_counter()
    with factory.begin() as session:
        now = utcnow()
        session.connection().execute(insert(Membership.__table__), [
            {"tenant_id": tenant_id, "group_id": group_id, "user_id": op["data"]["Operations"][0]["value"][0]["value"],
             "member_group_id": None, "created": now} for op in operations])
        session.execute(text("UPDATE groups SET version = version + :n, last_modified = :now WHERE id = :g"),
                        {"n": len(operations), "now": now, "g": group_id})
        t2 = time.perf_counter()
        audit.record_many(session, [
            {"tenant_id": tenant_id, "resource_type": "Group", "resource_id": group_id, "operation": "patch",
             "changes": {"members": {"added": [op["data"]["Operations"][0]["value"][0]["value"]], "removed": []}},
             "bulk_index": i} for i, op in enumerate(operations)])
        t3 = time.perf_counter()
    t4 = time.perf_counter()
    json.dumps({"schemas": [BULK_RESPONSE], "Operations": [
        {"method": "PATCH", "location": f"{base_url}/Groups/{group_id}", "version": f'W/"{i}"',
         "status": "200"} for i in range(len(operations))]})
    t5 = time.perf_counter()
    parts = {"parse": t1 - t0, "memberships": t2 - t1, "audit": t3 - t2, "commit": t4 - t3, "render": t5 - t4}
    return {"ms": (t5 - t0) * 1000, "parts_ms": {k: v * 1000 for k, v in parts.items()}}


def bench_member_add(db: str, url: str, args, tmpdir: str) -> dict:
    log(f"=== {db}: {url}")
    if db == "sqlite":
        path = url[len("sqlite:///"):]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    from scim_server.storage.migrate import upgrade
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        tenant = tenants.create_tenant(session, f"floor-{uuid.uuid4().hex[:8]}")
        tenant_id = tenant.id
        group = Group(id=str(uuid.uuid4()), tenant_id=tenant_id, display_name="floor group", version=1,
                      created=utcnow(), last_modified=utcnow())
        session.add(group)
        session.flush()
        group_id = group.id
    engine.dispose()
    # the group starts with members, as a real one has: 1,000
    seed_members = seed.add_spare_users(url, tenant_id, 1000, "floorseed")
    engine = make_engine(url)
    with engine.begin() as conn:
        now = utcnow()
        conn.execute(insert(Membership.__table__), [{"tenant_id": tenant_id, "group_id": group_id, "user_id": u,
                                                     "member_group_id": None, "created": now} for u in seed_members])
    engine.dispose()
    token = seed.new_token(url, tenant_id)
    os.environ["SCIM_RATE_LIMIT_PER_SECOND"] = "0"
    rounds = []
    for rnd in range(args.rounds):
        server = runbench.Server(url, args.workers, args.threads, runbench.BASE, tmpdir)
        try:
            served = runbench.bulk_member_add(url, server.port, token, tenant_id, group_id, args.requests,
                                              args.ops, args.singles, 120)
        finally:
            server.stop()
        # the users to add made first, as bulk_member_add makes its own; one engine, its
        # connection opened before the first measurement
        spares = seed.add_spare_users(url, tenant_id, args.ops * args.requests, uuid.uuid4().hex[:6] + "f")
        engine = make_engine(url)
        factory = make_session_factory(engine)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            floors = [member_add_floor(factory, tenant_id, group_id, spares[k * args.ops:(k + 1) * args.ops],
                                       "http://127.0.0.1" + runbench.BASE) for k in range(args.requests)]
        finally:
            engine.dispose()
        single, bulk = served["single_p50_ms"], served["p50_ms"]
        if served["errors"] or not served["members_ok"]:
            raise RuntimeError(f"the served member adds failed: {served.get('first_error')}")
        floor = runbench.median([f["ms"] for f in floors])
        parts = {k: runbench.median([f["parts_ms"][k] for f in floors]) for k in floors[0]["parts_ms"]}
        one = {"round": rnd + 1, "single_p50_ms": single, "bulk_p50_ms": bulk, "floor_p50_ms": floor,
               "floor_parts_p50_ms": parts, "bulk_ratio": bulk / single if single else None,
               "floor_ratio": floor / single if single else None, "errors": served.get("errors")}
        rounds.append(one)
        log(f"  round {rnd + 1}: single add p50 {single:.2f} ms, BulkRequest of {args.ops} p50 {bulk:.1f} ms "
            f"({one['bulk_ratio']:.1f} x), floor p50 {floor:.1f} ms ({one['floor_ratio']:.1f} x; budget at 5 x: "
            f"{5 * single:.1f} ms)  floor parts: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    summary = {k: runbench.median([r[k] for r in rounds]) for k in
               ("single_p50_ms", "bulk_p50_ms", "floor_p50_ms", "bulk_ratio", "floor_ratio")}
    return {"url": url, "rounds": rounds, "summary": summary}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    s = sub.add_parser("sync", help="time the rows of a tenant's first sync, copied (bench/sync.py --floor)")
    s.add_argument("--url", required=True)
    s.add_argument("--tenant", required=True)
    s.add_argument("--users-file", help="the users file of that sync: also time reading and validating it")
    ap.add_argument("--sqlite", nargs="?", const="/tmp/scim-bench-floor.db", metavar="FILE")
    ap.add_argument("--pg-dsn", nargs="?", const="postgresql://postgres@127.0.0.1:5432/scim_bench_floor")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=5, help="BulkRequests per round")
    ap.add_argument("--ops", type=int, default=1000, help="member adds per BulkRequest")
    ap.add_argument("--singles", type=int, default=100, help="single adds per round")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    if args.command == "sync":
        print(json.dumps(copy_sync(args.url, args.tenant, args.users_file)))
        return 0
    runbench.BASE = (os.environ.get("SCIM_BASE_PATH") or "/scim/v2").rstrip("/")
    targets = []
    if args.sqlite or not args.pg_dsn:
        targets.append(("sqlite", "sqlite:///" + (args.sqlite or "/tmp/scim-bench-floor.db")))
    if args.pg_dsn:
        runbench.ensure_pg_database(args.pg_dsn)
        targets.append(("postgresql", args.pg_dsn))
    results = {}
    with tempfile.TemporaryDirectory(prefix="scim-floor-") as tmpdir:
        for db, url in targets:
            results[db] = bench_member_add(db, url, args, tmpdir)
    log("summary (medians of the rounds): p50 of a BulkRequest of 1,000 member adds / p50 of a single add")
    for db, r in results.items():
        s = r["summary"]
        log(f"  {db:10s} served {s['bulk_ratio']:.1f} x   floor {s['floor_ratio']:.1f} x   target <= 5   "
            f"(single {s['single_p50_ms']:.2f} ms, bulk {s['bulk_p50_ms']:.1f} ms, floor {s['floor_p50_ms']:.1f} ms)")
    if args.json:
        runbench.write_json(args.json, {"member_add": results, "code": runbench.code_fingerprint()}, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
