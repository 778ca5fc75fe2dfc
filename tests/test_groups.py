"""/Groups: members, the computed `groups` of a user, Entra ID and Okta PATCH forms
(RFC 7643 §4.2, RFC 7644 §3.5.2)."""
from __future__ import annotations

import uuid

from conftest import CORE_GROUP, CORE_USER, PATCH_OP, assert_scim_error

MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def _member_ids(group: dict) -> list[str]:
    return sorted(m["value"] for m in group.get("members") or [])


def _get_group(api, gid: str) -> dict:
    resp = api.get(f"/Groups/{gid}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _users(api, n: int, prefix: str = "u") -> list[dict]:
    return [api.create_user(f"{prefix}{i}@example.com", displayName=f"{prefix.upper()} {i}") for i in range(n)]


# ------------------------------------------------------------------- create


def test_create_group_without_members(api):
    resp = api.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Empty"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    uuid.UUID(body["id"])
    assert body["schemas"] == [CORE_GROUP]
    assert body["displayName"] == "Empty"
    assert not body.get("members")
    assert body["meta"]["resourceType"] == "Group"
    assert body["meta"]["location"].endswith(f"/Groups/{body['id']}")
    assert resp.headers["Location"] == body["meta"]["location"]
    assert resp.headers["ETag"] == body["meta"]["version"]


def test_create_group_with_members_carries_value_ref_display_type(api):
    alice, bob = _users(api, 2)
    sub = api.create_group("Sub")
    resp = api.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Team", "members": [
        {"value": alice["id"]}, {"value": bob["id"], "display": "ignored"}, {"value": sub["id"]}]})
    assert resp.status_code == 201, resp.get_json()
    members = {m["value"]: m for m in resp.get_json()["members"]}
    assert set(members) == {alice["id"], bob["id"], sub["id"]}
    assert members[alice["id"]]["$ref"].endswith(f"/Users/{alice['id']}")
    assert members[alice["id"]]["$ref"].startswith("http")
    assert members[alice["id"]]["display"] == "U 0"
    assert members[alice["id"]]["type"] == "User"
    assert members[bob["id"]]["display"] == "U 1"  # display is readOnly: the server's value wins
    assert members[sub["id"]]["type"] == "Group"
    assert members[sub["id"]]["$ref"].endswith(f"/Groups/{sub['id']}")
    assert members[sub["id"]]["display"] == "Sub"


def test_create_group_with_microsoft_schema_uri(api):
    user = api.create_user("ms@example.com")
    resp = api.post("/Groups", json={
        "schemas": [CORE_GROUP, MS_GROUP], "displayName": "Entra Group", "externalId": "ext-1",
        "members": [{"value": user["id"]}]})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["displayName"] == "Entra Group"
    assert body["externalId"] == "ext-1"
    assert CORE_GROUP in body["schemas"]
    assert _member_ids(body) == [user["id"]]


def test_missing_display_name_is_invalid_value(api):
    assert_scim_error(api.post("/Groups", json={"schemas": [CORE_GROUP]}), 400, "invalidValue")


def test_user_groups_attribute_lists_its_groups(api):
    user = api.create_user("g@example.com")
    g1 = api.create_group("Alpha", members=[user["id"]])
    g2 = api.create_group("Beta", members=[user["id"]])
    body = api.get(f"/Users/{user['id']}").get_json()
    groups = {g["value"]: g for g in body["groups"]}
    assert set(groups) == {g1["id"], g2["id"]}
    assert groups[g1["id"]]["display"] == "Alpha"
    assert groups[g1["id"]]["$ref"].endswith(f"/Groups/{g1['id']}")
    # readOnly: a PATCH that targets groups is refused and changes nothing
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": "groups"})
    assert_scim_error(resp, 400, "mutability")
    assert len(api.get(f"/Users/{user['id']}").get_json()["groups"]) == 2


def test_unknown_member_on_create_is_invalid(api):
    user = api.create_user("real@example.com")
    resp = api.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Bad",
                                     "members": [{"value": user["id"]}, {"value": str(uuid.uuid4())}]})
    assert_scim_error(resp, 400)
    assert api.get("/Groups").get_json()["totalResults"] == 0


def test_duplicate_display_name_is_allowed(api):
    first = api.create_group("Same")
    resp = api.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Same"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["id"] != first["id"]


# -------------------------------------------------------------------- PATCH


def test_patch_add_several_members_returns_204(api):
    users = _users(api, 3)
    group = api.create_group("Team")
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [
        {"value": users[0]["id"], "$ref": None}, {"value": users[1]["id"]}, {"value": users[2]["id"], "display": "x"}]})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert resp.get_data() == b""
    assert _member_ids(_get_group(api, group["id"])) == sorted(u["id"] for u in users)


def test_patch_add_existing_member_is_idempotent(api):
    user = api.create_user("x@example.com")
    group = api.create_group("Team", members=[user["id"]])
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert _member_ids(_get_group(api, group["id"])) == [user["id"]]


def test_patch_with_attributes_returns_200_with_members(api):
    user = api.create_user("y@example.com")
    group = api.create_group("Team")
    resp = api.patch_ops(f"/Groups/{group['id']}?attributes=members",
                         {"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["id"] == group["id"]
    assert _member_ids(body) == [user["id"]]
    assert "displayName" not in body  # not requested


def test_patch_remove_member_by_value_filter(api):
    a, b = _users(api, 2)
    group = api.create_group("Team", members=[a["id"], b["id"]])
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{a["id"]}"]'})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert _member_ids(_get_group(api, group["id"])) == [b["id"]]
    assert "groups" not in api.get(f"/Users/{a['id']}").get_json()


def test_patch_entra_remove_with_value_list_removes_only_listed(api):
    users = _users(api, 3)
    group = api.create_group("Team", members=[u["id"] for u in users])
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "Remove", "path": "members",
                                                    "value": [{"value": users[0]["id"]}, {"value": users[2]["id"]}]})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert _member_ids(_get_group(api, group["id"])) == [users[1]["id"]]


def test_patch_remove_all_members_without_value(api):
    users = _users(api, 2)
    group = api.create_group("Team", members=[u["id"] for u in users])
    assert api.patch_ops(f"/Groups/{group['id']}", {"op": "remove", "path": "members"}).status_code == 204
    assert not _get_group(api, group["id"]).get("members")


def test_patch_replace_members_with_list_and_with_empty_list(api):
    users = _users(api, 3)
    group = api.create_group("Team", members=[users[0]["id"], users[1]["id"]])
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "replace", "path": "members",
                                                    "value": [{"value": users[2]["id"]}]})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert _member_ids(_get_group(api, group["id"])) == [users[2]["id"]]
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "replace", "path": "members", "value": []})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert not _get_group(api, group["id"]).get("members")


def test_patch_okta_pathless_rename_keeps_members(api):
    user = api.create_user("okta@example.com")
    group = api.create_group("Old", members=[user["id"]])
    resp = api.patch_ops(f"/Groups/{group['id']}",
                         {"op": "replace", "value": {"id": group["id"], "displayName": "New"}})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    body = _get_group(api, group["id"])
    assert body["displayName"] == "New"
    assert _member_ids(body) == [user["id"]]
    assert api.get(f"/Users/{user['id']}").get_json()["groups"][0]["display"] == "New"


def test_patch_replace_display_name_with_path(api):
    group = api.create_group("Old")
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "Replace", "path": "displayName", "value": "Renamed"})
    assert resp.status_code == 204
    assert _get_group(api, group["id"])["displayName"] == "Renamed"


def test_nested_group_member(api):
    child = api.create_group("Child")
    parent = api.create_group("Parent")
    resp = api.patch_ops(f"/Groups/{parent['id']}", {"op": "add", "path": "members",
                                                     "value": [{"value": child["id"], "type": "Group"}]})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    members = _get_group(api, parent["id"])["members"]
    assert members == [{"value": child["id"], "$ref": members[0]["$ref"], "display": "Child", "type": "Group"}]
    assert members[0]["$ref"].endswith(f"/Groups/{child['id']}")


def test_patch_unknown_member_fails_atomically(api):
    a, b = _users(api, 2)
    group = api.create_group("Team", members=[a["id"]])
    before = _get_group(api, group["id"])
    resp = api.patch_ops(f"/Groups/{group['id']}",
                         {"op": "add", "path": "members", "value": [{"value": b["id"]}]},
                         {"op": "add", "path": "members", "value": [{"value": str(uuid.uuid4())}]})
    assert_scim_error(resp, 400)
    after = _get_group(api, group["id"])
    assert _member_ids(after) == [a["id"]]
    assert after["meta"]["version"] == before["meta"]["version"]
    assert "groups" not in api.get(f"/Users/{b['id']}").get_json()


def test_patch_member_from_other_tenant_is_rejected(api, other_api):
    foreign = other_api.create_user("foreign@example.com")
    group = api.create_group("Team")
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members",
                                                    "value": [{"value": foreign["id"]}]})
    assert_scim_error(resp, 400)
    assert not _get_group(api, group["id"]).get("members")


# ---------------------------------------------------------------------- PUT


def test_put_group_with_members(api):
    a, b, c = _users(api, 3)
    group = api.create_group("Team", members=[a["id"], b["id"]])
    resp = api.put(f"/Groups/{group['id']}", json={"schemas": [CORE_GROUP], "displayName": "Team 2",
                                                   "members": [{"value": b["id"]}, {"value": c["id"]}]})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["displayName"] == "Team 2"
    assert _member_ids(body) == sorted([b["id"], c["id"]])
    assert _member_ids(_get_group(api, group["id"])) == sorted([b["id"], c["id"]])
    assert "groups" not in api.get(f"/Users/{a['id']}").get_json()


def test_put_group_without_members_empties_it(api):
    a = api.create_user("a@example.com")
    group = api.create_group("Team", members=[a["id"]])
    resp = api.put(f"/Groups/{group['id']}", json={"schemas": [CORE_GROUP], "displayName": "Team"})
    assert resp.status_code == 200
    assert not _get_group(api, group["id"]).get("members")


# ------------------------------------------------------------------- DELETE


def test_delete_group_keeps_users(api):
    a, b = _users(api, 2)
    group = api.create_group("Team", members=[a["id"], b["id"]])
    assert api.delete(f"/Groups/{group['id']}").status_code == 204
    assert_scim_error(api.get(f"/Groups/{group['id']}"), 404)
    for user in (a, b):
        body = api.get(f"/Users/{user['id']}")
        assert body.status_code == 200
        assert "groups" not in body.get_json()
    assert api.get("/Users").get_json()["totalResults"] == 2


def test_deleted_nested_group_leaves_parent(api):
    child = api.create_group("Child")
    parent = api.create_group("Parent", members=[child["id"]])
    assert api.delete(f"/Groups/{child['id']}").status_code == 204
    assert not _get_group(api, parent["id"]).get("members")


# -------------------------------------------------------------- large groups


def test_group_with_300_members_and_excluded_members(api):
    users = [api.create_user(f"bulk{i:03d}@example.com") for i in range(300)]
    ids = [u["id"] for u in users]
    group = api.create_group("Big", members=ids[:150])
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members",
                                                    "value": [{"value": i} for i in ids[150:]]})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    full = _get_group(api, group["id"])
    assert _member_ids(full) == sorted(ids)
    slim = api.get(f"/Groups/{group['id']}?excludedAttributes=members")
    assert slim.status_code == 200
    body = slim.get_json()
    assert "members" not in body
    assert body["displayName"] == "Big" and body["id"] == group["id"]
    listed = api.get("/Groups?excludedAttributes=members").get_json()
    assert listed["totalResults"] == 1 and "members" not in listed["Resources"][0]


def test_user_schema_cannot_create_group(api):
    resp = api.post("/Groups", json={"schemas": [CORE_USER], "displayName": "Wrong"})
    assert_scim_error(resp, 400)


def test_patch_group_missing_schema_is_invalid_syntax(api):
    group = api.create_group("G")
    resp = api.patch(f"/Groups/{group['id']}", json={"Operations": [
        {"op": "replace", "path": "displayName", "value": "X"}]})
    assert_scim_error(resp, 400, "invalidSyntax")
    resp = api.patch(f"/Groups/{group['id']}", json={"schemas": [PATCH_OP], "Operations": []})
    assert_scim_error(resp, 400)
