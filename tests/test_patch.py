"""PATCH on Users (RFC 7644 §3.5.2), with the Entra ID and Okta forms real clients send."""
from __future__ import annotations

import uuid

import pytest

from conftest import CORE_USER, ENTERPRISE, PATCH_OP, assert_scim_error


def _get(api, uid):
    resp = api.get(f"/Users/{uid}")
    assert resp.status_code == 200
    return resp.get_json()


def _ok(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/scim+json"
    return resp.get_json()


@pytest.fixture
def user(api):
    return api.create_user(
        "patch@example.com", displayName="Patch Me", title="Engineer", active=True,
        name={"givenName": "Pat", "familyName": "Smith", "formatted": "Pat Smith"},
        emails=[{"value": "work@example.com", "type": "work", "primary": True},
                {"value": "home@example.org", "type": "home"}],
        phoneNumbers=[{"value": "+45 1234", "type": "work"}],
        schemas=[CORE_USER, ENTERPRISE],
        **{ENTERPRISE: {"department": "R&D", "employeeNumber": "1"}},
    )


# ------------------------------------------------------------ basic operations


def test_patch_returns_200_with_the_resource(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "New"}))
    assert body["id"] == user["id"]
    assert body["displayName"] == "New"
    assert body["userName"] == "patch@example.com"
    assert body["meta"]["version"] != user["meta"]["version"]
    assert _get(api, user["id"])["displayName"] == "New"


def test_add_with_path(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": "nickName", "value": "Patty"}))
    assert body["nickName"] == "Patty"


def test_add_replaces_single_valued_attribute(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": "title", "value": "Boss"}))
    assert body["title"] == "Boss"


def test_add_without_path_merges(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "value": {
        "nickName": "P", "name": {"middleName": "Q"}}}))
    assert body["nickName"] == "P"
    assert body["name"]["middleName"] == "Q"
    assert body["name"]["givenName"] == "Pat"  # other sub-attributes kept
    assert body["title"] == "Engineer"


def test_replace_without_path(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "value": {
        "displayName": "Replaced", "active": False}}))
    assert body["displayName"] == "Replaced"
    assert body["active"] is False
    assert body["title"] == "Engineer"


def test_remove_with_path(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": "title"}))
    assert "title" not in body
    assert "title" not in _get(api, user["id"])


def test_remove_without_path_is_no_target(api, user):
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"op": "remove"}), 400, "noTarget")


def test_replace_sub_attribute(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "name.familyName", "value": "Jones"}))
    assert body["name"]["familyName"] == "Jones"
    assert body["name"]["givenName"] == "Pat"


def test_add_sub_attribute_when_complex_absent(api):
    u = api.create_user("noname@example.com")
    body = _ok(api.patch_ops(f"/Users/{u['id']}", {"op": "add", "path": "name.givenName", "value": "New"}))
    assert body["name"] == {"givenName": "New"} or body["name"]["givenName"] == "New"


def test_remove_sub_attribute(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": "name.formatted"}))
    assert "formatted" not in body["name"]
    assert body["name"]["familyName"] == "Smith"


def test_replace_complex_attribute_replaces_all_sub_attributes(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "name",
                                                      "value": {"givenName": "Only"}}))
    # RFC 7644 §3.5.2.3: replace on a complex attribute replaces the sub-attributes given in value
    assert body["name"]["givenName"] == "Only"


# --------------------------------------------------------------- value paths


def test_replace_value_path_sub_attribute(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": 'emails[type eq "work"].value',
                                                      "value": "new-work@example.com"}))
    emails = {e["type"]: e for e in body["emails"]}
    assert emails["work"]["value"] == "new-work@example.com"
    assert emails["work"]["primary"] is True
    assert emails["home"]["value"] == "home@example.org"


def test_remove_value_path(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": 'emails[type eq "home"]'}))
    assert [e["type"] for e in body["emails"]] == ["work"]


def test_remove_whole_multi_valued_attribute(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": "emails"}))
    assert "emails" not in body


def test_entra_add_typed_value_creates_missing_entry(api):
    u = api.create_user("entra@example.com", emails=[{"value": "w@example.com", "type": "work", "primary": True}])
    body = _ok(api.patch_ops(f"/Users/{u['id']}", {"op": "Add", "path": 'emails[type eq "home"].value',
                                                   "value": "h@example.org"}))
    emails = {e["type"]: e for e in body["emails"]}
    assert emails["home"]["value"] == "h@example.org"
    assert emails["work"]["value"] == "w@example.com"


def test_entra_replace_typed_value_creates_when_no_values(api):
    u = api.create_user("entra2@example.com")
    body = _ok(api.patch_ops(f"/Users/{u['id']}", {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value',
                                                   "value": "+45 5555"}))
    assert body["phoneNumbers"] == [{"value": "+45 5555", "type": "mobile"}]


def test_replace_with_non_equality_filter_matching_nothing_is_no_target(api, user):
    before = _get(api, user["id"])
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": 'emails[type sw "none"].value',
                                                  "value": "x@example.com"})
    assert_scim_error(resp, 400, "noTarget")
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": 'emails[type ne "work" and type ne "home"]',
                                                  "value": {"value": "x@example.com"}})
    assert_scim_error(resp, 400, "noTarget")
    assert _get(api, user["id"])["emails"] == before["emails"]


def test_multi_valued_add_merges(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": "emails", "value": [
        {"value": "other@example.net", "type": "other"}]}))
    assert sorted(e["value"] for e in body["emails"]) == sorted(
        ["work@example.com", "home@example.org", "other@example.net"])


def test_multi_valued_add_of_identical_value_does_not_duplicate(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": "emails", "value": [
        {"value": "home@example.org", "type": "home"}]}))
    assert [e["value"] for e in body["emails"]].count("home@example.org") == 1


def test_setting_primary_clears_other_primaries(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": 'emails[type eq "home"].primary',
                                                      "value": True}))
    emails = {e["type"]: e for e in body["emails"]}
    assert emails["home"]["primary"] is True
    assert emails["work"].get("primary") in (False, None)
    assert sum(1 for e in body["emails"] if e.get("primary") is True) == 1


def test_adding_a_primary_value_clears_other_primaries(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": "emails", "value": [
        {"value": "new@example.com", "type": "other", "primary": True}]}))
    primaries = [e["value"] for e in body["emails"] if e.get("primary") is True]
    assert primaries == ["new@example.com"]


# ---------------------------------------------------------------- extensions


def test_extension_attribute_path(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:department",
                                                      "value": "Sales"}))
    assert body[ENTERPRISE]["department"] == "Sales"
    assert body[ENTERPRISE]["employeeNumber"] == "1"
    assert ENTERPRISE in body["schemas"]


def test_extension_add_on_user_without_extension(api):
    u = api.create_user("noext@example.com")
    body = _ok(api.patch_ops(f"/Users/{u['id']}", {"op": "add", "path": f"{ENTERPRISE}:costCenter", "value": "42"}))
    assert body[ENTERPRISE]["costCenter"] == "42"
    assert ENTERPRISE in body["schemas"]


def test_extension_remove(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": f"{ENTERPRISE}:department"}))
    assert "department" not in body.get(ENTERPRISE, {})
    assert body[ENTERPRISE]["employeeNumber"] == "1"


def test_pathless_replace_with_extension_object(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "value": {
        ENTERPRISE: {"division": "North"}}}))
    assert body[ENTERPRISE]["division"] == "North"


def test_pathless_replace_with_dotted_and_urn_keys(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "value": {
        "name.givenName": "X", f"{ENTERPRISE}:employeeNumber": "9", "displayName": "Dotted"}}))
    assert body["name"]["givenName"] == "X"
    assert body["name"]["familyName"] == "Smith"
    assert body[ENTERPRISE]["employeeNumber"] == "9"
    assert body[ENTERPRISE]["department"] == "R&D"
    assert body["displayName"] == "Dotted"
    got = _get(api, user["id"])
    assert got["name"]["givenName"] == "X" and got[ENTERPRISE]["employeeNumber"] == "9"


# ------------------------------------------------------------- Entra quirks


@pytest.mark.parametrize("op", ["Replace", "Add", "REPLACE"])
def test_capitalised_ops(api, user, op):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": op, "path": "title", "value": "Cap"}))
    assert body["title"] == "Cap"


def test_capitalised_remove(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Remove", "path": "title"}))
    assert "title" not in body


@pytest.mark.parametrize("raw, expected", [("False", False), ("True", True), ("false", False), ("true", True)])
def test_boolean_strings_for_active(api, user, raw, expected):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": raw}))
    assert body["active"] is expected


def test_boolean_string_in_pathless_replace(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "value": {"active": "False"}}))
    assert body["active"] is False


def test_non_boolean_string_for_active_is_invalid_value(api, user):
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": "maybe"}),
                      400, "invalidValue")


def test_manager_bare_string_set_change_clear(api, user):
    boss1 = api.create_user("boss1@example.com", displayName="Boss One")
    boss2 = api.create_user("boss2@example.com", displayName="Boss Two")
    path = f"{ENTERPRISE}:manager"
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Add", "path": path, "value": boss1["id"]}))
    manager = body[ENTERPRISE]["manager"]
    assert manager["value"] == boss1["id"]
    assert manager["displayName"] == "Boss One"
    assert manager["$ref"].endswith(f"/Users/{boss1['id']}")
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": path, "value": boss2["id"]}))
    assert body[ENTERPRISE]["manager"]["value"] == boss2["id"]
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": path, "value": ""}))
    assert "manager" not in body.get(ENTERPRISE, {})
    assert body[ENTERPRISE]["department"] == "R&D"
    assert "manager" not in _get(api, user["id"]).get(ENTERPRISE, {})


def test_manager_as_object_and_removed(api, user):
    boss = api.create_user("boss@example.com", displayName="Boss")
    path = f"{ENTERPRISE}:manager"
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": path, "value": {"value": boss["id"]}}))
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": path}))
    assert "manager" not in body.get(ENTERPRISE, {})


def test_manager_unknown_id_is_invalid_value(api, user):
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:manager",
                                                  "value": str(uuid.uuid4())})
    assert_scim_error(resp, 400, "invalidValue")
    assert "manager" not in _get(api, user["id"]).get(ENTERPRISE, {})


@pytest.mark.parametrize("value", ["", None])
def test_empty_or_null_value_clears_attribute(api, user, value):
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": "title", "value": value}))
    assert "title" not in body
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": f"{ENTERPRISE}:department",
                                                      "value": value}))
    assert "department" not in body.get(ENTERPRISE, {})


# ------------------------------------------------------------------- errors


def test_remove_required_attribute_is_rejected(api, user):
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": "userName"})
    assert_scim_error(resp, 400)
    assert _get(api, user["id"])["userName"] == "patch@example.com"


def test_clear_required_attribute_with_empty_value_is_rejected(api, user):
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "userName", "value": ""})
    assert_scim_error(resp, 400)
    assert _get(api, user["id"])["userName"] == "patch@example.com"


@pytest.mark.parametrize("op", [
    {"op": "replace", "path": "id", "value": "new-id"},
    {"op": "replace", "path": "meta.created", "value": "2001-01-01T00:00:00Z"},
    {"op": "add", "path": "groups", "value": [{"value": "x"}]},
    {"op": "remove", "path": "groups"},
])
def test_read_only_target_is_mutability_error(api, user, op):
    before = _get(api, user["id"])
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", op), 400, "mutability")
    after = _get(api, user["id"])
    assert after["id"] == user["id"]
    assert after["meta"] == before["meta"]


@pytest.mark.parametrize("path", ["noSuchAttribute", "name.noSuch", "emails[type eq", "urn:bogus:schema:attr",
                                  "userName[value eq \"x\"]"])
def test_invalid_path(api, user, path):
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": path, "value": "x"}),
                      400, "invalidPath")


@pytest.mark.parametrize("op", ["move", "copy", "", "test"])
def test_unknown_op_is_invalid_syntax(api, user, op):
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"op": op, "path": "title", "value": "x"}),
                      400, "invalidSyntax")


def test_missing_op_is_invalid_syntax(api, user):
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"path": "title", "value": "x"}), 400, "invalidSyntax")


def test_missing_patch_op_schema_is_invalid_syntax(api, user):
    resp = api.patch(f"/Users/{user['id']}", json={"Operations": [{"op": "replace", "path": "title", "value": "x"}]})
    assert_scim_error(resp, 400, "invalidSyntax")
    resp = api.patch(f"/Users/{user['id']}", json={"schemas": [CORE_USER],
                                                   "Operations": [{"op": "replace", "path": "title", "value": "x"}]})
    assert_scim_error(resp, 400, "invalidSyntax")
    assert _get(api, user["id"])["title"] == "Engineer"


def test_operations_not_a_list_is_invalid_syntax(api, user):
    resp = api.patch(f"/Users/{user['id']}", json={"schemas": [PATCH_OP], "Operations": {"op": "remove"}})
    assert_scim_error(resp, 400, "invalidSyntax")


def test_wrong_value_type_is_invalid_value(api, user):
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "name", "value": "str"}),
                      400, "invalidValue")


def test_patch_unknown_user_is_404(api):
    assert_scim_error(api.patch_ops(f"/Users/{uuid.uuid4()}", {"op": "replace", "path": "title", "value": "x"}), 404)


def test_patch_to_taken_user_name_conflicts(api, user):
    api.create_user("taken@example.com")
    assert_scim_error(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "userName",
                                                             "value": "TAKEN@example.com"}), 409, "uniqueness")


def test_patch_is_atomic(api, user):
    before = _get(api, user["id"])
    resp = api.patch_ops(f"/Users/{user['id']}",
                         {"op": "replace", "path": "displayName", "value": "Changed"},
                         {"op": "replace", "path": "noSuchAttribute", "value": "x"})
    assert_scim_error(resp, 400, "invalidPath")
    after = _get(api, user["id"])
    assert after == before
    assert after["meta"]["version"] == before["meta"]["version"]
    resp = api.patch_ops(f"/Users/{user['id']}",
                         {"op": "add", "path": "emails", "value": [{"value": "z@example.com", "type": "other"}]},
                         {"op": "remove", "path": "userName"})
    assert resp.status_code == 400
    assert _get(api, user["id"]) == before


def test_patch_atomic_with_later_manager_error(api, user):
    before = _get(api, user["id"])
    resp = api.patch_ops(f"/Users/{user['id']}",
                         {"op": "replace", "path": "title", "value": "Changed"},
                         {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": str(uuid.uuid4())})
    assert_scim_error(resp, 400, "invalidValue")
    assert _get(api, user["id"]) == before


# ------------------------------------------------------------- attributes=


def test_patch_with_attributes_parameter(api, user):
    resp = api.patch_ops(f"/Users/{user['id']}?attributes=displayName",
                         {"op": "replace", "path": "displayName", "value": "Projected"})
    body = _ok(resp)
    assert body["displayName"] == "Projected"
    assert body["id"] == user["id"]  # always returned
    assert "title" not in body and "emails" not in body and "userName" not in body


def test_patch_with_excluded_attributes_parameter(api, user):
    body = _ok(api.patch_ops(f"/Users/{user['id']}?excludedAttributes=emails",
                             {"op": "replace", "path": "displayName", "value": "X"}))
    assert "emails" not in body
    assert body["displayName"] == "X"


def test_replace_a_filtered_value_with_an_object(api):
    """RFC 7644 §3.5.2.3: a value-path replace takes the replacement value itself (a JSON object).
    Answered 400 "send a JSON array" before."""
    user = api.create_user("filtered@x.dk", emails=[{"value": "old@x.dk", "type": "work"},
                                                     {"value": "home@x.dk", "type": "home"}])
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": 'emails[type eq "work"]',
                                                "value": {"value": "new@x.dk", "type": "work"}})
    assert r.status_code == 200, r.get_json()
    assert sorted(e["value"] for e in r.get_json()["emails"]) == ["home@x.dk", "new@x.dk"]


def test_a_change_inside_a_complex_value_is_checked_and_kept_apart_from_the_stored_one(api, user):
    """The PATCH engine works on a copy of the stored document all the way down: a sub-attribute
    changed in place must not also change the stored value it is compared with (validation
    skips values equal to the stored ones, and the audit trail diffs the two)."""
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "name.givenName", "value": 7})
    assert_scim_error(resp, 400, "invalidValue")
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "emails[type eq \"work\"].primary",
                                                  "value": "yes"})
    assert_scim_error(resp, 400, "invalidValue")
    body = _ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "name.givenName", "value": "Patricia"}))
    assert body["name"] == {"givenName": "Patricia", "familyName": "Smith", "formatted": "Pat Smith"}
    assert _get(api, user["id"])["name"]["givenName"] == "Patricia"
