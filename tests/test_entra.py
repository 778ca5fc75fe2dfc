"""Microsoft Entra ID's provisioning cycle, replayed through the HTTP API.

Every request body is the payload Entra's provisioning service (or its SCIM
validator) sends, with its headers: bodies as
``application/scim+json; charset=utf-8``, GETs with neither Content-Type nor
Accept, and query strings encoded with ``+`` for spaces and ``%22`` for quotes.
Catalogue references (E1-E15, Q1-Q12, the aadOptscim062020 flag table) are to
the project's IdP client reference; the payloads are copied here so the tests
do not depend on it.
"""
from __future__ import annotations

import uuid
from urllib.parse import quote_plus

from conftest import CORE_GROUP, CORE_USER, ENTERPRISE, ERROR, LIST, PATCH_OP, assert_scim_error

ENTRA_CT = "application/scim+json; charset=utf-8"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
MANAGER = f"{ENTERPRISE}:manager"


# ----------------------------------------------------------------- helpers


def q(expression: str) -> str:
    """Entra's query encoding: spaces as ``+``, quotes as ``%22``."""
    return quote_plus(expression, safe="")


def send(api, method: str, path: str, body=None):
    """A request as Entra sends it: bodies in scim+json with charset, GETs bare."""
    if body is None:
        response = api.request(method, path)
    else:
        response = api.request(method, path, json=body, content_type=ENTRA_CT)
    if response.status_code != 204 and response.get_data():
        assert response.mimetype == "application/scim+json", response.headers
    return response


def patch(api, path: str, *operations):
    return send(api, "PATCH", path, {"schemas": [PATCH_OP], "Operations": list(operations)})


def assert_patched(response):
    """Entra accepts 200 (with the resource) or 204 for a PATCH."""
    assert response.status_code in (200, 204), (response.status_code, response.get_data(as_text=True))


def query(api, resource: str, expression: str, extra: str = "") -> dict:
    response = send(api, "GET", f"/{resource}?{extra}filter={q(expression)}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert LIST in body["schemas"]
    assert isinstance(body["totalResults"], int)
    assert body["totalResults"] == len(body["Resources"])
    for resource_ in body["Resources"]:
        assert resource_["id"]
    return body


def get_user(api, user_id: str) -> dict:
    response = send(api, "GET", f"/Users/{user_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def get_group(api, group_id: str, extra: str = "") -> dict:
    response = send(api, "GET", f"/Groups/{group_id}{extra}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def work_email(user: dict) -> str | None:
    return next((e.get("value") for e in user.get("emails", []) if e.get("type") == "work"), None)


def typed(user: dict, attribute: str, kind: str) -> list[dict]:
    return [e for e in user.get(attribute, []) if e.get("type") == kind]


def member_ids(group: dict) -> set[str]:
    return {m["value"] for m in group.get("members") or []}


def entra_user_body(suffix: str | None = None, **ent) -> dict:
    """E3, Microsoft's "Create User" sample, with the enterprise extension under its URN."""
    suffix = suffix or str(uuid.uuid4())
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": str(uuid.uuid4()),
        "userName": f"Test_User_{suffix}",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": f"Test_User_{suffix}@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations", **ent},
    }


def entra_create_user(api, body: dict | None = None) -> dict:
    body = body or entra_user_body()
    response = send(api, "POST", "/Users", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def entra_group_body(display_name: str) -> dict:
    """E12, Microsoft's "Create Group" sample: a non-SCIM schema URI and no members."""
    return {
        "schemas": [CORE_GROUP, MS_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": display_name,
        "meta": {"resourceType": "Group"},
    }


def entra_create_group(api, display_name: str) -> dict:
    response = send(api, "POST", "/Groups", entra_group_body(display_name))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


# ------------------------------------------------------------- E1 / E2


def test_test_connection_random_guid_returns_empty_list(api):
    # E1: Test Connection is a filter on the matching attribute with a random GUID.
    guid = str(uuid.uuid4())
    by_user_name = q('userName eq "%s"' % guid)
    response = send(api, "GET", f"/Users?filter={by_user_name}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 0
    assert body["Resources"] == []
    assert body["startIndex"] == 1
    assert isinstance(body["itemsPerPage"], int)

    # Entra also fetches "a random user and group" during Test Connection.
    body = query(api, "Groups", f'displayName eq "{uuid.uuid4()}"', "excludedAttributes=members&")
    assert body["totalResults"] == 0 and body["Resources"] == []

    # The same probe on a tenant URL with a trailing slash / the flag query string appended.
    response = send(api, "GET", f"/Users/?filter={by_user_name}")
    assert response.status_code == 200 and response.get_json()["totalResults"] == 0
    by_external_id = q('externalId eq "%s"' % guid)
    response = send(api, "GET", f"/Users?aadOptscim062020&filter={by_external_id}")
    assert response.status_code == 200 and response.get_json()["totalResults"] == 0

    # A random existing user: the same GET now finds it.
    user = api.create_user(f"Test_User_{guid}")
    found = query(api, "Users", f'userName eq "Test_User_{guid}"')
    assert [r["id"] for r in found["Resources"]] == [user["id"]]


def test_matching_by_username_then_externalid_then_work_email(api):
    # Users that already exist in the app (created by an earlier cycle or by hand).
    object_id = str(uuid.uuid4())
    existing = entra_create_user(api, {
        **entra_user_body("a9a0c1c4-0b0b-4a44-8a6c-3d1e5b2d6f10"),
        "userName": "bjensen@legacy.example.com", "externalId": object_id,
    })
    by_mail = entra_create_user(api, {
        **entra_user_body(), "userName": "ajohnson@legacy.example.com",
        "externalId": "legacy-42",
        "emails": [{"primary": True, "type": "work", "value": "ajohnson@contoso.com"}],
    })

    # 1. userName (UPN) first: no match.
    upn = "bjensen@contoso.onmicrosoft.com"
    assert query(api, "Users", f'userName eq "{upn}"')["totalResults"] == 0
    # 2. then externalId (objectId): exactly one.
    found = query(api, "Users", f'externalId eq "{object_id}"')
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == existing["id"]
    # Link, then PATCH only what differs; Entra uses /Users/{id} from now on.
    assert_patched(patch(api, f"/Users/{existing['id']}", {"op": "Replace", "path": "userName", "value": upn}))
    assert get_user(api, existing["id"])["userName"] == upn
    assert query(api, "Users", f'userName eq "{upn}"')["Resources"][0]["id"] == existing["id"]
    # userName matching is case-insensitive (userName caseExact false).
    assert query(api, "Users", f'userName eq "{upn.upper()}"')["totalResults"] == 1

    # 3. secondary matching attribute: emails[type eq "work"].value eq.
    assert query(api, "Users", 'userName eq "ajohnson@contoso.onmicrosoft.com"')["totalResults"] == 0
    assert query(api, "Users", 'externalId eq "11111111-2222-3333-4444-555555555555"')["totalResults"] == 0
    found = query(api, "Users", 'emails[type eq "work"].value eq "ajohnson@contoso.com"')
    assert [r["id"] for r in found["Resources"]] == [by_mail["id"]]
    # A home address with that value must not match the work filter.
    assert query(api, "Users", 'emails[type eq "home"].value eq "ajohnson@contoso.com"')["totalResults"] == 0


# ------------------------------------------------------------------- E3


def test_create_user_with_entra_body(api):
    body = entra_user_body("ab6490ee-1e48-479e-a20b-2d77186b5dd1")
    assert query(api, "Users", f'userName eq "{body["userName"]}"')["totalResults"] == 0
    response = send(api, "POST", "/Users", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    created = response.get_json()
    assert created["id"]
    assert created["meta"]["resourceType"] == "User"
    assert created["meta"]["location"].endswith(f"/Users/{created['id']}")
    assert response.headers["Location"].endswith(f"/Users/{created['id']}")
    assert created["userName"] == body["userName"]
    assert created["externalId"] == body["externalId"]
    assert created["active"] is True
    assert created["name"] == body["name"]
    assert work_email(created) == body["emails"][0]["value"]
    assert created.get("roles", []) == []
    assert created[ENTERPRISE]["employeeNumber"] == "701984"
    assert created[ENTERPRISE]["department"] == "Tour Operations"
    assert CORE_USER in created["schemas"] and ENTERPRISE in created["schemas"]

    fetched = get_user(api, created["id"])
    assert fetched["userName"] == body["userName"]
    assert fetched[ENTERPRISE] == created[ENTERPRISE]
    found = query(api, "Users", f'userName eq "{body["userName"]}"')
    assert [r["id"] for r in found["Resources"]] == [created["id"]]

    # Duplicate create (log shows POST 409 then matching/PATCH): 409 uniqueness.
    assert_scim_error(send(api, "POST", "/Users", body), 409, "uniqueness")
    assert_scim_error(send(api, "POST", "/Users", {**body, "userName": body["userName"].upper()}), 409, "uniqueness")
    assert query(api, "Users", f'userName eq "{body["userName"]}"')["totalResults"] == 1

    # The schemas list may name the enterprise URN with no extension attribute at all.
    bare = entra_user_body()
    bare.pop(ENTERPRISE)
    response = send(api, "POST", "/Users", bare)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["userName"] == bare["userName"]


# -------------------------------------------------------------- E5-E7


def test_patch_differing_attributes(api):
    user = entra_create_user(api)
    uid = user["id"]
    # Incremental cycle: GET then PATCH.
    get_user(api, uid)

    # E5 verbatim.
    r = patch(api, f"/Users/{uid}",
              {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
              {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"})
    assert_patched(r)
    got = get_user(api, uid)
    assert work_email(got) == "updatedEmail@microsoft.com"
    assert len(typed(got, "emails", "work")) == 1
    assert got["name"]["familyName"] == "updatedFamilyName"
    assert got["name"]["givenName"] == "givenName"

    # Real traffic: addresses[...].formatted and name.formatted; typed entries that do not exist yet.
    r = patch(api, f"/Users/{uid}",
              {"op": "Replace", "path": "addresses[type eq \"work\"].formatted", "value": "1 Microsoft Way, Redmond"},
              {"op": "Replace", "path": "name.formatted", "value": "givenName updatedFamilyName"},
              {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "home@example.com"},
              {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 425 555 0100"},
              {"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 425 555 0199"},
              {"op": "Replace", "path": "addresses[type eq \"work\"].postalCode", "value": "98052"})
    assert_patched(r)
    got = get_user(api, uid)
    work_address = typed(got, "addresses", "work")
    assert len(work_address) == 1
    assert work_address[0]["formatted"] == "1 Microsoft Way, Redmond"
    assert work_address[0]["postalCode"] == "98052"
    assert got["name"]["formatted"] == "givenName updatedFamilyName"
    assert [e["value"] for e in typed(got, "emails", "home")] == ["home@example.com"]
    assert work_email(got) == "updatedEmail@microsoft.com"
    assert [p["value"] for p in typed(got, "phoneNumbers", "mobile")] == ["+1 425 555 0100"]
    assert [p["value"] for p in typed(got, "phoneNumbers", "work")] == ["+1 425 555 0199"]

    # E6: single-valued replace, and Add on a single-valued attribute (= replace, Q12).
    r = patch(api, f"/Users/{uid}", {"op": "Replace", "path": "userName", "value": "Test_User_renamed@testuser.com"})
    assert_patched(r)
    r = patch(api, f"/Users/{uid}", {"op": "Add", "path": "nickName", "value": "Babs"})
    assert_patched(r)
    got = get_user(api, uid)
    assert got["userName"] == "Test_User_renamed@testuser.com"
    assert got["nickName"] == "Babs"
    r = patch(api, f"/Users/{uid}", {"op": "Add", "path": "nickName", "value": "Barbie"})
    assert_patched(r)
    assert get_user(api, uid)["nickName"] == "Barbie"

    # E7: extension attributes by URN path.
    r = patch(api, f"/Users/{uid}",
              {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
               "value": "Retail"},
              {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
               "value": "1234"})
    assert_patched(r)
    got = get_user(api, uid)
    assert got[ENTERPRISE]["department"] == "Retail"
    assert got[ENTERPRISE]["employeeNumber"] == "1234"
    assert ENTERPRISE in got["schemas"]
    # Untouched attributes survive.
    assert got["userName"] == "Test_User_renamed@testuser.com"
    assert got["nickName"] == "Barbie"
    assert got["active"] is True
    assert got["externalId"] == user["externalId"]


# ------------------------------------------------------------------- E9


def test_manager_set_change_remove_all_forms(api):
    boss = entra_create_user(api)
    other_boss = entra_create_user(api)
    user = entra_create_user(api)
    uid = user["id"]

    def manager_of() -> dict | None:
        got = get_user(api, uid)
        manager = (got.get(ENTERPRISE) or {}).get("manager")
        if manager in (None, {}, ""):
            return None
        assert isinstance(manager, dict), f"manager must read back as {{value,...}}, got {manager!r}"
        assert isinstance(manager["value"], str)
        if "$ref" in manager:
            assert manager["$ref"].endswith(f"/Users/{manager['value']}")
        return manager

    assert manager_of() is None

    # set: bare id string (Compose_Manager_Set_Patch_Body), in a second PATCH after create.
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Add", "path": MANAGER, "value": boss["id"]}))
    assert manager_of()["value"] == boss["id"]
    # Entra compares ENT.manager.value with what it wants; the department etc. survive.
    assert get_user(api, uid)[ENTERPRISE]["department"] == "Tour Operations"

    # change.
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": MANAGER, "value": other_boss["id"]}))
    assert manager_of()["value"] == other_boss["id"]

    # remove with "" (Compose_Manager_Remove_Patch_Body).
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": MANAGER, "value": ""}))
    assert manager_of() is None

    # set with the {"value": id} object, then remove with null.
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Replace", "path": MANAGER, "value": {"value": boss["id"]}}))
    assert manager_of()["value"] == boss["id"]
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Replace", "path": MANAGER, "value": None}))
    assert manager_of() is None

    # set again, remove with an RFC remove on the URN path.
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Add", "path": MANAGER, "value": boss["id"]}))
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Remove", "path": MANAGER}))
    assert manager_of() is None
    assert get_user(api, uid)[ENTERPRISE]["employeeNumber"] == "701984"


def test_manager_legacy_forms(api):
    boss = entra_create_user(api)
    user = entra_create_user(api)
    uid = user["id"]
    # Legacy tutorial sample "Example 5": unqualified path, one-element array with $ref.
    r = patch(api, f"/Users/{uid}",
              {"op": "Add", "path": "manager",
               "value": [{"$ref": f"http://localhost/scim/v2/Users/{boss['id']}", "value": boss["id"]}]})
    assert_patched(r)
    manager = get_user(api, uid)[ENTERPRISE]["manager"]
    assert isinstance(manager, dict) and manager["value"] == boss["id"]

    # Removal reported as {"op":"remove","path":"manager[value eq \"id\"]"}.
    r = patch(api, f"/Users/{uid}", {"op": "remove", "path": f"manager[value eq \"{boss['id']}\"]"})
    assert_patched(r)
    assert not (get_user(api, uid).get(ENTERPRISE) or {}).get("manager")


# ------------------------------------------------------------------ E10


def test_disable_and_enable(api):
    user = entra_create_user(api)
    uid, user_name = user["id"], user["userName"]

    # Default column: the string "False".
    r = send(api, "PATCH", f"/Users/{uid}",
             {"Operations": [{"op": "Replace", "path": "active", "value": "False"}], "schemas": [PATCH_OP]})
    assert_patched(r)
    got = get_user(api, uid)
    assert got["active"] is False
    # A disabled user stays visible to GET and to filters.
    found = query(api, "Users", f'userName eq "{user_name}"')
    assert found["totalResults"] == 1 and found["Resources"][0]["active"] is False

    # Restored: "True".
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Replace", "path": "active", "value": "True"}))
    assert get_user(api, uid)["active"] is True

    # With the flag: a JSON boolean.
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "active", "value": False}))
    assert get_user(api, uid)["active"] is False
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "active", "value": True}))
    assert get_user(api, uid)["active"] is True

    # Lower-case string also seen in real traffic.
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Replace", "path": "active", "value": "false"}))
    got = get_user(api, uid)
    assert got["active"] is False
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Replace", "path": "active", "value": "true"}))
    got = get_user(api, uid)
    assert got["active"] is True
    assert got["userName"] == user_name


# ---------------------------------------------------- aadOptscim062020


def test_flag_table_default_column(api):
    user = entra_create_user(api)
    teammate = entra_create_user(api)
    uid = user["id"]

    # disable user
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Replace", "path": "active", "value": "False"}))
    assert get_user(api, uid)["active"] is False

    # add single-valued string
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Add", "path": "nickName", "value": "Babs"}))
    assert get_user(api, uid)["nickName"] == "Babs"

    # several attributes: one Replace op per path
    r = patch(api, f"/Users/{uid}",
              {"op": "Replace", "path": "displayName", "value": "Barbara Jensen"},
              {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "bjensen@contoso.com"},
              {"op": "Replace", "path": "name.givenName", "value": "Barbara"},
              {"op": "Replace", "path": "externalId", "value": "bjensen"},
              {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
               "value": "42"})
    assert_patched(r)
    got = get_user(api, uid)
    assert got["displayName"] == "Barbara Jensen"
    assert work_email(got) == "bjensen@contoso.com"
    assert got["name"]["givenName"] == "Barbara"
    assert got["name"]["familyName"] == "familyName"
    assert got["externalId"] == "bjensen"
    assert got[ENTERPRISE]["employeeNumber"] == "42"
    assert got[ENTERPRISE]["department"] == "Tour Operations"
    assert "name.givenName" not in got

    # remove group member: Remove with a value list removes only that member
    group = entra_create_group(api, "Flagless")
    assert patch(api, f"/Groups/{group['id']}",
                 {"op": "Add", "path": "members",
                  "value": [{"$ref": None, "value": uid}, {"$ref": None, "value": teammate["id"]}]}).status_code == 204
    r = patch(api, f"/Groups/{group['id']}", {"op": "Remove", "path": "members", "value": [{"value": uid}]})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    assert member_ids(get_group(api, group["id"])) == {teammate["id"]}

    # roles: the PATCH value is a JSON string
    role = '{"id":"7e9c1d6b-3b2a-4a8e-9f0e-2c4d6b8a0e1f","value":"25","displayName":"Role1234"}'
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Add", "path": "roles", "value": [{"value": role}]}))
    roles = get_user(api, uid).get("roles", [])
    assert [r_["value"] for r_ in roles] == ["25"]


def test_flag_table_flag_column(api):
    user = entra_create_user(api)
    teammate = entra_create_user(api)
    uid = user["id"]

    # disable user
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "active", "value": False}))
    assert get_user(api, uid)["active"] is False

    # add single-valued string
    assert_patched(patch(api, f"/Users/{uid}", {"op": "add", "path": "nickName", "value": "Babs"}))
    assert get_user(api, uid)["nickName"] == "Babs"

    # several attributes: one op with a path for the email, one pathless replace with dotted/URN keys
    r = patch(api, f"/Users/{uid}",
              {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "bjensen@contoso.com"},
              {"op": "replace", "value": {
                  "displayName": "Barbara Jensen",
                  "name.givenName": "Barbara",
                  "name.familyName": "Jensen",
                  "externalId": "bjensen",
                  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42"}})
    assert_patched(r)
    got = get_user(api, uid)
    assert got["displayName"] == "Barbara Jensen"
    assert work_email(got) == "bjensen@contoso.com"
    assert got["name"]["givenName"] == "Barbara"
    assert got["name"]["familyName"] == "Jensen"
    assert got["name"]["formatted"] == "givenName familyName"
    assert got["externalId"] == "bjensen"
    assert got[ENTERPRISE]["employeeNumber"] == "42"
    assert got[ENTERPRISE]["department"] == "Tour Operations"
    # Not stored literally as top-level keys.
    assert "name.givenName" not in got and "name.familyName" not in got
    assert f"{ENTERPRISE}:employeeNumber" not in got

    # remove group member: filter path
    group = entra_create_group(api, "Flagged")
    assert patch(api, f"/Groups/{group['id']}",
                 {"op": "add", "path": "members",
                  "value": [{"$ref": None, "value": uid}, {"$ref": None, "value": teammate["id"]}]}).status_code == 204
    r = patch(api, f"/Groups/{group['id']}", {"op": "remove", "path": f"members[value eq \"{uid}\"]"})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    assert member_ids(get_group(api, group["id"])) == {teammate["id"]}

    # roles: same format as POST
    roles = [{"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]
    assert_patched(patch(api, f"/Users/{uid}", {"op": "add", "path": "roles", "value": roles}))
    got_roles = get_user(api, uid).get("roles", [])
    assert [(r_["value"], r_.get("type")) for r_ in got_roles] == [("Admin", "WindowsAzureActiveDirectoryRole")]


# ------------------------------------------------------------------ E12


def test_group_cycle(api):
    alice = entra_create_user(api)
    bob = entra_create_user(api)
    carol = entra_create_user(api)
    name = "Group1DisplayName"

    # match: no such group yet (excludedAttributes=members, + and %22 encoding)
    response = send(api, "GET", f"/Groups?excludedAttributes=members&filter=displayName+eq+%22{name}%22")
    assert response.status_code == 200
    assert response.get_json()["totalResults"] == 0 and response.get_json()["Resources"] == []

    # create with the Microsoft schema URI and no members
    response = send(api, "POST", "/Groups", entra_group_body(name))
    assert response.status_code == 201, response.get_data(as_text=True)
    group = response.get_json()
    gid = group["id"]
    assert gid and group["displayName"] == name
    assert group.get("members", []) == []
    assert group["meta"]["resourceType"] == "Group"
    assert response.headers["Location"].endswith(f"/Groups/{gid}")

    # match again: one hit, without members
    found = query(api, "Groups", f'displayName eq "{name}"', "excludedAttributes=members&")
    assert [g["id"] for g in found["Resources"]] == [gid]
    assert "members" not in found["Resources"][0]
    found = query(api, "Groups", f'externalId eq "{group["externalId"]}"', "excludedAttributes=members&")
    assert [g["id"] for g in found["Resources"]] == [gid]

    # add several members with "$ref": null -> 204
    r = patch(api, f"/Groups/{gid}", {"op": "Add", "path": "members", "value": [
        {"$ref": None, "value": alice["id"]}, {"$ref": None, "value": bob["id"]}, {"$ref": None, "value": carol["id"]}]})
    assert r.status_code == 204, r.get_data(as_text=True)
    assert member_ids(get_group(api, gid)) == {alice["id"], bob["id"], carol["id"]}
    # GET by id without members
    without = get_group(api, gid, "?excludedAttributes=members")
    assert "members" not in without and without["displayName"] == name

    # rename
    r = patch(api, f"/Groups/{gid}", {"op": "Replace", "path": "displayName", "value": "Group1DisplayName-renamed"})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    got = get_group(api, gid)
    assert got["displayName"] == "Group1DisplayName-renamed"
    assert member_ids(got) == {alice["id"], bob["id"], carol["id"]}
    assert query(api, "Groups", 'displayName eq "Group1DisplayName-renamed"',
                 "excludedAttributes=members&")["totalResults"] == 1
    assert query(api, "Groups", f'displayName eq "{name}"', "excludedAttributes=members&")["totalResults"] == 0

    # remove members, default form (tutorial: with "$ref": null): only that one goes
    r = patch(api, f"/Groups/{gid}", {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": alice["id"]}]})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    assert member_ids(get_group(api, gid)) == {bob["id"], carol["id"]}

    # remove members, flag form
    r = patch(api, f"/Groups/{gid}", {"op": "remove", "path": f"members[value eq \"{bob['id']}\"]"})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    assert member_ids(get_group(api, gid)) == {carol["id"]}

    # delete
    assert send(api, "DELETE", f"/Groups/{gid}").status_code == 204
    assert_scim_error(send(api, "GET", f"/Groups/{gid}"), 404)
    assert query(api, "Groups", 'displayName eq "Group1DisplayName-renamed"',
                 "excludedAttributes=members&")["totalResults"] == 0
    # Members are users and stay.
    assert get_user(api, carol["id"])["id"] == carol["id"]


def test_group_nested_group_added_as_member(api):
    # E12: nested groups are not flattened; the nested group is added as a member id.
    user = entra_create_user(api)
    outer = entra_create_group(api, "Outer")
    inner = entra_create_group(api, "Inner")
    r = patch(api, f"/Groups/{outer['id']}", {"op": "Add", "path": "members",
                                               "value": [{"$ref": None, "value": inner["id"]},
                                                         {"$ref": None, "value": user["id"]}]})
    assert r.status_code == 204, r.get_data(as_text=True)
    assert member_ids(get_group(api, outer["id"])) == {inner["id"], user["id"]}


# ------------------------------------------------------------------ E14


def test_roles_as_json_strings(api):
    body = entra_user_body()
    body["roles"] = [{"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]
    user = entra_create_user(api, body)
    uid = user["id"]
    assert [(r["value"], r.get("type"), r.get("primary")) for r in user["roles"]] == [
        ("Admin", "WindowsAzureActiveDirectoryRole", True)]

    role = '{"id":"7e9c1d6b-3b2a-4a8e-9f0e-2c4d6b8a0e1f","value":"25","displayName":"Role1234"}'
    assert_patched(patch(api, f"/Users/{uid}", {"op": "Add", "path": "roles", "value": [{"value": role}]}))
    roles = get_user(api, uid)["roles"]
    values = {r["value"] for r in roles}
    assert values == {"Admin", "25"}
    assert not any(r["value"].lstrip().startswith("{") for r in roles)
    decoded = next(r for r in roles if r["value"] == "25")
    assert decoded.get("display") == "Role1234"

    # AssertiveAppRoleAssignmentsComplex: replace with real objects.
    complex_roles = [{"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Reader"}]
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "roles", "value": complex_roles}))
    assert [(r["value"], r.get("type")) for r in get_user(api, uid)["roles"]] == [
        ("Reader", "WindowsAzureActiveDirectoryRole")]


# ------------------------------------------------------------------ E15


def test_validator_extras(api):
    # Direct POST echoes userName.
    body = entra_user_body()
    created = entra_create_user(api, body)
    uid = created["id"]
    assert created["userName"] == body["userName"]

    # PATCH every mapped single-valued attribute, then GET shows equal values.
    values = {
        "displayName": "Validator Display", "title": "Validator Title", "nickName": "Val",
        "preferredLanguage": "en-US", "locale": "en-US", "timezone": "America/Los_Angeles",
        "userType": "Employee", "externalId": "validator-ext", "name.givenName": "Val",
        "name.familyName": "Idator", "name.formatted": "Val Idator",
        f"{ENTERPRISE}:department": "QA", f"{ENTERPRISE}:employeeNumber": "9",
        f"{ENTERPRISE}:costCenter": "4130", f"{ENTERPRISE}:organization": "Contoso",
        f"{ENTERPRISE}:division": "Quality",
    }
    r = patch(api, f"/Users/{uid}", *[{"op": "Replace", "path": p, "value": v} for p, v in values.items()])
    assert_patched(r)
    got = get_user(api, uid)
    for path, value in values.items():
        if path.startswith(ENTERPRISE):
            assert got[ENTERPRISE][path[len(ENTERPRISE) + 1:]] == value, path
        elif "." in path:
            head, tail = path.split(".")
            assert got[head][tail] == value, path
        else:
            assert got[path] == value, path

    # Null/empty handling: "" then null must read back empty/absent.
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "title", "value": ""}))
    assert not get_user(api, uid).get("title")
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "nickName", "value": None}))
    assert not get_user(api, uid).get("nickName")
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": f"{ENTERPRISE}:department", "value": ""}))
    got = get_user(api, uid)
    assert not got.get(ENTERPRISE, {}).get("department")
    # Clearing one extension attribute leaves the others.
    assert got.get(ENTERPRISE, {}).get("employeeNumber") == "9"
    assert got.get(ENTERPRISE, {}).get("costCenter") == "4130"
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "title", "value": "Back"}))
    assert get_user(api, uid)["title"] == "Back"
    assert_patched(patch(api, f"/Users/{uid}", {"op": "replace", "path": "title", "value": None}))
    got = get_user(api, uid)
    assert not got.get("title")
    assert got["displayName"] == "Validator Display"

    # Pagination over >= 2 pages; startIndex echoed.
    for _ in range(11):
        entra_create_user(api)
    seen: list[str] = []
    for start in (1, 6, 11):
        response = send(api, "GET", f"/Users?startIndex={start}&count=5")
        assert response.status_code == 200
        page = response.get_json()
        assert page["startIndex"] == start
        assert page["totalResults"] == 12
        assert page["itemsPerPage"] == len(page["Resources"])
        assert len(page["Resources"]) == (5 if start < 11 else 2)
        seen += [u["id"] for u in page["Resources"]]
    assert len(seen) == len(set(seen)) == 12

    # Groups must exist in /Schemas.
    response = send(api, "GET", "/Schemas")
    assert response.status_code == 200
    ids = {s["id"] for s in response.get_json()["Resources"]}
    assert {CORE_USER, CORE_GROUP, ENTERPRISE} <= ids


# ------------------------------------------------------------------ E11


def test_delete_user(api):
    user = entra_create_user(api)
    uid = user["id"]
    group = entra_create_group(api, "Deletion")
    assert patch(api, f"/Groups/{group['id']}",
                 {"op": "Add", "path": "members", "value": [{"$ref": None, "value": uid}]}).status_code == 204

    response = send(api, "DELETE", f"/Users/{uid}")
    assert response.status_code == 204
    assert response.get_data() == b""
    body = assert_scim_error(send(api, "GET", f"/Users/{uid}"), 404)
    assert body["schemas"] == [ERROR]
    assert query(api, "Users", f'userName eq "{user["userName"]}"')["totalResults"] == 0
    assert uid not in member_ids(get_group(api, group["id"]))
    assert_scim_error(send(api, "DELETE", f"/Users/{uid}"), 404)
    # E4: an unknown id is 404 with the RFC error body.
    assert_scim_error(send(api, "GET", f"/Users/{uuid.uuid4()}"), 404)
