"""List responses, pagination and sorting (RFC 7644 §3.4.2, §3.4.2.3, §3.4.2.4)."""
from __future__ import annotations

import dataclasses
import time

import pytest

from conftest import LIST, assert_scim_error

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def page(client, endpoint="/Users", **params) -> dict:
    response = client.get(endpoint, query_string=params)
    assert response.status_code == 200, (params, response.get_data(as_text=True))
    body = response.get_json()
    assert body["schemas"] == [LIST]
    return body


@pytest.fixture
def twelve(api):
    """u01..u12, created in that order."""
    return [api.create_user(f"u{i:02d}") for i in range(1, 13)]


# ------------------------------------------------------------------- paging


def test_start_index_and_count(api, twelve):
    body = page(api, startIndex=3, count=4, sortBy="userName")
    assert body["totalResults"] == 12
    assert body["startIndex"] == 3
    assert body["itemsPerPage"] == 4
    assert [r["userName"] for r in body["Resources"]] == ["u03", "u04", "u05", "u06"]


def test_last_partial_page(api, twelve):
    body = page(api, startIndex=10, count=5, sortBy="userName")
    assert body["totalResults"] == 12
    assert body["startIndex"] == 10
    assert body["itemsPerPage"] == 3
    assert [r["userName"] for r in body["Resources"]] == ["u10", "u11", "u12"]


def test_start_index_beyond_total(api, twelve):
    body = page(api, startIndex=50, count=5)
    assert body["totalResults"] == 12
    assert body["itemsPerPage"] == 0
    assert body["Resources"] == []


def test_total_results_counts_the_filter_not_the_page(api, twelve):
    body = page(api, filter='userName sw "u1"', count=2, sortBy="userName")
    assert body["totalResults"] == 3  # u10 u11 u12
    assert [r["userName"] for r in body["Resources"]] == ["u10", "u11"]


def test_count_zero_returns_only_total(api, twelve):
    body = page(api, count=0)
    assert body["totalResults"] == 12
    assert body["Resources"] == []
    assert body.get("itemsPerPage", 0) == 0


def test_count_zero_with_filter(api, twelve):
    body = page(api, count=0, filter='userName eq "u05"')
    assert body["totalResults"] == 1
    assert body.get("Resources", []) == []


def test_negative_count_is_treated_as_zero(api, twelve):
    body = page(api, count=-5)
    assert body["totalResults"] == 12
    assert body.get("Resources", []) == []


@pytest.mark.parametrize("start", [0, -1, -100])
def test_start_index_below_one_is_treated_as_one(api, twelve, start):
    body = page(api, startIndex=start, count=2, sortBy="userName")
    assert body["startIndex"] == 1
    assert [r["userName"] for r in body["Resources"]] == ["u01", "u02"]
    assert body["totalResults"] == 12


def test_defaults_without_paging_parameters(api, twelve):
    body = page(api)
    assert body["startIndex"] == 1
    assert body["totalResults"] == 12
    assert body["itemsPerPage"] == 12
    assert len(body["Resources"]) == 12


def test_paging_fields_are_json_integers(api, twelve):
    response = api.get("/Users?startIndex=2&count=3")
    raw = response.get_data(as_text=True)
    body = response.get_json()
    for field in ("totalResults", "startIndex", "itemsPerPage"):
        assert type(body[field]) is int, (field, body[field])
    assert '"totalResults": "' not in raw and '"startIndex": "' not in raw and '"itemsPerPage": "' not in raw
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (12, 2, 3)


def test_non_numeric_paging_parameter_is_rejected(api, twelve):
    assert_scim_error(api.get("/Users?count=abc"), 400)
    assert_scim_error(api.get("/Users?startIndex=x"), 400)


def test_empty_result(api):
    body = page(api)
    assert body["totalResults"] == 0
    assert body["Resources"] == []
    body = page(api, filter='userName eq "ghost"')
    assert body["totalResults"] == 0
    assert body["Resources"] == []
    body = page(api, endpoint="/Groups")
    assert body["totalResults"] == 0
    assert body["Resources"] == []


def test_parameter_names_are_case_insensitive(api, twelve):
    body = page(api, startindex=2, COUNT=2, sortby="userName")
    assert body["startIndex"] == 2
    assert [r["userName"] for r in body["Resources"]] == ["u02", "u03"]


def test_search_body_paging(api, twelve):
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "startIndex": 4, "count": 2,
                                                 "sortBy": "userName"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (12, 4, 2)
    assert [r["userName"] for r in body["Resources"]] == ["u04", "u05"]


def test_groups_paging(api):
    for i in range(1, 6):
        api.create_group(f"g{i}")
    body = page(api, endpoint="/Groups", startIndex=2, count=2, sortBy="displayName")
    assert body["totalResults"] == 5
    assert [r["displayName"] for r in body["Resources"]] == ["g2", "g3"]


# ---------------------------------------------------------------- max results


def _max_results(api) -> int:
    response = api.get("/ServiceProviderConfig")
    assert response.status_code == 200
    spc = response.get_json()
    assert spc["filter"]["supported"] is True
    value = spc["filter"]["maxResults"]
    assert isinstance(value, int) and value > 0
    return value


def test_count_above_maximum_is_capped(api, app, monkeypatch):
    # A small maximum, so the cap can be seen with a handful of users.
    monkeypatch.setitem(app.config, "SCIM", dataclasses.replace(app.config["SCIM"], max_page_size=5))
    maximum = _max_results(api)
    assert maximum == 5
    for i in range(maximum + 3):
        api.create_user(f"cap{i:02d}")
    body = page(api, count=maximum * 10)
    assert body["totalResults"] == maximum + 3
    assert body["itemsPerPage"] == maximum
    assert len(body["Resources"]) == maximum
    body = page(api)  # without count: the default page is capped as well
    assert len(body["Resources"]) <= maximum


def test_huge_count_is_not_an_error(api, twelve):
    maximum = _max_results(api)
    body = page(api, count=maximum + 1)
    assert body["totalResults"] == 12
    assert body["itemsPerPage"] == min(12, maximum)
    body = page(api, count=10 ** 9)
    assert len(body["Resources"]) == min(12, maximum)


# ------------------------------------------------------------- stable paging


def test_walk_all_pages(api):
    created = {api.create_user(f"walker{i:02d}")["id"] for i in range(25)}
    seen: list[str] = []
    start = 1
    pages = 0
    while True:
        body = page(api, startIndex=start, count=7)
        assert body["totalResults"] == 25
        assert body["startIndex"] == start
        assert body["itemsPerPage"] == len(body["Resources"])
        if not body["Resources"]:
            break
        assert len(body["Resources"]) == min(7, 25 - (start - 1))
        seen += [r["id"] for r in body["Resources"]]
        start += len(body["Resources"])
        pages += 1
    assert pages == 4
    assert len(seen) == 25
    assert len(set(seen)) == 25
    assert set(seen) == created


def test_walk_all_pages_with_sort_and_equal_keys(api):
    # many users share the same sort key: paging must still be a total order
    created = {api.create_user(f"same{i:02d}", title="Same")["id"] for i in range(25)}
    seen: list[str] = []
    for start in range(1, 26, 7):
        body = page(api, startIndex=start, count=7, sortBy="title")
        seen += [r["id"] for r in body["Resources"]]
    assert len(seen) == 25 and set(seen) == created


# ------------------------------------------------------------------- sorting


@pytest.fixture
def named(api):
    specs = [("carol", "Christensen"), ("Alice", "Andersen"), ("dave", "Dahl"), ("bob", "Berg")]
    users = []
    for user_name, family in specs:
        users.append(api.create_user(user_name, name={"familyName": family, "givenName": user_name.title()}))
        time.sleep(0.01)
    return users


def test_sort_by_user_name_ascending(api, named):
    body = page(api, sortBy="userName")
    assert [r["userName"] for r in body["Resources"]] == ["Alice", "bob", "carol", "dave"]
    body = page(api, sortBy="userName", sortOrder="ascending")
    assert [r["userName"] for r in body["Resources"]] == ["Alice", "bob", "carol", "dave"]


def test_sort_by_user_name_descending(api, named):
    body = page(api, sortBy="userName", sortOrder="descending")
    assert [r["userName"] for r in body["Resources"]] == ["dave", "carol", "bob", "Alice"]


def test_sort_with_paging(api, named):
    body = page(api, sortBy="userName", sortOrder="descending", startIndex=2, count=2)
    assert [r["userName"] for r in body["Resources"]] == ["carol", "bob"]


def test_sort_by_family_name(api, named):
    api.create_user("nofamily")  # no name.familyName: sorted last when ascending (RFC 7644 §3.4.2.3)
    body = page(api, sortBy="name.familyName")
    assert [r["userName"] for r in body["Resources"]] == ["Alice", "bob", "carol", "dave", "nofamily"]
    body = page(api, sortBy="name.familyName", sortOrder="descending")
    assert [r["userName"] for r in body["Resources"]][-4:] == ["dave", "carol", "bob", "Alice"]
    assert body["Resources"][0]["userName"] == "nofamily"


def test_sort_by_meta_created(api, named):
    order = [u["userName"] for u in named]
    body = page(api, sortBy="meta.created")
    assert [r["userName"] for r in body["Resources"]] == order
    body = page(api, sortBy="meta.created", sortOrder="descending")
    assert [r["userName"] for r in body["Resources"]] == order[::-1]


def test_sort_by_is_case_insensitive_name(api, named):
    body = page(api, sortBy="USERNAME")
    assert [r["userName"] for r in body["Resources"]] == ["Alice", "bob", "carol", "dave"]


def test_sort_order_without_sort_by_is_accepted(api, named):
    body = page(api, sortOrder="descending")
    assert body["totalResults"] == 4


def test_sort_with_filter(api, named):
    body = page(api, sortBy="userName", sortOrder="descending", filter='userName ne "dave"')
    assert [r["userName"] for r in body["Resources"]] == ["carol", "bob", "Alice"]


def test_sort_groups_by_display_name(api):
    for name in ("beta", "Alpha", "gamma"):
        api.create_group(name)
    body = page(api, endpoint="/Groups", sortBy="displayName")
    assert [r["displayName"] for r in body["Resources"]] == ["Alpha", "beta", "gamma"]


@pytest.mark.parametrize("attribute", ["emails", "emails.value", "groups", "phoneNumbers.value"])
def test_sort_by_multi_valued_attribute_is_rejected(api, named, attribute):
    response = api.get("/Users", query_string={"sortBy": attribute})
    assert_scim_error(response, 400)


def test_sort_by_multi_valued_attribute_on_groups_is_rejected(api):
    api.create_group("g")
    assert_scim_error(api.get("/Groups?sortBy=members"), 400)


def test_start_index_beyond_any_integer_column_is_an_empty_page(api):
    """A startIndex larger than the database's integers once answered 500 (OverflowError)."""
    api.create_user("only-one")
    body = api.get("/Users?startIndex=99999999999999999999&count=5").get_json()
    assert body["totalResults"] == 1
    assert body["Resources"] == []


@pytest.mark.parametrize("sort", [{}, {"sortBy": "title"}, {"sortBy": "title", "sortOrder": "descending"},
                                  {"sortBy": "userName", "sortOrder": "descending"}, {"sortBy": "meta.created"},
                                  {"filter": 'userName sw "MID"', "sortBy": "title"}])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_pages_past_the_middle_keep_the_order(api, sort, size):
    """Pages past the middle are read from the far end, in the reversed order, and turned round:
    the pages put together must be exactly the whole list, missing titles (NULLs) and equal
    titles included, in either direction."""
    for i, title in enumerate(["b", None, "a", "b", None, "c", "a"]):
        api.create_user(f"mid{i}", **({"title": title} if title else {}))
    whole = [r["id"] for r in page(api, count=100, **sort)["Resources"]]
    assert len(whole) == 7
    paged: list[str] = []
    for start in range(1, 8, size):
        body = page(api, startIndex=start, count=size, **sort)
        assert body["totalResults"] == 7 and body["startIndex"] == start
        paged += [r["id"] for r in body["Resources"]]
    assert paged == whole
