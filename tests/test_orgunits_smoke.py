from conftest import CORE_GROUP, ENTERPRISE

P2L_USER = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User"
P2L_GROUP = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:Group"


def unit(api, name, parent=None, **attrs):
    ext = {"unitCode": name.upper(), "unitType": "department", **attrs}
    if parent:
        ext["parent"] = {"value": parent}
    r = api.post("/Groups", json={"schemas": [CORE_GROUP, P2L_GROUP], "displayName": name, P2L_GROUP: ext})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_tree_and_filters(api):
    root = unit(api, "Kommune", ean="5790000000012")
    dept = unit(api, "Skole", parent=root["id"])
    team = unit(api, "Indskoling", parent=dept["id"])
    assert team[P2L_GROUP]["ancestors"] == [{"value": root["id"], "display": "Kommune"},
                                            {"value": dept["id"], "display": "Skole"}]
    boss = api.create_user("boss@k.dk", displayName="Boss")
    mid = api.create_user("mid@k.dk", displayName="Mid", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    emp = api.create_user("emp@k.dk", **{ENTERPRISE: {"manager": {"value": mid["id"]}},
                                         P2L_USER: {"employments": [{"value": team["id"], "title": "Lærer",
                                                                      "primary": True}]}})
    got = api.get(f"/Users/{emp['id']}").get_json()
    p2l = got[P2L_USER]
    assert {u["value"] for u in p2l["orgUnits"]} == {root["id"], dept["id"], team["id"]}
    assert [m["value"] for m in p2l["managerChain"]] == [mid["id"], boss["id"]]
    assert p2l["effectiveEan"] == "5790000000012"
    r = api.get(f'/Users?filter={P2L_USER}:orgUnits.value eq "{root["id"]}"').get_json()
    assert [u["id"] for u in r["Resources"]] == [emp["id"]]
    r = api.get(f'/Users?filter={P2L_USER}:managerChain.value eq "{boss["id"]}"').get_json()
    assert {u["id"] for u in r["Resources"]} == {mid["id"], emp["id"]}
    r = api.get(f'/Users?filter={P2L_USER}:effectiveEan eq "5790000000012"').get_json()
    assert r["totalResults"] == 1
    # cycle
    r = api.patch_ops(f"/Groups/{root['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent",
                                                "value": {"value": team["id"]}})
    assert r.status_code == 400, r.get_json()
    assert "cycle" in r.get_json()["detail"]
    r = api.patch_ops(f"/Users/{boss['id']}", {"op": "add", "path": f"{ENTERPRISE}:manager", "value": emp["id"]})
    assert r.status_code == 400 and "cycle" in r.get_json()["detail"], r.get_json()
    # employments via PATCH path with filter
    r = api.patch_ops(f"/Users/{emp['id']}", {"op": "replace",
                      "path": f'{P2L_USER}:employments[value eq "{team["id"]}"].endDate',
                      "value": "2020-01-01T00:00:00Z"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["active"] is False
    # group side sees the employment
    members = api.get(f"/Groups/{team['id']}").get_json()["members"]
    assert [m["value"] for m in members] == [emp["id"]]
    assert api.delete(f"/Groups/{dept['id']}").status_code == 409
