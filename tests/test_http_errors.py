"""HTTP-level behaviour: routes, methods, content types, body limits, error bodies
(RFC 7644 §3.1, §3.8, §3.12)."""
from __future__ import annotations

import json

import pytest

from conftest import BASE, CORE_USER, assert_scim_error


def _user_json(name="http@example.com"):
    return json.dumps({"schemas": [CORE_USER], "userName": name})


@pytest.mark.parametrize("path", ["/NoSuchThing", "/Users/abc/extra", "/Userz", "/Groups/x/y/z"])
def test_unknown_route_is_404_scim_error(api, path):
    assert_scim_error(api.get(path), 404)


def test_unknown_route_outside_base_is_404_scim_error(api):
    assert_scim_error(api.get("/scim/v3/Users"), 404)


@pytest.mark.parametrize("method, path", [
    ("PUT", "/Users"), ("PATCH", "/Users"), ("DELETE", "/Users"),
    ("PUT", "/Groups"), ("DELETE", "/Groups"),
    ("POST", "/Users/some-id"),
    ("POST", "/ServiceProviderConfig"), ("DELETE", "/Schemas"),
])
def test_wrong_method_is_405_scim_error(api, method, path):
    resp = api.request(method, path, data=_user_json())
    assert_scim_error(resp, 405)
    assert resp.headers.get("Allow")


def test_post_with_text_plain_is_415(api):
    resp = api.request("POST", "/Users", data=_user_json(), content_type="text/plain")
    assert_scim_error(resp, 415)
    assert api.get("/Users").get_json()["totalResults"] == 0


def test_post_without_content_type_is_415(api):
    resp = api.request("POST", "/Users", data=_user_json(), content_type="")
    assert_scim_error(resp, 415)


def test_patch_with_form_content_type_is_415(api):
    user = api.create_user("ct@example.com")
    resp = api.request("PATCH", f"/Users/{user['id']}", data="a=b", content_type="application/x-www-form-urlencoded")
    assert_scim_error(resp, 415)


@pytest.mark.parametrize("body", ['{"schemas": [', "not json", "{'single': 'quotes'}", '{"a": 1,}'])
def test_malformed_json_is_invalid_syntax(api, body):
    assert_scim_error(api.request("POST", "/Users", data=body), 400, "invalidSyntax")


@pytest.mark.parametrize("value", ['"\\ud800"', "NaN", "Infinity", "1e400"],
                         ids=["lone-surrogate", "nan", "infinity", "overflow"])
def test_json_the_rfc_does_not_allow_is_invalid_syntax_and_nothing_is_stored(api, value):
    """RFC 8259 has no NaN or Infinity, and a string of unpaired UTF-16 surrogates is no Unicode
    text (neither database can store it); Python's own parser lets all of them through."""
    body = '{"schemas": ["%s"], "userName": "odd-json@example.com", "title": %s}' % (CORE_USER, value)
    assert_scim_error(api.request("POST", "/Users", data=body), 400, "invalidSyntax")
    assert api.get('/Users?filter=userName eq "odd-json@example.com"').get_json()["totalResults"] == 0


@pytest.mark.parametrize("value", ['\\ud800', '\\udfffx', 'a\\u0000b'], ids=["high", "low", "nul"])
def test_a_filter_value_no_database_can_hold_is_invalid_filter(api, value):
    """An unpaired surrogate or U+0000 in a filter's string: 400 invalidFilter, on both databases
    (it used to reach the database, which failed the query: a 500)."""
    for expression in (f'userName eq "{value}"', f'emails[value co "{value}"]'):
        assert_scim_error(api.get(f"/Users?filter={expression}"), 400, "invalidFilter")


def test_a_string_with_u0000_is_invalid_value_on_both_databases(api):
    """PostgreSQL cannot store U+0000 in text; SQLite could, so it is refused before either sees it."""
    resp = api.post("/Users", json={"schemas": [CORE_USER], "userName": "nul\u0000byte@example.com"})
    assert_scim_error(resp, 400, "invalidValue")
    user = api.create_user("nul-patch@example.com")
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "name.givenName", "value": "a\u0000b"})
    assert_scim_error(resp, 400, "invalidValue")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
def test_an_id_with_u0000_is_404(api, method, endpoint):
    resp = api.request(method, f"/{endpoint}/a%00b", data="{}" if method in ("PUT", "PATCH") else None)
    assert_scim_error(resp, 404)


def test_a_member_with_u0000_in_its_id_is_invalid_value(api):
    group = api.create_group("nul-members")
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": "a\u0000b"}]})
    assert_scim_error(resp, 400, "invalidValue")
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": ["not an object"]})
    assert_scim_error(resp, 400, "invalidValue")


def test_malformed_json_on_put_and_patch_is_invalid_syntax(api):
    user = api.create_user("bad@example.com")
    assert_scim_error(api.request("PUT", f"/Users/{user['id']}", data="{"), 400, "invalidSyntax")
    assert_scim_error(api.request("PATCH", f"/Users/{user['id']}", data="{"), 400, "invalidSyntax")


def test_empty_body_is_invalid_syntax(api):
    assert_scim_error(api.request("POST", "/Users", data=b""), 400, "invalidSyntax")


@pytest.mark.parametrize("body", ["[]", '"a string"', "42", "null"])
def test_non_object_body_is_invalid_syntax(api, body):
    assert_scim_error(api.request("POST", "/Users", data=body), 400, "invalidSyntax")


def test_body_over_the_limit_is_413(api):
    huge = json.dumps({"schemas": [CORE_USER], "userName": "big@example.com", "title": "x" * (10 * 1024 * 1024 + 10)})
    resp = api.request("POST", "/Users", data=huge)
    assert_scim_error(resp, 413)
    assert api.get("/Users").get_json()["totalResults"] == 0


@pytest.mark.parametrize("content_type", [
    "application/json", "application/scim+json", "application/scim+json; charset=utf-8",
    "application/json; charset=UTF-8", "Application/SCIM+JSON",
])
def test_accepted_content_types(api, content_type):
    resp = api.request("POST", "/Users", data=_user_json(), content_type=content_type)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.mimetype == "application/scim+json"


def test_get_without_accept_or_content_type(api):
    user = api.create_user("plain@example.com")
    resp = api.http.get(f"{BASE}/Users/{user['id']}", headers={"Authorization": f"Bearer {api.token}"})
    assert resp.status_code == 200
    assert resp.mimetype == "application/scim+json"
    resp = api.http.get(f"{BASE}/Users", headers={"Authorization": f"Bearer {api.token}"})
    assert resp.status_code == 200


@pytest.mark.parametrize("accept", ["application/scim+json", "application/json", "*/*"])
def test_get_with_accept_headers(api, accept):
    resp = api.get("/Users", headers={"Accept": accept})
    assert resp.status_code == 200
    assert resp.mimetype == "application/scim+json"


def test_delete_without_content_type(api):
    user = api.create_user("del@example.com")
    resp = api.http.delete(f"{BASE}/Users/{user['id']}", headers={"Authorization": f"Bearer {api.token}"})
    assert resp.status_code == 204


def test_trailing_slash_on_collections(api):
    resp = api.request("POST", "/Users/", data=_user_json("slash@example.com"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    uid = resp.get_json()["id"]
    listing = api.get("/Users/")
    assert listing.status_code == 200
    assert listing.get_json()["totalResults"] == 1
    assert api.get(f"/Users/{uid}/").status_code == 200
    assert api.get("/Groups/").status_code == 200


def test_responses_are_scim_json(api):
    user = api.create_user("mime@example.com")
    for resp in (api.get("/Users"), api.get(f"/Users/{user['id']}"), api.get("/ServiceProviderConfig"),
                 api.get("/Schemas"), api.get("/ResourceTypes"),
                 api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "t"}),
                 api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "userName": "mime@example.com"})):
        assert resp.status_code == 200
        assert resp.mimetype == "application/scim+json"


@pytest.mark.parametrize("method, path", [
    ("GET", "/Me"), ("POST", "/Me"), ("PUT", "/Me"), ("PATCH", "/Me"), ("DELETE", "/Me"),
])
def test_me_is_501(api, method, path):
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}
    resp = api.request(method, path, json=body if method != "GET" else None)
    assert_scim_error(resp, 501)


def test_missing_token_is_401_scim_error(anonymous):
    resp = anonymous.get("/Users")
    assert_scim_error(resp, 401)
    assert resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


def test_bad_token_is_401(app):
    from conftest import ScimClient
    client = ScimClient(app.test_client(), "not-a-real-token")
    assert_scim_error(client.get("/Users"), 401)


PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ODD_REQUESTS = [
    ("POST", "/Users", "\x00\xff"),
    ("POST", "/Users", b"\xff\xfe\xfd"),
    ("POST", "/Users", {"schemas": "not-a-list", "userName": "a"}),
    ("POST", "/Users", {"schemas": [CORE_USER], "userName": None}),
    ("POST", "/Users", {"schemas": [CORE_USER], "userName": {"a": 1}}),
    ("POST", "/Users", {"schemas": [CORE_USER], "userName": "n", "emails": [None]}),
    ("POST", "/Users", {"schemas": [CORE_USER], "userName": "n", "name": None}),
    ("POST", "/Users", {"schemas": [CORE_USER], "userName": "n", "42": "x"}),
    ("POST", "/Users", {"schemas": [CORE_USER], "userName": "long@example.com", "displayName": "d" * 10000}),
    ("POST", "/Users", {"schemas": [CORE_USER], "userName": "long@example.com", "externalId": "e" * 10000}),
    ("POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g" * 10000}),
    ("PATCH", "/Users/{uid}", {"schemas": [PATCH], "Operations": [None, 1, "x"]}),
    ("PATCH", "/Users/{uid}", {"schemas": [PATCH], "Operations": [{"op": "replace", "path": 7, "value": 1}]}),
    ("PATCH", "/Users/{uid}", {"schemas": [PATCH], "Operations": [{"op": "add", "value": [1, 2]}]}),
    ("PATCH", "/Users/{uid}", {"schemas": [PATCH], "Operations": [{"op": "add", "path": "emails[", "value": 1}]}),
    ("PATCH", "/Users/{uid}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "userName", "value": "u" * 10000}]}),
    ("GET", "/Users?filter=userName eq", None),
    ("GET", "/Users?filter=(((", None),
    ("GET", "/Users?startIndex=abc&count=xyz", None),
    ("GET", "/Users?sortBy=nonexistent", None),
    ("GET", "/Users?attributes=,,,", None),
    ("GET", '/Users/{uid}?attributes=emails[type eq "x"]', None),
    ("GET", "/Users/" + "x" * 5000, None),
    ("GET", "/Schemas/urn:nope", None),
    ("GET", "/ResourceTypes/Nope", None),
    ("PUT", "/Users/{uid}", []),
]


@pytest.mark.parametrize("method, path, body", ODD_REQUESTS,
                         ids=[f"{i}-{m}" for i, (m, _, _) in enumerate(ODD_REQUESTS)])
def test_no_500_for_odd_requests(api, method, path, body):
    user = api.create_user("odd@example.com")
    path = path.replace("{uid}", user["id"])
    if isinstance(body, (str, bytes)):
        resp = api.request(method, path, data=body)
    else:
        resp = api.request(method, path, json=body)
    assert resp.status_code < 500, (method, path, resp.get_data(as_text=True))
    assert resp.mimetype == "application/scim+json"
    if resp.status_code >= 400:
        assert_scim_error(resp, resp.status_code)


def test_overlong_user_name_is_a_client_error_not_500(api):
    resp = api.post("/Users", json={"schemas": [CORE_USER], "userName": "x" * 10000})
    assert_scim_error(resp, 400, "invalidValue")
    assert api.get("/Users").get_json()["totalResults"] == 0
