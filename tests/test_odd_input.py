"""Input at the edges of what the grammar and the types allow: each was a 500 once, found by
sending thousands of odd requests to a running server on both databases. Each must be a SCIM
error naming the problem, and change nothing."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from conftest import CORE_USER, P2L_USER, assert_scim_error, create_unit, filter_list

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: in UTC these fall before year 1 or after year 9999, which no datetime holds
EDGE_MOMENTS = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
@pytest.mark.parametrize("path", ["meta.lastModified", "meta.created", f"{P2L_USER}:employments.startDate"])
def test_a_filter_date_beyond_the_calendar_in_utc_is_invalid_filter(api, moment, path):
    resp = api.get("/Users?filter=" + quote(f'{path} gt "{moment}"'))
    assert_scim_error(resp, 400, "invalidFilter")
    resp = api.post("/.search", json={"schemas": [SEARCH], "filter": f'{path} le "{moment}"'})
    assert_scim_error(resp, 400, "invalidFilter")


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
def test_an_employment_date_beyond_the_calendar_in_utc_is_invalid_value(api, moment):
    unit = create_unit(api, "Edge")
    body = {"schemas": [CORE_USER, P2L_USER], "userName": "edge@example.com",
            P2L_USER: {"employments": [{"value": unit["id"], "startDate": moment}]}}
    assert_scim_error(api.post("/Users", json=body), 400, "invalidValue")
    user = api.create_user("edge2@example.com")
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": f"{P2L_USER}:employments",
                                                  "value": [{"value": unit["id"], "endDate": moment}]})
    assert_scim_error(resp, 400, "invalidValue")


@pytest.mark.parametrize("path", ['emails[type eq "work"][type eq "work"]', 'emails[type eq "work"][value pr].value'])
def test_a_path_with_two_value_filters_is_invalid_path(api, path):
    user = api.create_user("two-filters@example.com", emails=[{"value": "a@example.com", "type": "work"}])
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": path, "value": "b@example.com"})
    assert_scim_error(resp, 400, "invalidPath")


@pytest.mark.parametrize("schemas", [1, True, SEARCH, {"a": 1}])
@pytest.mark.parametrize("endpoint", ["/.search", "/Users/.search"])
def test_a_search_whose_schemas_is_not_a_list_is_invalid_syntax(api, schemas, endpoint):
    assert_scim_error(api.post(endpoint, json={"schemas": schemas}), 400, "invalidSyntax")


@pytest.mark.parametrize("sort_by", [5, ["userName"], {"x": 1}, True])
@pytest.mark.parametrize("endpoint", ["/.search", "/Users/.search", "/Groups/.search"])
def test_a_search_whose_sort_by_is_not_a_string_is_invalid_value(api, sort_by, endpoint):
    assert_scim_error(api.post(endpoint, json={"schemas": [SEARCH], "sortBy": sort_by}), 400, "invalidValue")


def test_a_filter_of_two_hundred_comparisons_is_answered_and_one_more_is_invalid_filter(api):
    api.create_user("u7@example.com")
    many = " or ".join(f'userName eq "u{i}@example.com"' for i in range(200))
    resp = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": many})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["totalResults"] == 1
    resp = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": many + ' or userName pr'})
    assert_scim_error(resp, 400, "invalidFilter")
    resp = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": " or ".join([many] * 3)})
    assert_scim_error(resp, 400, "invalidFilter")


def test_a_filter_nested_twenty_deep_is_answered_and_deeper_is_invalid_filter(api):
    api.create_user("x@example.com")
    nested = "not(" * 10 + "not(" * 10 + 'userName eq "x@example.com"' + ")" * 20
    resp = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": nested})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["totalResults"] == 1  # an even number of nots
    for depth in (21, 40, 200):
        deeper = "not(" * depth + 'userName eq "x@example.com"' + ")" * depth
        resp = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": deeper})
        assert_scim_error(resp, 400, "invalidFilter")


def test_an_employment_title_longer_than_its_column_is_invalid_value_on_both_databases(api):
    unit = create_unit(api, "Long titles")
    body = {"schemas": [CORE_USER, P2L_USER], "userName": "long-title@example.com",
            P2L_USER: {"employments": [{"value": unit["id"], "title": "t" * 301}]}}
    assert_scim_error(api.post("/Users", json=body), 400, "invalidValue")
    body[P2L_USER]["employments"][0]["title"] = "t" * 300
    user = api.post("/Users", json=body).get_json()
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "value": "t" * 301,
                                                  "path": f'{P2L_USER}:employments[value eq "{unit["id"]}"].title'})
    assert_scim_error(resp, 400, "invalidValue")
    stored = api.get(f"/Users/{user['id']}").get_json()[P2L_USER]["employments"][0]
    assert stored["title"] == "t" * 300


@pytest.mark.parametrize("first, second", [("ΣΑΣ@example.com", "σας@example.com"),
                                           ("İX@example.com", "i\u0307x@example.com")], ids=["final-sigma", "dotted-I"])
def test_user_names_that_fold_alike_in_one_database_only_each_find_their_own_user(api, first, second):
    """Python's lower() and PostgreSQL's differ for a final sigma and a dotted capital I. The
    database's own folding decides, for the unique index and for filters alike: a second user is
    a clash (SQLite) or a user of its own (PostgreSQL), and a filter finds what the index holds."""
    api.create_user(first)
    resp = api.post("/Users", json={"schemas": [CORE_USER], "userName": second})
    assert resp.status_code in (201, 409), resp.get_json()
    if resp.status_code == 409:
        assert_scim_error(resp, 409, "uniqueness")
        found = filter_list(api, "Users", f'userName eq "{second}"')
        assert [u["userName"] for u in found["Resources"]] == [first]
        return
    for name in (first, second):
        found = filter_list(api, "Users", f'userName eq "{name}"')
        assert [u["userName"] for u in found["Resources"]] == [name]
