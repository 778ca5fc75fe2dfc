"""Inputs that answered 5xx or were misread (issue 14), each through the HTTP API (or the CLI
where it is a CLI setting): deeply nested JSON, app roles as deeply nested JSON text, audit
windows outside the calendar, filter values longer than a database compares, chunked bodies
over the size limit, OAuth scopes a client does not hold, employments that end before they
start, departments that match no org unit, and unitCodes that differ only in case."""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import uuid
from urllib.parse import quote

import pytest
from sqlalchemy import text

from conftest import (
    CORE_USER,
    ENTERPRISE,
    P2L_GROUP,
    P2L_USER,
    PATCH_OP,
    ScimClient,
    assert_scim_error,
    basic,
    bearer,
    create_unit,
    filter_list,
    get_json,
    ids,
    make_client,
)
from scim_server.jsontext import MAX_DEPTH
from scim_server.scim.filters import MAX_VALUE_LENGTH
from scim_server.storage import tenants
from scim_server.storage.db import make_engine
from scim_server.storage.migrate import MigrationRefused, upgrade

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def nested(depth: int, kind: str = "object") -> str:
    """JSON text of ``depth`` objects (or arrays) inside each other around a 1."""
    if kind == "object":
        return '{"k":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


def patch_text(*operations: str) -> str:
    return json.dumps({"schemas": [PATCH_OP], "Operations": []})[:-2] + ",".join(operations) + "]}"


def employments_of(api: ScimClient, user_id: str) -> list[dict]:
    return (get_json(api, f"/Users/{user_id}").get(P2L_USER) or {}).get("employments") or []


# ------------------------------------------------------------------ 1. deeply nested JSON


@pytest.mark.parametrize("path, kind", [("emails", "object"), ("roles", "array"), ("x509Certificates", "object"),
                                        ("entitlements", "array")])
def test_patch_repeating_a_deeply_nested_value_is_invalid_syntax(api, path, kind):
    """Two operations carrying one value nested 1,000 deep: the second compared it with the
    first one's, recursively, and failed with 500."""
    user = api.create_user("deep@example.com")
    operation = f'{{"op":"add","path":"{path}","value":[{{"value":{nested(1000, kind)}}}]}}'
    response = api.patch(f"/Users/{user['id']}", data=patch_text(operation, operation))
    body = assert_scim_error(response, 400, "invalidSyntax")
    assert f"at most {MAX_DEPTH} deep" in body["detail"]
    assert get_json(api, f"/Users/{user['id']}") == user


def test_patch_with_an_earlier_value_nested_500_deep_is_invalid_syntax(api):
    user = api.create_user("deep@example.com")
    response = api.patch(f"/Users/{user['id']}", data=patch_text(
        f'{{"op":"add","path":"emails","value":[{{"value":{nested(500)}}}]}}',
        '{"op":"replace","path":"displayName","value":"Deep"}'))
    assert_scim_error(response, 400, "invalidSyntax")
    assert get_json(api, f"/Users/{user['id']}") == user


def test_json_nested_up_to_the_limit_is_read_and_deeper_is_invalid_syntax(api):
    """The limit counts arrays and objects, the body itself included: an unknown attribute
    nested to exactly the limit is read (and ignored, as unknown attributes are)."""
    def body(user_name: str, depth: int) -> str:
        return json.dumps({"schemas": [CORE_USER], "userName": user_name})[:-1] + \
            f', "unknownAttribute": {nested(depth - 1)}}}'

    assert api.post("/Users", data=body("at-limit@example.com", MAX_DEPTH)).status_code == 201
    assert_scim_error(api.post("/Users", data=body("over@example.com", MAX_DEPTH + 1)), 400, "invalidSyntax")
    assert filter_list(api, "Users", 'userName eq "over@example.com"')["totalResults"] == 0
    bulk = json.dumps({"schemas": [BULK_REQUEST], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"schemas": [CORE_USER], "userName": "b"}}]})
    too_deep = bulk[:-3] + f', "extra": {nested(MAX_DEPTH)}}}]}}'
    assert json.loads(too_deep)
    assert_scim_error(api.post("/Bulk", data=too_deep), 400, "invalidSyntax")


# ------------------------------------------------------------------ 2. app roles as nested JSON text


@pytest.mark.parametrize("depth", [1000, MAX_DEPTH + 1])
def test_app_role_sent_as_deeply_nested_json_text_is_invalid_value(api, depth):
    """Entra ID sends app roles as JSON text; text nested 1,000 deep overflowed the decoder (500)."""
    user = api.create_user("roles@example.com")
    role_text = '{"value":' * depth + '"25"' + "}" * depth
    response = api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": "roles", "value": [{"value": role_text}]})
    body = assert_scim_error(response, 400, "invalidValue")
    assert "too deeply nested" in body["detail"]
    assert "roles" not in get_json(api, f"/Users/{user['id']}")


def test_app_role_sent_as_json_text_is_still_decoded(api):
    user = api.create_user("roles@example.com")
    role = json.dumps({"id": "a1", "value": "25", "displayName": "Role"})
    response = api.patch_ops(f"/Users/{user['id']}", {"op": "Add", "path": "roles", "value": [{"value": role}]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["roles"] == [{"value": "25", "display": "Role"}]


# ------------------------------------------------------------------ 3. audit windows outside the calendar


def auditor(app) -> ScimClient:
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, "acme"), "auditor", "audit:read")
    return bearer(app, token)


@pytest.mark.parametrize("query", ["since=9999-12-31T23:59:59-01:00", "until=0001-01-01T00:00:00%2B01:00",
                                   "since=9999-12-31T23:59:59-00:01", "until=not-a-date"])
def test_audit_window_outside_the_calendar_is_400(app, api, query):
    """In UTC these moments fall after year 9999 or before year 1."""
    api.create_user("audited@example.com")
    response = auditor(app).get(f"http://localhost/admin/v1/audit?{query}")
    body = assert_scim_error(response, 400, "invalidValue")
    assert "ISO 8601" in body["detail"]


def test_audit_window_at_the_calendar_edges_is_answered(app, api):
    api.create_user("audited@example.com")
    reader = auditor(app)
    assert reader.get("http://localhost/admin/v1/audit?since=9999-12-31T23:59:59Z").get_json()["totalResults"] == 0
    assert reader.get("http://localhost/admin/v1/audit?since=0001-01-01T00:00:00%2B00:00").get_json()["totalResults"] == 1
    assert reader.get("http://localhost/admin/v1/audit?until=9999-12-31T23:59:59%2B01:00").get_json()["totalResults"] == 1


# ------------------------------------------------------------------ 4. filter values too long to compare


@pytest.mark.parametrize("operator", ["co", "sw", "ew", "eq"])
@pytest.mark.parametrize("length", [MAX_VALUE_LENGTH + 1, 49_999, 60_000])
def test_filter_value_longer_than_the_limit_is_invalid_filter(api, operator, length):
    """SQLite refuses a LIKE pattern over 50,000 bytes: that was a 503 with Retry-After, which
    IdPs retry for ever. The limit holds for every operator, on both databases."""
    api.create_user("a@example.com")
    expression = f'userName {operator} "{"a" * length}"'
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": expression})
    body = assert_scim_error(response, 400, "invalidFilter")
    assert f"at most {MAX_VALUE_LENGTH} characters" in body["detail"]
    assert "aaaaaaaaaa" not in body["detail"]
    response = api.get(f"/Users?filter={quote(expression)}")
    assert_scim_error(response, 400, "invalidFilter")


@pytest.mark.parametrize("character", ["a", "%", "\U0001d11e"])  # 1 byte, escaped in LIKE, 4 bytes
@pytest.mark.parametrize("operator", ["co", "sw", "ew"])
def test_filter_value_at_the_limit_is_compared(api, operator, character):
    value = character * MAX_VALUE_LENGTH
    user = api.create_user("long@example.com", nickName=value)  # in the JSON document: no column's length
    api.create_user("short@example.com", nickName=character)
    response = api.post("/Users/.search", json={"schemas": [SEARCH],
                                                 "filter": f"nickName {operator} {json.dumps(value)}"})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert ids(response.get_json()) == {user["id"]}


# ------------------------------------------------------------------ 5. chunked bodies over the size limit


def chunked(api: ScimClient, path: str, payload: bytes):
    """A body sent with ``Transfer-Encoding: chunked`` and no Content-Length. gunicorn reads the
    chunks itself and marks the stream ``wsgi.input_terminated``, as this does."""
    return api.http.open(f"/scim/v2{path}", method="POST", input_stream=io.BytesIO(payload),
                         headers={**api.headers(), "Transfer-Encoding": "chunked",
                                  "Content-Type": "application/scim+json"},
                         environ_overrides={"wsgi.input_terminated": True})


def padded(document: dict, size: int) -> bytes:
    """``document`` as JSON of exactly ``size`` bytes (a nickName pads it)."""
    raw = json.dumps({**document, "nickName": ""}).encode()
    return json.dumps({**document, "nickName": "x" * (size - len(raw))}).encode()


LIMIT = 4096


@pytest.mark.parametrize("extra", [b" " * 10, b"\n", b"}" * 200])
def test_chunked_body_over_the_limit_is_413_and_stores_nothing(app, api, monkeypatch, extra):
    """The first LIMIT bytes are a whole user: werkzeug's stream ended there, and the cut body
    was stored (201)."""
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", LIMIT)
    payload = padded({"schemas": [CORE_USER], "userName": "chunked@example.com"}, LIMIT) + extra
    body = assert_scim_error(chunked(api, "/Users", payload), 413)
    assert body["detail"] == "Request body too large"
    assert filter_list(api, "Users", 'userName eq "chunked@example.com"')["totalResults"] == 0
    # as a body with a Content-Length is answered
    assert assert_scim_error(api.post("/Users", data=payload), 413) == body


def test_chunked_bulk_over_the_limit_is_413_and_stores_nothing(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", LIMIT)
    operation = {"method": "POST", "path": "/Users", "bulkId": "u",
                 "data": {"schemas": [CORE_USER], "userName": "bulk-chunked@example.com"}}
    raw = json.dumps({"schemas": [BULK_REQUEST], "Operations": [operation]}).encode()
    payload = raw + b" " * (LIMIT - len(raw)) + b" " * 100
    assert_scim_error(chunked(api, "/Bulk", payload), 413)
    assert filter_list(api, "Users", 'userName eq "bulk-chunked@example.com"')["totalResults"] == 0


def test_chunked_sync_upload_over_its_limit_is_413_and_runs_nothing(app, api, monkeypatch):
    """The sync's CSV body has its own limit (SCIM_SYNC_MAX_BYTES), chunked or not."""
    monkeypatch.setitem(app.config, "SCIM", dataclasses.replace(app.config["SCIM"], sync_max_bytes=LIMIT))
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, "acme"), "hr", "sync:write scim:read")
    rows = b"".join(b"%d,person%d@acme.dk\n" % (n, n) for n in range(1000, 1400))
    payload = b"externalId,userName\n" + rows
    assert len(payload) > LIMIT
    response = api.http.open("/admin/v1/sources/hr/sync", method="POST", input_stream=io.BytesIO(payload),
                             headers={"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked",
                                      "Content-Type": "text/csv"},
                             environ_overrides={"wsgi.input_terminated": True})
    assert_scim_error(response, 413)
    assert get_json(api, "/Users?count=0")["totalResults"] == 0


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
def test_chunked_body_within_the_limit_is_read_whole(app, api, monkeypatch, size):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", LIMIT)
    payload = padded({"schemas": [CORE_USER], "userName": "fits@example.com"}, size)
    response = chunked(api, "/Users", payload)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["nickName"] == json.loads(payload)["nickName"]


# ------------------------------------------------------------------ 6. OAuth scopes the client does not hold


def token_request(app, client_id: str, secret: str, scope: str | None):
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope is not None else {})}
    return app.test_client().post("/oauth/token", data=data, headers=basic(client_id, secret),
                                  content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("scope", ["audit:read", "scim:read scim:write", "scim:write sync:write"])
def test_token_for_a_scope_the_client_does_not_hold_is_invalid_scope(app, api, scope):
    client_id, secret = make_client(app, scope="scim:read")
    response = token_request(app, client_id, secret, scope)
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "invalid_scope"
    assert "access_token" not in body
    assert "does not hold" in body["error_description"]


@pytest.mark.parametrize("scope, granted", [(None, "scim:read audit:read"), ("", "scim:read audit:read"),
                                            ("audit:read", "audit:read"), ("scim:read audit:read", "scim:read audit:read")])
def test_token_for_scopes_the_client_holds_is_issued(app, api, scope, granted):
    client_id, secret = make_client(app, scope="scim:read audit:read")
    response = token_request(app, client_id, secret, scope)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert set(response.get_json()["scope"].split()) == set(granted.split())


def test_token_for_an_unknown_scope_stays_invalid_scope(app, api):
    client_id, secret = make_client(app, scope="scim:read")
    response = token_request(app, client_id, secret, "scim:admin")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"


# ------------------------------------------------------------------ 7. employments ending before they start

START, BEFORE_START, AFTER_START = "2026-06-01T00:00:00Z", "2026-05-31T23:59:59Z", "2026-12-31T00:00:00Z"


@pytest.fixture
def unit_ids(api) -> list[str]:
    root = create_unit(api, "Kommune", unitCode="K")
    return [root["id"], create_unit(api, "Skole", root["id"], unitCode="SK")["id"]]


def job(unit_id: str, start: str | None = None, end: str | None = None) -> dict:
    return {"value": unit_id, **({"startDate": start} if start else {}), **({"endDate": end} if end else {})}


def user_body(user_name: str, *jobs: dict) -> dict:
    return {"schemas": [CORE_USER, P2L_USER], "userName": user_name, P2L_USER: {"employments": list(jobs)}}


def assert_ends_before_start(response) -> None:
    body = assert_scim_error(response, 400, "invalidValue")
    assert "endDate may not lie before startDate" in body["detail"]


def test_post_of_an_employment_ending_before_it_starts_is_invalid_value(api, unit_ids):
    assert_ends_before_start(api.post("/Users", json=user_body("a@k.dk", job(unit_ids[0], START, BEFORE_START))))
    # the time zones are compared as moments: 00:00-02:00 is 02:00Z, after 01:00Z
    assert_ends_before_start(api.post("/Users", json=user_body(
        "a@k.dk", job(unit_ids[1]), job(unit_ids[0], "2026-06-01T00:00:00-02:00", "2026-06-01T01:00:00Z"))))
    assert filter_list(api, "Users", 'userName eq "a@k.dk"')["totalResults"] == 0
    # ending when it starts, or later, is an employment
    ok = api.post("/Users", json=user_body("b@k.dk", job(unit_ids[0], START, START),
                                           job(unit_ids[1], "2026-06-01T00:00:00+02:00", "2026-05-31T23:00:00Z")))
    assert ok.status_code == 201, ok.get_json()


def test_bulk_create_of_an_employment_ending_before_it_starts_fails_alone(api, unit_ids):
    """Runs of user creates are written together (``UserStore._employment_rows``)."""
    operations = [{"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": body}
                  for i, body in enumerate([user_body("ok1@k.dk", job(unit_ids[0], START, AFTER_START)),
                                            user_body("bad@k.dk", job(unit_ids[0], START, BEFORE_START)),
                                            user_body("ok2@k.dk", job(unit_ids[1], START))])]
    response = api.post("/Bulk", json={"schemas": [BULK_REQUEST], "Operations": operations})
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["Operations"]
    assert [r["status"] for r in results] == ["201", "400", "201"]
    assert results[1]["response"]["scimType"] == "invalidValue"
    assert "endDate may not lie before startDate" in results[1]["response"]["detail"]
    assert filter_list(api, "Users", 'userName eq "bad@k.dk"')["totalResults"] == 0


def test_put_of_an_employment_ending_before_it_starts_is_invalid_value(api, unit_ids):
    user = api.post("/Users", json=user_body("a@k.dk", job(unit_ids[0], START))).get_json()
    assert_ends_before_start(api.put(f"/Users/{user['id']}", json=user_body("a@k.dk", job(unit_ids[1], START, BEFORE_START))))
    assert [e["value"] for e in employments_of(api, user["id"])] == [unit_ids[0]]


@pytest.mark.parametrize("operation, stored_end", [
    ({"op": "add", "path": f"{P2L_USER}:employments", "value": [job("{1}", START, BEFORE_START)]}, None),
    ({"op": "replace", "path": f"{P2L_USER}:employments", "value": [job("{1}", START, BEFORE_START)]}, None),
    # the stored startDate with a new endDate, and the other way round
    ({"op": "add", "path": f"{P2L_USER}:employments", "value": [job("{0}", None, BEFORE_START)]}, None),
    ({"op": "replace", "path": f'{P2L_USER}:employments[value eq "{{0}}"].endDate', "value": BEFORE_START}, None),
    ({"op": "replace", "path": f"{P2L_USER}:employments.endDate", "value": BEFORE_START}, None),
    ({"op": "add", "value": {f"{P2L_USER}:employments": [job("{0}", "2027-01-01T00:00:00Z")]}}, AFTER_START),
    # a path selecting by the date it changes: after the write it selects nothing
    ({"op": "replace", "path": f'{P2L_USER}:employments[startDate lt "2026-07-01T00:00:00Z"].startDate',
      "value": "2027-01-01T00:00:00Z"}, AFTER_START),
], ids=["add", "replace", "add-end-to-stored", "sub-endDate", "every-endDate", "pathless-start-after-end",
        "filter-on-the-date"])
def test_patch_of_an_employment_ending_before_it_starts_is_invalid_value(api, unit_ids, operation, stored_end):
    user = api.post("/Users", json=user_body("a@k.dk", job(unit_ids[0], START, stored_end))).get_json()
    before = employments_of(api, user["id"])
    operation = json.loads(json.dumps(operation).replace("{0}", unit_ids[0]).replace("{1}", unit_ids[1]))
    assert_ends_before_start(api.patch_ops(f"/Users/{user['id']}", operation))
    assert employments_of(api, user["id"]) == before


def test_patch_of_a_start_date_after_the_stored_end_date_is_invalid_value(api, unit_ids):
    user = api.post("/Users", json=user_body("a@k.dk", job(unit_ids[0], START, AFTER_START))).get_json()
    path = f'{P2L_USER}:employments[value eq "{unit_ids[0]}"].startDate'
    assert_ends_before_start(api.patch_ops(f"/Users/{user['id']}",
                                           {"op": "replace", "path": path, "value": "2027-01-01T00:00:00Z"}))
    ok = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": path, "value": AFTER_START})
    assert ok.status_code == 200, ok.get_json()
    assert employments_of(api, user["id"])[0]["startDate"] == AFTER_START


# ------------------------------------------------------------------ 8. a department that matches no unit


def employment_units(api: ScimClient, user_id: str) -> set[str]:
    return {e["value"] for e in employments_of(api, user_id)}


def test_department_matching_no_unit_keeps_the_placement_and_warns(api, cli, caplog):
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    root = create_unit(api, "Kommune", unitCode="K")
    skole = create_unit(api, "Solbjerg Skole", root["id"], unitCode="SKOLE-1")
    user = api.create_user("placed@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"}})
    assert employment_units(api, user["id"]) == {skole["id"]}
    caplog.set_level(logging.WARNING, logger="scim_server.storage.placement")

    response = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:department",
                                                      "value": "Skolen (typo)"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()[ENTERPRISE]["department"] == "Skolen (typo)"
    assert employment_units(api, user["id"]) == {skole["id"]}
    assert response.get_json()["active"] is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert user["id"] in warnings[0] and "placed@k.dk" in warnings[0] and "'Skolen (typo)'" in warnings[0]

    # a new user with an unknown department is placed nowhere, also with a warning
    caplog.clear()
    other = api.create_user("nowhere@k.dk", **{ENTERPRISE: {"department": "Ukendt"}})
    assert employment_units(api, other["id"]) == set()
    assert any(other["id"] in r.getMessage() and "'Ukendt'" in r.getMessage() for r in caplog.records)

    # a department that matches moves the user; an empty or removed one ends the placement
    pleje = create_unit(api, "Plejehjem", root["id"], unitCode="PLEJE-7")
    api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "pleje-7"})
    assert employment_units(api, user["id"]) == {pleje["id"]}
    api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": f"{ENTERPRISE}:department"})
    assert employment_units(api, user["id"]) == set()


# ------------------------------------------------------------------ 9. unitCode unique case-insensitively


def test_unit_code_differing_only_in_case_is_taken(api, other_api):
    unit = create_unit(api, "Afdeling X", unitCode="x-1")
    response = api.post("/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", P2L_GROUP],
                                         "displayName": "Afdeling X2", P2L_GROUP: {"unitCode": "X-1"}})
    body = assert_scim_error(response, 409, "uniqueness")
    assert "'x-1'" in body["detail"] and "case-insensitively" in body["detail"]
    other = create_unit(api, "Afdeling Y", unitCode="Y-1")
    response = api.patch_ops(f"/Groups/{other['id']}", {"op": "replace", "path": f"{P2L_GROUP}:unitCode", "value": "X-1"})
    assert_scim_error(response, 409, "uniqueness")
    # a unit may change the case of its own code; another tenant has its own codes
    response = api.patch_ops(f"/Groups/{unit['id']}", {"op": "replace", "path": f"{P2L_GROUP}:unitCode", "value": "X-1"})
    assert response.status_code == 204, response.get_data(as_text=True)
    create_unit(other_api, "Their X", unitCode="x-1")
    # and is found by its code in any case (caseExact false, as the uniqueness)
    assert ids(filter_list(api, "Groups", f'{P2L_GROUP}:unitCode eq "x-1"')) == {unit["id"]}
    assert get_json(api, f"/Groups/{unit['id']}")[P2L_GROUP]["unitCode"] == "X-1"


def test_database_refuses_unit_codes_differing_only_in_case(app, api):
    """The unique index itself, for two writes that both passed the check (a race)."""
    create_unit(api, "Afdeling X", unitCode="x-1")
    engine = app.extensions["scim_engine"]
    with pytest.raises(Exception) as refused:
        with engine.begin() as conn:
            tenant_id = conn.scalar(text("SELECT id FROM tenants WHERE name = 'acme'"))
            conn.execute(text("INSERT INTO groups (id, tenant_id, display_name, attributes, version, created, "
                              "last_modified, is_org_unit, unit_code) VALUES (:id, :t, 'Y', '{}', 1, "
                              "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, true, 'X-1')"), {"id": str(uuid.uuid4()), "t": tenant_id})
    assert "unique" in str(refused.value).lower()


def test_migration_refuses_unit_codes_differing_only_in_case_and_names_them(empty_database):
    upgrade(empty_database, "0006")
    engine = make_engine(empty_database)
    insert = text("INSERT INTO groups (id, tenant_id, display_name, attributes, version, created, last_modified, "
                  "is_org_unit, unit_code) VALUES (:id, :t, :name, '{}', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
                  "true, :code)")
    try:
        with engine.begin() as conn:
            for name in ("acme", "globex"):
                conn.execute(text("INSERT INTO tenants (name, created, settings) VALUES (:n, CURRENT_TIMESTAMP, '{}')"),
                             {"n": name})
            acme, globex = (conn.scalar(text("SELECT id FROM tenants WHERE name = :n"), {"n": n})
                            for n in ("acme", "globex"))
            for group_id, tenant, code in (("g-lower", acme, "x-1"), ("g-upper", acme, "X-1"),
                                           ("g-other", acme, "Y-1"), ("g-globex", globex, "x-1")):
                conn.execute(insert, {"id": group_id, "t": tenant, "name": group_id, "code": code})
        with pytest.raises(MigrationRefused) as refused:
            upgrade(empty_database)
        message = str(refused.value)
        assert "tenant 'acme': unitCode 'X-1' (org unit g-upper)" in message
        assert "tenant 'acme': unitCode 'x-1' (org unit g-lower)" in message
        assert "Y-1" not in message and "globex" not in message
        with engine.connect() as conn:  # nothing changed: still at 0006
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0006"

        with engine.begin() as conn:  # the operator renames one; the migration then runs
            conn.execute(text("UPDATE groups SET unit_code = 'X-2' WHERE id = 'g-upper'"))
        upgrade(empty_database, "0007")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0007"
        with pytest.raises(Exception) as duplicate:
            with engine.begin() as conn:
                conn.execute(insert, {"id": "g-again", "t": acme, "name": "again", "code": "X-1"})
        assert "unique" in str(duplicate.value).lower()
    finally:
        engine.dispose()


def test_migrations_from_0007_on_apply_to_an_empty_database_and_downgrade(empty_database):
    from alembic import command
    from alembic.script import ScriptDirectory

    from scim_server.storage.migrate import alembic_config
    config = alembic_config(empty_database)
    upgrade(empty_database)
    command.downgrade(config, "0006")  # 0007 (unitCode case-insensitive), 0008 (console) and on
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == \
                ScriptDirectory.from_config(config).get_current_head()
    finally:
        engine.dispose()



def test_the_newest_migration_script_is_alembics_one_head(empty_database):
    """``upgrade`` skips Alembic when the database is at the newest script by number: that
    number must be Alembic's one head, and a database below it must still be upgraded."""
    from alembic.script import ScriptDirectory

    from scim_server.storage.migrate import alembic_config, current_revision, newest_revision
    assert ScriptDirectory.from_config(alembic_config(empty_database)).get_heads() == [newest_revision()]
    assert current_revision(empty_database) is None
    upgrade(empty_database, "0011")
    assert current_revision(empty_database) == "0011"
    upgrade(empty_database)
    assert current_revision(empty_database) == newest_revision()
