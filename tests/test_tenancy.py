"""Tenant isolation and authentication.

Another tenant's resources do not exist for a client: their ids answer 404 (never
403, which would confirm they exist, RFC 7644 §3.12), filters never return them,
and they cannot be referenced as group members. Requests without a valid bearer
token are 401 with a SCIM error body and a ``WWW-Authenticate: Bearer`` challenge
(RFC 7644 §2, RFC 6750 §3).
"""
from __future__ import annotations

import pytest

from conftest import CORE_GROUP, CORE_USER, ENTERPRISE, ERROR, PATCH_OP, ScimClient, assert_scim_error

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
def foreign(other_api):
    """Resources of tenant globex."""
    user = other_api.create_user("foreign.user@globex.dk", displayName="Foreign", title="Spy",
                                 externalId="shared-ext")
    group = other_api.create_group("Foreign Group", members=[user["id"]])
    return {"user": user, "group": group}


@pytest.fixture
def own(api):
    user = api.create_user("own.user@acme.dk", displayName="Own", title="Staff", externalId="shared-ext")
    group = api.create_group("Own Group", members=[user["id"]])
    return {"user": user, "group": group}


def _unchanged(other_api, foreign):
    user = other_api.get(f"/Users/{foreign['user']['id']}")
    assert user.status_code == 200
    assert user.get_json()["displayName"] == "Foreign"
    assert user.get_json()["title"] == "Spy"
    group = other_api.get(f"/Groups/{foreign['group']['id']}")
    assert group.status_code == 200
    body = group.get_json()
    assert body["displayName"] == "Foreign Group"
    assert [m["value"] for m in body["members"]] == [foreign["user"]["id"]]


# ------------------------------------------------------------- ids are 404


@pytest.mark.parametrize("kind", ["user", "group"])
def test_get_other_tenants_resource_is_404(api, own, foreign, kind):
    endpoint = "/Users" if kind == "user" else "/Groups"
    assert_scim_error(api.get(f"{endpoint}/{foreign[kind]['id']}"), 404)


def test_other_tenants_ids_are_404_even_via_wrong_endpoint(api, foreign):
    assert_scim_error(api.get(f"/Groups/{foreign['user']['id']}"), 404)
    assert_scim_error(api.get(f"/Users/{foreign['group']['id']}"), 404)


def test_put_other_tenants_user_is_404(api, other_api, own, foreign):
    body = {"schemas": [CORE_USER], "userName": "hijacked", "displayName": "Hijacked"}
    assert_scim_error(api.put(f"/Users/{foreign['user']['id']}", json=body), 404)
    _unchanged(other_api, foreign)
    # nothing was created in acme either
    assert api.get('/Users?filter=userName eq "hijacked"').get_json()["totalResults"] == 0


def test_put_other_tenants_group_is_404(api, other_api, own, foreign):
    body = {"schemas": [CORE_GROUP], "displayName": "Hijacked", "members": []}
    assert_scim_error(api.put(f"/Groups/{foreign['group']['id']}", json=body), 404)
    _unchanged(other_api, foreign)


def test_patch_other_tenants_user_is_404(api, other_api, own, foreign):
    response = api.patch_ops(f"/Users/{foreign['user']['id']}",
                             {"op": "replace", "path": "displayName", "value": "Hijacked"})
    assert_scim_error(response, 404)
    _unchanged(other_api, foreign)


def test_patch_other_tenants_group_is_404(api, other_api, own, foreign):
    response = api.patch_ops(f"/Groups/{foreign['group']['id']}",
                             {"op": "add", "path": "members", "value": [{"value": own["user"]["id"]}]})
    assert_scim_error(response, 404)
    response = api.patch_ops(f"/Groups/{foreign['group']['id']}", {"op": "remove", "path": "members"})
    assert_scim_error(response, 404)
    response = api.patch_ops(f"/Groups/{foreign['group']['id']}",
                             {"op": "replace", "path": "displayName", "value": "Hijacked"})
    assert_scim_error(response, 404)
    _unchanged(other_api, foreign)


def test_delete_other_tenants_resources_is_404(api, other_api, own, foreign):
    assert_scim_error(api.delete(f"/Users/{foreign['user']['id']}"), 404)
    assert_scim_error(api.delete(f"/Groups/{foreign['group']['id']}"), 404)
    _unchanged(other_api, foreign)


def test_isolation_is_symmetric(api, other_api, own, foreign):
    assert_scim_error(other_api.get(f"/Users/{own['user']['id']}"), 404)
    assert_scim_error(other_api.delete(f"/Groups/{own['group']['id']}"), 404)
    assert api.get(f"/Users/{own['user']['id']}").status_code == 200
    assert api.get(f"/Groups/{own['group']['id']}").status_code == 200


def test_manager_from_other_tenant_is_rejected(api, other_api, foreign):
    body = {"schemas": [CORE_USER], "userName": "managed", ENTERPRISE: {"manager": {"value": foreign["user"]["id"]}}}
    response = api.post("/Users", json=body)
    assert_scim_error(response, 400)
    assert api.get("/Users").get_json()["totalResults"] == 0


# ------------------------------------------------------------------- filters


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return {r["id"] for r in response.get_json()["Resources"]}


def test_list_never_returns_other_tenants_rows(api, other_api, own, foreign):
    body = api.get("/Users").get_json()
    assert body["totalResults"] == 1
    assert _ids(api.get("/Users")) == {own["user"]["id"]}
    assert _ids(api.get("/Groups")) == {own["group"]["id"]}
    assert _ids(other_api.get("/Users")) == {foreign["user"]["id"]}


def test_filter_for_other_tenants_value_finds_nothing(api, own, foreign):
    response = api.get("/Users", query_string={"filter": 'userName eq "foreign.user@globex.dk"'})
    assert response.get_json()["totalResults"] == 0
    response = api.get("/Groups", query_string={"filter": 'displayName eq "Foreign Group"'})
    assert response.get_json()["totalResults"] == 0


@pytest.mark.parametrize("text", [
    'userName eq "x" or userName pr',
    'userName pr or userName eq "x"',
    'userName eq "x" or title pr and active eq true',
    '(userName eq "x") or (userName pr)',
    'not (userName eq "x") or userName eq "foreign.user@globex.dk"',
    'externalId eq "shared-ext"',
    'userName pr',
    'title eq "Spy" or title eq "Staff"',
    'not (userName eq "nobody")',
])
def test_filters_with_or_stay_within_tenant(api, own, foreign, text):
    response = api.get("/Users", query_string={"filter": text})
    assert _ids(response) == {own["user"]["id"]}
    assert response.get_json()["totalResults"] == 1


def test_filters_by_other_tenants_ids_find_nothing(api, own, foreign):
    text = f'groups.value eq "{foreign["group"]["id"]}" or id eq "{foreign["user"]["id"]}"'
    assert api.get("/Users", query_string={"filter": text}).get_json()["totalResults"] == 0
    text = f'members.value eq "{foreign["user"]["id"]}" or displayName eq "x"'
    assert api.get("/Groups", query_string={"filter": text}).get_json()["totalResults"] == 0


def test_group_filters_with_or_stay_within_tenant(api, own, foreign):
    response = api.get("/Groups", query_string={"filter": 'displayName eq "x" or displayName pr'})
    assert _ids(response) == {own["group"]["id"]}
    response = api.get("/Groups", query_string={"filter": "members pr or not (members pr)"})
    assert _ids(response) == {own["group"]["id"]}


def test_search_endpoints_stay_within_tenant(api, own, foreign):
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": 'userName eq "x" or userName pr'})
    assert _ids(response) == {own["user"]["id"]}
    response = api.post("/.search", json={"schemas": [SEARCH], "filter": 'displayName eq "x" or displayName pr'})
    assert _ids(response) == {own["user"]["id"], own["group"]["id"]}
    assert response.get_json()["totalResults"] == 2
    response = api.post("/.search", json={"schemas": [SEARCH]})
    assert _ids(response) == {own["user"]["id"], own["group"]["id"]}


def test_users_groups_never_show_other_tenants_groups(api, own, foreign):
    doc = api.get(f"/Users/{own['user']['id']}").get_json()
    assert [g["value"] for g in doc.get("groups", [])] == [own["group"]["id"]]


# ------------------------------------------------------------ group members


def test_adding_other_tenants_user_on_create_is_rejected(api, other_api, own, foreign):
    body = {"schemas": [CORE_GROUP], "displayName": "Sneaky", "members": [{"value": foreign["user"]["id"]}]}
    assert_scim_error(api.post("/Groups", json=body), 400)
    assert api.get('/Groups?filter=displayName eq "Sneaky"').get_json()["totalResults"] == 0
    _unchanged(other_api, foreign)


def test_adding_other_tenants_user_by_patch_is_rejected(api, other_api, own, foreign):
    gid = own["group"]["id"]
    before = api.get(f"/Groups/{gid}").get_json()
    response = api.patch_ops(f"/Groups/{gid}", {"op": "add", "path": "members",
                                                "value": [{"value": foreign["user"]["id"]}]})
    assert_scim_error(response, 400)
    after = api.get(f"/Groups/{gid}").get_json()
    assert [m["value"] for m in after["members"]] == [own["user"]["id"]]
    assert after["meta"]["version"] == before["meta"]["version"]
    foreign_user = other_api.get(f"/Users/{foreign['user']['id']}").get_json()
    assert [g["value"] for g in foreign_user.get("groups", [])] == [foreign["group"]["id"]]
    _unchanged(other_api, foreign)


def test_adding_other_tenants_user_mixed_with_own_is_rejected_atomically(api, own, foreign):
    gid = own["group"]["id"]
    extra = api.create_user("extra@acme.dk")
    response = api.patch_ops(f"/Groups/{gid}", {"op": "add", "path": "members",
                                                "value": [{"value": extra["id"]}, {"value": foreign["user"]["id"]}]})
    assert_scim_error(response, 400)
    after = api.get(f"/Groups/{gid}").get_json()
    assert [m["value"] for m in after["members"]] == [own["user"]["id"]]


def test_replacing_members_with_other_tenants_user_is_rejected(api, other_api, own, foreign):
    gid = own["group"]["id"]
    response = api.patch_ops(f"/Groups/{gid}", {"op": "replace", "path": "members",
                                                "value": [{"value": foreign["user"]["id"]}]})
    assert_scim_error(response, 400)
    body = {"schemas": [CORE_GROUP], "displayName": "Own Group", "members": [{"value": foreign["user"]["id"]}]}
    assert_scim_error(api.put(f"/Groups/{gid}", json=body), 400)
    after = api.get(f"/Groups/{gid}").get_json()
    assert [m["value"] for m in after["members"]] == [own["user"]["id"]]
    _unchanged(other_api, foreign)


def test_adding_other_tenants_group_as_member_is_rejected(api, other_api, own, foreign):
    gid = own["group"]["id"]
    response = api.patch_ops(f"/Groups/{gid}", {"op": "add", "path": "members",
                                                "value": [{"value": foreign["group"]["id"]}]})
    assert_scim_error(response, 400)
    after = api.get(f"/Groups/{gid}").get_json()
    assert [m["value"] for m in after["members"]] == [own["user"]["id"]]


def test_removing_other_tenants_member_changes_nothing(api, other_api, own, foreign):
    response = api.patch_ops(f"/Groups/{own['group']['id']}",
                             {"op": "remove", "path": f'members[value eq "{foreign["user"]["id"]}"]'})
    assert response.status_code in (200, 204, 400), response.get_data(as_text=True)
    _unchanged(other_api, foreign)
    after = api.get(f"/Groups/{own['group']['id']}").get_json()
    assert [m["value"] for m in after["members"]] == [own["user"]["id"]]


# --------------------------------------------------------------- uniqueness


def test_same_user_name_in_two_tenants(api, other_api):
    a = api.create_user("shared@example.dk")
    b = other_api.create_user("shared@example.dk")
    assert a["id"] != b["id"]
    b2 = other_api.create_user("SHARED2@example.dk")
    api.create_user("shared2@example.dk")  # case-insensitive uniqueness is per tenant too
    assert api.get('/Users?filter=userName eq "shared@example.dk"').get_json()["totalResults"] == 1
    assert other_api.get('/Users?filter=userName eq "shared@example.dk"').get_json()["totalResults"] == 1
    # uniqueness still holds inside one tenant
    response = api.post("/Users", json={"schemas": [CORE_USER], "userName": "shared@example.dk"})
    assert_scim_error(response, 409, "uniqueness")
    response = other_api.post("/Users", json={"schemas": [CORE_USER], "userName": "Shared2@Example.dk"})
    assert_scim_error(response, 409, "uniqueness")
    assert other_api.get(f"/Users/{b2['id']}").status_code == 200


def test_rename_to_user_name_of_other_tenant_is_allowed(api, other_api):
    other_api.create_user("taken@example.dk")
    mine = api.create_user("mine@example.dk")
    response = api.patch_ops(f"/Users/{mine['id']}", {"op": "replace", "path": "userName", "value": "taken@example.dk"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["userName"] == "taken@example.dk"


def test_same_group_name_in_two_tenants(api, other_api):
    api.create_group("Everyone")
    other_api.create_group("Everyone")
    assert api.get('/Groups?filter=displayName eq "Everyone"').get_json()["totalResults"] == 1


# ------------------------------------------------------------ authentication


def _assert_unauthorized(response):
    body = assert_scim_error(response, 401)
    assert body["schemas"] == [ERROR]
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.lower().startswith("bearer"), challenge
    return body


@pytest.mark.parametrize("method, path", [
    ("GET", "/Users"),
    ("GET", "/Groups"),
    ("POST", "/Users"),
    ("POST", "/Users/.search"),
    ("POST", "/.search"),
    ("GET", "/ServiceProviderConfig"),
])
def test_missing_token_is_401(anonymous, method, path):
    body = {"schemas": [CORE_USER], "userName": "anon"} if method == "POST" else None
    if path.endswith(".search"):
        body = {"schemas": [SEARCH]}
    _assert_unauthorized(anonymous.request(method, path, json=body))


def test_missing_token_on_resource_ids_is_401(anonymous, api, own):
    uid = own["user"]["id"]
    _assert_unauthorized(anonymous.get(f"/Users/{uid}"))
    _assert_unauthorized(anonymous.put(f"/Users/{uid}", json={"schemas": [CORE_USER], "userName": "x"}))
    _assert_unauthorized(anonymous.patch(f"/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": "x"}]}))
    _assert_unauthorized(anonymous.delete(f"/Users/{uid}"))
    assert api.get(f"/Users/{uid}").get_json()["title"] == "Staff"


def test_missing_token_on_unknown_id_is_401_not_404(anonymous):
    _assert_unauthorized(anonymous.get("/Users/00000000-0000-0000-0000-000000000000"))


@pytest.mark.parametrize("header", [
    "Bearer not-a-real-token",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "bearer",
    "Token abc",
])
def test_wrong_token_is_401(app, own, header):
    client = app.test_client()
    response = client.get("/scim/v2/Users", headers={"Authorization": header})
    _assert_unauthorized(response)


def test_wrong_token_cannot_write(app, api, own):
    bad = ScimClient(app.test_client(), api.token + "x")
    _assert_unauthorized(bad.delete(f"/Users/{own['user']['id']}"))
    _assert_unauthorized(bad.post("/Users", json={"schemas": [CORE_USER], "userName": "intruder"}))
    assert api.get(f"/Users/{own['user']['id']}").status_code == 200
    assert api.get("/Users").get_json()["totalResults"] == 1


def test_token_selects_tenant(api, other_api, own, foreign):
    assert api.get(f"/Users/{own['user']['id']}").status_code == 200
    assert other_api.get(f"/Users/{foreign['user']['id']}").status_code == 200
    assert api.get("/Users").get_json()["Resources"][0]["userName"] == "own.user@acme.dk"
    assert other_api.get("/Users").get_json()["Resources"][0]["userName"] == "foreign.user@globex.dk"
