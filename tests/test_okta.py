"""Okta's SCIM 2.0 client, replayed through the HTTP API.

The OIN "SPEC test" (Runscope/BlazeMeter, steps R1-R12) step by step, and the
requests of Okta's provisioning catalogue (O1-O8, quirks K1-K9) with Okta's
payloads and headers, copied from the project's IdP client reference.
"""
from __future__ import annotations

import uuid
from urllib.parse import quote

from conftest import CORE_GROUP, CORE_USER, ERROR, LIST, PATCH_OP, ScimClient, assert_scim_error

RUNSCOPE_HEADERS = {
    "Accept": "application/scim+json",
    "Accept-Charset": "utf-8",
    "User-Agent": "Okta SCIM Client 1.0.0",
}
SCIM_CT = "application/scim+json; charset=utf-8"


def okta(api, method: str, path: str, body=None, content_type: str = SCIM_CT):
    """A request with Runscope's/Okta's headers (Content-Type on every request, GETs included)."""
    headers = dict(RUNSCOPE_HEADERS)
    if body is None:
        headers["Content-Type"] = content_type
        response = api.request(method, path, headers=headers)
    else:
        response = api.request(method, path, json=body, content_type=content_type, headers=headers)
    if response.status_code != 204 and response.get_data():
        assert response.mimetype == "application/scim+json", response.headers
    return response


def okta_patch(api, path: str, *operations):
    return okta(api, "PATCH", path, {"schemas": [PATCH_OP], "Operations": list(operations)})


def assert_patched(response):
    assert response.status_code in (200, 204), (response.status_code, response.get_data(as_text=True))


def assert_list(body: dict) -> dict:
    assert LIST in body["schemas"]
    for key in ("totalResults", "startIndex", "itemsPerPage"):
        assert type(body[key]) is int, (key, body[key])
    assert isinstance(body["Resources"], list)
    return body


def okta_user_body(user_name: str = "test.user@okta.local", **extra) -> dict:
    """O2, a captured Okta create request."""
    return {
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
        **extra,
    }


def okta_create(api, body: dict) -> dict:
    response = okta(api, "POST", "/Users", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created, "Create new user returned empty user"
    return created


def eq(attribute: str, value: str) -> str:
    """A filter query string, spaces and quotes percent-encoded (%20, %22) as Okta sends them."""
    return "filter=" + quote('%s eq "%s"' % (attribute, value), safe="")


def get(api, path: str) -> dict:
    response = okta(api, "GET", path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def member_ids(group: dict) -> set[str]:
    return {m["value"] for m in group.get("members") or []}


def no_password(resource: dict) -> None:
    assert not any(k.lower() == "password" for k in resource), resource


# ------------------------------------------------------------ O9 R1-R12


def test_spec_test_r1_to_r12(api, anonymous):
    # Precondition: at least one user exists.
    api.create_user("existing.user@okta.local", name={"givenName": "Existing", "familyName": "User"},
                    emails=[{"primary": True, "value": "existing.user@okta.local", "type": "work"}], active=True)

    # R1
    r1 = okta(api, "GET", "/Users?count=1&startIndex=1")
    assert r1.status_code == 200
    body = assert_list(r1.get_json())
    assert body["Resources"]
    first = body["Resources"][0]
    for check in (first["id"], first["name"]["familyName"], first["name"]["givenName"], first["userName"],
                  first["emails"][0]["value"]):
        assert check
    assert isinstance(first["active"], bool)

    # R2
    r2 = get(api, f"/Users/{first['id']}")
    assert r2["id"] == first["id"]
    assert r2["userName"] == first["userName"]
    assert r2["name"]["familyName"] == first["name"]["familyName"]
    assert r2["name"]["givenName"] == first["name"]["givenName"]
    assert r2["active"] == first["active"]
    assert r2["emails"][0]["value"] == first["emails"][0]["value"]

    # R3 InvalidUserEmail
    body = assert_list(get(api, "/Users?" + eq("userName", "abcdefgh@example.com")))
    assert body["totalResults"] == 0 and body["Resources"] == []

    # R4 UserIdThatDoesNotExist
    r4 = assert_scim_error(okta(api, "GET", f"/Users/010101001010101010{uuid.uuid4().hex}"), 404)
    assert r4["schemas"] == [ERROR] and r4["detail"]

    # R5 the random user does not exist yet
    user_name = f"Test.{uuid.uuid4().hex[:8]}@example.com"
    body = assert_list(get(api, "/Users?" + eq("userName", user_name)))
    assert body["totalResults"] == 0

    # R6 create, Content-Type application/json
    r6_body = {
        "schemas": [CORE_USER], "userName": user_name,
        "name": {"givenName": "Random", "familyName": "Tester"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Random Tester", "active": True,
    }
    r6 = okta(api, "POST", "/Users", r6_body, content_type="application/json")
    assert r6.status_code == 201, r6.get_data(as_text=True)
    created = r6.get_json()
    assert created["active"] is True
    assert created["id"]
    assert created["name"]["familyName"] == "Tester"
    assert created["name"]["givenName"] == "Random"
    assert CORE_USER in created["schemas"]
    assert created["userName"] == user_name

    # R7
    r7 = get(api, f"/Users/{created['id']}")
    assert r7["id"] == created["id"]
    assert r7["userName"] == user_name
    assert r7["name"] == created["name"]
    assert r7["active"] is True

    # R8 same POST again
    r8 = okta(api, "POST", "/Users", r6_body, content_type="application/json")
    assert_scim_error(r8, 409)

    # R9 upper-case userName (caseExact false: should match)
    body = assert_list(get(api, "/Users?" + eq("userName", user_name.upper())))
    assert [u["id"] for u in body["Resources"]] == [created["id"]]

    # R10
    assert_list(get(api, "/Groups"))

    # R11 bad token
    bad = ScimClient(anonymous.http, "this-is-not-a-valid-token")
    r11 = bad.get("/Users?" + eq("userName", user_name), headers=RUNSCOPE_HEADERS)
    body = assert_scim_error(r11, 401)
    assert body["status"] == "401" and body["detail"]
    # and no token at all
    assert_scim_error(anonymous.get("/Users?" + eq("userName", user_name)), 401)

    # R12
    r12 = assert_scim_error(okta(api, "GET", f"/Users/{uuid.uuid4()}"), 404)
    assert r12["status"] == "404"


# ------------------------------------------------------------------ O1 / O2


def test_existence_check_then_create(api):
    check = "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100"
    body = assert_list(get(api, check))
    assert body["totalResults"] == 0 and body["Resources"] == []
    assert body["startIndex"] == 1

    # O2 create with password, groups [], locale
    response = okta(api, "POST", "/Users", okta_user_body())
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created["id"]
    assert created["userName"] == "test.user@okta.local"
    assert created["locale"] == "en-US"
    assert created["displayName"] == "Test User"
    assert created["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert created["active"] is True
    assert created.get("groups", []) == []
    no_password(created)

    fetched = get(api, f"/Users/{created['id']}")
    no_password(fetched)
    assert fetched["name"] == {"givenName": "Test", "familyName": "User"}

    body = assert_list(get(api, check))
    assert body["totalResults"] == 1
    assert body["Resources"][0]["id"] == created["id"]
    no_password(body["Resources"][0])
    # Even when asked for explicitly, the password is never returned.
    body = get(api, f"/Users/{created['id']}?attributes=password,userName")
    no_password(body)
    # Filtering on a never-returned attribute cannot be used to probe it.
    response = okta(api, "GET", "/Users?" + eq("password", "1mz050nq"))
    assert response.status_code == 400 or assert_list(response.get_json())["totalResults"] == 0

    # Duplicate -> 409 with an Error body.
    assert_scim_error(okta(api, "POST", "/Users", okta_user_body()), 409, "uniqueness")


# ------------------------------------------------------------------- O3


def test_import_paging(api):
    ids = {okta_create(api, okta_user_body(f"user{i}@okta.local", externalId=f"ext{i}"))["id"] for i in range(7)}

    seen: list[str] = []
    start = 1
    while True:
        page = assert_list(get(api, f"/Users?startIndex={start}&count=3"))
        assert page["startIndex"] == start
        assert page["totalResults"] == 7
        assert page["itemsPerPage"] == len(page["Resources"])
        assert 0 < len(page["Resources"]) <= 3
        seen += [u["id"] for u in page["Resources"]]
        start += len(page["Resources"])
        if start > page["totalResults"]:
            break
    assert len(seen) == 7 and set(seen) == ids
    # Stable across repeated reads.
    again = [u["id"] for s in (1, 4, 7) for u in get(api, f"/Users?startIndex={s}&count=3")["Resources"]]
    assert again == seen

    # Okta's literal paging: startIndex=1&count=100 then startIndex=101&count=100.
    page = assert_list(get(api, "/Users?startIndex=1&count=100"))
    assert page["totalResults"] == 7 and len(page["Resources"]) == 7
    assert [u["id"] for u in page["Resources"]] == seen
    page = assert_list(get(api, "/Users?startIndex=101&count=100"))
    assert page["totalResults"] == 7 and page["Resources"] == []
    assert page["startIndex"] == 101

    # Same for groups.
    group_ids = {api.create_group(f"Okta group {i}")["id"] for i in range(5)}
    seen = []
    start = 1
    while True:
        page = assert_list(get(api, f"/Groups?startIndex={start}&count=2"))
        assert page["startIndex"] == start and page["totalResults"] == 5
        seen += [g["id"] for g in page["Resources"]]
        start += len(page["Resources"])
        if start > page["totalResults"] or not page["Resources"]:
            break
    assert len(seen) == 5 and set(seen) == group_ids


# ------------------------------------------------------------------- O5


def test_put_whole_get_body_with_one_change(api):
    user = okta_create(api, okta_user_body())
    uid = user["id"]
    group = api.create_group("Okta Push", [uid])
    before = get(api, f"/Users/{uid}")
    assert [g["value"] for g in before.get("groups", [])] == [group["id"]]

    # Okta changes one mapped attribute and sends everything back, incl. id, meta, groups.
    body = {**before, "name": {**before["name"], "givenName": "Another"}}
    assert "id" in body and "meta" in body and "groups" in body
    response = okta(api, "PUT", f"/Users/{uid}", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    assert updated["name"]["givenName"] == "Another"
    no_password(updated)

    after = get(api, f"/Users/{uid}")
    assert after["name"] == {"givenName": "Another", "familyName": "User"}
    for key in set(before) | set(after):
        if key not in ("meta", "name"):
            assert after.get(key) == before.get(key), key
    assert after["meta"]["created"] == before["meta"]["created"]
    assert [g["value"] for g in after.get("groups", [])] == [group["id"]]
    assert member_ids(get(api, f"/Groups/{group['id']}")) == {uid}

    # Okta shows name.middleName "" and emails[].display in what it echoes.
    body = {**after, "name": {**after["name"], "middleName": ""},
            "emails": [{**after["emails"][0], "display": after["emails"][0]["value"]}]}
    response = okta(api, "PUT", f"/Users/{uid}", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert get(api, f"/Users/{uid}")["userName"] == "test.user@okta.local"


# ------------------------------------------------------------------- O6


def test_deactivate_reactivate(api):
    user = okta_create(api, okta_user_body())
    uid = user["id"]

    r = okta_patch(api, f"/Users/{uid}", {"op": "replace", "value": {"active": False}})
    assert_patched(r)
    got = get(api, f"/Users/{uid}")
    assert got["active"] is False
    assert got["userName"] == "test.user@okta.local"
    found = assert_list(get(api, "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100"))
    assert found["totalResults"] == 1 and found["Resources"][0]["active"] is False

    r = okta_patch(api, f"/Users/{uid}", {"op": "replace", "value": {"active": True}})
    assert_patched(r)
    assert get(api, f"/Users/{uid}")["active"] is True

    # AIW apps: the same change as a full PUT.
    current = get(api, f"/Users/{uid}")
    response = okta(api, "PUT", f"/Users/{uid}", {**current, "active": False})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["active"] is False
    assert get(api, f"/Users/{uid}")["active"] is False
    response = okta(api, "PUT", f"/Users/{uid}", {**current, "active": True})
    assert response.status_code == 200
    assert get(api, f"/Users/{uid}")["active"] is True


# ------------------------------------------------------------------- O8


def test_group_push(api):
    u1 = okta_create(api, okta_user_body("one@okta.local", externalId="e1"))
    u2 = okta_create(api, okta_user_body("two@okta.local", externalId="e2"))
    u3 = okta_create(api, okta_user_body("three@okta.local", externalId="e3"))

    existing = assert_list(get(api, "/Groups?" + eq("displayName", "Test SCIMv2")))
    assert existing["totalResults"] == 0

    response = okta(api, "POST", "/Groups", {"schemas": [CORE_GROUP], "displayName": "Test SCIMv2", "members": []})
    assert response.status_code == 201, response.get_data(as_text=True)
    group = response.get_json()
    gid = group["id"]
    assert gid and group["displayName"] == "Test SCIMv2"
    assert group.get("members", []) == []
    got = get(api, f"/Groups/{gid}")
    assert got["displayName"] == "Test SCIMv2" and member_ids(got) == set()

    # first membership push
    r = okta_patch(api, f"/Groups/{gid}",
                   {"op": "add", "path": "members", "value": [
                       {"value": u1["id"], "display": "one@okta.local"},
                       {"value": u2["id"], "display": "two@okta.local"}]})
    assert_patched(r)
    assert member_ids(get(api, f"/Groups/{gid}")) == {u1["id"], u2["id"]}

    # pathless rename containing the read-only id: keeps members, ignores id
    r = okta_patch(api, f"/Groups/{gid}", {"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}})
    assert_patched(r)
    got = get(api, f"/Groups/{gid}")
    assert got["id"] == gid
    assert got["displayName"] == "Test SCIMv2 renamed"
    assert member_ids(got) == {u1["id"], u2["id"]}

    # one PATCH: remove by filter plus add
    r = okta_patch(api, f"/Groups/{gid}",
                   {"op": "remove", "path": f"members[value eq \"{u1['id']}\"]"},
                   {"op": "add", "path": "members", "value": [{"value": u3["id"], "display": "three@okta.local"}]})
    assert_patched(r)
    if r.status_code == 200:
        body = r.get_json()
        assert body["id"] == gid
        assert body.get("members") is None or member_ids(body) == {u2["id"], u3["id"]}
    assert member_ids(get(api, f"/Groups/{gid}")) == {u2["id"], u3["id"]}

    # rename again (sent with every membership update), members untouched
    r = okta_patch(api, f"/Groups/{gid}", {"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}})
    assert_patched(r)
    assert member_ids(get(api, f"/Groups/{gid}")) == {u2["id"], u3["id"]}

    # full push: replace members with the full list
    r = okta_patch(api, f"/Groups/{gid}", {"op": "replace", "path": "members", "value": [
        {"value": u1["id"], "display": "one@okta.local"}, {"value": u3["id"], "display": "three@okta.local"}]})
    assert_patched(r)
    assert member_ids(get(api, f"/Groups/{gid}")) == {u1["id"], u3["id"]}

    # push of an empty group: replace members []
    r = okta_patch(api, f"/Groups/{gid}", {"op": "replace", "path": "members", "value": []})
    assert_patched(r)
    got = get(api, f"/Groups/{gid}")
    assert member_ids(got) == set()
    assert got["displayName"] == "Test SCIMv2 renamed"

    # Users are untouched by group changes.
    for user in (u1, u2, u3):
        assert get(api, f"/Users/{user['id']}")["active"] is True

    # unlink with delete
    assert okta(api, "DELETE", f"/Groups/{gid}").status_code == 204
    assert_scim_error(okta(api, "GET", f"/Groups/{gid}"), 404)


def test_group_put_aiw(api):
    u1 = okta_create(api, okta_user_body("one@okta.local", externalId="e1"))
    u2 = okta_create(api, okta_user_body("two@okta.local", externalId="e2"))
    group = api.create_group("AIW group", [u1["id"]])
    gid = group["id"]

    body = {"schemas": [CORE_GROUP], "id": gid, "displayName": "AIW group renamed",
            "members": [{"value": u1["id"], "display": "one@okta.local"},
                        {"value": u2["id"], "display": "two@okta.local"}]}
    response = okta(api, "PUT", f"/Groups/{gid}", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    put = response.get_json()
    assert put["id"] == gid and put["displayName"] == "AIW group renamed"
    got = get(api, f"/Groups/{gid}")
    assert got["displayName"] == "AIW group renamed"
    assert member_ids(got) == {u1["id"], u2["id"]}

    # A PUT with fewer members replaces the list.
    body = {"schemas": [CORE_GROUP], "id": gid, "displayName": "AIW group renamed",
            "members": [{"value": u2["id"], "display": "two@okta.local"}]}
    response = okta(api, "PUT", f"/Groups/{gid}", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert member_ids(get(api, f"/Groups/{gid}")) == {u2["id"]}
    assert [g["value"] for g in get(api, f"/Users/{u1['id']}").get("groups", [])] == []
    assert [g["value"] for g in get(api, f"/Users/{u2['id']}").get("groups", [])] == [gid]
