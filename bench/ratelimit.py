#!/usr/bin/env python3
"""Rate limits: a tenant flooding the server does not slow the others (bench/README.md, "Rate limits").

Starts the real server (``scim-server serve`` on SQLite, on 127.0.0.1) with two tenants: B, the
bench's seeded tenant (bench/seed.py, N users) with a limit far above what it can send (so its
requests pass the limiter but are never refused), and A, limited with
``scim-server tenant rate-limit`` to --a-limit requests/s (burst the same, the whole limit per
token). Each round measures B's ``GET /Users/{id}`` throughput (wrk, else bench/run.py's Python
client) alone, and while A sends ``GET /Users/{id}`` of its own users at --a-factor times its
limit from a paced Python thread pool; the order of the two alternates from round to round. The
ratio of each round is B with A flooding / B alone (target >= 0.75), and A's accepted requests/s
during B's measurement show whether the limit is counted across all workers (about --a-limit) or
per worker (about workers x --a-limit).

    python bench/ratelimit.py                      # 3 rounds x 10 s, 10,000 users in B
    python bench/ratelimit.py --runs 1 --seconds 3 --users 2000 --json rl.json
"""
from __future__ import annotations

import argparse
import http.client
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import run  # noqa: E402
import seed  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from scim_server.http.ratelimit import ENV_FILE  # noqa: E402
from scim_server.storage import tenants as tenant_store  # noqa: E402
from scim_server.storage.db import make_engine, make_session_factory  # noqa: E402
from scim_server.storage.models import Tenant  # noqa: E402

TENANT_A = "bench-ratelimit-a"
A_USERS = 50
TARGET = 0.75
DEFAULT_DB = os.path.join(tempfile.gettempdir(), "scim-bench-ratelimit.db")
log = run.log


def cli(url: str, *args: str) -> str:
    """``scim-server ...`` against the bench database; its stderr line."""
    exe = os.path.join(os.path.dirname(sys.executable), "scim-server")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "scim_server.cli"]
    out = subprocess.run(cmd + list(args), env=dict(os.environ, SCIM_DATABASE_URL=url), capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"scim-server {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stderr.strip()


def tenant_a(url: str) -> tuple[int, str]:
    """Tenant A, made afresh: its id and a token."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(Tenant).where(Tenant.name == TENANT_A))  # cascades to its users and tokens
        with make_session_factory(engine).begin() as session:
            tenant = tenant_store.create_tenant(session, TENANT_A)
            return tenant.id, tenant_store.create_token(session, tenant, description="bench/ratelimit.py")
    finally:
        engine.dispose()


def flood(port: int, token: str, paths: list[str], rate: float, seconds: float, conns: int,
          reconnect: int = 25) -> dict:
    """Send ``rate`` requests/s for ``seconds`` from ``conns`` paced threads (open loop: a thread
    that falls behind catches up by at most a second). Each thread's keep-alive connection is
    replaced every ``reconnect`` requests, so that A's requests reach every gunicorn worker (a
    limit counted per worker would then let through up to workers x the limit)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": run.SCIM_JSON}
    events: list[list[tuple[float, int, bool]]] = [[] for _ in range(conns)]
    interval = conns / rate
    start = time.perf_counter() + 0.2
    deadline = start + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(run.HOST, port, timeout=10)
        due = start + i * interval / conns
        n = 0
        while n < 10_000_000:
            now = time.perf_counter()
            if now >= deadline:
                break
            if due > now:
                time.sleep(due - now)
            due = max(due + interval, time.perf_counter() - 1.0)
            n += 1
            if n % reconnect == 0:
                conn.close()
            try:
                conn.request("GET", paths[(i + n * conns) % len(paths)], headers=headers)
                resp = conn.getresponse()
                resp.read()
                retry_ok = resp.status != 429 or (resp.getheader("Retry-After") or "").isdigit()
                events[i].append((time.perf_counter(), resp.status, retry_ok))
            except (OSError, http.client.HTTPException):
                events[i].append((time.perf_counter(), 0, True))
                conn.close()
                conn = http.client.HTTPConnection(run.HOST, port, timeout=10)
        conn.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(conns)]
    for t in threads:
        t.start()
    return {"threads": threads, "events": events, "start": start, "cpu0": cpu0}


def flood_result(f: dict, window: tuple[float, float]) -> dict:
    for t in f["threads"]:
        t.join(30)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    events = [e for per in f["events"] for e in per]
    lo, hi = window
    inside = [e for e in events if lo <= e[0] <= hi]
    secs = max(hi - lo, 1e-9)
    statuses: dict[str, int] = {}
    for _t, status, _r in events:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"sent": len(events), "statuses": statuses,
            "sent_per_s": len(inside) / secs,
            "accepted_per_s": sum(1 for e in inside if 200 <= e[1] < 300) / secs,
            "limited_per_s": sum(1 for e in inside if e[1] == 429) / secs,
            "other_errors": sum(1 for e in events if e[1] != 429 and not 200 <= e[1] < 300),
            "retry_after_missing": sum(1 for e in events if not e[2]),
            # the bench process's CPU while flooding (its own threads; wrk is a child process)
            "client_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (f["cpu0"].ru_utime + f["cpu0"].ru_stime)}


def measure_b(args, spec, port: int, token: str, tmpdir: str, use_wrk: bool, pid: int) -> dict:
    cpu0 = (time.perf_counter(), run.process_tree_ticks(pid))
    if use_wrk:
        r = run.run_wrk(spec, port, args.seconds, args.concurrency, args.wrk_threads, token, tmpdir, "rl-get")
    else:
        r = run.run_python(spec, port, args.seconds, args.concurrency, token)
    r["server_cpu_cores"] = ((run.process_tree_ticks(pid) - cpu0[1]) / os.sysconf("SC_CLK_TCK")
                             / (time.perf_counter() - cpu0[0]))
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sqlite", default=DEFAULT_DB, metavar="FILE", help=f"the database file ({DEFAULT_DB})")
    ap.add_argument("--users", type=int, default=10_000, help="users of tenant B (seeded once, reused)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=16, help="B's connections")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto", help="B's load generator")
    ap.add_argument("--workers", type=int, default=min(8, 2 * (os.cpu_count() or 1)))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--a-limit", type=int, default=50, help="tenant A's limit, requests/s (burst the same)")
    ap.add_argument("--a-factor", type=float, default=4.0, help="A sends this many times its limit")
    ap.add_argument("--a-connections", type=int, default=4)
    ap.add_argument("--server-table", action="store_true",
                    help="leave the shared table to `serve` (default: the bench makes one and names it in "
                         f"{ENV_FILE}, so the limit is shared by the workers whatever serve does)")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    if min(args.users, args.runs, args.seconds, args.concurrency, args.a_limit, args.a_connections) < 1:
        ap.error("--users, --runs, --seconds, --concurrency, --a-limit and --a-connections must be positive")
    use_wrk = args.engine == "wrk" or (args.engine == "auto" and shutil.which("wrk"))
    if args.engine == "wrk" and not shutil.which("wrk"):
        ap.error("wrk is not on PATH")
    url = "sqlite:///" + os.path.abspath(args.sqlite)
    t0 = time.time()
    log(f"=== rate limits: {url}")
    marker = seed.ensure_database(url, args.users, log)
    rows = seed.seeded_users(url, marker["tenant_id"])
    token_b = seed.new_token(url, marker["tenant_id"])
    spec_b = run.build_specs(rows, args.users)["get"]
    a_id, token_a = tenant_a(url)
    a_paths = [f"{run.BASE}/Users/{i}" for i in seed.add_spare_users(url, a_id, A_USERS, "rl")]
    log("  " + cli(url, "tenant", "rate-limit", TENANT_A, "--per-second", str(args.a_limit),
                   "--burst", str(args.a_limit), "--token-percent", "100"))
    log("  " + cli(url, "tenant", "rate-limit", seed.TENANT, "--per-second", "1000000", "--burst", "1000000",
                   "--token-percent", "100"))
    a_rate = args.a_factor * args.a_limit
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="scim-bench-rl-") as tmpdir:
        def on_signal(signum, _frame):
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, on_signal)
        saved_env = os.environ.get(ENV_FILE)
        if not args.server_table:  # the server's workers create it on their first request
            os.environ[ENV_FILE] = os.path.join(tmpdir, "ratelimit-buckets")
        try:
            server = run.Server(url, args.workers, args.threads, run.BASE, tmpdir)
        finally:
            if saved_env is None:
                os.environ.pop(ENV_FILE, None)
            else:
                os.environ[ENV_FILE] = saved_env
        log(f"  server pid {server.proc.pid} on port {server.port}: --workers {args.workers} --threads {args.threads}; "
            f"table {'from serve' if args.server_table else 'made by the bench'}")
        try:
            status, _data, _ms = run.request(server.port, "GET", spec_b.paths[0], token_b)
            status_a, _data, _ms = run.request(server.port, "GET", a_paths[0], token_a)
            if status != 200 or status_a != 200:
                raise RuntimeError(f"probe: B {status}, A {status_a}")
            (run.run_wrk(spec_b, server.port, 1, args.concurrency, args.wrk_threads, token_b, tmpdir, "rl-get")
             if use_wrk else run.run_python(spec_b, server.port, 1, args.concurrency, token_b))  # warm-up
            for rnd in range(args.runs):
                log(f"  -- round {rnd + 1}/{args.runs}")
                out: dict = {"round": rnd}
                for phase in (("alone", "flood") if rnd % 2 == 0 else ("flood", "alone")):
                    if phase == "alone":
                        out["alone"] = measure_b(args, spec_b, server.port, token_b, tmpdir, use_wrk, server.proc.pid)
                        log(f"     B alone            {out['alone']['rps']:8.1f} req/s  p50 {out['alone']['p50_ms']:6.2f} ms"
                            f"  errors {out['alone']['errors']}  server CPU {out['alone']['server_cpu_cores']:.2f} cores")
                        continue
                    # A floods from 1 s before B's measurement (its burst spent) to its end
                    f = flood(server.port, token_a, a_paths, a_rate, args.seconds + 1.5, args.a_connections)
                    time.sleep(max(0.0, f["start"] + 1.0 - time.perf_counter()))
                    lo = time.perf_counter()
                    b = measure_b(args, spec_b, server.port, token_b, tmpdir, use_wrk, server.proc.pid)
                    hi = time.perf_counter()
                    a = flood_result(f, (lo, min(hi, f["start"] + args.seconds + 1.5)))
                    out["flood"], out["a"] = b, a
                    log(f"     B with A flooding  {b['rps']:8.1f} req/s  p50 {b['p50_ms']:6.2f} ms  errors {b['errors']}"
                        f"  server CPU {b['server_cpu_cores']:.2f} cores")
                    log(f"     A: sent {a['sent_per_s']:.0f} req/s, accepted {a['accepted_per_s']:.1f} req/s, 429 "
                        f"{a['limited_per_s']:.0f} req/s; statuses {a['statuses']}; Retry-After missing "
                        f"{a['retry_after_missing']}; client CPU {a['client_cpu_s']:.2f} s")
                out["ratio"] = out["flood"]["rps"] / out["alone"]["rps"] if out["alone"]["rps"] else None
                out["loadavg_1min"] = os.getloadavg()[0]  # other work on the machine moves the ratio
                log(f"     ratio B with A / B alone: {out['ratio']:.3f}  (load average {out['loadavg_1min']:.1f}, "
                    f"{os.cpu_count()} cores)")
                rounds.append(out)
        finally:
            server.stop()
    ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
    accepted = [r["a"]["accepted_per_s"] for r in rounds]
    summary = {
        "b_alone_rps": run.median([r["alone"]["rps"] for r in rounds]),
        "b_flood_rps": run.median([r["flood"]["rps"] for r in rounds]),
        "ratio": run.median(ratios), "ratio_per_round": ratios, "target": f">= {TARGET}",
        "pass": bool(ratios) and run.median(ratios) >= TARGET,
        "a_limit": args.a_limit, "a_sent_rps": run.median([r["a"]["sent_per_s"] for r in rounds]),
        "a_accepted_rps": run.median(accepted), "a_accepted_per_round": accepted,
        # counted across workers: A gets its limit (a little more while wrk's last second runs), not workers x it
        "shared_across_workers": bool(accepted) and run.median(accepted) < 1.5 * args.a_limit,
        "a_errors": sum(r["a"]["other_errors"] + r["a"]["retry_after_missing"] for r in rounds),
        "b_errors": sum(r["alone"]["errors"] + r["flood"]["errors"] for r in rounds),
    }
    log("\n" + "=" * 100)
    log(f"rate limits: {args.runs} round(s) x {args.seconds}s; B: {args.users} users, {args.concurrency} connections "
        f"({'wrk' if use_wrk else 'python'}); A: limit {args.a_limit} req/s, sending {a_rate:g} req/s; server "
        f"--workers {args.workers} --threads {args.threads}")
    log(f"  B alone             {summary['b_alone_rps']:9.1f} req/s (median)")
    log(f"  B with A flooding   {summary['b_flood_rps']:9.1f} req/s (median)")
    log(f"  ratio               {summary['ratio']:9.3f}  target {summary['target']}  "
        f"{'PASS' if summary['pass'] else 'FAIL'}  per round " + ", ".join(f"{x:.3f}" for x in ratios))
    log(f"  A accepted          {summary['a_accepted_rps']:9.1f} req/s of {summary['a_sent_rps']:.0f} sent (limit "
        f"{args.a_limit}, {args.workers} workers): "
        f"{'counted across workers' if summary['shared_across_workers'] else 'NOT shared'}"
        f"; errors other than 429 or without Retry-After: {summary['a_errors']}; B errors: {summary['b_errors']}")
    if args.json:
        run.write_json(args.json, {"config": vars(args), "machine": {"nproc": os.cpu_count()}, "summary": summary,
                                   "rounds": rounds, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
                                   "server_code": run.code_fingerprint()}, log)
    log(f"wall time {time.time() - t0:.0f}s")
    return 0 if summary["pass"] and summary["shared_across_workers"] and not summary["a_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
