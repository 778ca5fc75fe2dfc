#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind: a cost that does not move
when the machine is busy, for comparing two versions of the code on a noisy machine.

Timings in bench/costs.py and bench/run.py swing by 20 % and more from run to run when
other work shares the CPU; the number of instructions a request executes does not. Each
case runs in-process (Flask's test client, as in costs.py) twice under callgrind, with
``--requests`` and with twice as many; the difference divided by the extra requests is
the cost of one request, start-up and warm-up cancelled out. Hash seeds and the random
choice of users are fixed, so two runs of the same code agree to a fraction of a percent.
``--gunicorn`` counts in a real server instead: one sync gunicorn worker (ours, and physlimits'
app for its cases), driven over keep-alive HTTP; the worker's count is what is compared.

    python bench/icount.py --url sqlite:////tmp/scim-bench.db --cases get patch
    python bench/icount.py --url sqlite:////tmp/scim-bench.db --physlimits ../shared/tools/physlimits.py \\
        --physlimits-sqlite /tmp/scim-bench-physlimits.db
    python bench/icount.py --url sqlite:////tmp/scim-bench.db --gunicorn --cases get patch \\
        --physlimits ../shared/tools/physlimits.py

Needs valgrind on PATH (``apt-get install -y valgrind``); each case takes about a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

CASES = ["config", "get", "filter", "patch", "create", "put"]
PHYS_CASES = ("phys-select", "phys-insert")
WARM_UP = 30


def physlimits_env(args) -> dict[str, str]:
    """How physlimits' app finds its database (its select and insert cases)."""
    return {"PHYSLIMITS_DB": "sqlite" if args.url.startswith("sqlite") else "pg",
            "PHYSLIMITS_SQLITE": args.physlimits_sqlite, "PHYSLIMITS_PG_DSN": args.physlimits_pg_dsn}


def request_for(case: str, users, n: int) -> tuple[str, str, bytes | None]:
    """(method, path, body) of a case's n-th request: physlimits' own, or bench/costs.py's."""
    if case == "phys-select":
        return "GET", f"/user/{random.randint(1, 100_000)}", None
    if case == "phys-insert":
        return "POST", "/user", None
    from costs import requests_for
    return requests_for(case, users, n)


def child(args) -> None:
    """Set up, warm up, run the requests, and leave without clean-up (the parent resets)."""
    random.seed(1)
    headers = {}
    users = None
    if args.case in PHYS_CASES:
        sys.path.insert(0, os.path.dirname(os.path.abspath(args.physlimits)))
        os.environ.update(physlimits_env(args))
        import physlimits
        client = physlimits.create_app().test_client()
    else:
        import seed

        from scim_server.app import create_app
        from scim_server.config import Settings
        users = seed.seeded_users(args.url, seed.read_marker_at(args.url)["tenant_id"])
        client = create_app(Settings(database_url=args.url)).test_client()
        headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/scim+json"}
    for n in range(WARM_UP + args.count):
        method, path, body = request_for(args.case, users, n)
        response = client.open(path, method=method, data=body, headers=headers)
        if response.status_code >= 400:
            raise SystemExit(f"{args.case}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    sys.stdout.flush()
    os._exit(0)


def instructions(args, case: str, count: int, token: str | None) -> int:
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
               sys.executable, os.path.abspath(__file__), "--child", case, "--count", str(count),
               "--url", args.url, "--token", token or "", "--physlimits", args.physlimits or "",
               "--physlimits-sqlite", args.physlimits_sqlite, "--physlimits-pg-dsn", args.physlimits_pg_dsn]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not found:
            raise SystemExit(f"{case}: callgrind run failed\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return int(found.group(1))


def server_instructions(args, case: str, count: int, token: str | None, users) -> int:
    """The same count in a real server: ours (``scim-server serve``) or physlimits' app, in one
    sync gunicorn worker under callgrind, driven over keep-alive HTTP from this process. Nothing
    of the kernel's share (sockets, thread switches) is counted: it is the same for both."""
    import http.client
    import signal
    import time
    import urllib.parse

    from run import free_port

    port = free_port()
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if case in PHYS_CASES:
        env.update(physlimits_env(args))
        served = [sys.executable, "-m", "gunicorn", "--chdir", os.path.dirname(os.path.abspath(args.physlimits)),
                  "-b", f"127.0.0.1:{port}", "-w", "1", "-k", "sync", "--log-level", "warning",
                  "physlimits:create_app()"]
        ready = "/ping"
    else:
        env["SCIM_DATABASE_URL"] = args.url
        served = [sys.executable, "-m", "scim_server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                  "--workers", "1", "--threads", "1"]
        ready = "/healthz"
    random.seed(1)
    with tempfile.TemporaryDirectory(prefix="icount-") as tmp:
        server = subprocess.Popen(["valgrind", "--tool=callgrind", "--trace-children=yes",
                                   f"--callgrind-out-file={tmp}/cg.%p", *served], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            for _ in range(300):  # valgrind starts slowly
                try:
                    conn.request("GET", ready)
                    conn.getresponse().read()
                    break
                except OSError:
                    conn.close()
                    time.sleep(1)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
            for n in range(WARM_UP + count):
                method, path, body = request_for(case, users, n)
                path = urllib.parse.quote(path, safe="/?=&")
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    raise SystemExit(f"{case}: {method} {path}: {response.status}")
            conn.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(300)
        # one file per process: the master's (valgrind keeps the pid it started) and the worker's
        counts = {name: _summary(os.path.join(tmp, name)) for name in os.listdir(tmp)}
        workers = [n for name, n in counts.items() if name != f"cg.{server.pid}"]
        if len(workers) != 1:
            raise SystemExit(f"{case}: expected one worker's count, found {counts}")
        return workers[0]


def _summary(path: str) -> int:
    with open(path) as f:
        return int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="a database seeded by bench/run.py")
    ap.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    ap.add_argument("--requests", type=int, default=100, help="the first run's requests (the second runs twice as many)")
    ap.add_argument("--physlimits", help="physlimits.py: also count its select and insert requests")
    ap.add_argument("--physlimits-sqlite", default=os.path.join(tempfile.gettempdir(), "scim-bench-physlimits.db"))
    ap.add_argument("--physlimits-pg-dsn", default="postgresql://postgres@127.0.0.1/scim_bench_physlimits")
    ap.add_argument("--gunicorn", action="store_true",
                    help="count in a real server (one sync gunicorn worker) instead of Flask's test client")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--token", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.case = args.child
        child(args)
        return 0

    import seed
    marker = seed.read_marker_at(args.url)
    if not marker:
        raise SystemExit("not seeded: run bench/run.py against this database first")
    token = seed.new_token(args.url, marker["tenant_id"], replace=False)
    cases = list(args.cases) + (list(PHYS_CASES) if args.physlimits else [])
    result = {}
    users = seed.seeded_users(args.url, marker["tenant_id"]) if args.gunicorn else None

    def count(case: str, n: int) -> int:
        if args.gunicorn:
            return server_instructions(args, case, n, token, users)
        return instructions(args, case, n, token)

    try:
        for case in cases:
            low = count(case, args.requests)
            high = count(case, 2 * args.requests)
            per_request = (high - low) / args.requests
            result[case] = per_request
            print(f"{case:12s} {per_request / 1e6:8.3f} M instructions per request", flush=True)
    finally:
        print(json.dumps(seed.reset(args.url, marker["tenant_id"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
