"""The audit trail: every successful write, who made it, in which request, what changed;
``scim-server audit`` and ``GET /admin/v1/audit``."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from conftest import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE,
    P2L_GROUP,
    P2L_USER,
    ScimClient,
    access_token,
    assert_scim_error,
    bearer,
    make_client,
)
from scim_server.storage import tenants
from scim_server.storage.models import AuditEvent, BearerToken, Tenant

PASSWORD = "Sup3r-Secret-Passw0rd!"


def events(app, tenant="acme", resource_id=None):
    with app.extensions["scim_sessions"]() as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
        query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
        if resource_id:
            query = query.where(AuditEvent.resource_id == resource_id)
        return [dict(id=e.id, tenant_id=e.tenant_id, actor=e.actor, request_id=e.request_id,
                     resource_type=e.resource_type, resource_id=e.resource_id, operation=e.operation,
                     changes=e.changes, at=e.at)
                for e in session.scalars(query.order_by(AuditEvent.id))]


def count_events(app) -> int:
    with app.extensions["scim_sessions"]() as session:
        return len(session.scalars(select(AuditEvent.id)).all())


def token_id(app, token) -> str:
    with app.extensions["scim_sessions"]() as session:
        return session.scalar(select(BearerToken.id).where(BearerToken.token_hash == tenants.hash_token(token)))


def scoped(app, scope, tenant="acme") -> ScimClient:
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, tenant), "auditor", scope)
    return bearer(app, token)


# ------------------------------------------------------------------ what is recorded


def test_create_is_recorded_with_actor_request_id_and_values(app, api):
    r = api.post("/Users", json={"schemas": [CORE_USER], "userName": "ann@acme.com", "displayName": "Ann",
                                 ENTERPRISE: {"department": "IT"}},
                 headers={"X-Request-ID": "req-create-1"})
    assert r.status_code == 201
    assert r.headers["X-Request-ID"] == "req-create-1"
    user = r.get_json()
    [event] = events(app, resource_id=user["id"])
    assert event["operation"] == "create"
    assert event["resource_type"] == "User"
    assert event["actor"] == f"token:{token_id(app, api.token)}"
    assert event["request_id"] == "req-create-1"
    assert event["changes"]["userName"] == {"old": None, "new": "ann@acme.com"}
    assert event["changes"]["displayName"] == {"old": None, "new": "Ann"}
    assert event["changes"][f"{ENTERPRISE}:department"] == {"old": None, "new": "IT"}


def test_generated_request_id_is_returned_and_recorded(app, api):
    r = api.post("/Users", json={"schemas": [CORE_USER], "userName": "gen@acme.com"})
    request_id = r.headers.get("X-Request-ID")
    assert request_id
    [event] = events(app, resource_id=r.get_json()["id"])
    assert event["request_id"] == request_id
    other = api.get("/Users").headers.get("X-Request-ID")
    assert other and other != request_id


def test_request_id_echoed_on_reads_and_errors(app, api, anonymous):
    assert api.get("/Users", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    assert api.get("/Users/nope", headers={"X-Request-ID": "abc-404"}).headers["X-Request-ID"] == "abc-404"
    assert anonymous.get("/Users", headers={"X-Request-ID": "abc-401"}).headers["X-Request-ID"] == "abc-401"


def test_replace_patch_delete_record_old_and_new(app, api):
    user = api.create_user("bob@acme.com", displayName="Bob", title="Clerk")
    r = api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "userName": "bob@acme.com",
                                              "displayName": "Robert", "title": "Clerk", "active": True},
                headers={"X-Request-ID": "req-put"})
    assert r.status_code == 200
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Manager"},
                      headers={"X-Request-ID": "req-patch"})
    assert r.status_code in (200, 204)
    r = api.delete(f"/Users/{user['id']}", headers={"X-Request-ID": "req-delete"})
    assert r.status_code == 204
    create, put, patch, delete = events(app, resource_id=user["id"])
    assert [e["operation"] for e in (create, put, patch, delete)] == ["create", "replace", "patch", "delete"]
    assert put["request_id"] == "req-put"
    assert put["changes"] == {"displayName": {"old": "Bob", "new": "Robert"}}
    assert patch["request_id"] == "req-patch"
    assert patch["changes"] == {"title": {"old": "Clerk", "new": "Manager"}}
    assert delete["request_id"] == "req-delete"
    assert delete["changes"]["userName"] == {"old": "bob@acme.com", "new": None}
    assert delete["changes"]["displayName"] == {"old": "Robert", "new": None}
    actor = f"token:{token_id(app, api.token)}"
    assert {e["actor"] for e in (create, put, patch, delete)} == {actor}
    assert all(e["resource_type"] == "User" for e in (create, put, patch, delete))


def test_password_change_recorded_without_value(app, api):
    user = api.create_user("pw@acme.com", password=PASSWORD)
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "password", "value": PASSWORD + "2"})
    assert r.status_code in (200, 204)
    r = api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "userName": "pw@acme.com",
                                              "password": "Another-0ne!"})
    assert r.status_code == 200
    recorded = events(app, resource_id=user["id"])
    assert [e["operation"] for e in recorded] == ["create", "patch", "replace"]
    for event in recorded:
        assert event["changes"]["password"] == {"changed": True}, event["changes"]
    dump = json.dumps([e["changes"] for e in recorded])
    assert PASSWORD not in dump and "Another-0ne!" not in dump
    with app.extensions["scim_sessions"]() as session:
        from scim_server.storage.models import User
        stored_hash = session.get(User, user["id"]).password_hash
    assert stored_hash not in dump


def test_group_member_changes_are_recorded(app, api):
    a, b, c = (api.create_user(f"{n}@acme.com")["id"] for n in "abc")
    group = api.create_group("Team", members=[a, b])
    r = api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": c}]},
                      {"op": "remove", "path": f'members[value eq "{a}"]'})
    assert r.status_code in (200, 204)
    r = api.put(f"/Groups/{group['id']}", json={"schemas": [CORE_GROUP], "displayName": "Team 2",
                                                "members": [{"value": a}]})
    assert r.status_code == 200
    create, patch, replace = events(app, resource_id=group["id"])
    assert create["resource_type"] == "Group" and create["operation"] == "create"
    assert sorted(_members(create["changes"], "new")) == sorted([a, b])
    added, removed = _delta(patch["changes"])
    assert added == [c] and removed == [a]
    assert replace["changes"]["displayName"] == {"old": "Team", "new": "Team 2"}
    added, removed = _delta(replace["changes"])
    assert added == [a] and sorted(removed) == sorted([b, c])


def _members(changes, side):
    value = changes["members"]
    if "added" in value:
        return value["added"] if side == "new" else value["removed"]
    return [m["value"] if isinstance(m, dict) else m for m in (value.get(side) or [])]


def _delta(changes):
    value = changes["members"]
    if "added" in value:
        return sorted(value["added"]), sorted(value["removed"])
    old = {m["value"] if isinstance(m, dict) else m for m in value.get("old") or []}
    new = {m["value"] if isinstance(m, dict) else m for m in value.get("new") or []}
    return sorted(new - old), sorted(old - new)


def test_deleting_manager_records_change_on_reports(app, api):
    boss = api.create_user("boss@acme.com")
    report = api.create_user("report@acme.com", **{"schemas": [CORE_USER, ENTERPRISE],
                                                   ENTERPRISE: {"manager": {"value": boss["id"]}}})
    assert api.delete(f"/Users/{boss['id']}", headers={"X-Request-ID": "req-fire"}).status_code == 204
    assert ENTERPRISE not in api.get(f"/Users/{report['id']}").get_json() or \
        "manager" not in api.get(f"/Users/{report['id']}").get_json()[ENTERPRISE]
    recorded = events(app, resource_id=report["id"])
    assert len(recorded) == 2
    cleared = recorded[-1]
    assert cleared["request_id"] == "req-fire"
    assert cleared["resource_type"] == "User"
    assert cleared["actor"] == f"token:{token_id(app, api.token)}"
    change = cleared["changes"][f"{ENTERPRISE}:manager"]
    assert change["new"] is None
    assert boss["id"] in json.dumps(change["old"])


def test_deactivate_leavers_is_recorded_as_system(app, api, cli):
    root = api.post("/Groups", json={"schemas": [CORE_GROUP, P2L_GROUP], "displayName": "Skole",
                                     P2L_GROUP: {"unitCode": "SKOLE"}}).get_json()
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    user = api.create_user("leaver@acme.com", active=True, **{
        "schemas": [CORE_USER, P2L_USER],
        P2L_USER: {"employments": [{"value": root["id"], "endDate": end.strftime("%Y-%m-%dT%H:%M:%SZ")}]}})
    assert user["active"] is True
    # the job is told a clock past the end date (a hidden option, for tests) instead of waiting for it
    result = cli("deactivate-leavers", "--now", (end + dt.timedelta(minutes=1)).isoformat())
    assert result.exit_code == 0, result.output
    assert api.get(f"/Users/{user['id']}").get_json()["active"] is False
    job = [e for e in events(app, resource_id=user["id"]) if e["actor"].startswith("system:")]
    assert len(job) == 1
    assert job[0]["actor"] == "system:deactivate-leavers"
    assert job[0]["changes"]["active"] == {"old": True, "new": False}
    assert job[0]["resource_type"] == "User"
    # a dry run records nothing
    before = count_events(app)
    assert cli("deactivate-leavers", "--dry-run").exit_code == 0
    assert count_events(app) == before


# ------------------------------------------------------------------ failures write nothing


def test_failed_requests_write_no_audit_row(app, api, other_api):
    user = api.create_user("taken@acme.com")
    group = api.create_group("G")
    theirs = other_api.create_user("x@globex.com")
    before = count_events(app)
    assert_scim_error(api.post("/Users", json={"schemas": [CORE_USER], "userName": "taken@acme.com"}), 409)
    assert_scim_error(api.post("/Users", json={"schemas": [CORE_USER]}), 400)
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"op": "frobnicate", "path": "title", "value": 1}),
                      400)
    assert_scim_error(api.patch_ops(f"/Groups/{group['id']}",
                                    {"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}), 400)
    assert_scim_error(api.patch_ops(f"/Groups/{group['id']}",
                                    {"op": "add", "path": "members", "value": [{"value": theirs["id"]}]}), 400)
    assert_scim_error(api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "userName": "taken@acme.com"},
                              headers={"If-Match": 'W/"not-the-version"'}), 412)
    assert_scim_error(api.delete("/Users/does-not-exist"), 404)
    assert_scim_error(api.delete(f"/Users/{theirs['id']}"), 404)
    reader = scoped(app, "scim:read")
    assert_scim_error(reader.delete(f"/Users/{user['id']}"), 403)
    assert count_events(app) == before


def test_audit_row_is_in_the_same_transaction(app, api, monkeypatch):
    """If recording the audit row fails, the change itself is rolled back."""
    from scim_server.storage import audit

    def broken(*args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit, "record_many", broken)
    try:
        r = api.post("/Users", json={"schemas": [CORE_USER], "userName": "ghost@acme.com"})
        assert r.status_code >= 500
    except RuntimeError:
        pass
    monkeypatch.undo()
    assert api.get('/Users?filter=userName eq "ghost@acme.com"').get_json()["totalResults"] == 0
    assert count_events(app) == 0


# ------------------------------------------------------------------ reading the trail


def test_cli_audit_shows_the_trail(app, api, other_api, cli):
    first = api.create_user("one@acme.com")
    second = api.create_user("two@acme.com")
    api.patch_ops(f"/Users/{first['id']}", {"op": "replace", "path": "displayName", "value": "One"})
    other_api.create_user("globex@globex.com")
    result = cli("audit", "--tenant", "acme")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 3
    assert [e["operation"] for e in lines] == ["patch", "create", "create"]  # newest first
    assert {e["resourceId"] for e in lines} == {first["id"], second["id"]}
    assert "globex@globex.com" not in result.stdout
    assert lines[0]["actor"].startswith("token:")
    assert lines[0]["requestId"]
    assert lines[0]["resourceType"] == "User"
    assert lines[0]["changes"]["displayName"] == {"old": None, "new": "One"}
    only = cli("audit", "--tenant", "acme", "--resource", first["id"])
    assert [json.loads(line)["operation"] for line in only.stdout.splitlines()] == ["patch", "create"]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert cli("audit", "--tenant", "acme", "--since", future).stdout.strip() == ""
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    assert len(cli("audit", "--tenant", "acme", "--since", past).stdout.splitlines()) == 3
    assert cli("audit", "--tenant", "acme", "--since", "yesterday").exit_code != 0
    assert cli("audit", "--tenant", "nope").exit_code != 0


def test_admin_audit_endpoint(app, api, other_api):
    users = [api.create_user(f"u{i}@acme.com") for i in range(5)]
    api.delete(f"/Users/{users[0]['id']}")
    other_api.create_user("globex@globex.com")
    auditor = scoped(app, "audit:read")
    r = auditor.get("http://localhost/admin/v1/audit")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["totalResults"] == 6
    assert body["Resources"][0]["operation"] == "delete"
    assert "globex@globex.com" not in r.get_data(as_text=True)
    page = auditor.get("http://localhost/admin/v1/audit?startIndex=2&count=2").get_json()
    assert page["startIndex"] == 2 and page["itemsPerPage"] == 2 and page["totalResults"] == 6
    assert [e["id"] for e in page["Resources"]] == [e["id"] for e in body["Resources"][1:3]]
    one = auditor.get(f"http://localhost/admin/v1/audit?resource={users[0]['id']}").get_json()
    assert [e["operation"] for e in one["Resources"]] == ["delete", "create"]
    event = one["Resources"][1]
    assert {"actor", "requestId", "resourceType", "resourceId", "operation", "changes", "at"} <= set(event)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert auditor.get(f"http://localhost/admin/v1/audit?since={future}").get_json()["totalResults"] == 0
    assert auditor.get("http://localhost/admin/v1/audit?since=garbage").status_code == 400


def test_admin_audit_requires_the_audit_scope(app, api, anonymous):
    api.create_user("x@acme.com")
    r = api.get("http://localhost/admin/v1/audit")  # scim:read scim:write, no audit:read
    assert_scim_error(r, 403)
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert_scim_error(scoped(app, "scim:read").get("http://localhost/admin/v1/audit"), 403)
    assert_scim_error(anonymous.get("http://localhost/admin/v1/audit"), 401)


def test_admin_audit_is_per_tenant(app, api, other_api):
    mine = api.create_user("mine@acme.com")
    theirs = other_api.create_user("theirs@globex.com")
    globex_auditor = scoped(app, "audit:read", tenant="globex")
    body = globex_auditor.get("http://localhost/admin/v1/audit").get_json()
    assert [e["resourceId"] for e in body["Resources"]] == [theirs["id"]]
    filtered = globex_auditor.get(f"http://localhost/admin/v1/audit?resource={mine['id']}").get_json()
    assert filtered["totalResults"] == 0 and filtered["Resources"] == []


def test_oauth_client_writes_are_attributed_to_the_client(app, api):
    client_id, secret = make_client(app, scope="scim:read scim:write")
    token = access_token(app, client_id, secret)
    user = bearer(app, token).create_user("c@acme.com")
    [event] = events(app, resource_id=user["id"])
    assert client_id in event["actor"]
    assert token not in json.dumps(event, default=str)


def test_audit_client_with_audit_scope_via_oauth(app, api):
    api.create_user("x@acme.com")
    client_id, secret = make_client(app, scope="audit:read")
    auditor = bearer(app, access_token(app, client_id, secret))
    assert auditor.get("http://localhost/admin/v1/audit").get_json()["totalResults"] == 1
    assert_scim_error(auditor.get("/Users"), 403)


@pytest.mark.parametrize("incoming", ["has space", "x" * 500, "a\"b", "evil\u00e6id"])
def test_unusable_request_id_is_replaced(app, api, incoming):
    r = api.post("/Users", json={"schemas": [CORE_USER], "userName": "rid@acme.com"},
                 headers={"X-Request-ID": incoming})
    assert r.status_code == 201
    generated = r.headers.get("X-Request-ID")
    assert generated and generated != incoming
    [event] = events(app, resource_id=r.get_json()["id"])
    assert event["request_id"] == generated
