from conftest import ENTERPRISE, assert_scim_error


def test_create_get_filter_patch_delete(api):
    user = api.create_user("Søren@Example.dk", name={"givenName": "Søren", "familyName": "Ørsted"},
                           emails=[{"value": "soren@example.dk", "type": "work", "primary": True}],
                           **{ENTERPRISE: {"employeeNumber": "42", "department": "R&D"}})
    assert user["id"] and user["meta"]["location"].endswith(user["id"])
    got = api.get(f"/Users/{user['id']}")
    assert got.status_code == 200
    found = api.get('/Users?filter=userName eq "SØREN@example.DK"').get_json()
    assert found["totalResults"] == 1
    found = api.get('/Users?filter=emails[type eq "work" and value co "@example"]').get_json()
    assert found["totalResults"] == 1
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["active"] is False
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    assert_scim_error(api.get(f"/Users/{user['id']}"), 404)
