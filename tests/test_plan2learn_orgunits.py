"""plan2learn org units: Groups carrying the plan2learn Group extension, tested
through the HTTP API (POST, PUT, PATCH, filters, sorting, projection, /Schemas)."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from conftest import P2L_GROUP, P2L_USER, assert_scim_error, create_unit, filter_list, get_json, ids, unit_body

get = get_json
unit = create_unit


SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def ean13(body12: str) -> str:
    """A GS1 number with a valid check digit."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


EAN_A = ean13("579000000001")   # 5790000000012
EAN_B = ean13("579000000002")
BAD_CHECK = EAN_A[:-1] + str((int(EAN_A[-1]) + 1) % 10)


search = filter_list


def ext(resource):
    return resource.get(P2L_GROUP) or {}


def ancestor_ids(resource):
    return [a["value"] for a in ext(resource).get("ancestors") or []]


def employ(api, user_name, *unit_ids, **attrs):
    employments = [{"value": u, "primary": i == 0} for i, u in enumerate(unit_ids)]
    return api.create_user(user_name, **{P2L_USER: {"employments": employments}}, **attrs)


def org_unit_ids(api, user_id):
    user = get(api, f"/Users/{user_id}")
    return {u["value"] for u in (user.get(P2L_USER) or {}).get("orgUnits") or []}


@pytest.fixture
def tree(api):
    """root > (a > a1 > a11), (b)"""
    root = unit(api, "Kommune", unit_type="company")
    a = unit(api, "Skoler", parent=root["id"], unit_type="division")
    a1 = unit(api, "Solbjerg Skole", parent=a["id"])
    a11 = unit(api, "Indskoling", parent=a1["id"], unit_type="team")
    b = unit(api, "Sundhed", parent=root["id"], unit_type="division")
    return {"root": root, "a": a, "a1": a1, "a11": a11, "b": b}


# ------------------------------------------------------------------ creating


def test_create_root_unit_returns_extension(api):
    r = api.post("/Groups", json=unit_body("Kommune", code="K1", unit_type="company", ean=EAN_A))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert P2L_GROUP in body["schemas"]
    assert body[P2L_GROUP]["unitCode"] == "K1"
    assert body[P2L_GROUP]["unitType"] == "company"
    assert body[P2L_GROUP]["ean"] == EAN_A
    assert not body[P2L_GROUP].get("parent")
    assert not body[P2L_GROUP].get("ancestors")
    assert get(api, f"/Groups/{body['id']}")[P2L_GROUP] == body[P2L_GROUP]


def test_child_unit_parent_and_ancestors(api, tree):
    a11 = get(api, f"/Groups/{tree['a11']['id']}")
    parent = a11[P2L_GROUP]["parent"]
    assert parent["value"] == tree["a1"]["id"]
    assert parent["display"] == "Solbjerg Skole"
    assert parent["$ref"].endswith(f"/Groups/{tree['a1']['id']}")
    assert a11[P2L_GROUP]["ancestors"] == [
        {"value": tree["root"]["id"], "display": "Kommune"},
        {"value": tree["a"]["id"], "display": "Skoler"},
        {"value": tree["a1"]["id"], "display": "Solbjerg Skole"},
    ]
    # the POST response already carried them
    assert ancestor_ids(tree["a11"]) == [tree["root"]["id"], tree["a"]["id"], tree["a1"]["id"]]


def test_readonly_attributes_sent_by_client_are_ignored(api, tree):
    body = unit_body("Team", parent=tree["a"]["id"])
    body[P2L_GROUP]["parent"]["display"] = "Forged"
    body[P2L_GROUP]["ancestors"] = [{"value": tree["b"]["id"], "display": "Sundhed"}]
    r = api.post("/Groups", json=body)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created[P2L_GROUP]["parent"]["display"] == "Skoler"
    assert ancestor_ids(created) == [tree["root"]["id"], tree["a"]["id"]]


def test_display_name_change_shows_in_parent_and_ancestors(api, tree):
    r = api.patch_ops(f"/Groups/{tree['a']['id']}", {"op": "replace", "path": "displayName", "value": "Skoleområdet"})
    assert r.status_code in (200, 204), r.get_json()
    a1 = get(api, f"/Groups/{tree['a1']['id']}")
    assert a1[P2L_GROUP]["parent"]["display"] == "Skoleområdet"
    a11 = get(api, f"/Groups/{tree['a11']['id']}")
    assert a11[P2L_GROUP]["ancestors"][1] == {"value": tree["a"]["id"], "display": "Skoleområdet"}


# ------------------------------------------------------------------ unitCode


def test_unit_code_unique_per_tenant(api, other_api):
    unit(api, "Kommune", code="K1")
    r = api.post("/Groups", json=unit_body("Other", code="K1"))
    assert_scim_error(r, 409, "uniqueness")
    # another tenant may use the same code
    unit(other_api, "Kommune", code="K1")


def test_unit_code_uniqueness_on_put_and_patch(api):
    unit(api, "One", code="U1")
    two = unit(api, "Two", code="U2")
    r = api.patch_ops(f"/Groups/{two['id']}", {"op": "replace", "path": f"{P2L_GROUP}:unitCode", "value": "U1"})
    assert_scim_error(r, 409, "uniqueness")
    r = api.put(f"/Groups/{two['id']}", json=unit_body("Two", code="U1"))
    assert_scim_error(r, 409, "uniqueness")
    assert get(api, f"/Groups/{two['id']}")[P2L_GROUP]["unitCode"] == "U2"
    # PUT keeping its own code is not a conflict
    r = api.put(f"/Groups/{two['id']}", json=unit_body("Two renamed", code="U2"))
    assert r.status_code == 200, r.get_json()


# ------------------------------------------------------------------ EAN


@pytest.mark.parametrize("bad", [BAD_CHECK, "579000000001", "57900000000120", "579000000001X", "abcdefghijklm"])
def test_invalid_ean_on_post(api, bad):
    r = api.post("/Groups", json=unit_body("Kommune", ean=bad))
    body = assert_scim_error(r, 400, "invalidValue")
    assert "ean" in body["detail"]


def test_invalid_ean_on_patch_and_put(api):
    u = unit(api, "Kommune", code="K", ean=EAN_A)
    r = api.patch_ops(f"/Groups/{u['id']}", {"op": "replace", "path": f"{P2L_GROUP}:ean", "value": BAD_CHECK})
    assert "ean" in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = api.put(f"/Groups/{u['id']}", json=unit_body("Kommune", code="K", ean=BAD_CHECK))
    assert "ean" in assert_scim_error(r, 400, "invalidValue")["detail"]
    assert get(api, f"/Groups/{u['id']}")[P2L_GROUP]["ean"] == EAN_A
    r = api.patch_ops(f"/Groups/{u['id']}", {"op": "replace", "path": f"{P2L_GROUP}:ean", "value": EAN_B})
    assert r.status_code in (200, 204), r.get_json()
    assert get(api, f"/Groups/{u['id']}")[P2L_GROUP]["ean"] == EAN_B


# ------------------------------------------------------------------ parent rules


def test_parent_must_exist(api):
    r = api.post("/Groups", json=unit_body("Orphan", parent="00000000-0000-0000-0000-000000000000"))
    assert_scim_error(r, 400, "invalidValue")


def test_parent_must_be_an_org_unit(api):
    plain = api.create_group("Plain group")
    r = api.post("/Groups", json=unit_body("Child", parent=plain["id"]))
    assert_scim_error(r, 400, "invalidValue")


def test_parent_from_another_tenant_is_rejected(api, other_api):
    foreign = unit(other_api, "Globex root")
    r = api.post("/Groups", json=unit_body("Child", parent=foreign["id"]))
    assert_scim_error(r, 400, "invalidValue")
    mine = unit(api, "Mine")
    r = api.patch_ops(f"/Groups/{mine['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent",
                                                "value": {"value": foreign["id"]}})
    assert_scim_error(r, 400, "invalidValue")
    assert not get(api, f"/Groups/{mine['id']}")[P2L_GROUP].get("parent")


def test_unit_cannot_be_its_own_parent(api):
    u = unit(api, "Self")
    r = api.patch_ops(f"/Groups/{u['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent", "value": {"value": u["id"]}})
    body = assert_scim_error(r, 400, "invalidValue")
    assert "cycle" in body["detail"].lower()


def _assert_cycle_detail(detail, *units):
    assert "cycle" in detail.lower(), detail
    for u in units:
        assert u["displayName"] in detail or u["id"] in detail, (u["displayName"], detail)


def test_cycle_via_patch_is_rejected_and_names_the_cycle(api, tree):
    r = api.patch_ops(f"/Groups/{tree['a']['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent",
                                                     "value": {"value": tree["a11"]["id"]}})
    body = assert_scim_error(r, 400, "invalidValue")
    _assert_cycle_detail(body["detail"], tree["a"], tree["a11"])
    assert ancestor_ids(get(api, f"/Groups/{tree['a11']['id']}")) == [tree["root"]["id"], tree["a"]["id"], tree["a1"]["id"]]


def test_cycle_via_put_is_rejected(api, tree):
    r = api.put(f"/Groups/{tree['root']['id']}", json=unit_body("Kommune", parent=tree["a1"]["id"], code="KOMMUNE"))
    body = assert_scim_error(r, 400, "invalidValue")
    _assert_cycle_detail(body["detail"], tree["root"], tree["a1"])
    assert not get(api, f"/Groups/{tree['root']['id']}")[P2L_GROUP].get("parent")


def test_cycle_via_patch_without_path(api, tree):
    r = api.patch_ops(f"/Groups/{tree['a1']['id']}", {"op": "replace", "value": {
        f"{P2L_GROUP}:parent": {"value": tree["a11"]["id"]}}})
    assert_scim_error(r, 400, "invalidValue")


# ------------------------------------------------------------------ delete


def test_delete_unit_with_children_is_conflict(api, tree):
    r = api.delete(f"/Groups/{tree['a1']['id']}")
    body = assert_scim_error(r, 409)
    assert "child" in body["detail"].lower() or "Indskoling" in body["detail"], body
    assert api.get(f"/Groups/{tree['a1']['id']}").status_code == 200
    # a leaf can go, and then its parent can
    assert api.delete(f"/Groups/{tree['a11']['id']}").status_code == 204
    assert api.delete(f"/Groups/{tree['a1']['id']}").status_code == 204
    assert api.get(f"/Groups/{tree['a1']['id']}").status_code == 404


def test_deleting_unit_removes_its_employments(api, tree):
    user = employ(api, "e@k.dk", tree["a11"]["id"])
    assert api.delete(f"/Groups/{tree['a11']['id']}").status_code == 204
    got = get(api, f"/Users/{user['id']}")
    assert not (got.get(P2L_USER) or {}).get("employments")
    assert tree["a11"]["id"] not in org_unit_ids(api, user["id"])


# ------------------------------------------------------------------ moving


def test_moving_a_unit_moves_its_subtree(api, tree):
    user = employ(api, "e@k.dk", tree["a11"]["id"])
    assert tree["a"]["id"] in org_unit_ids(api, user["id"])
    r = api.patch_ops(f"/Groups/{tree['a1']['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent",
                                                      "value": {"value": tree["b"]["id"]}})
    assert r.status_code in (200, 204), r.get_json()
    assert ancestor_ids(get(api, f"/Groups/{tree['a1']['id']}")) == [tree["root"]["id"], tree["b"]["id"]]
    assert ancestor_ids(get(api, f"/Groups/{tree['a11']['id']}")) == [tree["root"]["id"], tree["b"]["id"], tree["a1"]["id"]]
    assert org_unit_ids(api, user["id"]) == {tree["root"]["id"], tree["b"]["id"], tree["a1"]["id"], tree["a11"]["id"]}
    assert ids(search(api, "Users", f'{P2L_USER}:orgUnits.value eq "{tree["a"]["id"]}"')) == set()
    assert ids(search(api, "Users", f'{P2L_USER}:orgUnits.value eq "{tree["b"]["id"]}"')) == {user["id"]}
    assert ids(search(api, "Groups", f'{P2L_GROUP}:ancestors.value eq "{tree["b"]["id"]}"')) == {
        tree["a1"]["id"], tree["a11"]["id"]}


def test_moving_with_put(api, tree):
    user = employ(api, "e@k.dk", tree["a11"]["id"])
    r = api.put(f"/Groups/{tree['a1']['id']}", json=unit_body("Solbjerg Skole", parent=tree["b"]["id"],
                                                             code="SOLBJERG-SKOLE"))
    assert r.status_code == 200, r.get_json()
    assert ancestor_ids(r.get_json()) == [tree["root"]["id"], tree["b"]["id"]]
    assert ancestor_ids(get(api, f"/Groups/{tree['a11']['id']}"))[1] == tree["b"]["id"]
    assert tree["b"]["id"] in org_unit_ids(api, user["id"])
    assert tree["a"]["id"] not in org_unit_ids(api, user["id"])


def test_removing_parent_makes_a_root(api, tree):
    r = api.patch_ops(f"/Groups/{tree['a']['id']}", {"op": "remove", "path": f"{P2L_GROUP}:parent"})
    assert r.status_code in (200, 204), r.get_json()
    a = get(api, f"/Groups/{tree['a']['id']}")
    assert not a[P2L_GROUP].get("parent")
    assert not a[P2L_GROUP].get("ancestors")
    assert ancestor_ids(get(api, f"/Groups/{tree['a11']['id']}")) == [tree["a"]["id"], tree["a1"]["id"]]


def test_patch_parent_value_subattribute_path(api, tree):
    r = api.patch_ops(f"/Groups/{tree['a11']['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent.value",
                                                       "value": tree["b"]["id"]})
    assert r.status_code in (200, 204), r.get_json()
    a11 = get(api, f"/Groups/{tree['a11']['id']}")
    assert a11[P2L_GROUP]["parent"]["value"] == tree["b"]["id"]
    assert a11[P2L_GROUP]["parent"]["display"] == "Sundhed"
    assert ancestor_ids(a11) == [tree["root"]["id"], tree["b"]["id"]]


def test_patch_adds_extension_to_plain_group(api, tree):
    plain = api.create_group("Was plain")
    r = api.patch_ops(f"/Groups/{plain['id']}", {"op": "add", "path": f"{P2L_GROUP}:unitCode", "value": "PLAIN"},
                      {"op": "add", "path": f"{P2L_GROUP}:parent", "value": {"value": tree["b"]["id"]}})
    assert r.status_code in (200, 204), r.get_json()
    got = get(api, f"/Groups/{plain['id']}")
    assert P2L_GROUP in got["schemas"]
    assert ancestor_ids(got) == [tree["root"]["id"], tree["b"]["id"]]


# ------------------------------------------------------------------ filters, sort, projection


def test_filters_on_group_extension(api, tree):
    assert ids(search(api, "Groups", f'{P2L_GROUP}:unitCode eq "INDSKOLING"')) == {tree["a11"]["id"]}
    assert ids(search(api, "Groups", f'{P2L_GROUP}:unitType eq "division"')) == {tree["a"]["id"], tree["b"]["id"]}
    assert ids(search(api, "Groups", f'{P2L_GROUP}:parent.value eq "{tree["root"]["id"]}"')) == {
        tree["a"]["id"], tree["b"]["id"]}
    assert ids(search(api, "Groups", f'{P2L_GROUP}:ancestors.value eq "{tree["a"]["id"]}"')) == {
        tree["a1"]["id"], tree["a11"]["id"]}
    assert ids(search(api, "Groups", f'{P2L_GROUP}:unitCode pr')) == {t["id"] for t in tree.values()}
    assert ids(search(api, "Groups", f'{P2L_GROUP}:parent pr')) == {
        tree[k]["id"] for k in ("a", "a1", "a11", "b")}


def test_filter_on_unit_ean(api):
    u = unit(api, "Invoicing", ean=EAN_A)
    unit(api, "Other", ean=EAN_B)
    unit(api, "None")
    assert ids(search(api, "Groups", f'{P2L_GROUP}:ean eq "{EAN_A}"')) == {u["id"]}


def test_filter_on_unqualified_attribute_with_schema_prefix_bracket(api, tree):
    body = search(api, "Groups", f'{P2L_GROUP}:ancestors[value eq "{tree["a1"]["id"]}"]')
    assert ids(body) == {tree["a11"]["id"]}


def test_sort_by_unit_code(api):
    for code in ("C", "A", "B"):
        unit(api, f"Unit {code}", code=code)
    body = get(api, f"/Groups?sortBy={quote(P2L_GROUP + ':unitCode')}")
    assert [g[P2L_GROUP]["unitCode"] for g in body["Resources"]] == ["A", "B", "C"]
    body = get(api, f"/Groups?sortBy={quote(P2L_GROUP + ':unitCode')}&sortOrder=descending")
    assert [g[P2L_GROUP]["unitCode"] for g in body["Resources"]] == ["C", "B", "A"]


def test_sort_by_unit_type(api):
    unit(api, "T", code="T", unit_type="team")
    unit(api, "C", code="C", unit_type="company")
    unit(api, "D", code="D", unit_type="division")
    body = get(api, f"/Groups?sortBy={quote(P2L_GROUP + ':unitType')}")
    assert [g[P2L_GROUP]["unitType"] for g in body["Resources"]] == ["company", "division", "team"]


def test_attributes_projection(api, tree):
    body = get(api, f"/Groups/{tree['a11']['id']}?attributes={quote(P2L_GROUP + ':unitCode')}")
    assert body["id"] == tree["a11"]["id"]
    assert body[P2L_GROUP] == {"unitCode": "INDSKOLING"}
    assert "displayName" not in body
    body = get(api, f"/Groups/{tree['a11']['id']}?attributes={quote(P2L_GROUP + ':ancestors.display')}")
    assert body[P2L_GROUP] == {"ancestors": [{"display": "Kommune"}, {"display": "Skoler"},
                                             {"display": "Solbjerg Skole"}]}


def test_excluded_attributes(api, tree):
    body = get(api, f"/Groups/{tree['a11']['id']}?excludedAttributes={quote(P2L_GROUP + ':ancestors')}")
    assert "ancestors" not in body[P2L_GROUP]
    assert body[P2L_GROUP]["unitCode"] == "INDSKOLING"
    assert body["displayName"] == "Indskoling"
    expression = P2L_GROUP + ':unitCode eq "INDSKOLING"'
    body = get(api, f"/Groups?filter={quote(expression)}&excludedAttributes={quote(P2L_GROUP)}")
    assert body["totalResults"] == 1
    assert P2L_GROUP not in body["Resources"][0]


def test_search_post_with_extension_filter(api, tree):
    r = api.post("/Groups/.search", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                          "filter": f'{P2L_GROUP}:ancestors.value eq "{tree["root"]["id"]}"',
                                          "attributes": ["displayName"]})
    assert r.status_code == 200, r.get_json()
    assert ids(r.get_json()) == {tree[k]["id"] for k in ("a", "a1", "a11", "b")}


# ------------------------------------------------------------------ discovery


def test_schemas_endpoint_has_group_extension(api):
    body = get(api, f"/Schemas/{P2L_GROUP}")
    assert body["id"] == P2L_GROUP
    names = {a["name"]: a for a in body["attributes"]}
    assert set(names) >= {"unitCode", "unitType", "parent", "ean", "ancestors"}
    assert names["ancestors"]["mutability"] == "readOnly"
    assert names["unitCode"]["uniqueness"] == "server"
    listed = get(api, "/Schemas")
    assert P2L_GROUP in {s["id"] for s in listed["Resources"]}
    assert P2L_USER in {s["id"] for s in listed["Resources"]}


def test_resource_type_lists_group_extension(api):
    body = get(api, "/ResourceTypes/Group")
    exts = {e["schema"]: e for e in body.get("schemaExtensions") or []}
    assert P2L_GROUP in exts
    assert exts[P2L_GROUP]["required"] is False


# ------------------------------------------------------------------ tenancy


def test_filters_do_not_leak_across_tenants(api, other_api, tree):
    assert search(other_api, "Groups", f'{P2L_GROUP}:ancestors.value eq "{tree["root"]["id"]}"')["totalResults"] == 0
    assert search(other_api, "Groups", f'{P2L_GROUP}:unitCode eq "KOMMUNE"')["totalResults"] == 0
    assert other_api.get(f"/Groups/{tree['root']['id']}").status_code == 404
    employ(api, "e@k.dk", tree["a11"]["id"])
    assert search(other_api, "Users", f'{P2L_USER}:orgUnits.value eq "{tree["root"]["id"]}"')["totalResults"] == 0


def test_other_tenant_cannot_move_or_delete_unit(api, other_api, tree):
    r = other_api.patch_ops(f"/Groups/{tree['a']['id']}", {"op": "remove", "path": f"{P2L_GROUP}:parent"})
    assert r.status_code == 404
    assert other_api.delete(f"/Groups/{tree['a11']['id']}").status_code == 404
    assert ancestor_ids(get(api, f"/Groups/{tree['a11']['id']}"))[0] == tree["root"]["id"]


def test_overlong_unit_code_is_invalid_value_on_every_database(api):
    """SQLite stored a 200-character unitCode that PostgreSQL refuses: both now answer 400."""
    r = api.post("/Groups", json=unit_body("Long", code="A" * 200))
    assert_scim_error(r, 400, "invalidValue")
