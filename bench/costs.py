#!/usr/bin/env python3
"""Where one request's time goes, in-process (no HTTP server, no load): for each bench case,
the median time through Flask's test client, the SQL statements it runs through SQLAlchemy
(SQLite's BEGIN and every COMMIT go to the driver directly and are not counted), and with
``--cprofile CASE`` the functions that cost most.

It runs against a database that bench/run.py has seeded (it reuses the bench tenant), so the
numbers are at the same N. Writes are undone afterwards with bench/seed.py's reset.

    python bench/costs.py --url sqlite:////tmp/scim-bench.db --requests 300
    python bench/costs.py --url postgresql://postgres@127.0.0.1/scim_bench --cprofile patch
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import seed  # noqa: E402
from run import create_body_template, patch_body_template, watched_engine  # noqa: E402
from sqlalchemy import event  # noqa: E402

from scim_server.app import create_app  # noqa: E402
from scim_server.config import Settings  # noqa: E402

CASES = ["get", "filter", "list-first", "list-last", "patch", "create", "put", "config"]


def requests_for(case: str, users: list[tuple[str, str, str]], n: int):
    """(method, path, body) of the n-th request of a case."""
    uid, name, _ = users[random.randrange(len(users))]
    if case == "get":
        return "GET", f"/scim/v2/Users/{uid}", None
    if case == "config":  # the fixed cost of a request: routing, auth, logging, a small response
        return "GET", "/scim/v2/ServiceProviderConfig", None
    if case == "filter":
        return "GET", f'/scim/v2/Users?filter=userName eq "{name}"', None
    if case == "list-first":
        return "GET", "/scim/v2/Users?startIndex=1&count=100", None
    if case == "list-last":
        return "GET", f"/scim/v2/Users?startIndex={len(users) - 99}&count=100", None
    if case == "patch":
        return "PATCH", f"/scim/v2/Users/{uid}", (patch_body_template() % (n, n)).encode()
    template, _ = create_body_template()
    un = f"prof-{uuid.uuid4().hex}@example.dk"
    body = (template % (un, un, un, str(n))).encode()
    if case == "create":
        return "POST", "/scim/v2/Users", body
    return "PUT", f"/scim/v2/Users/{uid}", body.replace(un.encode(), name.encode())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="a database seeded by bench/run.py")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    ap.add_argument("--cprofile", choices=CASES, help="print the costliest functions of this case")
    ap.add_argument("--sort", default="cumulative", help="cProfile order: cumulative, tottime, ...")
    ap.add_argument("--profile-out", metavar="FILE", help="also save the profile (pstats format)")
    ap.add_argument("--show-sql", action="store_true", help="print the statements of one request per case")
    args = ap.parse_args()

    marker = seed.read_marker_at(args.url)
    if not marker:
        raise SystemExit("not seeded: run bench/run.py against this database first")
    token = seed.new_token(args.url, marker["tenant_id"], replace=False)
    users = seed.seeded_users(args.url, marker["tenant_id"])
    app = create_app(Settings(database_url=args.url))
    statements: list[str] = []
    event.listen(watched_engine(app), "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: statements.append(sql))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    try:
        for case in args.cases:
            times = []
            counts = []
            profiler = cProfile.Profile() if case == args.cprofile else None
            for n in range(args.requests):
                method, path, body = requests_for(case, users, n)
                statements.clear()
                if profiler:
                    profiler.enable()
                t0 = time.perf_counter()
                resp = client.open(path, method=method, data=body, headers=headers)
                times.append(time.perf_counter() - t0)
                if profiler:
                    profiler.disable()
                if resp.status_code >= 400:
                    raise SystemExit(f"{case}: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
                counts.append(len(statements))
                if args.show_sql and n == 1:
                    print(f"--- {case}: {method} {path}")
                    for s in statements:
                        print("   ", " ".join(s.split())[:160])
            print(f"{case:12s} median {statistics.median(times) * 1000:6.3f} ms   "
                  f"statements {statistics.median(counts):.0f}", flush=True)
            if profiler:
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(45)
                if args.profile_out:
                    profiler.dump_stats(args.profile_out)
    finally:
        print(json.dumps(seed.reset(args.url, marker["tenant_id"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
