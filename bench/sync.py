#!/usr/bin/env python3
"""Benchmark of the file sync (``scim-server sync``), side by side with ``POST /Users``.

For each database (SQLite and/or PostgreSQL), in each round:

1. a fresh tenant (``scim-server tenant create``);
2. (a) the first full sync of a generated payroll file (N people) and units file (5,000 units,
   ten levels), (b) the same files with 1 % of the people changed (a new title or e-mail),
   (c) the changed files again (idempotent: nothing to update). Each is ``scim-server sync ...
   --json`` run as a subprocess with SCIM_DATABASE_URL set; wall time, people/s (people in the
   file / wall time), the child's peak RSS and CPU time (``os.wait4``'s rusage of that process);
3. ``POST /Users`` req/s of the real server (``scim-server serve``, gunicorn, started and
   stopped as bench/run.py does) on the same database, against a separate tenant, so that the
   ratios people/s / POST req/s of the same round can be reported.

The files are generated deterministically from ``--seed`` (future start and end dates are
relative to today). Only 127.0.0.1 is contacted; every process the bench starts is stopped by
its id, also on errors and Ctrl-C.

    python bench/sync.py --sqlite --pg-dsn postgresql://postgres@127.0.0.1:5432/scim_bench_sync --json out.json
    python bench/sync.py --users 10000 --cprofile /tmp/sync-prof --no-post     # where the time goes
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import run as runbench  # noqa: E402  (bench/run.py: Server, Spec, run_wrk, run_python, request, ...)

DEFAULT_SQLITE = os.path.join(tempfile.gettempdir(), "scim-bench-sync.db")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/scim_bench_sync"
#: databases other people use: never touched (any scim_bench* but scim_bench_sync* too)
FORBIDDEN_DBS = {"test", "scim_me", "scim_h1", "scim_h2", "scim_h3", "scim_h4", "postgres", "template0",
                 "template1"}
TENANT_PREFIX = "bench-sync-"
POST_TENANT = "bench-sync-post"
SOURCE = "payroll"
PHASES = ("first", "changed", "again")
PHASE_TITLES = {"first": "(a) first full sync", "changed": "(b) 1 % changed", "again": "(c) same files again"}
#: targets of issue 13: people/s / POST req/s of the same run; peak RSS in MB
TARGETS = {"first": 8.0, "changed": 50.0}
RSS_TARGET_MB = 500.0

USER_COLUMNS = ("externalId", "userName", "givenName", "familyName", "displayName", "email", "mobile", "phone",
                "title", "streetAddress", "postalCode", "locality", "country", "ean", "employeeNumber", "userType",
                "orgUnit", "managerExternalId", "startDate", "endDate")
UNIT_COLUMNS = ("unitCode", "displayName", "parentUnitCode", "unitType", "ean")
LEVEL_SIZES = (1, 5, 15, 45, 120, 300, 600, 1000, 1300, 1614)   # 5,000 units, ten levels
HEAD_LEVELS = 7   # units of levels 1..7 have a head (a manager); staff work in levels 8..10
UNIT_TYPES = ("Kommune", "Forvaltning", "Område", "Afdeling", "Institution", "Sektion", "Team", "Gruppe",
              "Enhed", "Hold")
HEAD_TITLES = ("Kommunaldirektør", "Direktør", "Områdechef", "Afdelingschef", "Institutionsleder",
               "Sektionsleder", "Teamleder")
TITLES = ("Sygeplejerske", "Social- og sundhedshjælper", "Social- og sundhedsassistent", "Pædagog",
          "Pædagogmedhjælper", "Lærer", "Sagsbehandler", "Socialrådgiver", "Ergoterapeut", "Fysioterapeut",
          "Konsulent", "Specialkonsulent", "Fuldmægtig", "Kontorelev", "Tandplejer", "Rengøringsassistent",
          "Vejmand", "Ingeniør", "Bibliotekar", "Jurist", "Dagplejer", "Køkkenleder", "Portør", "Økonoma")
GIVEN = ("Anne", "Mette", "Hanne", "Susanne", "Lene", "Maria", "Marianne", "Camilla", "Louise", "Charlotte",
         "Peter", "Michael", "Lars", "Jens", "Thomas", "Henrik", "Søren", "Christian", "Martin", "Jørgen", "Niels",
         "Rasmus", "Mads", "Frederik", "Ida", "Freja", "Emma", "Sofie", "Åse", "Bjørn", "Kirsten", "Birgitte")
FAMILY = ("Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen", "Rasmussen",
          "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Christiansen", "Poulsen", "Johansen",
          "Møller", "Mortensen", "Kjærgaard", "Østergaard", "Bødker", "Lauridsen", "Dahl", "Holm", "Vestergaard")
STREETS = ("Søndergade", "Vestergade", "Nørregade", "Skolevej", "Kirkevej", "Bøgevej", "Ågade", "Møllevej",
           "Rådhuspladsen", "Strandvejen", "Enghavevej", "Præstevænget")
TOWNS = (("8000", "Aarhus C"), ("8200", "Aarhus N"), ("8210", "Aarhus V"), ("8260", "Viby J"), ("8270", "Højbjerg"),
         ("8300", "Odder"), ("8600", "Silkeborg"), ("8700", "Horsens"), ("7100", "Vejle"), ("8900", "Randers C"))
DOMAIN = "bench-kommune.dk"
_ASCII = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"})


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(values):
    return runbench.median(values)


def gln(body9: int) -> str:
    """A valid 13-digit GLN/EAN: 579 (Denmark), nine digits, the GS1 check digit."""
    from stdnum import ean
    body = f"579{body9:09d}"
    return body + ean.calc_check_digit(body)


# ------------------------------------------------------------------------------ the files
def level_sizes(units: int) -> list[int]:
    """Ten levels of units, shaped like LEVEL_SIZES, summing to ``units``."""
    if units == sum(LEVEL_SIZES):
        return list(LEVEL_SIZES)
    scale = units / sum(LEVEL_SIZES)
    sizes = [max(1, round(n * scale)) for n in LEVEL_SIZES]
    sizes[-1] += units - sum(sizes)
    if sizes[-1] < 1:
        raise SystemExit(f"--units {units} is too small for ten levels")
    return sizes


def generate(users: int, units: int, seed: int, workdir: str, changed_share: float = 0.01) -> dict:
    """Write units.csv, users.csv and users-changed.csv (UTF-8, ';', CRLF) into ``workdir``.

    Units: ten levels (1, 5, 15, ... 1,614 for 5,000), each unit's children a contiguous even share
    of the next level; valid GLNs on the kommune, the forvaltninger, every third level-5 unit and
    one unit in 20 elsewhere; the file in shuffled order (children before their parents too).
    People: every unit of levels 1..7 has a head, managed by the parent unit's head; the others
    work in a unit of levels 8..10 and are managed by the head of its level-7 ancestor (a manager
    with ~170 reports). 10 % have two or three employments (one row each, different orgUnit and
    title); rows are shuffled, so a person's rows are apart and many people come before their
    manager. Start dates in the past (1990-2025), 0.5 % future starters, some fixed-term extra
    employments ending in the future. ``users-changed.csv``: the same rows with 1 % of the people
    changed, half a new e-mail (all their rows), half a new title (their first row)."""
    rnd = random.Random(seed)
    today = dt.date.today()
    sizes = level_sizes(units)
    # --- units
    unit_level: list[int] = []
    unit_parent: list[int | None] = []
    levels: list[list[int]] = []
    for level, n in enumerate(sizes, 1):
        prev = levels[-1] if levels else None
        ids = []
        for i in range(n):
            idx = len(unit_level)
            unit_level.append(level)
            unit_parent.append(None if prev is None else prev[i * len(prev) // n])
            ids.append(idx)
        levels.append(ids)
    codes = [f"U{unit_level[u]:02d}-{u:05d}" for u in range(units)]
    unit_rows, eans = [], 0
    for u in range(units):
        level = unit_level[u]
        pos = u - levels[level - 1][0]
        has_ean = level <= 2 or (level == 5 and pos % 3 == 0) or (level > 2 and level != 5 and u % 20 == 0)
        eans += has_ean
        kind = UNIT_TYPES[level - 1]
        unit_rows.append([codes[u], f"{kind} {pos + 1}" if level > 1 else "Bench Kommune",
                          codes[unit_parent[u]] if unit_parent[u] is not None else "", kind,
                          gln(100_000_000 + u) if has_ean else ""])
    rnd.shuffle(unit_rows)
    # --- people: roles 0..H-1 are the heads (of the units of levels 1..head_levels), the rest staff
    head_levels = HEAD_LEVELS
    while head_levels > 1 and sum(sizes[:head_levels]) > users // 5:
        head_levels -= 1
    head_units = [u for lvl in levels[:head_levels] for u in lvl]
    if len(head_units) >= users:
        raise SystemExit(f"--users {users} is too small for {units} units")
    head_of = {u: r for r, u in enumerate(head_units)}
    staff_units = [u for lvl in levels[head_levels:] for u in lvl] or head_units

    def nearest_head(u: int | None) -> int | None:
        while u is not None and u not in head_of:
            u = unit_parent[u]
        return None if u is None else head_of[u]

    numbers = list(range(1, users + 1))
    rnd.shuffle(numbers)   # role -> person number (externalId), unrelated to the role
    people_rows: list[tuple[int, list[str]]] = []   # (role, row)
    multi = future = fixed_term = person_eans = people_with_end = 0

    def day(d: dt.date) -> str:
        return d.isoformat()

    past0, past_days = dt.date(1990, 1, 1), (dt.date(2025, 12, 31) - dt.date(1990, 1, 1)).days
    ext_of = [f"{100000 + numbers[r]}" for r in range(users)]
    for role in range(users):
        number = numbers[role]
        given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
        user_name = f"{given}.{family}.{number}@{DOMAIN}".translate(_ASCII).lower()
        street, (postal, town) = f"{rnd.choice(STREETS)} {rnd.randint(1, 120)}", rnd.choice(TOWNS)
        mobile = f"+45 {rnd.randint(20_000_000, 31_999_999)}" if rnd.random() < 0.9 else ""
        phone = f"+45 87{rnd.randint(0, 999_999):06d}" if rnd.random() < 0.6 else ""
        ean = gln(200_000_000 + number) if rnd.random() < 0.02 else ""
        person_eans += bool(ean)
        if role < len(head_units):
            unit = head_units[role]
            manager = None if unit_parent[unit] is None else nearest_head(unit_parent[unit])
            title = HEAD_TITLES[min(unit_level[unit], len(HEAD_TITLES)) - 1]
        else:
            unit = rnd.choice(staff_units)
            manager = nearest_head(unit) if unit in head_of else nearest_head(unit_parent[unit])
            title = rnd.choice(TITLES)
        jobs = [(unit, title)]
        if role >= len(head_units) and rnd.random() < 0.10:
            multi += 1
            while len(jobs) < (2 if rnd.random() < 0.7 else 3):
                extra = rnd.choice(staff_units)
                if all(extra != j[0] for j in jobs):
                    jobs.append((extra, rnd.choice(TITLES)))
        person = [ext_of[role], user_name, given, family, f"{given} {family}", user_name, mobile, phone]
        tail = [street, postal, town, "DK", ean, str(number), "Employee"]
        manager_ext = ext_of[manager] if manager is not None else ""
        fixed_before = fixed_term
        for k, (u, job_title) in enumerate(jobs):
            end = ""
            if k == 0 and role >= len(head_units) and rnd.random() < 0.005:
                start = today + dt.timedelta(days=rnd.randint(7, 120))   # a future starter
                future += 1
            else:
                start = past0 + dt.timedelta(days=rnd.randrange(past_days))
                if k > 0 and rnd.random() < 0.2:   # a fixed-term extra employment
                    end = day(today + dt.timedelta(days=rnd.randint(30, 700)))
                    fixed_term += 1
            people_rows.append((role, person[:8] + [job_title] + tail + [codes[u], manager_ext, day(start), end]))
        people_with_end += fixed_term > fixed_before
    rnd.shuffle(people_rows)
    # where each person first appears, and how many come before their manager
    first_at: dict[int, int] = {}
    for i, (role, _) in enumerate(people_rows):
        first_at.setdefault(role, i)
    ext_role = {ext_of[r]: r for r in range(users)}
    before_manager = sum(1 for role, i in first_at.items()
                         if people_rows[i][1][17] and first_at[ext_role[people_rows[i][1][17]]] > i)
    # --- 1 % changed: half a new e-mail (every row of the person), half a new title (first row)
    k = max(1, round(users * changed_share))
    changed_roles = rnd.sample(range(users), k)
    new_email = {r for i, r in enumerate(changed_roles) if i % 2 == 0}
    new_title = {r: first_at[r] for i, r in enumerate(changed_roles) if i % 2 == 1}
    changed_rows = []
    for i, (role, row) in enumerate(people_rows):
        if role in new_email:
            row = row[:]
            row[5] = row[5].replace("@", ".ny@")
        elif new_title.get(role) == i:
            row = row[:]
            row[8] = next(t for t in rnd.sample(TITLES, 3) if t != row[8])
        changed_rows.append(row)

    def write(name: str, header, rows) -> str:
        path = os.path.join(workdir, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter=";", lineterminator="\r\n")
            w.writerow(header)
            w.writerows(rows)
        return path

    files = {"units": write("units.csv", UNIT_COLUMNS, unit_rows),
             "users": write("users.csv", USER_COLUMNS, (r for _, r in people_rows)),
             "users_changed": write("users-changed.csv", USER_COLUMNS, changed_rows)}
    managers = {row[17] for _, row in people_rows if row[17]}
    return {
        "files": files, "bytes": {k: os.path.getsize(v) for k, v in files.items()},
        "seed": seed, "today": today.isoformat(), "people": users, "user_rows": len(people_rows),
        "units": units, "unit_levels": sizes, "units_with_ean": eans, "head_levels": head_levels,
        "people_with_several_employments": multi, "managers": len(managers),
        "max_reports": max(_count_reports(people_rows).values()) if managers else 0,
        "people_before_their_manager": before_manager, "future_starters": future,
        "fixed_term_employments": fixed_term, "people_with_an_end_date": people_with_end,
        "people_with_ean": person_eans,
        "changed_people": k, "changed_email": len(new_email), "changed_title": len(new_title),
    }


def _count_reports(people_rows) -> dict[str, int]:
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for _, row in people_rows:
        if row[0] in seen:
            continue
        seen.add(row[0])
        if row[17]:
            counts[row[17]] = counts.get(row[17], 0) + 1
    return counts


# -------------------------------------------------------------------------- the databases
def check_pg_dsn(dsn: str) -> None:
    parts = urllib.parse.urlparse(dsn)
    name = parts.path.lstrip("/")
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("the bench only talks to 127.0.0.1")
    if not name or name in FORBIDDEN_DBS or (name.startswith("scim_bench") and not name.startswith("scim_bench_sync")):
        raise SystemExit(f"refusing database {name!r}: it belongs to others; use a dedicated one such as "
                         "scim_bench_sync")


def fresh_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    # the server's write-lock file, if it keeps one beside the database
    for name in os.listdir(os.path.dirname(path) or "."):
        if name.startswith(os.path.basename(path) + ".") and name.endswith(".lock"):
            os.remove(os.path.join(os.path.dirname(path) or ".", name))


def drop_bench_tenants(url: str, like: str = TENANT_PREFIX + "%") -> list[str]:
    """Delete this bench's tenants (bench-sync-*, or those ``like`` names) with everything of
    theirs (cascade), then VACUUM ANALYZE on PostgreSQL, so every round starts from the same
    database."""
    from sqlalchemy import delete, select, update

    from scim_server.storage.db import make_engine
    from scim_server.storage.migrate import upgrade
    from scim_server.storage.models import Group, Tenant
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(Tenant.id, Tenant.name).where(Tenant.name.like(like))).all()
            ids = [r.id for r in rows]
            if ids:
                # groups.parent_id is ON DELETE RESTRICT: unlink the unit tree before the cascade
                conn.execute(update(Group).where(Group.tenant_id.in_(ids)).values(parent_id=None))
                conn.execute(delete(Tenant).where(Tenant.id.in_(ids)))
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        return [r.name for r in rows]
    finally:
        engine.dispose()


def scim_cli() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "scim-server")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "scim_server.cli"]


def cli(url: str, *args: str) -> str:
    env = dict(os.environ, SCIM_DATABASE_URL=url)
    out = subprocess.run(scim_cli() + list(args), env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"scim-server {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout.strip()


# ---------------------------------------------------------------------------------- a sync
def run_sync(url: str, tenant: str, users: str, units: str, logdir: str, label: str, timeout: float,
             profile: str | None = None) -> dict:
    """One ``scim-server sync ... --json`` as a child process; its wall time, peak RSS and CPU."""
    cmd = scim_cli() + ["sync", "--tenant", tenant, "--source", SOURCE, "--users", users, "--units", units, "--json"]
    if profile:
        if cmd[0].endswith("scim-server"):
            cmd = [sys.executable, "-m", "cProfile", "-o", profile] + cmd
        else:
            cmd = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "scim_server.cli"] + cmd[3:]
    env = dict(os.environ, SCIM_DATABASE_URL=url, SCIM_BASE_PATH=runbench.BASE)
    out_path, err_path = os.path.join(logdir, f"{label}.out"), os.path.join(logdir, f"{label}.err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True)
        timed_out = []

        def kill() -> None:
            timed_out.append(True)
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the session we created, by its id
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, "rb") as f:
        stdout = f.read().decode("utf-8", "replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "replace")
    result = None
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except ValueError:
                pass
    if result is None:
        raise RuntimeError(f"sync {label} gave no JSON (exit {proc.returncode}"
                           f"{', killed after ' + str(timeout) + ' s' if timed_out else ''}): "
                           f"{stdout[-1500:]} {stderr[-3000:]}")
    counts = {k: result.get(k) for k in ("created", "updated", "unchanged", "deactivated", "conflicts", "errors")}
    return {"exit": proc.returncode, "status": result.get("status"), "run_id": result.get("runId"),
            "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_user_s": usage.ru_utime,
            "cpu_sys_s": usage.ru_stime, "counts": counts, "message": result.get("message"),
            "row_errors": (result.get("rowErrors") or [])[:20], "conflicts": (result.get("conflictList") or [])[:20]}


def floor_of_first_sync(url: str, tenant: str, people: int, users_file: str) -> dict:
    """The rows the first sync just wrote, deleted and written again by bare multi-row INSERTs
    (and COPY on PostgreSQL), and the users file read and validated, in a child process:
    ``bench/floor.py sync``. What no code that keeps these rows and checks its input can beat."""
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.py"),
           "sync", "--url", url, "--tenant", tenant, "--users-file", users_file]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"bench/floor.py sync failed: {done.stderr[-1500:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r["python_s"] = r["read_s"] + r["validate_s"]
    for how in ("insert", "copy"):
        if r.get(f"{how}_s"):
            r[f"{how}_people_per_s"] = people / r[f"{how}_s"]
            r[f"{how}_python_s"] = r[f"{how}_s"] + r["python_s"]
            r[f"{how}_python_people_per_s"] = people / r[f"{how}_python_s"]
    tables = ", ".join(f"{k} {v:.1f}" for k, v in r["insert_tables_s"].items())
    log(f"    (f) floor: the same rows  {r['insert_s']:8.1f} s  {r['insert_people_per_s']:8.0f} people/s by multi-row "
        f"INSERTs of {1000} ({tables})")
    if r.get("copy_s"):
        tables = ", ".join(f"{k} {v:.1f}" for k, v in r["copy_tables_s"].items())
        log(f"        by COPY                {r['copy_s']:8.1f} s  {r['copy_people_per_s']:8.0f} people/s ({tables})")
    log(f"        reading the file {r['read_s']:.1f} s and validating its people {r['validate_s']:.1f} s: "
        + ", ".join(f"with {how.upper()} {r[how + '_python_s']:.1f} s, {r[how + '_python_people_per_s']:.0f} people/s"
                    for how in ("insert", "copy") if r.get(how + "_s")))
    return r


def expected_ok(phase: str, counts: dict, people: int, units: int, changed: int) -> tuple[bool, str]:
    """Whether a phase's counts are what the files imply."""
    c = {k: counts.get(k) or 0 for k in counts}
    if c["errors"] or c["conflicts"] or c["deactivated"]:
        return False, f"errors {c['errors']}, conflicts {c['conflicts']}, deactivated {c['deactivated']}"
    want = {"first": (people + units, 0), "changed": (0, changed), "again": (0, 0)}[phase]
    if (c["created"], c["updated"]) != want:
        return False, f"created {c['created']} updated {c['updated']}, expected {want[0]} and {want[1]}"
    return True, ""


# ------------------------------------------------------------------------------ POST /Users
def post_users(url: str, args, tmpdir: str, token: str, round_no: int) -> dict:
    """``POST /Users`` req/s of the real server on this database (tenant bench-sync-post): the
    `create` case of bench/run.py (same bodies, wrk or its Python client), 1 s warm-up."""
    spec = runbench.Spec("POST", [f"{runbench.BASE}/Users"], "create")
    # the server's per-tenant rate limit (SCIM_RATE_LIMIT_PER_SECOND, 200 by default) would measure
    # itself, not a create: off for this server (the variable is inherited by Server's process)
    os.environ["SCIM_RATE_LIMIT_PER_SECOND"] = "0"
    use_wrk = args.engine == "wrk" or (args.engine == "auto" and shutil.which("wrk"))
    server = runbench.Server(url, args.workers, args.threads, runbench.BASE, tmpdir)
    log(f"    server pid {server.proc.pid} on 127.0.0.1:{server.port} ({args.workers} workers x {args.threads} threads)")
    try:
        body = runbench.python_body(spec, f"probe{round_no}", 0, 1)
        status, data, _ = runbench.request(server.port, "POST", spec.paths[0], token, body)
        probe_ok = status == 201
        if not probe_ok:
            log(f"    probe POST /Users: status {status}: {data[:300]!r}")
        load_before = os.getloadavg()[0]
        if use_wrk:
            runbench.run_wrk(spec, server.port, 1, args.concurrency, args.wrk_threads, token, tmpdir, "sync-post")
            cpu0 = (time.perf_counter(), runbench.process_tree_ticks(server.proc.pid))
            r = runbench.run_wrk(spec, server.port, args.seconds, args.concurrency, args.wrk_threads, token, tmpdir,
                                 "sync-post")
        else:
            runbench.run_python(spec, server.port, 1, args.concurrency, token)
            cpu0 = (time.perf_counter(), runbench.process_tree_ticks(server.proc.pid))
            r = runbench.run_python(spec, server.port, args.seconds, args.concurrency, token)
        # the server's own CPU (gunicorn master and workers) per request: less moved by other work
        # on the machine than req/s
        cpu_s = (runbench.process_tree_ticks(server.proc.pid) - cpu0[1]) / os.sysconf("SC_CLK_TCK")
        r["server_cpu_cores"] = cpu_s / (time.perf_counter() - cpu0[0])
        r["server_cpu_ms_per_request"] = cpu_s * 1000 / r["requests"] if r["requests"] else None
        r["loadavg_1min"] = [load_before, os.getloadavg()[0]]
        r["probe_ok"] = probe_ok
        # a run with failed requests does not measure what a create costs: no ratio from it
        r["valid"] = probe_ok and r["requests"] > 0 and r["errors"] <= 0.01 * r["requests"]
        if r["errors"]:
            r["server_log_tail"] = server.tail()[-2000:]
        return r
    finally:
        server.stop()


# --------------------------------------------------------------------------------- profile
def profile_summary(path: str, top: int = 25) -> tuple[list[dict], str]:
    """The costliest functions of a cProfile run (by own time), and the pstats text of both sorts."""
    stats = pstats.Stats(path)
    buf = io.StringIO()
    for key in ("tottime", "cumulative"):
        pstats.Stats(path, stream=buf).sort_stats(key).print_stats(40)
    total = stats.total_tt
    own, ours = [], []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rel = file.replace(ROOT + "/", "").replace(sys.prefix + "/", "")
        row = {"function": f"{rel}:{line}({func})", "calls": nc, "tottime_s": tt, "cumtime_s": ct,
               "own_share": tt / total if total else None, "cum_share": ct / total if total else None}
        own.append(row)
        if rel.startswith("scim_server/"):
            ours.append(row)
    return {"total_s": total,
            "by_own_time": sorted(own, key=lambda r: -r["tottime_s"])[:top],
            "ours_by_cumulative": sorted(ours, key=lambda r: -r["cumtime_s"])[:top]}, buf.getvalue()


# ------------------------------------------------------------------------------ one database
def bench_database(db: str, url: str, args, gen: dict, tmpdir: str) -> dict:
    log(f"=== {db}: {url}")
    res: dict = {"url": url, "rounds": []}
    files = gen["files"]
    for rnd in range(args.rounds):
        log(f"  -- round {rnd + 1}/{args.rounds}")
        if db == "sqlite":
            fresh_sqlite(url[len("sqlite:///"):])
        dropped = drop_bench_tenants(url)
        if dropped:
            log(f"    dropped earlier tenants {', '.join(dropped)}")
        tenant = f"{TENANT_PREFIX}r{rnd + 1}"
        cli(url, "tenant", "create", tenant)
        one: dict = {"round": rnd + 1, "tenant": tenant, "code": runbench.code_fingerprint(), "phases": {}}
        for phase, users in (("first", files["users"]), ("changed", files["users_changed"]),
                             ("again", files["users_changed"])):
            label = f"{db}-r{rnd + 1}-{phase}"
            prof = os.path.join(args.cprofile, f"{label}.prof") if args.cprofile else None
            load_before = os.getloadavg()[0]
            r = run_sync(url, tenant, users, files["units"], tmpdir, label, args.sync_timeout, prof)
            r["loadavg_1min"] = [load_before, os.getloadavg()[0]]   # other work on the machine, before and after
            r["people_per_s"] = gen["people"] / r["wall_s"]
            r["rows_per_s"] = gen["user_rows"] / r["wall_s"]
            r["ok"], r["detail"] = expected_ok(phase, r["counts"], gen["people"], gen["units"], gen["changed_people"])
            if prof:
                r["profile"], text = profile_summary(prof)
                with open(prof[:-5] + ".txt", "w") as f:
                    f.write(text)
            one["phases"][phase] = r
            c = r["counts"]
            log(f"    {PHASE_TITLES[phase]:22s} {r['wall_s']:8.1f} s  {r['people_per_s']:8.0f} people/s  "
                f"peak RSS {r['peak_rss_mb']:6.0f} MB  CPU {r['cpu_user_s'] + r['cpu_sys_s']:7.1f} s  load "
                f"{r['loadavg_1min'][0]:.1f}/{r['loadavg_1min'][1]:.1f}  exit {r['exit']}  "
                + ", ".join(f"{k} {v}" for k, v in c.items())
                + ("" if r["ok"] else f"  NOT AS EXPECTED: {r['detail']}"))
            for e in r["row_errors"][:3]:
                log(f"      row error: {e}")
            if phase == "first" and args.floor:
                one["floor"] = floor_of_first_sync(url, tenant, gen["people"], files["users"])
            if prof:
                log(f"      profile: {r['profile']['total_s']:.1f} s in all; scim_server's functions by cumulative time:")
                for p in r["profile"]["ours_by_cumulative"][:15]:
                    log(f"      {p['cumtime_s']:7.2f} s cum ({p['cum_share']:4.0%}) {p['tottime_s']:6.2f} s own "
                        f"{p['calls']:>8} calls  {p['function']}")
                log("      by own time, any module:")
                for p in r["profile"]["by_own_time"][:10]:
                    log(f"      {p['tottime_s']:7.2f} s own ({p['own_share']:4.0%}) {p['cumtime_s']:6.2f} s cum "
                        f"{p['calls']:>8} calls  {p['function']}")
        if not args.no_post:
            try:
                cli(url, "tenant", "create", POST_TENANT)
            except RuntimeError:
                pass   # kept from an earlier round
            token = cli(url, "token", "create", "--tenant", POST_TENANT, "--description", "bench/sync.py").splitlines()[-1]
            p = post_users(url, args, tmpdir, token, rnd)
            one["post"] = p
            log(f"    POST /Users            {p['rps']:8.1f} req/s  p50 {p['p50_ms']:.2f} ms  p95 {p['p95_ms']:.2f} ms  "
                f"errors {p['errors']}  ({p['engine']}, {args.concurrency} connections, {args.seconds} s)")
            if not p["valid"]:
                log(f"    POST run NOT VALID (probe {'ok' if p['probe_ok'] else 'failed'}, {p['errors']} errors of "
                    f"{p['requests']} requests): no ratios from it. Server log:\n{p.get('server_log_tail', '')[-800:]}")
            one["ratios"] = {ph: one["phases"][ph]["people_per_s"] / p["rps"] if p["rps"] and p["valid"] else None
                             for ph in PHASES}
            # not a target: the same ratio by CPU time (the server's CPU per POST over the sync
            # command's CPU per person; neither counts PostgreSQL's own processes)
            one["cpu_ratios"] = {}
            for ph in PHASES:
                r = one["phases"][ph]
                per_person = (r["cpu_user_s"] + r["cpu_sys_s"]) * 1000 / gen["people"]
                one["cpu_ratios"][ph] = (p["server_cpu_ms_per_request"] / per_person
                                         if p.get("server_cpu_ms_per_request") and per_person and p["valid"] else None)
            if "floor" in one:
                fl = one["floor"]
                for how in ("insert", "copy"):
                    if fl.get(f"{how}_people_per_s") and p["rps"] and p["valid"]:
                        one["ratios"][f"floor_{how}"] = fl[f"{how}_people_per_s"] / p["rps"]
                        one["ratios"][f"floor_{how}_python"] = fl[f"{how}_python_people_per_s"] / p["rps"]
            log("    people/s / POST req/s: " + ", ".join(f"{ph} {v:.2f}" for ph, v in one["ratios"].items() if v)
                + f"   (by CPU: server {p['server_cpu_ms_per_request'] or 0:.2f} ms per POST; "
                + ", ".join(f"{ph} {v:.2f}" for ph, v in one["cpu_ratios"].items() if v) + ")")
        res["rounds"].append(one)
    # medians over rounds
    summary: dict = {}
    for phase in PHASES:
        rs = [r["phases"][phase] for r in res["rounds"]]
        summary[phase] = {"wall_s": median([r["wall_s"] for r in rs]),
                          "people_per_s": median([r["people_per_s"] for r in rs]),
                          "peak_rss_mb": median([r["peak_rss_mb"] for r in rs]),
                          "cpu_s": median([r["cpu_user_s"] + r["cpu_sys_s"] for r in rs]),
                          "ratio": median([(r.get("ratios") or {}).get(phase) for r in res["rounds"]]),
                          "cpu_ratio": median([(r.get("cpu_ratios") or {}).get(phase) for r in res["rounds"]]),
                          "ok": all(r["ok"] for r in rs), "counts": rs[-1]["counts"]}
    if args.floor:
        for how in ("insert", "copy"):
            for key in (how, how + "_python"):
                secs = [r["floor"].get(f"{key}_s") for r in res["rounds"] if r.get("floor")]
                if any(x is not None for x in secs):
                    summary[f"floor_{key}"] = {"seconds": median(secs),
                                               "ratio": median([(r.get("ratios") or {}).get(f"floor_{key}")
                                                                for r in res["rounds"]])}
    if not args.no_post:
        summary["post_rps"] = median([r["post"]["rps"] for r in res["rounds"] if r["post"]["valid"]])
        summary["post_errors"] = sum(r["post"]["errors"] for r in res["rounds"])
        summary["post_cpu_ms"] = median([r["post"].get("server_cpu_ms_per_request") for r in res["rounds"]])
    res["summary"] = summary
    return res


# ----------------------------------------------------------------------------------- output
def print_table(results: dict, gen: dict, args) -> None:
    log("")
    print("=" * 110)
    print(f"File sync: {gen['people']:,} people ({gen['user_rows']:,} rows), {gen['units']:,} units in "
          f"{len(gen['unit_levels'])} levels; {args.rounds} round(s) per database"
          + (" (medians)" if args.rounds > 1 else " (one round: no median)")
          + ("; UNDER cProfile: times inflated" if args.cprofile else ""))
    print(f"{'database':11s} {'phase':22s} {'wall s':>8s} {'people/s':>9s} {'x POST':>7s} {'target':>10s} "
          f"{'peak RSS MB':>11s} {'CPU s':>7s} {'x POST by CPU':>13s}  counts")
    for db, res in results.items():
        if "error" in res:
            print(f"{db:11s} FAILED: {res['error']}")
            continue
        s = res["summary"]
        for phase in PHASES:
            p = s[phase]
            target = TARGETS.get(phase)
            ratio = "n/a" if p["ratio"] is None else f"{p['ratio']:.2f}"
            verdict = "" if target is None or p["ratio"] is None else (" ok" if p["ratio"] >= target else " NO")
            counts = ", ".join(f"{k} {v}" for k, v in p["counts"].items() if v)
            cpu_ratio = "n/a" if p["cpu_ratio"] is None else f"{p['cpu_ratio']:.2f}"
            rss_ok = " ok" if p["peak_rss_mb"] <= RSS_TARGET_MB else " NO"
            print(f"{db:11s} {PHASE_TITLES[phase]:22s} {p['wall_s']:8.1f} {p['people_per_s']:9.0f} {ratio:>7s} "
                  f"{(('>= %g' % target) + verdict) if target else '':>10s} {p['peak_rss_mb']:8.0f}{rss_ok} "
                  f"{p['cpu_s']:7.1f} {cpu_ratio:>13s}  {counts}{'' if p['ok'] else '  (NOT AS EXPECTED)'}")
        for key, title, what in (("insert", "(f) rows, INSERT", "the first sync's rows alone, no reading or checking"),
                                 ("copy", "(f) rows, COPY", "the same by COPY"),
                                 ("insert_python", "(f) + read, validate", "the rows, reading the file, validating"),
                                 ("copy_python", "(f) COPY + read, valid.", "the same by COPY")):
            f = s.get(f"floor_{key}")
            if f:
                ratio = "n/a" if f["ratio"] is None else f"{f['ratio']:.2f}"
                verdict = "" if f["ratio"] is None else (" ok" if f["ratio"] >= TARGETS["first"] else " NO")
                print(f"{db:11s} {title:22s} {f['seconds']:8.1f} {gen['people'] / f['seconds']:9.0f} {ratio:>7s} "
                      f"{('>= %g' % TARGETS['first']) + verdict:>10s}  (floor: {what})")
        if "post_rps" in s:
            print(f"{db:11s} {'POST /Users req/s':22s} {'':8s} {s['post_rps'] or 0:9.1f}   (errors {s['post_errors']}; "
                  f"server CPU {s['post_cpu_ms'] or 0:.2f} ms per request)")
    print(f"targets: first sync >= {TARGETS['first']:g} x POST req/s, 1 %-changed >= {TARGETS['changed']:g} x, "
          f"peak RSS <= {RSS_TARGET_MB:g} MB; people/s = people in the file / wall time of the command")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sqlite", nargs="?", const=DEFAULT_SQLITE, default=None, metavar="FILE",
                    help=f"SQLite database file, deleted and recreated (default when no --pg-dsn: {DEFAULT_SQLITE})")
    ap.add_argument("--pg-dsn", nargs="?", const=DEFAULT_PG, default=None,
                    help=f"PostgreSQL database of its own (default {DEFAULT_PG}; created if missing)")
    ap.add_argument("--users", type=int, default=100_000, help="people in the file")
    ap.add_argument("--units", type=int, default=5_000, help="org units (ten levels)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=10, help="length of the POST /Users measurement")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=min(8, 2 * (os.cpu_count() or 1)))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--no-post", action="store_true", help="skip the POST /Users measurement (no ratios)")
    ap.add_argument("--sync-timeout", type=float, default=3 * 3600, help="seconds before a sync is killed")
    ap.add_argument("--cprofile", metavar="DIR", help="run every sync under cProfile; .prof and .txt files in DIR")
    ap.add_argument("--files", metavar="DIR", help="write (and keep) the generated files here (default: a temp dir)")
    ap.add_argument("--floor", action="store_true",
                    help="after each first sync, time its rows alone, copied by bare INSERTs (bench/floor.py)")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    if args.users < 100 or args.units < 10 or args.rounds < 1 or args.seconds < 1:
        ap.error("--users >= 100, --units >= 10, --rounds >= 1, --seconds >= 1")
    if args.engine == "wrk" and not shutil.which("wrk"):
        ap.error("wrk is not on PATH")
    runbench.BASE = (os.environ.get("SCIM_BASE_PATH") or "/scim/v2").rstrip("/")
    dbs: list[tuple[str, str]] = []
    if args.sqlite or not args.pg_dsn:
        dbs.append(("sqlite", "sqlite:///" + os.path.abspath(args.sqlite or DEFAULT_SQLITE)))
    if args.pg_dsn:
        check_pg_dsn(args.pg_dsn)
        runbench.ensure_pg_database(args.pg_dsn)
        dbs.append(("postgresql", args.pg_dsn))
    if args.cprofile:
        os.makedirs(args.cprofile, exist_ok=True)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    t0 = time.time()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="scim-bench-sync-") as tmpdir:
        workdir = args.files or tmpdir
        os.makedirs(workdir, exist_ok=True)
        tg = time.perf_counter()
        gen = generate(args.users, args.units, args.seed, workdir)
        log(f"generated in {time.perf_counter() - tg:.1f} s: {gen['people']:,} people in {gen['user_rows']:,} rows "
            f"({gen['bytes']['users'] / 1e6:.1f} MB), {gen['units']:,} units ({gen['unit_levels']}, "
            f"{gen['units_with_ean']} with an EAN); {gen['people_with_several_employments']:,} with 2-3 employments, "
            f"{gen['managers']:,} managers (up to {gen['max_reports']} reports), "
            f"{gen['people_before_their_manager']:,} people before their manager in the file, "
            f"{gen['future_starters']} future starters; changed file: {gen['changed_people']} people "
            f"({gen['changed_email']} e-mail, {gen['changed_title']} title)")
        for db, url in dbs:
            try:
                results[db] = bench_database(db, url, args, gen, tmpdir)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                log(f"  {db} FAILED: {type(exc).__name__}: {exc}")
                results[db] = {"url": url, "error": f"{type(exc).__name__}: {exc}"}
    print_table(results, gen, args)
    out = {"config": vars(args), "machine": {"nproc": os.cpu_count(), "loadavg": os.getloadavg()},
           "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
           "wall_seconds": round(time.time() - t0, 1), "files": {k: v for k, v in gen.items() if k != "files"},
           "targets": {"first_ratio": TARGETS["first"], "changed_ratio": TARGETS["changed"],
                       "peak_rss_mb": RSS_TARGET_MB},
           "results": results}
    if args.json:
        runbench.write_json(args.json, out, log)
    log(f"wall time {time.time() - t0:.0f} s")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
