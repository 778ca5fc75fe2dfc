#!/usr/bin/env python3
"""The admin console's pages at 100,000 users and 5,000 org units (see bench/README.md,
"Console pages at 100,000 users").

For each database: seed (or reuse) the org-tree data set of ``bench/orgseed.py`` (tenant
``bench-org``), create a console admin for that tenant (idempotent), start the real
``scim-server serve`` on 127.0.0.1 (run.py's ``Server``, stopped by its PID, also on errors and
Ctrl-C), sign in through the form like a browser (GET /console/login for the CSRF token and
its cookie, POST the form, keep the session cookie) and time every page with one client over
one keep-alive connection: 2 warm-up requests per page, then ``--rounds`` rounds of
``--requests`` sequential requests per page (interleaved: every page once per round). Per page
and database: median and p90 in ms and whether the median is under the 300 ms target.

    python bench/console.py                                  # SQLite and PostgreSQL, 100,000 users
    python bench/console.py --databases sqlite --rounds 1 --requests 5
    python bench/console.py --explain                        # and where a slow page's time goes
    python bench/console.py --code HEAD --explain --json /tmp/console-bench.json   # a fixed commit

A page that does not answer within ``--timeout`` (60 s) is an error, and the server is restarted
so the statement still running in it does not load the machine while the other pages are
measured. ``--code REV`` measures the server code of a commit (a ``git archive`` snapshot on the
path of the bench and of the server) instead of the work tree, which others may be changing
while the bench runs.

``--explain`` runs each page over the target once more in-process (``create_app`` and Flask's
test client, signed in the same way) with its SQL statements timed (a before/after
cursor-execute listener) and under cProfile, and shows the slowest statements' plans
(PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``, SQLite ``EXPLAIN QUERY PLAN``); the full texts go to
``--explain-dir``.

orgseed writes no audit events, so the bench writes ``--audit-events`` (100,000: one ``create``
per user, as provisioning them through the API would have) and 40 ``patch`` events of the
person measured, for the provisioning log and the person page's history.

The ids the pages need (root unit, a level-3 and a level-5 unit, the top manager, a user with
the longest manager chain) are read from the database, and checked against orgseed's marker.
The databases are the bench's own: never ``test`` or another bench's.
"""
from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import re
import signal
import statistics
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
#: ``--code REV``: the server code of that commit, extracted by the parent process (see main_with_code)
CODE_DIR = os.environ.get("SCIM_BENCH_CONSOLE_CODE_DIR")
if CODE_DIR:
    sys.path.insert(0, CODE_DIR)  # before the work tree: scim_server is imported from the snapshot

import orgseed  # noqa: E402
import run as runbench  # noqa: E402  (Server, ensure_pg_database, percentile, code_fingerprint)
import seed as seed_mod  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from scim_server.storage import admins  # noqa: E402
from scim_server.storage.db import make_engine, make_session_factory  # noqa: E402
from scim_server.storage.models import AuditEvent, ConsoleSession, Group, Membership, Tenant, User  # noqa: E402

HOST = runbench.HOST
DEFAULT_SQLITE = os.path.join(tempfile.gettempdir(), "scim-bench-console.db")
DEFAULT_PG = "postgresql://postgres@127.0.0.1/scim_bench_console"
#: databases that belong to others (the test suite, other engineers, the other benches)
FORBIDDEN_DBS = {"test", "postgres", "template0", "template1", "scim_me", "scim_h1", "scim_h2", "scim_h3",
                 "scim_h4", "scim_bench", "scim_bench_sync", "scim_bench_physlimits", "scim_cursor_bench"}
TARGET_MS = 300.0
ADMIN_EMAIL = "bench-console@example.dk"
ADMIN_PASSWORD = "bench-console-password"
TENANT = orgseed.TENANT
PREFIX = f"/console/t/{TENANT}"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#: the data-quality check whose list is measured, if it has rows; else the check with most rows
PREFERRED_CHECK = "without_effective_ean"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def check_pg_dsn(dsn: str) -> None:
    parts = urllib.parse.urlparse(dsn)
    name = parts.path.lstrip("/")
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("the bench only talks to 127.0.0.1")
    if not name or name in FORBIDDEN_DBS:
        raise SystemExit(f"refusing database {name!r}: it belongs to others; use a dedicated one such as "
                         "scim_bench_console")


# ------------------------------------------------------------------------- data and account
def ensure_admin(url: str, tenant_id: int) -> None:
    """The bench's console account for tenant bench-org, created once; an account of that
    e-mail for another tenant or with another password is replaced. Its old sessions and
    failed sign-ins are cleared so every run signs in at once."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            found = admins.find_admin(session, ADMIN_EMAIL)
            if found is not None and (found.tenant_id != tenant_id
                                      or admins.check_password(session, ADMIN_EMAIL, ADMIN_PASSWORD) is None):
                admins.remove_admin(session, ADMIN_EMAIL)
                found = None
            if found is None:
                admins.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD, tenant_id)
                log(f"  created console admin {ADMIN_EMAIL} for tenant {TENANT}")
            else:
                session.query(ConsoleSession).filter(ConsoleSession.admin_id == found.id).delete()
            admins.clear_failures(session, ADMIN_EMAIL)
    finally:
        engine.dispose()


def seed_audit(url: str, tenant_id: int, events: int, deep_user: str, log_events: int = 40) -> dict:
    """The provisioning log's data: orgseed writes no audit events (and its reset deletes the
    tenant's), so the bench writes, in the server's own shape (``storage.audit.diff``), one
    ``create`` event for each of the first ``events`` users (by created), spread over the 30
    days before now, as creating them through the API would have, and ``log_events`` ``patch``
    events (title changes) of the deep user, so the person page has a history to page."""
    import datetime as dt

    from sqlalchemy import delete, insert

    from scim_server.storage import audit
    from scim_server.storage.models import utcnow
    engine = make_engine(url)
    try:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(delete(AuditEvent).where(AuditEvent.tenant_id == tenant_id))
            users = conn.execute(select(User.id, User.user_name, User.display_name)
                                 .where(User.tenant_id == tenant_id).order_by(User.created, User.id)
                                 .limit(events)).all()
            now = utcnow().replace(microsecond=0)
            start = now - dt.timedelta(days=30)
            step = dt.timedelta(days=29) / max(len(users), 1)
            rows = [{"tenant_id": tenant_id, "at": start + i * step, "actor": "token:bench-console",
                     "request_id": f"bench-{i:07d}", "resource_type": "User", "resource_id": u.id,
                     "operation": "create", "run_id": None, "bulk_index": None, "bulk_id": None,
                     "changes": audit.diff(None, {"userName": u.user_name, "displayName": u.display_name,
                                                  "active": True})}
                    for i, u in enumerate(users)]
            for k in range(log_events):
                rows.append({"tenant_id": tenant_id, "at": now - dt.timedelta(hours=log_events - k),
                             "actor": "token:bench-console", "request_id": f"bench-deep-{k:03d}",
                             "resource_type": "User", "resource_id": deep_user, "operation": "patch",
                             "run_id": None, "bulk_index": None, "bulk_id": None,
                             "changes": audit.diff({"title": f"Titel {k}"}, {"title": f"Titel {k + 1}"})})
            for s in range(0, len(rows), 5000):
                conn.execute(insert(AuditEvent), rows[s:s + 5000])
        return {"events": len(rows), "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        engine.dispose()


FINDINGS_KEY = "console-findings"


def seed_findings(url: str, tenant_id: int, findings: int, spare: set[str], seeded: str) -> dict:
    """Give the data-quality checks something to find, once per database: orgseed's data has
    unique e-mails, EANs everywhere and everyone employed now, so every list but one would be
    empty. Written through the SCIM API in-process (BulkRequests of 500 operations through
    Flask's test client, with a token of the tenant), so the write service keeps what it keeps
    (the e-mail copies, the chosen units, the leaver rule); ``findings`` (N) sets the sizes:

    * N users in pairs share a work e-mail (``duplicate_emails``: N rows);
    * N/2 users' employment starts in 30 days (``future_starters``; the rule makes them inactive);
    * N/2 users' employment ended yesterday, and an IdP made them active again (``leavers_due``);
    * N/10 users lose their employment and their manager (``without_org_unit``,
      ``without_manager``, ``without_effective_ean``).

    Nothing is created (orgseed would see other counts and seed again) and every unit keeps the
    kommune's EAN, so ``units_without_ean`` stays empty. The root unit's people total drops by
    the future starters, the leavers and those without employment.

    The users changed are staff without reports, never one in ``spare`` (the measured person,
    the top manager). ``seeded``: when orgseed seeded the data (its marker's ``seeded_at``): findings
    written for an earlier seed are written again. Returns what it wrote (or found, ``reused``)."""
    import datetime as dt
    import logging

    from scim_server.app import create_app
    from scim_server.config import Settings
    from scim_server.storage import tenants
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            done = conn.scalar(select(seed_mod.marker_table.c.value).where(seed_mod.marker_table.c.key == FINDINGS_KEY))
        if done and json.loads(done).get("seeded") != seeded:  # orgseed seeded the tenant again since
            with engine.begin() as conn:
                conn.execute(seed_mod.marker_table.delete().where(seed_mod.marker_table.c.key == FINDINGS_KEY))
            done = None
        if done and json.loads(done).get("findings") == findings:
            return dict(json.loads(done), reused=True)
        if done:
            raise RuntimeError(f"{url} holds {json.loads(done)['findings']} findings, not {findings}: reseed it "
                               "(drop the database) or pass --findings {json.loads(done)['findings']}")
        with make_session_factory(engine)() as session:
            managers = select(User.manager_id).where(User.tenant_id == tenant_id, User.manager_id.is_not(None))
            staff = session.execute(
                select(User.id, Membership.group_id).join(Membership, Membership.user_id == User.id)
                .where(User.tenant_id == tenant_id, User.id.not_in(managers))
                .order_by(User.user_name.desc()).limit(3 * findings)).all()
            staff = [s for s in staff if s.id not in spare][:2 * findings + findings // 10]
    finally:
        engine.dispose()
    app = create_app(Settings.from_env(database_url=url))
    logging.getLogger("scim_server.access").setLevel(logging.WARNING)
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, TENANT), "bench findings", "scim:read scim:write")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    p2l = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0"

    patch_op = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    operations: list[dict] = []

    def patch(user_id: str, *ops: dict) -> None:
        operations.append({"method": "PATCH", "path": f"/Users/{user_id}",
                           "data": {"schemas": [patch_op], "Operations": list(ops)}})

    t0 = time.perf_counter()
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    shared, rest, loose = staff[:findings], staff[findings:2 * findings], staff[2 * findings:]
    for i, user in enumerate(shared):
        patch(user.id, {"op": "replace", "path": "emails",
                        "value": [{"value": f"Bench-Shared-{i // 2}@example.dk", "type": "work"}]})
    half = len(rest) // 2
    for user in rest[:half]:
        patch(user.id, {"op": "replace", "path": f'{p2l}:User:employments[value eq "{user.group_id}"].startDate',
                        "value": (today + dt.timedelta(days=30)).isoformat().replace("+00:00", "Z")})
    for user in rest[half:]:
        patch(user.id, {"op": "replace", "path": f'{p2l}:User:employments[value eq "{user.group_id}"].endDate',
                        "value": (today - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")})
    for user in rest[half:]:  # an IdP sets them active again: the rule waits for the next employment change
        patch(user.id, {"op": "replace", "path": "active", "value": True})
    for user in loose:  # no employment (so no unit and no EAN either) and no manager
        patch(user.id, {"op": "remove", "path": f"{p2l}:User:employments"},
              {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"})
    for start in range(0, len(operations), 500):  # BulkRequests, in order: not one request per change
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": operations[start:start + 500]}
        r = client.post("/scim/v2/Bulk", data=json.dumps(body), headers=headers)
        failed = [o for o in (r.get_json() or {}).get("Operations", []) if not str(o.get("status", "")).startswith("2")]
        if r.status_code != 200 or failed:
            raise RuntimeError(f"POST /Bulk: {r.status_code} {failed[:3] or r.get_data(as_text=True)[:300]}")
    out = {"findings": findings, "seeded": seeded, "duplicate_emails": len(shared), "future_starters": half,
           "leavers_due": len(rest) - half, "without_org_unit": len(loose), "seconds": round(time.perf_counter() - t0, 1)}
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(seed_mod.marker_table.insert(), [{"key": FINDINGS_KEY, "value": json.dumps(out)}])
    finally:
        engine.dispose()
    return dict(out, reused=False)


def analyze(url: str) -> None:
    """PostgreSQL: fresh statistics of the tables the pages read, as autovacuum would have them
    after the seeding, the audit events and a migration's new indexes (an expression index has
    statistics only after an ANALYZE). SQLite: nothing (the server does not ANALYZE it either)."""
    engine = make_engine(url)
    try:
        seed_mod.vacuum_analyze(engine, "users", "groups", "memberships", "audit_events")
    finally:
        engine.dispose()


def time_limited(session, seconds: float, fn):
    """fn() with its statements stopped after ``seconds`` (PostgreSQL: statement_timeout; SQLite:
    ``interrupt()`` from a timer): (result, None), or (None, why) when it was stopped."""
    import threading

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    conn = session.connection()
    timer = None
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL statement_timeout = {int(seconds * 1000)}"))
    else:
        timer = threading.Timer(seconds, conn.connection.driver_connection.interrupt)
        timer.start()
    t0 = time.perf_counter()
    try:
        return fn(), None
    except DBAPIError as exc:
        return None, f"stopped after {time.perf_counter() - t0:.0f} s ({type(exc.orig).__name__})"
    finally:
        if timer is not None:
            timer.cancel()
        session.rollback()


def pick_quality_check(session, tenant_id: int, seconds: float = 20.0) -> tuple[str, dict]:
    """The data-quality check whose list is measured: ``without_effective_ean`` if it has rows,
    else the first check (in the page's order) that has. Each is asked for one row, at most
    ``seconds`` each: a check whose statement does not finish is a finding of its own, and the
    bench must not wait for it. Returns (check, what each probe found)."""
    from scim_server.reports import quality
    from scim_server.storage.models import utcnow
    probes: dict[str, str] = {}
    for check in (PREFERRED_CHECK, *[c for c in quality.CHECKS if c != PREFERRED_CHECK]):
        t0 = time.perf_counter()
        rows, why = time_limited(session, seconds, lambda c=check: quality.findings(
            session, tenant_id, c, utcnow(), limit=1))
        probes[check] = why or f"{'rows' if rows else 'no rows'} ({(time.perf_counter() - t0) * 1000:.0f} ms)"
        if why:
            log(f"  note: quality check {check}: first row {why}")
        if rows:
            return check, probes
    return PREFERRED_CHECK, probes


def find_ids(url: str, marker: dict) -> dict:
    """What the pages need, read from the database: the root unit, the first unit (by unitCode)
    of levels 3 and 5 on the path down from it, the top manager, a user with the longest manager
    chain (staff in the first level-10 unit: managed by the head of its level-7 ancestor), the
    search prefix and filter, and the quality check whose list is measured."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            tid = session.scalar(select(Tenant.id).where(Tenant.name == TENANT))
            units = Group.tenant_id == tid, Group.is_org_unit
            root = session.execute(select(Group.id, Group.display_name).where(*units, Group.parent_id.is_(None))
                                   .order_by(Group.unit_code)).all()
            if len(root) != 1:
                raise RuntimeError(f"expected one root unit in {TENANT}, found {len(root)}")
            path = [root[0]]
            while True:  # down by the first child (unitCode order) to the deepest level
                child = session.execute(select(Group.id, Group.display_name).where(*units, Group.parent_id == path[-1].id)
                                        .order_by(Group.unit_code).limit(1)).first()
                if child is None:
                    break
                path.append(child)
            if len(path) < 5:
                raise RuntimeError(f"the unit tree of {TENANT} is only {len(path)} levels deep")
            top = session.execute(select(User.id, User.user_name).where(User.tenant_id == tid, User.manager_id.is_(None))
                                  .order_by(User.user_name)).all()
            reports = {r.manager_id: r.n for r in session.execute(
                select(User.manager_id, func.count().label("n")).where(
                    User.tenant_id == tid, User.manager_id.in_([t.id for t in top])).group_by(User.manager_id))}
            top = [t for t in top if reports.get(t.id)]
            if not top:
                raise RuntimeError(f"no user of {TENANT} without a manager has reports")
            deep_unit = path[-1]
            deep = session.execute(select(User.id, User.user_name, User.display_name, User.attributes)
                                   .join(Membership, Membership.user_id == User.id)
                                   .where(User.tenant_id == tid, Membership.group_id == deep_unit.id)
                                   .order_by(User.user_name).limit(20)).all()
            best, best_chain = None, []
            for row in deep:  # the longest manager chain among the unit's first 20 people
                chain, m = [], session.scalar(select(User.manager_id).where(User.id == row.id))
                while m is not None and len(chain) < 100:
                    chain.append(m)
                    m = session.scalar(select(User.manager_id).where(User.id == m))
                if len(chain) > len(best_chain):
                    best, best_chain = row, chain
            if best is None:
                raise RuntimeError(f"no user employed in {deep_unit.display_name}")
            audit_events = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == tid))
            check, probes = pick_quality_check(session, tid)
        name = (best.attributes or {}).get("name") or {}
        given = name.get("givenName") or (best.display_name or best.user_name).split()[0]
        family = name.get("familyName") or (best.display_name or "x y").split()[-1]
        ids = {"tenant_id": tid, "root_unit": path[0].id, "root_name": path[0].display_name,
               "level3_unit": path[2].id, "level3_name": path[2].display_name,
               "level5_unit": path[4].id, "level5_name": path[4].display_name, "depth": len(path),
               "top_manager": top[0].id, "top_manager_user_name": top[0].user_name,
               "top_manager_direct_reports": reports[top[0].id],
               "deep_user": best.id, "deep_user_name": best.user_name, "deep_user_chain": len(best_chain),
               "search_prefix": given[:4], "scim_filter": f'name.familyName eq "{family}" and active eq true',
               "quality_check": check, "quality_probes": probes, "audit_events": audit_events}
        expect = (marker or {}).get("expect") or {}
        for mine, theirs in (("root_unit", "root_unit"), ("level5_unit", "mid_unit"), ("top_manager", "top_manager")):
            if expect.get(theirs) and expect[theirs] != ids[mine]:
                log(f"  note: {mine} {ids[mine]} differs from orgseed's marker {theirs} {expect[theirs]}")
        if expect.get("manager_depth") and ids["deep_user_chain"] != expect["manager_depth"] - 1:
            log(f"  note: the deep user's chain has {ids['deep_user_chain']} managers; orgseed's deepest has "
                f"{expect['manager_depth'] - 1}")
        return ids
    finally:
        engine.dispose()


def pages(ids: dict) -> list[dict]:
    """The measured pages: name, path and what the body must contain (besides status 200)."""
    q = urllib.parse.quote
    return [
        {"name": "overview", "path": f"{PREFIX}/"},
        {"name": "org tree", "path": f"{PREFIX}/organisation", "expect": ids["root_name"]},
        {"name": "children of root", "path": f"{PREFIX}/organisation/{ids['root_unit']}/children"},
        {"name": "children of level 3", "path": f"{PREFIX}/organisation/{ids['level3_unit']}/children"},
        {"name": "unit: root, page 1", "path": f"{PREFIX}/organisation/{ids['root_unit']}",
         "expect": ids["root_name"], "count": True},
        {"name": "unit: level 5", "path": f"{PREFIX}/organisation/{ids['level5_unit']}", "expect": ids["level5_name"]},
        {"name": "unit: root, page 100", "path": f"{PREFIX}/organisation/{ids['root_unit']}?page=100",
         "expect": ids["root_name"]},
        {"name": "managers tree", "path": f"{PREFIX}/managers"},
        {"name": "top manager's reports", "path": f"{PREFIX}/managers/{ids['top_manager']}/reports"},
        {"name": "people search ?q=", "path": f"{PREFIX}/people?q={q(ids['search_prefix'])}"},
        {"name": "people SCIM filter", "path": f"{PREFIX}/people?filter={q(ids['scim_filter'])}"},
        {"name": "person (long chain)", "path": f"{PREFIX}/people/{ids['deep_user']}",
         "expect": ids["deep_user_name"]},
        {"name": "provisioning log", "path": f"{PREFIX}/log"},
        {"name": "data quality", "path": f"{PREFIX}/quality"},
        {"name": f"quality: {ids['quality_check']}", "path": f"{PREFIX}/quality/{ids['quality_check']}"},
        {"name": "billing", "path": f"{PREFIX}/billing"},
        {"name": "billing CSV", "path": f"{PREFIX}/billing.csv", "csv": True},
    ]


# ------------------------------------------------------------------------------ the client
class Client:
    """One keep-alive HTTP connection with the console's cookies (no redirects followed)."""

    def __init__(self, port: int, timeout: float):
        self.port, self.timeout = port, timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, bytes, dict, float]:
        """(status, body, headers, ms). No answer (the server closed the connection, e.g. gunicorn
        killed a worker at its timeout, or ``--timeout`` passed): status 0 and the reason as body."""
        headers = {"Accept": "text/html,*/*", "Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):  # a connection the server closed while idle is opened again once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                ms = (time.perf_counter() - t0) * 1000
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                took = time.perf_counter() - t0
                self.close()
                if attempt == 2 or took > 1.0:  # not a stale keep-alive connection: the request failed
                    return 0, f"no answer after {took:.0f} s ({type(exc).__name__})".encode(), {}, took * 1000
            except TimeoutError:
                self.close()
                return 0, f"no answer within --timeout {self.timeout:.0f} s".encode(), {}, self.timeout * 1000
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                val = rest.split(";", 1)[0]
                if "max-age=0" in value.lower() or "expires=thu, 01 jan 1970" in value.lower():
                    self.cookies.pop(key.strip(), None)
                else:
                    self.cookies[key.strip()] = val
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        return resp.status, data, dict(resp.getheaders()), ms

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def sign_in(self) -> None:
        status, data, _h, _ms = self.request("GET", "/console/login")
        found = re.search(rb'name="csrf_token" value="([^"]+)"', data)
        if status != 200 or not found or "console_sign_in" not in self.cookies:
            raise RuntimeError(f"GET /console/login: status {status}, csrf token {'found' if found else 'missing'}, "
                               f"cookies {sorted(self.cookies)}")
        status, data, headers, _ms = self.request("POST", "/console/login", {
            "csrf_token": found.group(1).decode(), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        if status not in (302, 303) or "console_session" not in self.cookies:
            raise RuntimeError(f"sign-in failed: status {status}: {data[:300]!r}")


def check_body(page: dict, status: int, data: bytes, headers: dict, ids: dict) -> str | None:
    """Why this response is not the page (None: it is)."""
    if status == 0:
        return data.decode()
    if status != 200:
        text = re.sub(rb"<[^>]+>", b" ", data)
        return f"status {status}: {' '.join(text.decode('utf-8', 'replace').split())[:160]}"
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if page.get("csv"):
        if "csv" not in ctype or data.count(b"\n") < 2:
            return f"not a CSV ({ctype}, {len(data)} bytes)"
        return None
    if "html" not in ctype:
        return f"content type {ctype}"
    text = data.decode("utf-8", "replace")
    if page.get("expect") and page["expect"] not in text:
        return f"{page['expect']!r} not on the page"
    if page.get("count"):
        people = ids["root_people"]
        spelt = r"[ ,.\u00a0\u202f]?".join([str(people // 1000), f"{people % 1000:03d}"]) if people >= 1000 else str(people)
        if not re.search(r"\(\s*" + spelt + r"\s*\)", text):
            return f"the root unit's people total ({people:,}) is not on the page"
    return None


class LiveServer:
    """The server under test and the signed-in client. After a request that got no answer the
    server is restarted (stopped by its PID, a new one started, signed in again): the statement
    still running in it would otherwise load the machine while the other pages are measured."""

    def __init__(self, url: str, args, tmpdir: str):
        self.url, self.args, self.tmpdir, self.restarts = url, args, tmpdir, []
        self.server: runbench.Server | None = None
        self.start()

    def start(self) -> None:
        a = self.args
        self.server = runbench.Server(self.url, a.workers, a.threads, os.environ.get("SCIM_BASE_PATH") or "/scim/v2",
                                      self.tmpdir)
        log(f"  server pid {self.server.proc.pid} on port {self.server.port} ({a.workers} workers x {a.threads} threads)")
        self.client = Client(self.server.port, a.timeout)
        try:
            self.client.sign_in()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.server is not None:
            self.client.close()
            self.server.stop()
            log(f"  server {self.server.proc.pid} stopped")
            self.server = None

    def restart(self, why: str) -> None:
        log(f"  restarting the server ({why})")
        self.restarts.append(why)
        self.stop()
        self.start()

    def get(self, path: str) -> tuple[int, bytes, dict, float]:
        got = self.client.request("GET", path)
        if got[0] == 0:
            self.restart(f"{path}: {got[1].decode()}")
        return got


def measure(live: LiveServer, plist: list[dict], ids: dict, args) -> dict[str, dict]:
    """Warm-up, then rounds x requests per page, interleaved by round."""
    out = {p["name"]: {"path": p["path"], "samples": [], "rounds": [], "errors": [], "bytes": None}
           for p in plist}
    for p in plist:
        res = out[p["name"]]
        for _ in range(args.warmup):
            status, data, headers, ms = live.get(p["path"])
            bad = check_body(p, status, data, headers, ids)
            res["warmup_ms"] = res.get("warmup_ms", []) + [round(ms, 2)]
            if bad:
                res["errors"].append(bad)
                break
            res["bytes"] = len(data)
        log(f"    warm-up {p['name']:28s} {' '.join(f'{m:.0f}' for m in res.get('warmup_ms', []))} ms"
            + (f"  ERROR {res['errors'][-1]}" if res["errors"] else f"  {res['bytes']:,} bytes"))
    answered = [p for p in plist if not out[p["name"]]["errors"]]
    for r in range(1, args.rounds + 1):
        log(f"  round {r}/{args.rounds} (load average {loadavg()})")
        for p in answered:
            res = out[p["name"]]
            times: list[float] = []
            started = time.perf_counter()
            for _ in range(args.requests):
                status, data, headers, ms = live.get(p["path"])
                bad = check_body(p, status, data, headers, ids)
                if bad:
                    res["errors"].append(bad)
                    if status == 0:  # no answer: the next request would wait as long
                        break
                else:
                    times.append(ms)
                if time.perf_counter() - started > args.max_page_seconds:
                    res["cut_short"] = True
                    break
            res["samples"].extend(times)
            res["rounds"].append({"n": len(times), "median_ms": round(statistics.median(times), 2) if times else None,
                                  "loadavg": loadavg()})
        log("    " + ", ".join(f"{p['name']} {out[p['name']]['rounds'][-1]['median_ms']}" for p in answered))
    for res in out.values():
        s = sorted(res["samples"])
        res["n"] = len(s)
        res["median_ms"] = round(statistics.median(s), 2) if s else None
        res["p90_ms"] = round(runbench.percentile(s, 90), 2) if s else None
        res["min_ms"] = round(s[0], 2) if s else None
        res["max_ms"] = round(s[-1], 2) if s else None
        res["under_target"] = None if res["median_ms"] is None else res["median_ms"] < TARGET_MS
        res["samples"] = [round(x, 2) for x in res["samples"]]
    return out


# --------------------------------------------------------------------- where the time goes
def explain_pages(db: str, url: str, plist: list[dict], outdir: str, top: int) -> dict[str, dict]:
    """Each page once more in-process, signed in through Flask's test client: its statements
    (time, rows) and the plans of the slowest, and a cProfile of the request."""
    import logging

    from scim_server.app import create_app
    from scim_server.config import Settings
    app = create_app(Settings.from_env(database_url=url))
    logging.getLogger("scim_server.access").setLevel(logging.WARNING)
    # a page that fails is reported by its status, not a traceback
    for name in (app.logger.name, "scim_server.http.errors"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    engines = [runbench.watched_engine(app)]  # its events see the reads and the writes
    captured: list[dict] = []

    def record(ms, conn, statement, parameters, executemany, rowcount):
        captured.append({"ms": ms, "sql": statement, "params": parameters, "rows": rowcount, "engine": conn.engine})

    stops = [runbench.time_statements(e, record) for e in engines]
    client = app.test_client()
    login = client.get("/console/login")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', login.data).group(1).decode()
    signed = client.post("/console/login", data={"csrf_token": token, "email": ADMIN_EMAIL,
                                                 "password": ADMIN_PASSWORD})
    if signed.status_code not in (302, 303):
        raise RuntimeError(f"in-process sign-in failed: {signed.status_code}")
    os.makedirs(outdir, exist_ok=True)
    results: dict[str, dict] = {}
    try:
        for p in plist:
            client.get(p["path"])  # warm: statement caches, templates, connection pool
            captured.clear()
            t0 = time.perf_counter()
            resp = client.get(p["path"])
            total = (time.perf_counter() - t0) * 1000
            stmts = list(captured)
            prof = cProfile.Profile()
            captured.clear()
            prof.enable()
            client.get(p["path"])
            prof.disable()
            buf = io.StringIO()
            stats = pstats.Stats(prof, stream=buf)
            stats.sort_stats("cumulative").print_stats(r"scim_server|jinja2|sqlalchemy/engine", 30)
            stats.sort_stats("tottime").print_stats(20)
            sql_ms = sum(s["ms"] for s in stmts)
            slow = sorted(stmts, key=lambda s: -s["ms"])[:top]
            plans = []
            for s in slow:
                plans.append({"ms": round(s["ms"], 2), "rows": s["rows"], "sql": " ".join(s["sql"].split()),
                              "plan": explain(s, db)})
            slug = re.sub(r"[^a-z0-9]+", "-", p["name"].lower()).strip("-")
            path = os.path.join(outdir, f"{db}-{slug}.txt")
            with open(path, "w") as f:
                f.write(f"{p['name']}  {p['path']}\nstatus {resp.status_code}, {total:.1f} ms in-process, "
                        f"{len(stmts)} statements, {sql_ms:.1f} ms in SQL\n\n")
                for i, pl in enumerate(plans, 1):
                    f.write(f"--- statement {i}: {pl['ms']} ms, rows {pl['rows']}\n{pl['sql']}\n\n{pl['plan']}\n\n")
                f.write("--- cProfile of one more request\n" + buf.getvalue())
            results[p["name"]] = {"status": resp.status_code, "in_process_ms": round(total, 1),
                                  "statements": len(stmts), "sql_ms": round(sql_ms, 1),
                                  "slowest": [{k: v for k, v in pl.items() if k != "plan"} | {
                                      "plan_head": pl["plan"].splitlines()[:3],
                                      "plan_times": [ln.strip() for ln in pl["plan"].splitlines()
                                                     if "Execution Time" in ln or "Timing: Generation" in ln]}
                                      for pl in plans],
                                  "statements_ms": [round(s["ms"], 2) for s in stmts],
                                  "file": path}
            log(f"    {p['name']}: {total:.0f} ms in-process, {len(stmts)} statements, {sql_ms:.0f} ms in SQL; "
                f"slowest {', '.join('%.0f ms' % pl['ms'] for pl in plans)} -> {path}")
    finally:
        for stop, e in zip(stops, engines):
            stop()
            e.dispose()
    return results


def explain(stmt: dict, db: str) -> str:
    """The plan of one captured statement, with its own parameters, on the app's engine (SQLite:
    its connections have the server's functions registered)."""
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if db == "postgresql" else "EXPLAIN QUERY PLAN "
    raw = stmt["engine"].raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(prefix + stmt["sql"], stmt["params"])
        rows = cur.fetchall()
        cur.close()
        if db == "postgresql":
            plan = "\n".join(r[0] for r in rows)
            if "JIT:" in plan:  # the same statement without JIT compilation, for comparison
                cur = raw.cursor()
                cur.execute("SET LOCAL jit = off")
                cur.execute(prefix + stmt["sql"], stmt["params"])
                off = [r[0] for r in cur.fetchall()]
                cur.close()
                plan += "\n\n(the same with SET LOCAL jit = off:)\n" + "\n".join(off)
            return plan
        return "\n".join(" ".join(str(c) for c in r) for r in rows)
    except Exception as exc:  # noqa: BLE001  (a plan is a help, not the measurement)
        return f"(no plan: {type(exc).__name__}: {exc})"
    finally:
        try:
            raw.rollback()
        except Exception:  # noqa: BLE001
            pass
        raw.close()


# ---------------------------------------------------------------------------- per database
def bench_database(db: str, url: str, args, tmpdir: str) -> dict:
    log(f"{db}: {url}")
    t0 = time.perf_counter()
    marker = orgseed.ensure_org_database(url, args.users, log=lambda m: log(m.strip()))
    seeded = round(time.perf_counter() - t0, 1)
    ids = find_ids(url, marker)
    ids["root_people"] = args.users
    if args.findings:
        found = seed_findings(url, ids["tenant_id"], args.findings, {ids["deep_user"], ids["top_manager"]},
                              marker.get("seeded_at"))
        if not found["reused"]:
            log(f"  wrote the data-quality findings in {found['seconds']} s: {found}")
            ids = find_ids(url, marker)  # the quality list measured is one with rows now
        ids["findings"] = found
        # future starters, leavers and the unemployed are in no unit's headcount (no employment in effect now)
        ids["root_people"] = args.users - found["future_starters"] - found["leavers_due"] - found["without_org_unit"]
    ensure_admin(url, ids["tenant_id"])
    if args.audit_events:
        ids["audit"] = seed_audit(url, ids["tenant_id"], args.audit_events, ids["deep_user"])
        ids["audit_events"] = ids["audit"]["events"]
        log(f"  wrote {ids['audit']['events']:,} audit events in {ids['audit']['seconds']} s")
    log(f"  ids: root {ids['root_unit']}, level 3 {ids['level3_unit']}, level 5 {ids['level5_unit']}, "
        f"top manager {ids['top_manager_user_name']} ({ids['top_manager_direct_reports']} direct reports), "
        f"deep user {ids['deep_user_name']} ({ids['deep_user_chain']} managers above); quality list "
        f"{ids['quality_check']}; audit events {ids['audit_events']}")
    analyze(url)
    plist = pages(ids)
    if args.pages:
        wanted = [w.lower() for w in args.pages]
        plist = [p for p in plist if any(w in p["name"].lower() for w in wanted)]
    result: dict = {"url": url, "seed_seconds": seeded, "seed_reused": marker.get("reused"), "ids": ids,
                    "loadavg_start": loadavg()}
    result["server_code"] = code_identity()
    live = LiveServer(url, args, tmpdir)
    try:
        result["pages"] = measure(live, plist, ids, args)
        result["server_restarts"] = live.restarts
    finally:
        live.stop()
    result["loadavg_end"] = loadavg()
    if args.explain:
        slow = [p for p in plist if (result["pages"][p["name"]]["median_ms"] or 0) >= TARGET_MS
                or result["pages"][p["name"]]["errors"]] if not args.explain_all else plist
        hung = [p["name"] for p in slow if any(e.startswith("no answer") for e in result["pages"][p["name"]]["errors"])]
        if hung:  # in-process it would wait as long, with no timeout to stop it
            log(f"  not analysed in-process (no answer over HTTP): {', '.join(hung)}")
            result["explain_skipped"] = hung
            slow = [p for p in slow if p["name"] not in hung]
        if slow:
            log(f"  in-process: statements, plans and cProfile of {len(slow)} page(s)")
            result["explain_code"] = code_identity()  # without --code it may have changed since
            result["explain"] = explain_pages(db, url, slow, args.explain_dir, args.explain_top)
    return result


def code_identity() -> dict:
    """Which server code is measured: with ``--code``, the snapshot's commit (its files do not
    change under the run); else the work tree's commit, whether scim_server/ has uncommitted
    changes, and a hash of its files (run.py's fingerprint)."""
    if CODE_DIR:
        return {"commit": os.environ.get("SCIM_BENCH_CONSOLE_CODE_REV", "?"), "dirty": False,
                "snapshot": CODE_DIR}
    return runbench.code_fingerprint()


def main_with_code(rev: str, argv: list[str]) -> int:
    """``--code REV``: extract scim_server/ and schemas/ (which the package reads from beside it)
    of that commit (git archive) to a temp dir and run this bench as a child with that copy first
    on its path and on the server's (PYTHONPATH), so both databases, the in-process analysis and
    the server measure the same code while others keep changing the work tree. Ctrl-C reaches
    the child (same process group); SIGTERM is passed on."""
    import subprocess
    import tarfile
    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", rev + "^{commit}"], capture_output=True,
                         text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="scim-bench-console-code-") as code:
        archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", sha, "scim_server", "schemas"],
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(code, filter="data")
        log(f"server code: {sha[:10]} extracted to {code}")
        env = dict(os.environ, SCIM_BENCH_CONSOLE_CODE_DIR=code, SCIM_BENCH_CONSOLE_CODE_REV=sha,
                   PYTHONPATH=code + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv], env=env)
        signal.signal(signal.SIGTERM, lambda signum, _f: child.send_signal(signum))
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # the child got the same Ctrl-C; wait for it to stop its server
                continue


def print_table(results: dict, plist_names: list[str], args) -> None:
    dbs = [db for db in results if "pages" in results[db]]
    head = f"{'page':30s}" + "".join(f" | {db + ' median':>17s} {'p90':>8s} {'<300':>5s}" for db in dbs)
    print()
    print(f"console pages, {args.users:,} users, 5,000 units; {args.rounds} rounds x {args.requests} requests "
          f"per page after {args.warmup} warm-up, one client; ms")
    print(head)
    print("-" * len(head))
    for name in plist_names:
        line = f"{name:30s}"
        for db in dbs:
            res = results[db]["pages"].get(name)
            if res is None:
                line += f" | {'':17s} {'':8s} {'':5s}"
            elif res["median_ms"] is None:
                line += f" | {'ERROR':>17s} {'':8s} {'':5s}"
            else:
                ok = "yes" if res["under_target"] else "NO"
                line += f" | {res['median_ms']:17.1f} {res['p90_ms']:8.1f} {ok:>5s}"
        print(line)
    for db in dbs:
        r = results[db]
        errs = {n: p["errors"][:2] for n, p in r["pages"].items() if p["errors"]}
        code = r.get("server_code") or {}
        print(f"{db}: server code {code.get('commit', '?')[:10]}{' + uncommitted changes' if code.get('dirty') else ''}"
              f"; load average {r['loadavg_start']} at the start, {r['loadavg_end']} at the end"
              + (f"; errors: {errs}" if errs else ""))
    for db, r in results.items():
        if "error" in r:
            print(f"{db}: FAILED {r['error']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sqlite", default=DEFAULT_SQLITE, metavar="PATH", help=f"SQLite file ({DEFAULT_SQLITE})")
    ap.add_argument("--pg-dsn", default=DEFAULT_PG, metavar="DSN", help=f"PostgreSQL database ({DEFAULT_PG}; "
                    "created if missing)")
    ap.add_argument("--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20, help="sequential requests per page per round")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up requests per page (not timed)")
    ap.add_argument("--max-page-seconds", type=float, default=120.0,
                    help="stop a page's round after this many seconds (a very slow page)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds the client waits for one response (then the page is an error and the server is "
                    "restarted)")
    ap.add_argument("--workers", type=int, default=min(8, 2 * (os.cpu_count() or 1)))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--pages", nargs="+", metavar="WORD", help="only the pages whose name contains one of these")
    ap.add_argument("--explain", action="store_true",
                    help="then, in-process: statements, plans and cProfile of each page over 300 ms")
    ap.add_argument("--explain-all", action="store_true", help="with --explain: every page")
    ap.add_argument("--explain-top", type=int, default=3, help="plans of this many slowest statements per page")
    ap.add_argument("--explain-dir", default=os.path.join(tempfile.gettempdir(), "scim-bench-console-explain"))
    ap.add_argument("--findings", type=int, default=1000,
                    help="data-quality findings written once per database through the API (duplicate e-mails, "
                         "future starters, leavers due, users and units without a unit or EAN; 0: none)")
    ap.add_argument("--audit-events", type=int, default=100_000,
                    help="audit events written for the provisioning log (one create per user; 0: an empty log)")
    ap.add_argument("--code", metavar="REV", help="measure scim_server/ as in this commit (a snapshot made with "
                    "git archive), not the work tree, which others may change during the run")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    if args.code and not CODE_DIR:
        argv, skip = [], False
        for a in sys.argv[1:]:  # the same arguments without --code
            if skip:
                skip = False
            elif a == "--code":
                skip = True
            elif not a.startswith("--code="):
                argv.append(a)
        return main_with_code(args.code, argv)
    if args.rounds < 1 or args.requests < 1 or args.warmup < 0:
        ap.error("--rounds >= 1, --requests >= 1, --warmup >= 0")
    dbs: list[tuple[str, str]] = []
    if "sqlite" in args.databases:
        dbs.append(("sqlite", "sqlite:///" + os.path.abspath(args.sqlite)))
    if "postgresql" in args.databases:
        check_pg_dsn(args.pg_dsn)
        runbench.ensure_pg_database(args.pg_dsn)
        dbs.append(("postgresql", args.pg_dsn))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    t0 = time.time()
    results: dict = {}
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scim-bench-console-") as tmpdir:
        for db, url in dbs:
            try:
                results[db] = bench_database(db, url, args, tmpdir)
                for n in results[db].get("pages", {}):
                    if n not in names:
                        names.append(n)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                log(f"  {db} FAILED: {type(exc).__name__}: {exc}")
                results[db] = {"url": url, "error": f"{type(exc).__name__}: {exc}"}
    print_table(results, names, args)
    if args.json:
        out = {"config": vars(args), "target_ms": TARGET_MS,
               "machine": {"nproc": os.cpu_count(), "loadavg_end": loadavg()},
               "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
               "wall_seconds": round(time.time() - t0, 1), "results": results}
        runbench.write_json(args.json, out, log)
    log(f"wall time {time.time() - t0:.0f} s")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
