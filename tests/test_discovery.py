"""Discovery endpoints: /ServiceProviderConfig, /Schemas, /ResourceTypes (RFC 7644 §4, RFC 7643 §5-7)."""
from __future__ import annotations

import pytest

from conftest import BASE, CORE_GROUP, CORE_USER, ENTERPRISE, LIST, assert_scim_error

SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"


def _ok(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/scim+json"
    return resp.get_json()


def _absolute(url: str) -> bool:
    return url.startswith("http://") or url.startswith("https://")


def test_service_provider_config(api):
    body = _ok(api.get("/ServiceProviderConfig"))
    assert body["schemas"] == [SPC]
    assert body["patch"]["supported"] is True
    assert body["bulk"]["supported"] is True
    assert body["bulk"]["maxOperations"] >= 1000 and body["bulk"]["maxPayloadSize"] > 0
    assert body["filter"]["supported"] is True
    assert isinstance(body["filter"]["maxResults"], int) and body["filter"]["maxResults"] > 0
    assert body["changePassword"]["supported"] in (True, False)
    assert body["sort"]["supported"] is True
    assert body["etag"]["supported"] is True
    schemes = body["authenticationSchemes"]
    assert schemes and all({"type", "name", "description"} <= set(s) for s in schemes)
    assert any(s["type"] == "oauthbearertoken" for s in schemes)
    assert body["meta"]["resourceType"] == "ServiceProviderConfig"
    assert _absolute(body["meta"]["location"])
    assert body["meta"]["location"].endswith(f"{BASE}/ServiceProviderConfig")


def test_service_provider_config_max_results_is_enforced(api):
    body = _ok(api.get("/ServiceProviderConfig"))
    limit = body["filter"]["maxResults"]
    for i in range(3):
        api.create_user(f"m{i}@example.com")
    listing = _ok(api.get(f"/Users?count={limit + 100}"))
    assert listing["itemsPerPage"] <= limit


def _attr_names(schema: dict) -> set[str]:
    return {a["name"] for a in schema["attributes"]}


def test_schemas_lists_user_group_and_enterprise(api):
    body = _ok(api.get("/Schemas"))
    assert body["schemas"] == [LIST]
    by_id = {s["id"]: s for s in body["Resources"]}
    assert {CORE_USER, CORE_GROUP, ENTERPRISE} <= set(by_id)
    assert body["totalResults"] == len(body["Resources"])
    user = by_id[CORE_USER]
    assert {"userName", "name", "emails", "groups", "active", "password"} <= _attr_names(user)
    assert {"displayName", "members"} <= _attr_names(by_id[CORE_GROUP])
    assert {"employeeNumber", "manager", "department"} <= _attr_names(by_id[ENTERPRISE])
    for schema in body["Resources"]:
        assert SCHEMA in schema.get("schemas", [SCHEMA])
        assert schema["meta"]["resourceType"] == "Schema"
        assert _absolute(schema["meta"]["location"])
        assert schema["meta"]["location"].endswith(f"/Schemas/{schema['id']}")
        for attr in schema["attributes"]:
            assert {"name", "type", "multiValued", "required", "mutability", "returned"} <= set(attr), attr


def test_schema_attribute_characteristics(api):
    user = _ok(api.get(f"/Schemas/{CORE_USER}"))
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["userName"]["required"] is True
    assert attrs["userName"]["uniqueness"] == "server"
    assert attrs["password"]["mutability"] == "writeOnly"
    assert attrs["password"]["returned"] == "never"
    assert attrs["groups"]["mutability"] == "readOnly"
    assert attrs["emails"]["multiValued"] is True
    assert {s["name"] for s in attrs["name"]["subAttributes"]} >= {"givenName", "familyName"}


@pytest.mark.parametrize("urn", [CORE_USER, CORE_GROUP, ENTERPRISE])
def test_single_schema(api, urn):
    body = _ok(api.get(f"/Schemas/{urn}"))
    assert body["id"] == urn
    assert body["attributes"]
    assert _absolute(body["meta"]["location"])


def test_unknown_schema_is_404(api):
    assert_scim_error(api.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Nope"), 404)


def test_resource_types(api):
    body = _ok(api.get("/ResourceTypes"))
    assert body["schemas"] == [LIST]
    by_name = {r["name"]: r for r in body["Resources"]}
    assert set(by_name) >= {"User", "Group"}
    assert body["totalResults"] == len(body["Resources"])
    assert by_name["User"]["endpoint"] == "/Users"
    assert by_name["User"]["schema"] == CORE_USER
    assert by_name["Group"]["endpoint"] == "/Groups"
    assert by_name["Group"]["schema"] == CORE_GROUP
    for rt in body["Resources"]:
        assert rt["schemas"] == [RESOURCE_TYPE]
        assert rt["meta"]["resourceType"] == "ResourceType"
        assert _absolute(rt["meta"]["location"])
        assert rt["meta"]["location"].endswith(f"{BASE}/ResourceTypes/{rt['id']}")


def test_resource_type_user(api):
    body = _ok(api.get("/ResourceTypes/User"))
    assert body["id"] == "User" and body["name"] == "User"
    assert body["schema"] == CORE_USER
    extensions = {e["schema"]: e for e in body["schemaExtensions"]}
    assert ENTERPRISE in extensions
    assert extensions[ENTERPRISE]["required"] is False
    assert _absolute(body["meta"]["location"])


def test_resource_type_group_and_unknown(api):
    assert _ok(api.get("/ResourceTypes/Group"))["schema"] == CORE_GROUP
    assert_scim_error(api.get("/ResourceTypes/Nope"), 404)


def test_discovery_location_honours_forwarded_headers(api):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "scim.example.org"}
    body = _ok(api.get("/ResourceTypes/User", headers=headers))
    assert body["meta"]["location"] == f"https://scim.example.org{BASE}/ResourceTypes/User"
    body = _ok(api.get("/ServiceProviderConfig", headers=headers))
    assert body["meta"]["location"] == f"https://scim.example.org{BASE}/ServiceProviderConfig"


@pytest.mark.parametrize("path", ["/ServiceProviderConfig", "/Schemas", f"/Schemas/{CORE_USER}",
                                  "/ResourceTypes", "/ResourceTypes/User", "/Users", "/Groups"])
def test_discovery_requires_a_token(anonymous, path):
    resp = anonymous.get(path)
    assert_scim_error(resp, 401)
