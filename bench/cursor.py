#!/usr/bin/env python3
"""Cursor paging (RFC 9865) against index paging at 1,000,000 users, in-process.

Seeds (or reuses) a dedicated PostgreSQL database with one tenant of N users (bench/seed.py's
user rows, multi-row INSERTs of 5,000), then times requests through Flask's test client: the
first cursor page, a cursor page deep in the list (the cursor of the row at --deep, made with
the server's own encoder, as a nextCursor there would be), the previous page from there, and
index paging at startIndex 1, at the middle and at --deep. Each case reports its median
latency; the ratios deep/first say whether a page costs the same wherever it is.

    python bench/cursor.py                                  # PostgreSQL, 1,000,000 users
    python bench/cursor.py --users 100000 --requests 30
    python bench/cursor.py --url postgresql://postgres@127.0.0.1:5432/scim_cursor_bench --json out.json

The database is created with createdb when missing; the test suite's database (`test`) is
refused. A marker row (``bench_marker``, key ``cursor-seed``) says what was seeded, so a rerun
with the same --users reuses the data.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import seed  # noqa: E402
from sqlalchemy import delete, event, func, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from scim_server.app import create_app  # noqa: E402
from scim_server.config import Settings  # noqa: E402
from scim_server.http.paging import binding  # noqa: E402
from scim_server.http.params import list_query  # noqa: E402
from scim_server.scim.cursor import CursorCodec, Position  # noqa: E402
from scim_server.storage import tenants as tenant_store  # noqa: E402
from scim_server.storage.db import make_engine, make_session_factory  # noqa: E402
from scim_server.storage.migrate import upgrade  # noqa: E402
from scim_server.storage.models import Tenant, User, utcnow  # noqa: E402
from scim_server.storage.secrets import server_secret  # noqa: E402

TENANT = "cursor-bench"
MARKER = "cursor-seed"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/scim_cursor_bench"


def ensure_database(url: str) -> None:
    """createdb for a PostgreSQL database that does not exist yet (on 127.0.0.1 only)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgres"):
        return
    if parsed.database in (None, "", "test", "postgres"):
        sys.exit(f"refusing database {parsed.database!r}: give the bench a database of its own")
    if parsed.host not in (None, "127.0.0.1", "localhost"):
        sys.exit("the bench runs against 127.0.0.1 only")
    listed = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
                             "-Atc", "SELECT datname FROM pg_database"], capture_output=True, text=True, check=True)
    if parsed.database not in listed.stdout.split():
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
                        parsed.database], check=True)
        print(f"  created database {parsed.database}")


def seed_users(url: str, users: int) -> int:
    """The tenant id of TENANT with exactly ``users`` users, seeded unless the marker says so."""
    upgrade(url)
    engine = make_engine(url)
    try:
        seed.read_marker(engine)  # creates bench_marker if missing
        table = seed.marker_table
        with engine.connect() as conn:
            raw = conn.scalar(select(table.c.value).where(table.c.key == MARKER))
            tenant_id = conn.scalar(select(Tenant.id).where(Tenant.name == TENANT))
            have = conn.scalar(select(func.count()).select_from(User).where(User.tenant_id == tenant_id)) if tenant_id else 0
        marker = json.loads(raw) if raw else {}
        if marker.get("users") == users and marker.get("tenant_id") == tenant_id and have == users:
            print(f"  reusing {users} seeded users (tenant {TENANT})")
            return tenant_id
        print(f"  seeding {users} users ...")
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.key == MARKER))
            conn.execute(delete(Tenant).where(Tenant.name == TENANT))  # cascades
        with make_session_factory(engine).begin() as session:
            tenant_id = tenant_store.create_tenant(session, TENANT).id
        base = utcnow().replace(microsecond=0) - dt.timedelta(days=30)
        ids: list[str] = []
        with engine.begin() as conn:
            for batch in seed._user_rows(tenant_id, 1, users, base, ids, None):
                conn.execute(insert(User), batch)
            conn.execute(insert(table), [{"key": MARKER, "value": json.dumps({"users": users, "tenant_id": tenant_id})}])
        seed.vacuum_analyze(engine)
        print(f"  seeded {users} users in {time.perf_counter() - t0:.0f} s")
        return tenant_id
    finally:
        engine.dispose()


def row_key(url: str, tenant_id: int, offset: int, sort_key: tuple) -> tuple:
    """The sort key of the row at 0-based ``offset`` in the order ``sort_key`` (read once, slowly)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(select(*sort_key).where(User.tenant_id == tenant_id)
                                      .order_by(*sort_key).offset(offset).limit(1)).one())
    finally:
        engine.dispose()


def deep_cursor(app, url: str, tenant_id: int, params: dict, key: tuple, backward: bool = False) -> str:
    """The cursor a page ending at (or, backward, starting at) the row with ``key`` would carry,
    for the list ``params`` (filter, sortBy, sortOrder) asks for."""
    settings = app.config["SCIM"]
    engine = make_engine(url)
    try:
        secret = server_secret(engine, "cursor")
    finally:
        engine.dispose()
    digest = binding(["User"], tenant_id, list_query({"cursor": "", **params}, settings))
    return CursorCodec(secret, settings.cursor_timeout).encode(Position(("User", *key), backward), digest)


def measure(client, headers, cases: dict, rounds: int) -> dict:
    """Median and p90 latency per case, in rounds of one request of every case, so that
    whatever else the machine does falls on all cases alike."""
    for path, check in cases.values():  # warm-up (statement caches, pool, buffers) and the answer's check
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        check(response.get_json())
        client.get(path, headers=headers)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (path, _) in cases.items():
            t0 = time.perf_counter()
            response = client.get(path, headers=headers)
            times[name].append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return {name: {"median_ms": statistics.median(ts), "p90_ms": sorted(ts)[int(0.9 * (len(ts) - 1))]}
            for name, ts in times.items()}


def buffers(app, client, headers, cases: dict) -> dict[str, int]:
    """PostgreSQL only: the buffers (8 kB pages, from cache or disk) the statements of one request
    of each case touch, by EXPLAIN (ANALYZE, BUFFERS) of each statement the request ran. Unlike a
    time, the count does not move when other work shares the machine."""
    engine = app.extensions["scim_engine"]  # PostgreSQL: the read engine is an option engine of it
    if engine.dialect.name != "postgresql":
        return {}
    ran: list[tuple[str, dict]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            ran.append((statement, parameters))

    out = {}
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for name, (path, _) in cases.items():
            ran.clear()
            event.listen(engine, "before_cursor_execute", capture)
            try:
                client.get(path, headers=headers)
            finally:
                event.remove(engine, "before_cursor_execute", capture)
            total = 0
            for statement, parameters in ran:
                plan = raw.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters).fetchone()[0]
                top = plan[0]["Plan"]
                total += top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
            out[name] = total
        raw.rollback()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--deep", type=int, default=900_000, help="the row (1-based) the deep pages start after")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per case (rounds)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    deep = min(args.deep, args.users - args.count)
    middle = args.users // 2

    ensure_database(args.url)
    tenant_id = seed_users(args.url, args.users)
    app = create_app(Settings.from_env(database_url=args.url, public_base_url="http://bench/scim/v2"))
    with app.extensions["scim_sessions"].begin() as session:
        token = tenant_store.create_token(session, session.get(Tenant, tenant_id), "bench/cursor.py")
    headers = {"Authorization": f"Bearer {token}"}
    key = row_key(args.url, tenant_id, deep - 1, (User.created, User.id))
    after_deep = deep_cursor(app, args.url, tenant_id, {}, key)
    before_deep = deep_cursor(app, args.url, tenant_id, {}, key, True)
    # sortBy=userName: the order of the (tenant, lower(userName)) index; the seeded names sort as created
    name_key = row_key(args.url, tenant_id, deep - 1, (func.lower(User.user_name), User.id))
    after_deep_name = deep_cursor(app, args.url, tenant_id, {"sortBy": "userName"}, name_key)
    n = args.count

    def starts(first: int):
        def check(body):
            assert body["Resources"][0]["userName"] == seed.user_name(first), body["Resources"][0]["userName"]
            assert len(body["Resources"]) == n
        return check

    cases = {
        "cursor-first": (f"/scim/v2/Users?cursor=&count={n}", starts(1)),
        f"cursor-after-{deep}": (f"/scim/v2/Users?cursor={after_deep}&count={n}", starts(deep + 1)),
        f"cursor-before-{deep}": (f"/scim/v2/Users?cursor={before_deep}&count={n}", starts(deep - n)),
        "cursor-userName-first": (f"/scim/v2/Users?sortBy=userName&cursor=&count={n}", starts(1)),
        f"cursor-userName-after-{deep}": (f"/scim/v2/Users?sortBy=userName&cursor={after_deep_name}&count={n}",
                                          starts(deep + 1)),
        "index-first": (f"/scim/v2/Users?startIndex=1&count={n}", starts(1)),
        f"index-{middle + 1}": (f"/scim/v2/Users?startIndex={middle + 1}&count={n}", starts(middle + 1)),
        f"index-{deep + 1}": (f"/scim/v2/Users?startIndex={deep + 1}&count={n}", starts(deep + 1)),
        "index-userName-first": (f"/scim/v2/Users?sortBy=userName&startIndex=1&count={n}", starts(1)),
        f"index-userName-{deep + 1}": (f"/scim/v2/Users?sortBy=userName&startIndex={deep + 1}&count={n}",
                                       starts(deep + 1)),
    }
    client = app.test_client()
    results = measure(client, headers, cases, args.requests)
    for name, pages in buffers(app, client, headers, cases).items():
        results[name]["buffers"] = pages
    for name, r in results.items():
        touched = f"   buffers {r['buffers']:8d}" if "buffers" in r else ""
        print(f"  {name:<30} median {r['median_ms']:8.2f} ms   p90 {r['p90_ms']:8.2f} ms{touched}")
    ratios = {}
    for name, r in results.items():  # each deep case against the first page of its own kind
        kind = "-".join(name.split("-")[:2]) if "-userName-" in name else name.split("-")[0]
        ratios[f"{name} / {kind}-first"] = r["median_ms"] / results[f"{kind}-first"]["median_ms"]
    for name, ratio in ratios.items():
        print(f"  {name:<54} {ratio:6.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"users": args.users, "count": n, "requests": args.requests, "results": results,
                       "ratios": ratios}, out, indent=2)
    app.extensions["scim_engine"].dispose()


if __name__ == "__main__":
    main()
