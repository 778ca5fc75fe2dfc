"""Personal data (GDPR, issue 14): a retention period per tenant applied by ``scim-server audit
purge``, erasure of one person's values from the audit trail that keeps the events (``audit
erase``), and ``tenant delete``, which removes every row of a tenant. Each is audited itself
(purge and erase as events of operation "system"; a tenant's deletion on stderr and in the log,
since its own events go with it). Run through the CLI and read back through the HTTP API."""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid

import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select, update

from conftest import ENTERPRISE, assert_scim_error, bearer, create_unit, get_json
from scim_server.cli import main
from scim_server.storage import tenants
from scim_server.storage.models import (
    AuditEvent,
    Base,
    ConsoleSession,
    OAuthClient,
    SyncRun,
    Tenant,
    UsedAssertion,
    utcnow,
)

ERASED = "[erased]"
P2L_USER = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User"


# ------------------------------------------------------------------ helpers


@pytest.fixture
def run(app):
    """``scim-server ARGS`` on the test database; a traceback fails the test."""
    env = {"SCIM_DATABASE_URL": app.config["SCIM"].database_url}

    def invoke(*args: str, input: str | None = None):
        result = CliRunner().invoke(main, list(args), env=env, input=input)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"a traceback for {args}: {result.exception!r}\n{result.output}"
        return result

    return invoke


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def one_error(result, status: int = 1) -> str:
    assert result.exit_code == status, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def auditor(app, tenant: str = "acme"):
    """An API client of ``tenant`` that may read its audit trail (and nothing else)."""
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, tenant), "auditor", "audit:read")
    return bearer(app, token)


def trail(app, tenant: str = "acme") -> list[dict]:
    """The tenant's whole audit trail through ``GET /admin/v1/audit``, oldest first."""
    body = get_json(auditor(app, tenant), "http://localhost/admin/v1/audit?count=1000")
    assert body["totalResults"] <= 1000
    return sorted(body["Resources"], key=lambda e: e["id"])


def tenant_id(app, name: str) -> int:
    with app.extensions["scim_sessions"]() as session:
        return session.scalar(select(Tenant.id).where(Tenant.name == name))


def backdate(app, days: int, tenant: str | None = None, ids: list[int] | None = None) -> None:
    """Move audit events (of a tenant, or by id) ``days`` into the past, as time would."""
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    table = AuditEvent.__table__
    statement = update(table).values(at=moment)
    if tenant is not None:
        statement = statement.where(table.c.tenant_id == tenant_id(app, tenant))
    if ids is not None:
        statement = statement.where(table.c.id.in_(ids))
    with app.extensions["scim_engine"].begin() as conn:
        conn.execute(statement)


def backdate_runs(app, days: int, tenant: str) -> None:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    table = SyncRun.__table__
    with app.extensions["scim_engine"].begin() as conn:
        conn.execute(update(table).where(table.c.tenant_id == tenant_id(app, tenant))
                     .values(started_at=moment, finished_at=moment))


def settings_of(app, name: str) -> dict:
    with app.extensions["scim_sessions"]() as session:
        return dict(tenants.get_tenant(session, name).settings or {})


def sync_people(run, tmp_path, tenant: str = "acme") -> None:
    path = tmp_path / f"{tenant}-people.csv"
    path.write_text("externalId,userName,givenName,familyName\n"
                    f"1001,anna@{tenant}.dk,Anna,Berg\n1002,bo@{tenant}.dk,Bo,Dahl\n", encoding="utf-8")
    ok(run("sync", "--tenant", tenant, "--source", "hr", "--users", str(path)))


def run_log(run, tenant: str = "acme") -> list[dict]:
    return [json.loads(line) for line in ok(run("sync-runs", "--tenant", tenant)).stdout.splitlines()]


# ------------------------------------------------------------------ retention and purge


def test_retention_period_is_a_tenant_setting(app, api, run):
    ok(run("tenant", "set", "acme", "--audit-retention-days", "30"))
    assert settings_of(app, "acme")["audit_retention_days"] == 30
    ok(run("tenant", "set", "acme", "--audit-retention-days", "400"))
    assert settings_of(app, "acme")["audit_retention_days"] == 400
    ok(run("tenant", "set", "acme", "--audit-retention-days", "0"))  # 0: keep for ever
    assert "audit_retention_days" not in settings_of(app, "acme")
    assert "--audit-retention-days" in one_error(run("tenant", "set", "acme", "--audit-retention-days", "-1"), 2)
    assert "--audit-retention-days" in one_error(run("tenant", "set", "acme", "--audit-retention-days", "x"), 2)


def test_purge_older_than_deletes_old_events_of_one_tenant_and_is_audited(app, api, other_api, run):
    old = [api.create_user(f"old{n}@acme.dk")["id"] for n in range(2)]
    recent = api.create_user("recent@acme.dk")["id"]
    theirs = other_api.create_user("x@globex.com")["id"]
    backdate(app, 40, "acme")
    backdate(app, 10, ids=[e["id"] for e in trail(app) if e["resourceId"] == recent])
    backdate(app, 40, "globex")
    ok(run("tenant", "set", "acme", "--audit-retention-days", "365"))  # --older-than wins over it
    result = ok(run("audit", "purge", "--older-than", "30", "--tenant", "acme"))
    assert result.stdout == "acme\t2 audit event(s)\t0 sync run(s)\tolder than 30 days\n"
    assert "2 row(s) purged" in result.stderr
    events = trail(app)
    assert [e["resourceId"] for e in events if e["operation"] != "system"] == [recent]
    assert not any(e["resourceId"] in old for e in events)
    purge = [e for e in events if e["operation"] == "system"]
    assert len(purge) == 1
    assert purge[0]["actor"] == "system:audit-purge"
    assert purge[0]["resourceType"] == "Audit"
    assert purge[0]["changes"]["purged"]["auditEvents"] == 2
    assert purge[0]["changes"]["purged"]["syncRuns"] == 0
    assert "older than 30 days" in purge[0]["changes"]["rule"]
    # the other tenant's trail is untouched
    assert [e["resourceId"] for e in trail(app, "globex")] == [theirs]


def test_purge_without_older_than_applies_each_tenant_retention(app, api, other_api, run):
    ok(run("tenant", "create", "initech"))
    ok(run("tenant", "set", "acme", "--audit-retention-days", "30"))
    ok(run("tenant", "set", "globex", "--audit-retention-days", "90"))
    api.create_user("a@acme.dk")
    other_api.create_user("g@globex.com")
    with app.extensions["scim_sessions"].begin() as session:
        initech = bearer(app, tenants.create_token(session, tenants.get_tenant(session, "initech")))
    initech.create_user("i@initech.com")
    for name in ("acme", "globex", "initech"):
        backdate(app, 40, name)
    result = ok(run("audit", "purge"))
    assert result.stdout.splitlines() == ["acme\t1 audit event(s)\t0 sync run(s)\tolder than 30 days",
                                          "globex\t0 audit event(s)\t0 sync run(s)\tolder than 90 days"]
    assert [e["operation"] for e in trail(app)] == ["system"]
    assert trail(app)[0]["changes"]["rule"] == "audit retention of 30 days"
    assert [e["operation"] for e in trail(app, "globex")] == ["create"]  # 40 days < 90
    assert [e["operation"] for e in trail(app, "initech")] == ["create"]  # no retention: kept
    backdate(app, 100, "globex")
    backdate(app, 100, "initech")
    ok(run("audit", "purge"))
    assert [e["operation"] for e in trail(app, "globex")] == ["system"]
    assert [e["operation"] for e in trail(app, "initech")] == ["create"]
    assert [e["operation"] for e in trail(app)] == ["system"]  # acme's purge event is recent: kept


def test_purge_deletes_old_sync_runs_too(app, api, run, tmp_path):
    sync_people(run, tmp_path)
    assert len(run_log(run)) == 1
    assert any(e["runId"] for e in trail(app) if e.get("runId"))
    backdate_runs(app, 50, "acme")
    ok(run("audit", "purge", "--older-than", "30"))  # the run is old, its events (left recent here) are not
    assert len(run_log(run)) == 0
    purge = [e for e in trail(app) if e["resourceType"] == "Audit"]
    assert purge[0]["changes"]["purged"]["syncRuns"] == 1
    assert purge[0]["changes"]["purged"]["auditEvents"] == 0


def test_purge_of_a_tenant_without_retention_needs_older_than(app, api, run):
    line = one_error(run("audit", "purge", "--tenant", "acme"))
    assert "tenant 'acme' has no audit retention period" in line and "--older-than" in line


def test_purge_with_nothing_old_writes_nothing(app, api, run):
    api.create_user("a@acme.dk")
    ok(run("tenant", "set", "acme", "--audit-retention-days", "30"))
    before = trail(app)
    result = ok(run("audit", "purge"))
    assert result.stdout == "acme\t0 audit event(s)\t0 sync run(s)\tolder than 30 days\n"
    assert trail(app) == before


# ------------------------------------------------------------------ erasure


@pytest.fixture
def people(app, api, other_api):
    """A boss, a worker (reporting to the boss, in a group, renamed, then deleted) and a bystander
    in acme; a namesake of the worker in globex."""
    boss = api.create_user("bodil.boss@acme.dk", displayName="Bodil Boss")
    worker = api.create_user("soren.orsted@acme.dk", displayName="Søren Ørsted",
                             emails=[{"value": "soren.private@example.dk", "type": "home"}],
                             **{ENTERPRISE: {"manager": {"value": boss["id"]}, "department": "Lønkontoret"}})
    bystander = api.create_user("other@acme.dk", displayName="Other Person")
    group = api.create_group("Kaffeklubben", members=[worker["id"], bystander["id"]])
    assert api.patch_ops(f"/Users/{worker['id']}", {"op": "replace", "path": "displayName",
                                                   "value": "Søren Ø. Ørsted"}).status_code == 200
    assert api.patch_ops(f"/Groups/{group['id']}",
                         {"op": "remove", "path": f'members[value eq "{worker["id"]}"]'}).status_code in (200, 204)
    assert api.delete(f"/Users/{worker['id']}").status_code == 204
    namesake = other_api.create_user("soren.orsted@acme.dk", displayName="Søren Ørsted")
    return {"boss": boss["id"], "worker": worker["id"], "bystander": bystander["id"], "group": group["id"],
            "namesake": namesake["id"]}


PERSONAL = ("soren.orsted", "Søren", "Ørsted", "soren.private@example.dk", "Lønkontoret")


def test_erase_replaces_the_values_and_keeps_the_events(app, run, people):
    worker = people["worker"]
    before = trail(app)
    text = json.dumps(before, ensure_ascii=False)
    assert all(value in text for value in PERSONAL)
    result = ok(run("audit", "erase", "--tenant", "acme", "--user", worker))
    after = trail(app)
    assert "from 3 of its own audit event(s) and 2 other event(s)" in result.stderr
    assert result.stdout == ""
    # no personal value of the worker is left in the trail, and every event is still there
    text = json.dumps(after, ensure_ascii=False)
    assert not any(value in text for value in PERSONAL), text
    assert worker not in json.dumps([e["changes"] for e in after if e["resourceId"] != worker])
    assert [e["id"] for e in after[:-1]] == [e["id"] for e in before]
    for old, new in zip(before, after):
        for key in ("at", "actor", "requestId", "resourceType", "resourceId", "operation"):
            assert old[key] == new[key]
        assert set(old["changes"]) == set(new["changes"])  # which attributes changed is kept
    own = [(old, new) for old, new in zip(before, after) if old["resourceId"] == worker]
    assert [new["operation"] for _, new in own] == ["create", "patch", "delete"]
    for old, new in own:
        for key, change in new["changes"].items():
            assert change == {side: (None if old["changes"][key][side] is None else ERASED) for side in ("old", "new")}
    # the group's events keep the bystander, not the worker
    group = [new for old, new in zip(before, after) if old["resourceId"] == people["group"]]
    assert group[0]["changes"]["members"]["added"] == [ERASED, people["bystander"]] or \
        group[0]["changes"]["members"]["added"] == [people["bystander"], ERASED]
    assert group[1]["changes"]["members"] == {"added": [], "removed": [ERASED]}
    # the others' events are untouched
    for old, new in zip(before, after):
        if old["resourceId"] in (people["boss"], people["bystander"]):
            assert old == new
    # the erasure itself is an event of the worker's
    erasure = after[-1]
    assert erasure["resourceId"] == worker and erasure["resourceType"] == "User"
    assert erasure["operation"] == "system" and erasure["actor"] == "system:audit-erase"
    assert erasure["changes"]["erased"] == {"ownEvents": 3, "otherEvents": 2}
    # the namesake in another tenant keeps everything
    assert "Søren Ørsted" in json.dumps(trail(app, "globex"), ensure_ascii=False)


def test_erase_is_idempotent_and_refuses_an_unknown_user(app, run, people):
    ok(run("audit", "erase", "--tenant", "acme", "--user", people["worker"]))
    before = trail(app)
    again = ok(run("audit", "erase", "--tenant", "acme", "--user", people["worker"]))
    assert "nothing left to erase" in again.stderr
    assert trail(app) == before
    line = one_error(run("audit", "erase", "--tenant", "acme", "--user", str(uuid.uuid4())))
    assert "no audit event of tenant 'acme' names user" in line
    # a user of another tenant is unknown here
    assert "no audit event" in one_error(run("audit", "erase", "--tenant", "acme", "--user", people["namesake"]))
    assert "no audit event" in one_error(run("audit", "erase", "--tenant", "globex", "--user", people["worker"]))


def test_erase_a_manager_from_the_reports_events(app, api, run):
    boss = api.create_user("boss@acme.dk", displayName="Bodil Boss")
    report = api.create_user("report@acme.dk", displayName="Rita Report",
                             **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    assert api.delete(f"/Users/{boss['id']}").status_code == 204  # the report's manager is cleared
    ok(run("audit", "erase", "--tenant", "acme", "--user", boss["id"]))
    events = [e for e in trail(app) if e["resourceId"] == report["id"]]
    manager = f"{ENTERPRISE}:manager"
    assert events[0]["changes"][manager] == {"old": None, "new": ERASED}
    assert events[0]["changes"]["userName"] == {"old": None, "new": "report@acme.dk"}  # not the boss's data
    cleared = events[1]
    assert cleared["operation"] == "system" and cleared["changes"]["rule"] == "manager deleted"
    assert cleared["changes"][manager] == {"old": ERASED, "new": None}
    assert "Bodil" not in json.dumps(trail(app), ensure_ascii=False)


def test_erase_of_a_user_who_still_exists_warns(app, api, run):
    user = api.create_user("still@acme.dk", displayName="Still Here")
    result = ok(run("audit", "erase", "--tenant", "acme", "--user", user["id"]))
    assert "still exists" in result.stderr
    assert get_json(api, f"/Users/{user['id']}")["displayName"] == "Still Here"  # the live record is not touched
    assert "Still Here" not in json.dumps(trail(app), ensure_ascii=False)


# ------------------------------------------------------------------ tenant delete


def rows_of(app, tid: int) -> dict[str, int]:
    """Rows of every table that has a tenant key, for one tenant."""
    out = {}
    with app.extensions["scim_engine"].connect() as conn:
        for table in Base.metadata.sorted_tables:
            if "tenant_id" in table.c:
                out[table.name] = conn.scalar(select(func.count()).select_from(table).where(table.c.tenant_id == tid))
            elif table.name == "tenants":
                out[table.name] = conn.scalar(select(func.count()).select_from(table).where(table.c.id == tid))
    return out


@pytest.fixture
def full_tenant(app, api, other_api, run, tmp_path):
    """acme with a bit of everything: users with a manager, an org tree with employments, a
    group, tokens, an OAuth client with a used client assertion and an issued token, a source,
    a sync run, audit events. globex with some of it."""
    root = create_unit(api, "Kommune")
    school = create_unit(api, "Skole", root["id"])
    create_unit(api, "Klasse", school["id"])
    boss = api.create_user("boss@acme.dk")
    worker = api.create_user("worker@acme.dk", **{ENTERPRISE: {"manager": {"value": boss["id"]}},
                                                  P2L_USER: {"employments": [{"value": school["id"]}]}})
    api.create_group("Kaffeklubben", members=[worker["id"], boss["id"]])
    key = RSAKey.generate_key(2048)
    path = tmp_path / "client.jwks"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    client_id = json.loads(ok(run("client", "create", "--tenant", "acme", "--jwks-file", str(path))).stdout)["client_id"]
    now = int(time.time())
    assertion = jwt.encode({"alg": "RS256"}, {"iss": client_id, "sub": client_id, "aud": "http://localhost/oauth/token",
                                              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}, key)
    issued = app.test_client().post("/oauth/token", data={
        "grant_type": "client_credentials", "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert issued.status_code == 200, issued.get_data(as_text=True)
    sync_people(run, tmp_path)
    other_api.create_user("x@globex.com")
    other_api.create_group("Globex")
    sync_people(run, tmp_path, "globex")
    ok(run("client", "create", "--tenant", "globex"))
    tid = tenant_id(app, "acme")
    from scim_server.storage import admins, usage
    with app.extensions["scim_sessions"]() as session:  # a console admin, signed in
        admins.start_session(session, admins.create_admin(session, "anna@acme.dk", "correct horse battery", tid),
                             utcnow())
        session.commit()
    usage.record_error(app.extensions["scim_sessions"], tid, "token:x", None, "GET", "/scim/v2/Users/x", 404,
                       None, "User x not found")
    rows = rows_of(app, tid)
    assert all(rows[t] for t in ("users", "groups", "memberships", "bearer_tokens", "oauth_clients",
                                 "audit_events", "sources", "sync_runs", "console_admins", "request_errors",
                                 "tenants")), rows
    with app.extensions["scim_sessions"]() as session:
        assert session.scalar(select(func.count()).select_from(UsedAssertion)
                              .where(UsedAssertion.client_id == client_id)) == 1
    return {"tenant_id": tid, "client_id": client_id, "token": issued.get_json()["access_token"]}


def test_tenant_delete_asks_first(app, api, run, full_tenant):
    before = rows_of(app, full_tenant["tenant_id"])
    result = run("tenant", "delete", "acme", input="n\n")
    assert result.exit_code == 1
    assert "Delete tenant 'acme' in " in result.stderr and " users, " in result.stderr
    assert rows_of(app, full_tenant["tenant_id"]) == before
    assert api.get("/Users").status_code == 200
    # nothing in reach of a terminal (cron): no answer is no
    result = run("tenant", "delete", "acme")
    assert result.exit_code == 1
    assert rows_of(app, full_tenant["tenant_id"]) == before


def test_tenant_delete_removes_every_row_and_nothing_else(app, api, other_api, run, full_tenant, caplog):
    tid = full_tenant["tenant_id"]
    others = rows_of(app, tenant_id(app, "globex"))
    theirs = get_json(other_api, "/Users")["totalResults"]
    with caplog.at_level(logging.INFO, logger="scim_server.admin"):
        result = run("tenant", "delete", "acme", input="y\n")
    assert result.exit_code == 0, result.output
    line = [x for x in result.stderr.splitlines() if x.startswith("deleted tenant")]
    assert len(line) == 1
    where = tenants.database_label(app.config["SCIM"].database_url)
    assert line[0].startswith(f"deleted tenant 'acme' (id {tid}) from {where}: ")
    assert "users, " in line[0] and "audit events" in line[0] and "sync runs" in line[0]
    logged = [r for r in caplog.records if r.name == "scim_server.admin"]
    assert [r.getMessage() for r in logged] == [line[0]]
    assert logged[0].fields["rows"]["audit events"] > 0
    # every row of the tenant is gone, in every table with a tenant key, and its used assertions
    assert set(rows_of(app, tid).values()) == {0}
    with app.extensions["scim_sessions"]() as session:
        assert session.scalar(select(func.count()).select_from(UsedAssertion)
                              .where(UsedAssertion.client_id == full_tenant["client_id"])) == 0
        assert session.get(OAuthClient, full_tenant["client_id"]) is None
        assert session.scalar(select(func.count()).select_from(ConsoleSession)) == 0  # its admins' sessions
    assert "console accounts" in line[0] and "request errors" in line[0]
    # its credentials stop working; the other tenant is untouched
    assert_scim_error(api.get("/Users"), 401)
    assert_scim_error(bearer(app, full_tenant["token"]).get("/Users"), 401)
    assert rows_of(app, tenant_id(app, "globex")) == others
    assert get_json(other_api, "/Users")["totalResults"] == theirs
    assert ok(run("tenant", "list")).stdout == "globex\n"
    # the name is free again, and the new tenant starts empty
    ok(run("tenant", "create", "acme"))
    assert set(rows_of(app, tenant_id(app, "acme")).values()) == {0, 1}


def test_tenant_delete_with_yes_asks_nothing(app, api, run, full_tenant):
    result = ok(run("tenant", "delete", "acme", "--yes"))
    assert "Delete tenant" not in result.output
    assert "deleted tenant 'acme'" in result.stderr
    assert set(rows_of(app, full_tenant["tenant_id"]).values()) == {0}


def test_tenant_delete_of_an_unknown_tenant(app, api, run):
    assert "no tenant named 'acm' in " in one_error(run("tenant", "delete", "acm", "--yes"))
    assert "(did you mean 'acme'?)" in one_error(run("tenant", "delete", "ACME", "--yes"))
    assert api.get("/Users").status_code == 200
