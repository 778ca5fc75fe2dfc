"""Users' work e-mails are copied into ``work_emails`` by the user store on every write of a
user (``storage.emails``), and the data-quality check for shared addresses reads the copy: it
must follow every way a document changes (POST, PUT, PATCH, Bulk, delete) or the check would
report addresses nobody has any more. The last test checks that migration 0010 fills the copy
for users already there."""
from __future__ import annotations

from sqlalchemy import text
from test_bulk import bulk
from test_reports import QUALITY, scoped

from conftest import CORE_USER, get_json
from scim_server.storage.db import make_engine
from scim_server.storage.migrate import upgrade


def shared(app) -> list[tuple[str, str]]:
    """The duplicate_emails list: (userName, e-mail) per finding."""
    r = scoped(app, "audit:read").get(f"{QUALITY}?check=duplicate_emails")
    assert r.status_code == 200, r.get_data(as_text=True)
    return [(f["name"], f["detail"]) for f in r.get_json()["Resources"]]


def ok(response):
    assert response.status_code in (200, 201, 204), (response.status_code, response.get_data(as_text=True))
    return response


def test_patch_put_and_delete_keep_the_shared_addresses_current(app, api):
    anna = api.create_user("anna", emails=[{"value": "Team@x.dk", "type": "work"}])
    bo = api.create_user("bo", emails=[{"value": "team@X.DK"}])
    assert shared(app) == [("anna", "team@x.dk"), ("bo", "team@x.dk")]
    # PATCH: a new address for bo
    ok(api.patch_ops(f"/Users/{bo['id']}", {"op": "replace", "path": "emails", "value": [{"value": "bo@x.dk"}]}))
    assert shared(app) == []
    # PATCH: anna takes bo's, as a second work address
    ok(api.patch_ops(f"/Users/{anna['id']}", {"op": "add", "path": "emails",
                                               "value": [{"value": "BO@x.dk", "type": "work"}]}))
    assert shared(app) == [("anna", "bo@x.dk"), ("bo", "bo@x.dk")]
    # PUT: bo's address becomes a home address, which is no work address
    ok(api.put(f"/Users/{bo['id']}", json={"schemas": [CORE_USER], "userName": "bo",
                                           "emails": [{"value": "bo@x.dk", "type": "home"}]}))
    assert shared(app) == []
    ok(api.put(f"/Users/{bo['id']}", json={"schemas": [CORE_USER], "userName": "bo",
                                           "emails": [{"value": "team@x.dk", "type": "work"}]}))
    assert shared(app) == [("anna", "team@x.dk"), ("bo", "team@x.dk")]
    # PATCH removing every e-mail, then a delete
    ok(api.patch_ops(f"/Users/{anna['id']}", {"op": "remove", "path": "emails"}))
    assert shared(app) == []
    ok(api.patch_ops(f"/Users/{anna['id']}", {"op": "add", "path": "emails", "value": [{"value": "team@x.dk"}]}))
    assert len(shared(app)) == 2
    ok(api.delete(f"/Users/{anna['id']}"))
    assert shared(app) == []


def test_bulk_creates_and_patches_keep_them_too(app, api):
    results = bulk(api, *({"method": "POST", "path": "/Users", "bulkId": name, "data": {
        "schemas": [CORE_USER], "userName": name, "emails": [{"value": "same@x.dk", "type": "work"}]}}
        for name in ("c1", "c2", "c3")))
    assert [name for name, _ in shared(app)] == ["c1", "c2", "c3"]
    ids = [r["location"].rsplit("/", 1)[1] for r in results]
    bulk(api, *({"method": "PATCH", "path": f"/Users/{user_id}", "data": {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "emails", "value": [{"value": f"{n}@x.dk", "type": "work"}]}]}}
        for n, user_id in enumerate(ids[:2])))
    assert shared(app) == []


def test_migration_0010_copies_the_work_emails_of_users_already_there(empty_database):
    upgrade(empty_database, "0009")
    engine = make_engine(empty_database)
    documents = {
        "u-work": '{"emails": [{"value": "A@x.dk", "type": "work"}, {"value": "home@x.dk", "type": "home"}]}',
        "u-untyped": '{"emails": [{"value": " a@X.dk "}]}',
        "u-none": '{"name": {"givenName": "N"}}',
    }
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (name, created, settings) VALUES ('acme', CURRENT_TIMESTAMP, '{}')"))
            tenant = conn.scalar(text("SELECT id FROM tenants"))
            for user_id, document in documents.items():
                conn.execute(text("INSERT INTO users (id, tenant_id, user_name, attributes, version, created, "
                                  "last_modified) VALUES (:id, :t, :id, :doc, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                             {"id": user_id, "t": tenant, "doc": document})
        upgrade(empty_database)
        with engine.connect() as conn:
            copied = set(conn.execute(text("SELECT user_id, email, tenant_id FROM work_emails")).all())
        assert copied == {("u-work", "a@x.dk", tenant), ("u-untyped", "a@x.dk", tenant)}
    finally:
        engine.dispose()


def test_the_demo_tenant_s_users_have_their_copies_too(app, api):
    """The demo data is inserted in bulk, not through the user store: it makes the copies itself,
    or a duplicate with a demo user would go unseen."""
    from scim_server import demo
    from scim_server.storage import tenants
    with app.extensions["scim_sessions"].begin() as session:
        demo.load(session, tenants.get_tenant(session, "acme").id, employees=30, externals=3)
    employee = next(u for u in get_json(api, "/Users?count=200")["Resources"]
                    if any(e.get("type") == "work" for e in u.get("emails", [])))
    address = next(e["value"] for e in employee["emails"] if e.get("type") == "work")
    newcomer = api.create_user("newcomer", emails=[{"value": address.upper(), "type": "work"}])
    assert sorted(shared(app)) == sorted([(employee["userName"], address.lower()), ("newcomer", address.lower())])
    assert newcomer["id"]
