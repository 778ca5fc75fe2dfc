"""``attributes`` and ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9) and the ``returned``
characteristic of RFC 7643 §2.4 (``always``: id; ``never``: password)."""
from __future__ import annotations

import json

import pytest

from conftest import CORE_GROUP, CORE_USER, ENTERPRISE

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PASSWORD = "S3cret-Passw0rd!"


@pytest.fixture
def user(api):
    return api.create_user(
        "projected", displayName="Pro Jected", title="Tester", externalId="ext-1", password=PASSWORD,
        name={"givenName": "Pro", "familyName": "Jected", "formatted": "Pro Jected"},
        emails=[{"value": "p@example.dk", "type": "work", "primary": True}],
        phoneNumbers=[{"value": "+45 12345678", "type": "mobile"}],
        **{ENTERPRISE: {"department": "QA", "employeeNumber": "99"}},
    )


def _get_user(api, user, **params) -> dict:
    response = api.get(f"/Users/{user['id']}", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _assert_minimal(doc: dict, *allowed: str) -> None:
    """Only id, schemas and the named top-level keys are present."""
    assert "id" in doc and "schemas" in doc, doc
    extra = set(doc) - {"id", "schemas", *allowed}
    assert not extra, doc


def _no_password_anywhere(payload) -> None:
    text = json.dumps(payload)
    assert PASSWORD not in text
    assert '"password"' not in text.lower()


# ------------------------------------------------------------------ attributes=


def test_attributes_on_get_by_id(api, user):
    doc = _get_user(api, user, attributes="userName,displayName")
    _assert_minimal(doc, "userName", "displayName")
    assert doc["userName"] == "projected"
    assert doc["displayName"] == "Pro Jected"
    assert doc["id"] == user["id"]
    assert CORE_USER in doc["schemas"]


def test_attributes_single(api, user):
    doc = _get_user(api, user, attributes="title")
    _assert_minimal(doc, "title")
    assert doc["title"] == "Tester"


def test_attributes_names_are_case_insensitive(api, user):
    doc = _get_user(api, user, attributes="USERNAME,DisplayName")
    _assert_minimal(doc, "userName", "displayName")
    assert doc["userName"] == "projected"  # output keeps the canonical spelling
    doc = _get_user(api, user, ATTRIBUTES="username")
    _assert_minimal(doc, "userName")


def test_attributes_sub_attribute_only(api, user):
    doc = _get_user(api, user, attributes="name.givenName")
    _assert_minimal(doc, "name")
    assert doc["name"] == {"givenName": "Pro"}


def test_attributes_sub_attribute_case_insensitive(api, user):
    doc = _get_user(api, user, attributes="NAME.GIVENNAME")
    _assert_minimal(doc, "name")
    assert doc["name"] == {"givenName": "Pro"}


def test_attributes_multi_valued_sub_attribute(api, user):
    doc = _get_user(api, user, attributes="emails.value")
    _assert_minimal(doc, "emails")
    assert doc["emails"] == [{"value": "p@example.dk"}]


def test_attributes_whole_complex_attribute(api, user):
    doc = _get_user(api, user, attributes="name")
    _assert_minimal(doc, "name")
    assert doc["name"] == {"givenName": "Pro", "familyName": "Jected", "formatted": "Pro Jected"}


def test_id_cannot_be_excluded(api, user):
    doc = _get_user(api, user, excludedAttributes="id,schemas")
    assert doc["id"] == user["id"]
    assert CORE_USER in doc["schemas"]


def test_attributes_meta_sub_attribute(api, user):
    doc = _get_user(api, user, attributes="meta.lastModified")
    _assert_minimal(doc, "meta")
    assert set(doc["meta"]) == {"lastModified"}


def test_unknown_attribute_name_is_ignored(api, user):
    doc = _get_user(api, user, attributes="userName,doesNotExist")
    _assert_minimal(doc, "userName")


def test_attributes_extension_urn(api, user):
    doc = _get_user(api, user, attributes=ENTERPRISE)
    _assert_minimal(doc, ENTERPRISE)
    assert doc[ENTERPRISE] == {"department": "QA", "employeeNumber": "99"}


def test_attributes_extension_attribute_by_urn(api, user):
    doc = _get_user(api, user, attributes=f"{ENTERPRISE}:department,userName")
    _assert_minimal(doc, ENTERPRISE, "userName")
    assert doc[ENTERPRISE] == {"department": "QA"}


def test_extension_is_returned_by_default_and_listed_in_schemas(api, user):
    doc = _get_user(api, user)
    assert doc[ENTERPRISE] == {"department": "QA", "employeeNumber": "99"}
    assert ENTERPRISE in doc["schemas"]


# ---------------------------------------------------------- excludedAttributes=


def test_excluded_attributes_on_get_by_id(api, user):
    doc = _get_user(api, user, excludedAttributes="emails,phoneNumbers,name")
    for gone in ("emails", "phoneNumbers", "name"):
        assert gone not in doc
    assert doc["userName"] == "projected"
    assert doc["displayName"] == "Pro Jected"
    assert doc["title"] == "Tester"
    assert "meta" in doc


def test_excluded_attributes_case_insensitive(api, user):
    doc = _get_user(api, user, excludedattributes="EMAILS,Title")
    assert "emails" not in doc and "title" not in doc
    assert doc["userName"] == "projected"


def test_excluded_sub_attribute(api, user):
    doc = _get_user(api, user, excludedAttributes="name.familyName")
    assert doc["name"] == {"givenName": "Pro", "formatted": "Pro Jected"}


def test_excluded_extension(api, user):
    doc = _get_user(api, user, excludedAttributes=ENTERPRISE)
    assert ENTERPRISE not in doc
    assert doc["userName"] == "projected"


def test_excluded_groups_on_users(api, user):
    api.create_group("Team", members=[user["id"]])
    doc = _get_user(api, user)
    assert [g["display"] for g in doc["groups"]] == ["Team"]
    doc = _get_user(api, user, excludedAttributes="groups")
    assert "groups" not in doc
    assert doc["userName"] == "projected"
    body = api.get("/Users", query_string={"excludedAttributes": "groups"}).get_json()
    assert body["totalResults"] == 1
    assert "groups" not in body["Resources"][0]


# ----------------------------------------------------------------------- lists


def test_attributes_on_list(api, user):
    api.create_user("second", displayName="Second", title="Other")
    body = api.get("/Users", query_string={"attributes": "userName"}).get_json()
    assert body["totalResults"] == 2
    for doc in body["Resources"]:
        _assert_minimal(doc, "userName")
    assert {d["userName"] for d in body["Resources"]} == {"projected", "second"}


def test_excluded_attributes_on_list(api, user):
    body = api.get("/Users", query_string={"excludedAttributes": "emails,name"}).get_json()
    doc = body["Resources"][0]
    assert "emails" not in doc and "name" not in doc
    assert doc["userName"] == "projected" and doc["id"] == user["id"]


def test_attributes_on_filtered_list(api, user):
    body = api.get("/Users", query_string={"filter": 'userName eq "projected"',
                                           "attributes": "name.familyName"}).get_json()
    assert body["totalResults"] == 1
    doc = body["Resources"][0]
    _assert_minimal(doc, "name")
    assert doc["name"] == {"familyName": "Jected"}


def test_attributes_on_search(api, user):
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": 'userName eq "projected"',
                                                "attributes": ["userName", "name.givenName"]})
    assert response.status_code == 200, response.get_json()
    doc = response.get_json()["Resources"][0]
    _assert_minimal(doc, "userName", "name")
    assert doc["name"] == {"givenName": "Pro"}


def test_excluded_attributes_on_search(api, user):
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "excludedAttributes": ["emails", "title"]})
    assert response.status_code == 200, response.get_json()
    doc = response.get_json()["Resources"][0]
    assert "emails" not in doc and "title" not in doc
    assert doc["userName"] == "projected"


def test_attributes_on_root_search(api, user):
    response = api.post("/.search", json={"schemas": [SEARCH], "filter": 'userName eq "projected"',
                                          "attributes": ["userName"]})
    assert response.status_code == 200, response.get_json()
    doc = response.get_json()["Resources"][0]
    _assert_minimal(doc, "userName")


# --------------------------------------------------------- write responses


def test_attributes_on_post(api):
    body = {"schemas": [CORE_USER], "userName": "posted", "displayName": "Posted", "title": "T",
            "emails": [{"value": "posted@example.dk"}]}
    response = api.post("/Users?attributes=userName", json=body)
    assert response.status_code == 201, response.get_json()
    doc = response.get_json()
    _assert_minimal(doc, "userName")
    assert doc["userName"] == "posted"


def test_excluded_attributes_on_post(api):
    body = {"schemas": [CORE_USER], "userName": "posted", "displayName": "Posted",
            "emails": [{"value": "posted@example.dk"}]}
    response = api.post("/Users?excludedAttributes=emails", json=body)
    assert response.status_code == 201
    doc = response.get_json()
    assert "emails" not in doc and doc["displayName"] == "Posted"


def test_attributes_on_put(api, user):
    body = {"schemas": [CORE_USER], "userName": "projected", "displayName": "Renamed", "title": "New"}
    response = api.put(f"/Users/{user['id']}?attributes=displayName", json=body)
    assert response.status_code == 200, response.get_json()
    doc = response.get_json()
    _assert_minimal(doc, "displayName")
    assert doc["displayName"] == "Renamed"


def test_excluded_attributes_on_put(api, user):
    body = {"schemas": [CORE_USER], "userName": "projected", "displayName": "Renamed", "title": "New"}
    response = api.put(f"/Users/{user['id']}?excludedAttributes=title", json=body)
    assert response.status_code == 200, response.get_json()
    doc = response.get_json()
    assert "title" not in doc and doc["displayName"] == "Renamed"


def test_attributes_on_patch(api, user):
    response = api.patch_ops(f"/Users/{user['id']}?attributes=title",
                             {"op": "replace", "path": "title", "value": "Patched"})
    assert response.status_code == 200, response.get_json()
    doc = response.get_json()
    _assert_minimal(doc, "title")
    assert doc["title"] == "Patched"


def test_excluded_attributes_on_patch(api, user):
    response = api.patch_ops(f"/Users/{user['id']}?excludedAttributes=emails,name",
                             {"op": "replace", "path": "title", "value": "Patched"})
    assert response.status_code == 200, response.get_json()
    doc = response.get_json()
    assert "emails" not in doc and "name" not in doc
    assert doc["title"] == "Patched"


def test_attributes_on_group_patch(api, user):
    group = api.create_group("Patchers")
    response = api.patch_ops(f"/Groups/{group['id']}?attributes=displayName",
                             {"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    assert response.status_code == 200, response.get_data(as_text=True)
    doc = response.get_json()
    _assert_minimal(doc, "displayName")
    assert doc["displayName"] == "Patchers"


# -------------------------------------------------------------------- password


def test_password_never_returned(api, user):
    uid = user["id"]
    _no_password_anywhere(user)  # POST response
    _no_password_anywhere(_get_user(api, user))
    _no_password_anywhere(_get_user(api, user, attributes="password"))
    _no_password_anywhere(_get_user(api, user, attributes="password,userName"))
    _no_password_anywhere(api.get("/Users").get_json())
    _no_password_anywhere(api.get("/Users?attributes=password").get_json())
    _no_password_anywhere(api.post("/Users/.search", json={"schemas": [SEARCH], "attributes": ["password"]}).get_json())
    _no_password_anywhere(api.post("/.search", json={"schemas": [SEARCH], "filter": "userName pr"}).get_json())
    put = api.put(f"/Users/{uid}", json={"schemas": [CORE_USER], "userName": "projected", "password": "Other-Pw-1"})
    assert put.status_code == 200
    _no_password_anywhere(put.get_json())
    assert "Other-Pw-1" not in put.get_data(as_text=True)
    patched = api.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "password", "value": "Third-Pw-2"})
    assert patched.status_code == 200, patched.get_json()
    _no_password_anywhere(patched.get_json())
    assert "Third-Pw-2" not in patched.get_data(as_text=True)
    patched = api.patch_ops(f"/Users/{uid}?attributes=password", {"op": "replace", "path": "title", "value": "x"})
    assert patched.status_code == 200
    _no_password_anywhere(patched.get_json())


def test_password_only_attribute_still_returns_id(api, user):
    doc = _get_user(api, user, attributes="password")
    assert doc["id"] == user["id"]
    _assert_minimal(doc)


# ---------------------------------------------------------------------- groups


@pytest.fixture
def group(api):
    a = api.create_user("member-a")
    b = api.create_user("member-b")
    return api.create_group("Projected Group", members=[a["id"], b["id"]], externalId="g-ext")


def test_excluded_members_on_group_get(api, group):
    response = api.get(f"/Groups/{group['id']}?excludedAttributes=members")
    assert response.status_code == 200
    doc = response.get_json()
    assert "members" not in doc
    assert doc["displayName"] == "Projected Group"
    assert doc["id"] == group["id"]
    assert CORE_GROUP in doc["schemas"]


def test_excluded_members_on_group_list(api, group):
    body = api.get("/Groups?excludedAttributes=members").get_json()
    assert body["totalResults"] == 1
    doc = body["Resources"][0]
    assert "members" not in doc
    assert doc["displayName"] == "Projected Group"


def test_excluded_members_on_group_filter(api, group):
    body = api.get("/Groups", query_string={"filter": 'displayName eq "Projected Group"',
                                            "excludedAttributes": "members"}).get_json()
    assert body["totalResults"] == 1
    assert "members" not in body["Resources"][0]


def test_members_returned_by_default(api, group):
    doc = api.get(f"/Groups/{group['id']}").get_json()
    assert len(doc["members"]) == 2


def test_attributes_members_on_group(api, group):
    doc = api.get(f"/Groups/{group['id']}?attributes=members").get_json()
    _assert_minimal(doc, "members")
    assert {m["value"] for m in doc["members"]} == {m["value"] for m in group["members"]}
    assert len(doc["members"]) == 2


def test_attributes_members_value_on_group(api, group):
    doc = api.get(f"/Groups/{group['id']}?attributes=members.value").get_json()
    _assert_minimal(doc, "members")
    assert all(set(m) == {"value"} for m in doc["members"])


def test_attributes_display_name_on_group_list(api, group):
    body = api.get("/Groups?attributes=displayName").get_json()
    doc = body["Resources"][0]
    _assert_minimal(doc, "displayName")


def test_excluded_members_on_group_post_and_put(api, group):
    a = api.create_user("member-c")
    response = api.post("/Groups?excludedAttributes=members",
                        json={"schemas": [CORE_GROUP], "displayName": "Fresh", "members": [{"value": a["id"]}]})
    assert response.status_code == 201
    assert "members" not in response.get_json()
    response = api.put(f"/Groups/{group['id']}?excludedAttributes=members",
                       json={"schemas": [CORE_GROUP], "displayName": "Projected Group",
                             "members": [{"value": a["id"]}]})
    assert response.status_code == 200
    assert "members" not in response.get_json()
    doc = api.get(f"/Groups/{group['id']}").get_json()
    assert [m["value"] for m in doc["members"]] == [a["id"]]


def _registry_with(tmp_path, returned: dict[str, str]):
    """The shipped schemas, with the ``returned`` of some User attributes (``emails.type``) changed."""
    import shutil
    from pathlib import Path

    from scim_server.scim.schemas import Registry

    shutil.copytree(Path(__file__).parent.parent / "schemas", tmp_path / "schemas")
    user_file = tmp_path / "schemas" / "User.json"
    definition = json.loads(user_file.read_text(encoding="utf-8"))
    for attr in definition["attributes"]:
        for sub in [attr, *attr.get("subAttributes", ())]:
            path = sub["name"] if sub is attr else f"{attr['name']}.{sub['name']}"
            if path in returned:
                sub["returned"] = returned[path]
    user_file.write_text(json.dumps(definition), encoding="utf-8")
    return Registry(tmp_path / "schemas")


def test_never_returned_sub_attribute_is_not_serialised(tmp_path):
    """Serialisation passes a stored complex value whole only when none of its sub-attributes is
    ``returned: never``; one that has such a sub-attribute is serialised sub-attribute by sub-attribute."""
    from scim_server.scim import marshal

    rt = _registry_with(tmp_path, {"emails.type": "never"}).resource_type("User")
    doc = {"schemas": [CORE_USER], "id": "1", "userName": "u", "name": {"givenName": "U"},
           "emails": [{"value": "u@example.dk", "type": "work"}]}
    assert marshal.dump(rt, doc) == {"schemas": [CORE_USER], "id": "1", "userName": "u", "name": {"givenName": "U"},
                                     "emails": [{"value": "u@example.dk"}]}


def test_returned_request_attributes_only_when_asked(tmp_path):
    """No shipped schema has a ``returned: request`` attribute, so a copy of the schema files
    with two gives the projection something to hide: by default it leaves them out (the shortcut
    for unshaped responses must not apply), and ``attributes`` brings them back."""
    from scim_server.scim.projection import Projection

    rt = _registry_with(tmp_path, {"title": "request", "emails.type": "request"}).resource_type("User")
    doc = {"schemas": [CORE_USER], "id": "1", "userName": "u", "title": "Boss",
           "emails": [{"value": "u@example.dk", "type": "work"}]}

    assert rt.hidden_by_default
    assert Projection(rt).apply(doc) == {"schemas": [CORE_USER], "id": "1", "userName": "u",
                                         "emails": [{"value": "u@example.dk"}]}
    asked = Projection(rt, "title,emails.type").apply(doc)
    assert asked["title"] == "Boss" and asked["emails"] == [{"type": "work"}]
