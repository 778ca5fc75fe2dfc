"""Unit tests of the IdP quirk normaliser (scim_server/scim/quirks.py) on its own.

Every raw payload below is copied from what Microsoft Entra ID or Okta actually
send (the project's IdP client reference, catalogue entries E5-E15, Q1-Q12, K2),
and the expected output is the RFC 7644 form the PATCH engine understands.
No HTTP, no database.
"""
from __future__ import annotations

import copy
import json

import pytest

from scim_server.scim.quirks import PATCH_QUIRKS, Context, normalise_patch, normalise_resource
from scim_server.scim.schemas import registry

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"

USER_ID = "2819c223-7f76-453a-919d-413861904646"
MANAGER_ID = "26118915-6090-4610-87e4-49d8ca9f808d"
OTHER_MANAGER_ID = "bd0f8ad8-ea2b-4d3c-98a9-e1d3b2a6c7a0"
MEMBER_1 = "b64ba1b4-69a6-4fa2-a7c9-d8b5a1c4e1f2"
MEMBER_2 = "f2c6e0a1-5b7d-4e0a-8b8f-3c9a1d2e4b6c"


@pytest.fixture(scope="module")
def users():
    return registry().resource_type("User")


@pytest.fixture(scope="module")
def groups():
    return registry().resource_type("Group")


def user_doc(**extra) -> dict:
    """A stored user as the engine sees it, without a work email unless asked."""
    doc = {
        "schemas": [CORE_USER, ENT],
        "id": USER_ID,
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": True,
    }
    doc.update(extra)
    return doc


def group_doc() -> dict:
    return {"schemas": [CORE_GROUP], "id": "e9e30dba-f08f-4109-8486-d5c6a331660a", "displayName": "Group1DisplayName"}


def canon(ops: list[dict]) -> list[str]:
    """Operations compared as a multiset (order of independent operations is free)."""
    return sorted(json.dumps(op, sort_keys=True) for op in ops)


def run(rt, ops: list[dict], doc: dict) -> list[dict]:
    before_ops, before_doc = copy.deepcopy(ops), copy.deepcopy(doc)
    out = normalise_patch(rt, ops, doc)
    assert ops == before_ops, "normalise_patch must not mutate its input operations"
    assert doc == before_doc, "normalise_patch must not mutate the stored document"
    return out


# ------------------------------------------------------- one case per quirk

COVERED: set[str] = set()


def covers(name: str):
    COVERED.add(name)
    return lambda test: test


@covers("capitalised_op")
def test_capitalised_op_entra_replace_add_remove(users):
    # E6 and the aadOptscim062020 table: Entra capitalises every op (Q1).
    raw = [
        {"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"},
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"op": "Remove", "path": "title"},
        {"op": "REPLACE", "path": "displayName", "value": "Babs Jensen"},
    ]
    assert run(users, raw, user_doc(title="Tour Guide")) == [
        {"op": "replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"},
        {"op": "add", "path": "nickName", "value": "Babs"},
        {"op": "remove", "path": "title"},
        {"op": "replace", "path": "displayName", "value": "Babs Jensen"},
    ]


@covers("capitalised_op")
def test_capitalised_keys_op_path_value(users):
    # Old Microsoft samples (SCIMReferenceCode Postman collection) capitalise the keys too.
    raw = [{"Op": "Replace", "Path": "nickName", "Value": "Babs"}]
    assert run(users, raw, user_doc()) == [{"op": "replace", "path": "nickName", "value": "Babs"}]


@covers("dotted_and_urn_keys")
def test_dotted_and_urn_keys_pathless_replace(users):
    # E8 / Q4: aadOptscim062020 sends one pathless replace whose keys are paths.
    raw = [{"op": "replace", "value": {
        "displayName": "Barbara Jensen",
        "name.givenName": "Barbara",
        "name.familyName": "Jensen-Smith",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
    }}]
    assert canon(run(users, raw, user_doc())) == canon([
        {"op": "replace", "value": {"displayName": "Barbara Jensen"}},
        {"op": "replace", "path": "name.givenName", "value": "Barbara"},
        {"op": "replace", "path": "name.familyName", "value": "Jensen-Smith"},
        {"op": "replace", "path": f"{ENT}:employeeNumber", "value": "701984"},
    ])


@covers("dotted_and_urn_keys")
def test_dotted_keys_with_capitalised_op_and_no_plain_keys(users):
    # The flag column still capitalises nothing, but the default column may: "Replace".
    raw = [{"op": "Replace", "value": {"name.givenName": "Babs",
                                        f"{ENT}:department": "Retail"}}]
    assert canon(run(users, raw, user_doc())) == canon([
        {"op": "replace", "path": "name.givenName", "value": "Babs"},
        {"op": "replace", "path": f"{ENT}:department", "value": "Retail"},
    ])


@covers("member_removal_by_value")
def test_member_removal_by_value_list(groups):
    # E12 default column / Q5: remove only the listed members; "$ref": null as in the tutorial.
    raw = [{"op": "Remove", "path": "members", "value": [
        {"$ref": None, "value": MEMBER_1},
        {"value": MEMBER_2},
    ]}]
    assert canon(run(groups, raw, group_doc())) == canon([
        {"op": "remove", "path": f'members[value eq "{MEMBER_1}"]'},
        {"op": "remove", "path": f'members[value eq "{MEMBER_2}"]'},
    ])


@covers("member_removal_by_value")
def test_member_removal_by_value_single(groups):
    # The aadOptscim062020 table, default column, verbatim.
    raw = [{"op": "Remove", "path": "members", "value": [{"value": MEMBER_1}]}]
    assert run(groups, raw, group_doc()) == [{"op": "remove", "path": f'members[value eq "{MEMBER_1}"]'}]


@covers("manager_forms")
def test_manager_set_as_bare_string(users):
    # E9 set (Compose_Manager_Set_Patch_Body): bare id string, not {"value": ...}.
    raw = [{"op": "Add", "path": f"{ENT}:manager", "value": MANAGER_ID}]
    assert run(users, raw, user_doc()) == [
        {"op": "add", "path": f"{ENT}:manager", "value": {"value": MANAGER_ID}}]


@covers("manager_forms")
def test_manager_change_as_bare_string(users):
    raw = [{"op": "replace", "path": f"{ENT}:manager", "value": OTHER_MANAGER_ID}]
    doc = user_doc(**{ENT: {"manager": {"value": MANAGER_ID}}})
    assert run(users, raw, doc) == [
        {"op": "replace", "path": f"{ENT}:manager", "value": {"value": OTHER_MANAGER_ID}}]


@covers("manager_forms")
def test_manager_remove_with_empty_string(users):
    # E9 remove (Compose_Manager_Remove_Patch_Body): replace with "".
    raw = [{"op": "replace", "path": f"{ENT}:manager", "value": ""}]
    doc = user_doc(**{ENT: {"manager": {"value": MANAGER_ID}}})
    assert run(users, raw, doc) == [{"op": "remove", "path": f"{ENT}:manager"}]


@covers("manager_forms")
def test_manager_remove_with_null(users):
    # Checklist P1-13: null clears the manager too.
    raw = [{"op": "replace", "path": f"{ENT}:manager", "value": None}]
    doc = user_doc(**{ENT: {"manager": {"value": MANAGER_ID}}})
    assert run(users, raw, doc) == [{"op": "remove", "path": f"{ENT}:manager"}]


@covers("unqualified_extension_path")
@covers("manager_forms")
def test_manager_remove_by_value_filter(users):
    # E9 [SP-453]: {"op":"remove","path":"manager[value eq \"id\"]"} (unqualified name).
    raw = [{"op": "remove", "path": f'manager[value eq "{MANAGER_ID}"]'}]
    doc = user_doc(**{ENT: {"manager": {"value": MANAGER_ID}}})
    assert run(users, raw, doc) == [{"op": "remove", "path": f"{ENT}:manager"}]


@covers("unqualified_extension_path")
@covers("manager_forms")
def test_manager_legacy_array_sample(users):
    # E9 legacy doc sample ("Example 5"): unqualified path, one-element array.
    ref = f"https://example.com/scim/v2/Users/{MANAGER_ID}"
    raw = [{"op": "Add", "path": "manager", "value": [{"$ref": ref, "value": MANAGER_ID}]}]
    out = run(users, raw, user_doc())
    assert len(out) == 1
    assert out[0]["op"] == "add"
    assert out[0]["path"] == f"{ENT}:manager"
    assert isinstance(out[0]["value"], dict) and out[0]["value"]["value"] == MANAGER_ID


@covers("boolean_strings")
def test_boolean_strings_active_default_column(users):
    # E10 default column / Q2, verbatim: "False"; also "True" and lower-case "false".
    assert run(users, [{"op": "Replace", "path": "active", "value": "False"}], user_doc()) == [
        {"op": "replace", "path": "active", "value": False}]
    assert run(users, [{"op": "Replace", "path": "active", "value": "True"}], user_doc(active=False)) == [
        {"op": "replace", "path": "active", "value": True}]
    assert run(users, [{"op": "Replace", "path": "active", "value": "false"}], user_doc()) == [
        {"op": "replace", "path": "active", "value": False}]


@covers("boolean_strings")
def test_boolean_strings_in_pathless_value(users):
    # Keycloak/Entra variants: the string boolean inside a pathless replace.
    raw = [{"op": "replace", "value": {"active": "False"}}]
    assert run(users, raw, user_doc()) == [{"op": "replace", "value": {"active": False}}]


@covers("boolean_strings")
def test_boolean_strings_on_sub_attribute(users):
    # E5 [SRCGRAPH-49119]: the validator targets emails[type eq "work"].primary.
    raw = [{"op": "Replace", "path": 'emails[type eq "work"].primary', "value": "True"}]
    doc = user_doc(emails=[{"type": "work", "value": "bjensen@testuser.com"}])
    assert run(users, raw, doc) == [
        {"op": "replace", "path": 'emails[type eq "work"].primary', "value": True}]


@covers("empty_value_clears")
def test_empty_value_clears_empty_string_and_null(users):
    # E15 null/empty handling: replace with "" and with null reads back absent.
    doc = user_doc(title="Tour Guide", nickName="Babs")
    assert run(users, [{"op": "replace", "path": "title", "value": ""}], doc) == [
        {"op": "remove", "path": "title"}]
    assert run(users, [{"op": "replace", "path": "nickName", "value": None}], doc) == [
        {"op": "remove", "path": "nickName"}]
    assert run(users, [{"op": "Replace", "path": f"{ENT}:department", "value": ""}],
               user_doc(**{ENT: {"department": "Retail"}})) == [
        {"op": "remove", "path": f"{ENT}:department"}]


@covers("roles_as_json_strings")
def test_roles_as_json_strings(users):
    # E14, verbatim shape: the role is JSON text inside "value".
    role_json = "{\"id\":\"7e9c1d6b-3b2a-4a8e-9f0e-2c4d6b8a0e1f\",\"value\":\"25\",\"displayName\":\"Role1234\"}"
    raw = [{"op": "Add", "path": "roles", "value": [{"value": role_json}]}]
    assert run(users, raw, user_doc()) == [
        {"op": "add", "path": "roles", "value": [{"value": "25", "display": "Role1234"}]}]


@covers("typed_value_creates")
def test_typed_value_creates_missing_work_email(users):
    # E5 verbatim, on a user without a work email: the typed entry is created.
    raw = [{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"}]
    assert run(users, raw, user_doc()) == [
        {"op": "add", "path": "emails", "value": [{"type": "work", "value": "updatedEmail@microsoft.com"}]}]


@covers("typed_value_creates")
def test_typed_value_creates_other_types(users):
    # Validator: Add on emails[type eq "home"].value; real traffic: addresses / phoneNumbers.
    doc = user_doc(emails=[{"type": "work", "value": "bjensen@testuser.com", "primary": True}])
    assert run(users, [{"op": "Add", "path": "emails[type eq \"home\"].value", "value": "babs@home.example"}],
               doc) == [{"op": "add", "path": "emails", "value": [{"type": "home", "value": "babs@home.example"}]}]
    assert run(users, [{"op": "Replace", "path": "addresses[type eq \"work\"].formatted",
                        "value": "100 Universal City Plaza"}], doc) == [
        {"op": "add", "path": "addresses", "value": [{"type": "work", "formatted": "100 Universal City Plaza"}]}]
    assert run(users, [{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value",
                        "value": "+1 555 555 5555"}], doc) == [
        {"op": "add", "path": "phoneNumbers", "value": [{"type": "mobile", "value": "+1 555 555 5555"}]}]


@covers("typed_value_creates")
def test_typed_value_existing_entry_is_updated_in_place(users):
    # When the work email exists, the RFC filtered replace is already right.
    doc = user_doc(emails=[{"type": "work", "value": "bjensen@testuser.com", "primary": True}])
    raw = [{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"}]
    assert run(users, raw, doc) == [
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"}]


def test_every_quirk_has_a_case():
    names = {quirk.__name__ for quirk in PATCH_QUIRKS}
    assert names <= COVERED, f"quirks without a test case: {sorted(names - COVERED)}"


# ------------------------------------------------------ RFC form unchanged

RFC_USER_OPS = [
    {"op": "replace", "path": "userName", "value": "bjensen@example.com"},
    {"op": "add", "path": "nickName", "value": "Babs"},
    {"op": "replace", "path": "name.familyName", "value": "Jensen"},
    {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "bjensen@example.com"},
    {"op": "add", "path": "emails", "value": [{"type": "home", "value": "babs@home.example"}]},
    {"op": "remove", "path": "title"},
    {"op": "replace", "path": "active", "value": False},
    {"op": "replace", "value": {"active": True, "displayName": "Babs Jensen"}},
    {"op": "replace", "value": {"name": {"givenName": "Barbara"}, ENT: {"employeeNumber": "701984"}}},
    {"op": "add", "path": f"{ENT}:department", "value": "Retail"},
    {"op": "replace", "path": f"{ENT}:manager", "value": {"value": MANAGER_ID}},
    {"op": "replace", "path": f"{ENT}:manager.value", "value": MANAGER_ID},
    {"op": "remove", "path": f"{ENT}:manager"},
    {"op": "add", "path": "roles", "value": [
        {"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]},
    {"op": "remove", "path": "emails[type eq \"home\"]"},
]

RFC_GROUP_OPS = [
    {"op": "replace", "path": "displayName", "value": "Renamed"},
    {"op": "add", "path": "members", "value": [{"value": MEMBER_1}, {"value": MEMBER_2}]},
    {"op": "remove", "path": f"members[value eq \"{MEMBER_1}\"]"},
    {"op": "replace", "path": "members", "value": [{"value": MEMBER_2}]},
    {"op": "replace", "path": "members", "value": []},
    {"op": "remove", "path": "members"},
    {"op": "replace", "value": {"id": "e9e30dba-f08f-4109-8486-d5c6a331660a", "displayName": "Test SCIMv2"}},
]


def _user_doc_full() -> dict:
    return user_doc(title="Tour Guide",
                    emails=[{"type": "work", "value": "bjensen@testuser.com", "primary": True},
                            {"type": "home", "value": "babs@home.example"}],
                    **{ENT: {"department": "Sales", "manager": {"value": MANAGER_ID}}})


@pytest.mark.parametrize("op", RFC_USER_OPS, ids=lambda o: f"{o['op']}:{o.get('path', '<pathless>')}")
def test_rfc_user_operation_passes_through(users, op):
    assert run(users, [op], _user_doc_full()) == [op]


@pytest.mark.parametrize("op", RFC_GROUP_OPS, ids=lambda o: f"{o['op']}:{o.get('path', '<pathless>')}")
def test_rfc_group_operation_passes_through(groups, op):
    assert run(groups, [op], group_doc()) == [op]


@pytest.mark.parametrize("quirk", PATCH_QUIRKS, ids=lambda q: q.__name__)
def test_each_quirk_leaves_rfc_operations_alone(users, groups, quirk):
    user_ctx = Context(users, _user_doc_full())
    group_ctx = Context(groups, group_doc())
    for op in RFC_USER_OPS:
        assert quirk(copy.deepcopy(op), user_ctx) == [op], op
    for op in RFC_GROUP_OPS:
        assert quirk(copy.deepcopy(op), group_ctx) == [op], op


def test_rfc_sequence_passes_through_in_order(users):
    ops = RFC_USER_OPS[:6]
    assert run(users, ops, _user_doc_full()) == ops


# ------------------------------------------------------------ resources


def test_resource_microsoft_group_schema_dropped(groups):
    # E12 create body verbatim (Q7): the non-SCIM schema URI is removed.
    body = {"schemas": [CORE_GROUP, MS_GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"}}
    out = normalise_resource(groups, copy.deepcopy(body))
    assert out == {**body, "schemas": [CORE_GROUP]}


def test_resource_manager_bare_string_and_empty(users):
    body = {"schemas": [CORE_USER, ENT], "userName": "bjensen",
            ENT: {"department": "Retail", "manager": MANAGER_ID}}
    out = normalise_resource(users, copy.deepcopy(body))
    assert out[ENT] == {"department": "Retail", "manager": {"value": MANAGER_ID}}
    out = normalise_resource(users, {**body, ENT: {"department": "Retail", "manager": ""}})
    assert not out[ENT].get("manager")


def test_resource_entra_create_body_unchanged(users):
    # E3 verbatim shape: meta, roles [] and the extension under its URN need no rewriting.
    body = {"schemas": [CORE_USER, ENT],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            ENT: {"employeeNumber": "701984", "department": "Tour Operations"}}
    assert normalise_resource(users, copy.deepcopy(body)) == body


def test_resource_okta_put_body_unchanged(users):
    # O5: Okta echoes its GET; the normaliser leaves read-only attributes to the engine.
    body = {"schemas": [CORE_USER], "id": USER_ID, "userName": "test.user@okta.local",
            "name": {"givenName": "Another", "middleName": "", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work", "display": "test.user@okta.local"}],
            "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7", "active": True, "groups": [],
            "meta": {"resourceType": "User"}}
    assert normalise_resource(users, copy.deepcopy(body)) == body
