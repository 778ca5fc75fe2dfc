"""/Users: create, read, replace, delete (RFC 7643 §4.1, RFC 7644 §3.3, §3.4.1, §3.5.1, §3.6)."""
from __future__ import annotations

import re
import uuid

import pytest

from conftest import BASE, CORE_USER, ENTERPRISE, P2L_USER, assert_scim_error

VERSION_RE = re.compile(r'^W/".+"$')


def _user_body(user_name="bjensen@example.com", **attrs):
    return {"schemas": [CORE_USER], "userName": user_name, **attrs}


# ------------------------------------------------------------------- create


def test_create_returns_201_with_id_meta_and_location(api):
    resp = api.post("/Users", json=_user_body(name={"givenName": "Barbara", "familyName": "Jensen"}))
    assert resp.status_code == 201, resp.get_json()
    assert resp.mimetype == "application/scim+json"
    body = resp.get_json()
    assert CORE_USER in body["schemas"]
    uuid.UUID(body["id"])  # a server-assigned, unique, stable id
    assert body["userName"] == "bjensen@example.com"
    assert body["name"]["givenName"] == "Barbara"
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["created"] and meta["lastModified"]
    assert meta["location"].startswith("http://") or meta["location"].startswith("https://")
    assert meta["location"].endswith(f"/Users/{body['id']}")
    assert VERSION_RE.match(meta["version"]), meta["version"]
    assert resp.headers["Location"] == meta["location"]


def test_created_user_can_be_read_back(api):
    created = api.create_user("reader@example.com", displayName="Reader", active=True)
    resp = api.get(f"/Users/{created['id']}")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["id"] == created["id"]
    assert body["userName"] == "reader@example.com"
    assert body["displayName"] == "Reader"
    assert body["active"] is True
    assert body["meta"]["location"] == created["meta"]["location"]


def test_read_only_input_is_ignored_on_create(api):
    group = api.create_group("Existing")
    bogus_id = "client-chosen-id"
    resp = api.post("/Users", json=_user_body(
        "ro@example.com",
        id=bogus_id,
        meta={"resourceType": "Group", "created": "2001-01-01T00:00:00Z", "version": 'W/"bogus"',
              "location": "https://evil.example/Users/x"},
        groups=[{"value": group["id"], "display": "Existing"}],
    ))
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["id"] != bogus_id
    uuid.UUID(body["id"])
    assert body["meta"]["resourceType"] == "User"
    assert not body["meta"]["created"].startswith("2001")
    assert body["meta"]["version"] != 'W/"bogus"'
    assert body["meta"]["location"].endswith(f"/Users/{body['id']}")
    assert not body.get("groups")  # the client cannot make a user a member through groups
    group_now = api.get(f"/Groups/{group['id']}").get_json()
    assert not group_now.get("members")
    assert_scim_error(api.get(f"/Users/{bogus_id}"), 404)


def test_missing_user_name_is_invalid_value(api):
    resp = api.post("/Users", json={"schemas": [CORE_USER], "displayName": "No Name"})
    assert_scim_error(resp, 400, "invalidValue")


@pytest.mark.parametrize("attrs", [
    {"active": "maybe"},
    {"emails": "bjensen@example.com"},
    {"emails": ["bjensen@example.com"]},
    {"emails": {"value": "bjensen@example.com"}},
    {"name": "Barbara Jensen"},
    {"userName": 42},
    {"name": {"givenName": ["Barbara"]}},
])
def test_wrong_attribute_types_are_invalid_value(api, attrs):
    body = _user_body("types@example.com")
    body.update(attrs)
    resp = api.post("/Users", json=body)
    assert_scim_error(resp, 400, "invalidValue")
    listing = api.get("/Users").get_json()
    assert listing["totalResults"] == 0


def test_duplicate_user_name_is_uniqueness_conflict_case_insensitively(api):
    api.create_user("Dup@Example.com")
    assert_scim_error(api.post("/Users", json=_user_body("Dup@Example.com")), 409, "uniqueness")
    assert_scim_error(api.post("/Users", json=_user_body("dup@example.COM")), 409, "uniqueness")
    assert api.get("/Users").get_json()["totalResults"] == 1


def test_duplicate_user_name_with_danish_letters_is_a_conflict(api):
    """The unique index (not a query before the insert) finds a new user's clash: it must fold
    Æ/Ø/Å like the rest of userName matching does, on SQLite too."""
    api.create_user("Søren.Ærø@kommune.dk")
    response = api.post("/Users", json=_user_body("sØREN.æRØ@KOMMUNE.DK"))
    assert_scim_error(response, 409, "uniqueness")
    assert api.get("/Users").get_json()["totalResults"] == 1
    user = api.create_user("åse@kommune.dk")  # and a rename onto a taken name is found too
    assert_scim_error(api.put(f"/Users/{user['id']}", json=_user_body("SØREN.ÆRØ@kommune.dk")), 409, "uniqueness")


def test_same_user_name_in_another_tenant_is_allowed(api, other_api):
    api.create_user("shared@example.com")
    other_api.create_user("shared@example.com")


def test_more_than_one_primary_email_is_rejected(api):
    resp = api.post("/Users", json=_user_body("primary@example.com", emails=[
        {"value": "a@example.com", "type": "work", "primary": True},
        {"value": "b@example.com", "type": "home", "primary": True},
    ]))
    assert_scim_error(resp, 400)
    assert api.get("/Users").get_json()["totalResults"] == 0


def test_password_is_accepted_and_never_returned(api):
    resp = api.post("/Users", json=_user_body("pw@example.com", password="t1meMa$heen"))
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert "password" not in body
    user_id = body["id"]
    assert "password" not in api.get(f"/Users/{user_id}").get_json()
    assert "password" not in api.get(f"/Users/{user_id}?attributes=password").get_json()
    listed = api.get("/Users").get_json()["Resources"][0]
    assert "password" not in listed
    put = api.put(f"/Users/{user_id}", json=_user_body("pw@example.com", password="an0ther"))
    assert put.status_code == 200
    assert "password" not in put.get_json()
    text = api.get(f"/Users/{user_id}").get_data(as_text=True)
    assert "t1meMa$heen" not in text and "an0ther" not in text


def test_enterprise_extension_round_trips_under_its_urn(api):
    resp = api.post("/Users", json={
        "schemas": [CORE_USER, ENTERPRISE],
        "userName": "ent@example.com",
        ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations",
                     "costCenter": "4130", "organization": "Universal Studios", "division": "Theme Park"},
    })
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert ENTERPRISE in body["schemas"] and CORE_USER in body["schemas"]
    ext = body[ENTERPRISE]
    assert ext["employeeNumber"] == "701984"
    assert ext["department"] == "Tour Operations"
    assert ext["costCenter"] == "4130"
    assert "employeeNumber" not in body  # extension attributes live only under the URN
    again = api.get(f"/Users/{body['id']}").get_json()
    assert again[ENTERPRISE]["division"] == "Theme Park"


def test_attribute_names_are_case_insensitive(api):
    resp = api.post("/Users", json={
        "schemas": [CORE_USER, ENTERPRISE],
        "USERNAME": "caps@example.com",
        "Name": {"GIVENNAME": "Barbara", "familyname": "Jensen"},
        "DisplayName": "Babs",
        "EMAILS": [{"VALUE": "caps@example.com", "Type": "work", "PRIMARY": True}],
        ENTERPRISE: {"EmployeeNumber": "7"},
    })
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["userName"] == "caps@example.com"
    assert body["name"]["givenName"] == "Barbara"
    assert body["name"]["familyName"] == "Jensen"
    assert body["displayName"] == "Babs"
    assert body["emails"][0]["value"] == "caps@example.com"
    assert body["emails"][0]["primary"] is True
    assert body[ENTERPRISE]["employeeNumber"] == "7"
    assert "USERNAME" not in body and "Name" not in body


def test_schema_urns_are_case_insensitive(api):
    resp = api.post("/Users", json={
        "schemas": [CORE_USER.upper(), ENTERPRISE.upper()],
        "userName": "urncase@example.com",
        ENTERPRISE.upper(): {"department": "Sales"},
    })
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["schemas"][0] == CORE_USER
    assert body[ENTERPRISE]["department"] == "Sales"


# ---------------------------------------------------------------------- PUT


def test_put_replaces_the_whole_resource(api):
    user = api.create_user("put@example.com", displayName="Before", title="Engineer",
                           name={"givenName": "A", "familyName": "B"},
                           emails=[{"value": "put@example.com", "type": "work"}],
                           **{ENTERPRISE: {"department": "R&D"}})
    resp = api.put(f"/Users/{user['id']}", json=_user_body("put@example.com", displayName="After",
                                                          name={"givenName": "C"}))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["id"] == user["id"]
    assert body["displayName"] == "After"
    assert body["name"].get("givenName") == "C"
    assert "familyName" not in body["name"]
    for gone in ("title", "emails", ENTERPRISE):
        assert gone not in body, gone
    got = api.get(f"/Users/{user['id']}").get_json()
    assert got["displayName"] == "After"
    assert "title" not in got and "emails" not in got and ENTERPRISE not in got
    assert got["meta"]["created"] == user["meta"]["created"]
    assert got["meta"]["version"] != user["meta"]["version"]


def test_put_can_change_user_name(api):
    user = api.create_user("old@example.com")
    resp = api.put(f"/Users/{user['id']}", json=_user_body("new@example.com"))
    assert resp.status_code == 200
    assert resp.get_json()["userName"] == "new@example.com"


def test_put_to_an_existing_user_name_conflicts(api):
    api.create_user("taken@example.com")
    user = api.create_user("mine@example.com")
    assert_scim_error(api.put(f"/Users/{user['id']}", json=_user_body("TAKEN@example.com")), 409, "uniqueness")
    assert api.get(f"/Users/{user['id']}").get_json()["userName"] == "mine@example.com"


def test_put_without_user_name_is_invalid_value(api):
    user = api.create_user("req@example.com")
    assert_scim_error(api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "displayName": "x"}),
                      400, "invalidValue")


def test_put_ignores_read_only_attributes(api):
    user = api.create_user("puro@example.com")
    group = api.create_group("G")
    resp = api.put(f"/Users/{user['id']}", json=_user_body(
        "puro@example.com",
        meta={"created": "2001-01-01T00:00:00Z", "resourceType": "User"},
        groups=[{"value": group["id"]}],
    ))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["meta"]["created"] == user["meta"]["created"]
    assert not body.get("groups")
    assert not api.get(f"/Groups/{group['id']}").get_json().get("members")


def test_put_of_the_whole_get_body_works_okta_style(api):
    boss = api.create_user("boss@example.com", displayName="Boss")
    user = api.create_user("okta@example.com", displayName="Okta User",
                           name={"givenName": "O", "familyName": "K"},
                           emails=[{"value": "okta@example.com", "type": "work", "primary": True}],
                           **{ENTERPRISE: {"department": "IT", "manager": {"value": boss["id"]}}})
    group = api.create_group("Okta Group", members=[user["id"]])
    current = api.get(f"/Users/{user['id']}").get_json()
    assert current["groups"][0]["value"] == group["id"]
    current["displayName"] = "Okta User Renamed"
    resp = api.put(f"/Users/{user['id']}", json=current)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["id"] == user["id"]
    assert body["displayName"] == "Okta User Renamed"
    assert body["emails"][0]["value"] == "okta@example.com"
    assert body[ENTERPRISE]["department"] == "IT"
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert [g["value"] for g in body["groups"]] == [group["id"]]  # membership unchanged


def test_put_unknown_user_is_404(api):
    assert_scim_error(api.put(f"/Users/{uuid.uuid4()}", json=_user_body("ghost@example.com")), 404)


# ------------------------------------------------------------------- DELETE


def test_delete_then_get_and_delete_again_are_404(api):
    user = api.create_user("del@example.com")
    resp = api.delete(f"/Users/{user['id']}")
    assert resp.status_code == 204
    assert resp.get_data() == b""
    assert_scim_error(api.get(f"/Users/{user['id']}"), 404)
    assert_scim_error(api.delete(f"/Users/{user['id']}"), 404)
    assert api.get("/Users").get_json()["totalResults"] == 0


def test_deleted_user_leaves_its_groups(api):
    user = api.create_user("member@example.com")
    keep = api.create_user("keep@example.com")
    group = api.create_group("Team", members=[user["id"], keep["id"]])
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    members = api.get(f"/Groups/{group['id']}").get_json().get("members", [])
    assert [m["value"] for m in members] == [keep["id"]]


def test_get_unknown_user_is_404(api):
    assert_scim_error(api.get(f"/Users/{uuid.uuid4()}"), 404)
    assert_scim_error(api.get("/Users/not-a-uuid"), 404)


def test_tenants_do_not_see_each_other(api, other_api):
    user = api.create_user("private@example.com")
    assert_scim_error(other_api.get(f"/Users/{user['id']}"), 404)
    assert_scim_error(other_api.delete(f"/Users/{user['id']}"), 404)
    assert other_api.get("/Users").get_json()["totalResults"] == 0
    assert api.get(f"/Users/{user['id']}").status_code == 200


# ----------------------------------------------------------------- location


def test_location_honours_forwarded_headers(api):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "scim.example.org"}
    resp = api.post("/Users", json=_user_body("fwd@example.com"), headers=headers)
    assert resp.status_code == 201
    body = resp.get_json()
    expected = f"https://scim.example.org{BASE}/Users/{body['id']}"
    assert body["meta"]["location"] == expected
    assert resp.headers["Location"] == expected
    got = api.get(f"/Users/{body['id']}", headers=headers).get_json()
    assert got["meta"]["location"] == expected


# ------------------------------------------------------------------ manager


def test_manager_is_returned_with_value_ref_and_display_name(api):
    boss = api.create_user("boss@example.com", displayName="The Boss")
    resp = api.post("/Users", json={
        "schemas": [CORE_USER, ENTERPRISE], "userName": "emp@example.com",
        ENTERPRISE: {"manager": {"value": boss["id"]}},
    })
    assert resp.status_code == 201, resp.get_json()
    manager = resp.get_json()[ENTERPRISE]["manager"]
    assert manager["value"] == boss["id"]
    assert manager["$ref"].endswith(f"/Users/{boss['id']}")
    assert manager["$ref"].startswith("http")
    assert manager["displayName"] == "The Boss"
    got = api.get(f"/Users/{resp.get_json()['id']}").get_json()[ENTERPRISE]["manager"]
    assert got == manager


def test_unknown_manager_is_invalid_value(api):
    resp = api.post("/Users", json={
        "schemas": [CORE_USER, ENTERPRISE], "userName": "emp@example.com",
        ENTERPRISE: {"manager": {"value": str(uuid.uuid4())}},
    })
    assert_scim_error(resp, 400, "invalidValue")
    assert api.get("/Users").get_json()["totalResults"] == 0


def test_manager_in_another_tenant_is_invalid_value(api, other_api):
    boss = other_api.create_user("boss@example.com")
    resp = api.post("/Users", json={
        "schemas": [CORE_USER, ENTERPRISE], "userName": "emp@example.com",
        ENTERPRISE: {"manager": {"value": boss["id"]}},
    })
    assert_scim_error(resp, 400, "invalidValue")


def test_deleting_the_manager_clears_it_on_the_report(api):
    boss = api.create_user("boss@example.com")
    emp = api.create_user("emp@example.com", schemas=[CORE_USER, ENTERPRISE],
                          **{ENTERPRISE: {"department": "Ops", "manager": {"value": boss["id"]}}})
    assert emp[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert api.delete(f"/Users/{boss['id']}").status_code == 204
    got = api.get(f"/Users/{emp['id']}")
    assert got.status_code == 200
    ext = got.get_json().get(ENTERPRISE, {})
    assert "manager" not in ext
    assert ext.get("department") == "Ops"


def test_checks_across_the_document_name_what_is_wrong(api):
    """Required attributes (core and inside an extension's complex values) and one primary
    value per list are checked on the whole document; each failure names the attribute."""
    r = api.post("/Users", json={"schemas": [CORE_USER], "displayName": "No Name"})
    assert "userName" in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = api.post("/Users", json=_user_body(emails=[{"value": "a@x.dk", "primary": True},
                                                  {"value": "b@x.dk", "primary": True}]))
    assert "emails" in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = api.post("/Users", json=_user_body(**{P2L_USER: {"employments": [{"title": "Lærer"}]}}))
    assert "employments.value" in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = api.post("/Users", json=_user_body(emails=[{"value": "a@x.dk", "primary": True},
                                                  {"value": "b@x.dk", "primary": False}]))
    assert r.status_code == 201
    assert api.get("/Users?count=0").get_json()["totalResults"] == 1
