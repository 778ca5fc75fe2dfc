"""Cursor-based pagination (RFC 9865): cursor and count on lists and searches, nextCursor and
previousCursor, invalidCursor and expiredCursor, and the pagination block of /ServiceProviderConfig."""
from __future__ import annotations

import base64
import re
import time

import pytest

from conftest import LIST, assert_scim_error
from scim_server.http import paging
from scim_server.storage import secrets

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
UNRESERVED = re.compile(r"^[A-Za-z0-9._~-]+$")  # RFC 3986 §2.3


def listing(client, endpoint="/Users", **params) -> dict:
    response = client.get(endpoint, query_string=params)
    assert response.status_code == 200, (params, response.get_data(as_text=True))
    body = response.get_json()
    assert body["schemas"] == [LIST]
    return body


def search(client, path="/Users/.search", **params) -> dict:
    response = client.post(path, json={"schemas": [SEARCH], **params})
    assert response.status_code == 200, (params, response.get_data(as_text=True))
    return response.get_json()


def user_names(body: dict) -> list[str]:
    return [r["userName"] for r in body["Resources"]]


def walk_forward(fetch, count: int) -> list[dict]:
    """Every page from an empty cursor to the last, following nextCursor."""
    pages = [fetch(cursor="", count=count)]
    while "nextCursor" in pages[-1]:
        assert len(pages) < 100, "no end"
        pages.append(fetch(cursor=pages[-1]["nextCursor"], count=count))
    return pages


def walk_back(fetch, last: dict, count: int) -> list[dict]:
    """Every page before ``last``, following previousCursor, nearest first."""
    pages = [last]
    while "previousCursor" in pages[-1]:
        assert len(pages) < 100, "no start"
        pages.append(fetch(cursor=pages[-1]["previousCursor"], count=count))
    return pages[1:]


def everything(client, endpoint="/Users", **params) -> list[str]:
    """The whole list with index paging: the order cursor paging must follow."""
    body = listing(client, endpoint, startIndex=1, count=1000, **params)
    return [r["id"] for r in body["Resources"]]


def ids_of(pages: list[dict]) -> list[str]:
    return [r["id"] for page in pages for r in page["Resources"]]


@pytest.fixture
def ten(api):
    """u00..u09, created in that order."""
    return [api.create_user(f"u{i:02d}") for i in range(10)]


# ----------------------------------------------------------------- walking


def test_first_page_has_next_cursor_and_no_index_members(api, ten):
    body = listing(api, cursor="", count=3)
    assert user_names(body) == ["u00", "u01", "u02"]
    assert body["itemsPerPage"] == 3
    assert UNRESERVED.match(body["nextCursor"])
    assert "previousCursor" not in body  # RFC 9865 §2: never on the first page
    assert "startIndex" not in body
    assert "totalResults" not in body  # counting every match on every page is what cursors avoid


def test_cursor_without_a_value_asks_for_the_first_page(api, ten):
    response = api.get("/Users?cursor&count=4")
    assert response.status_code == 200
    assert user_names(response.get_json()) == ["u00", "u01", "u02", "u03"]


def test_walk_forward_then_back(api, ten):
    fetch = lambda **p: listing(api, **p)  # noqa: E731
    pages = walk_forward(fetch, 3)
    assert [user_names(p) for p in pages] == [["u00", "u01", "u02"], ["u03", "u04", "u05"],
                                              ["u06", "u07", "u08"], ["u09"]]
    assert "nextCursor" not in pages[-1]
    assert all("previousCursor" in p for p in pages[1:])
    back = walk_back(fetch, pages[-1], 3)
    assert [user_names(p) for p in back] == [["u06", "u07", "u08"], ["u03", "u04", "u05"], ["u00", "u01", "u02"]]
    assert "previousCursor" not in back[-1]


def test_next_cursor_of_a_previous_page_goes_forward_again(api, ten):
    fetch = lambda **p: listing(api, **p)  # noqa: E731
    second = fetch(cursor=fetch(cursor="", count=4)["nextCursor"], count=4)
    first_again = fetch(cursor=second["previousCursor"], count=4)
    assert user_names(first_again) == ["u00", "u01", "u02", "u03"]
    assert user_names(fetch(cursor=first_again["nextCursor"], count=4)) == user_names(second)


def test_back_to_a_short_start_gives_the_whole_first_page(api, ten):
    """Pages need not line up with the start (count changed, rows inserted): going back past
    the start answers the first page, full, and without previousCursor."""
    fetch = lambda **p: listing(api, **p)  # noqa: E731
    second = fetch(cursor=fetch(cursor="", count=2)["nextCursor"], count=2)  # u02 u03
    back = fetch(cursor=second["previousCursor"], count=5)
    assert user_names(back) == ["u00", "u01", "u02", "u03", "u04"]
    assert "previousCursor" not in back and "nextCursor" in back


def test_single_page_has_no_cursors(api, ten):
    body = listing(api, cursor="", count=50)
    assert len(body["Resources"]) == 10
    assert "nextCursor" not in body and "previousCursor" not in body


def test_exactly_full_last_page_has_no_next_cursor(api, ten):
    pages = walk_forward(lambda **p: listing(api, **p), 5)
    assert [len(p["Resources"]) for p in pages] == [5, 5]


def test_empty_list(api):
    body = listing(api, cursor="", count=5)
    assert body["Resources"] == [] and body["itemsPerPage"] == 0
    assert "nextCursor" not in body and "previousCursor" not in body


def test_count_zero_answers_the_total_only(api, ten):
    body = listing(api, cursor="", count=0, filter='userName sw "u0"')
    assert body["totalResults"] == 10
    assert body["Resources"] == [] and "nextCursor" not in body


def test_default_page_size_and_projection(api, ten):
    body = listing(api, cursor="", attributes="userName")
    assert len(body["Resources"]) == 10
    assert set(body["Resources"][0]) == {"schemas", "id", "userName"}


def test_index_paging_is_unchanged(api, ten):
    body = listing(api, count=3)
    assert body["totalResults"] == 10 and body["startIndex"] == 1
    assert "nextCursor" not in body


# ---------------------------------------------------------- filter and sort


@pytest.fixture
def named(api):
    """Users with and without displayName and familyName (NULL sort values), in mixed case."""
    made = []
    for i, (display, family) in enumerate([("bo", "Ørsted"), (None, "Berg"), ("Anna", None), ("carl", "berg"),
                                           (None, None), ("anna", "Dahl"), ("Ea", None), (None, "Alm"),
                                           ("dora", "Berg"), (None, None), ("Bo", "cox")]):
        attrs = {"displayName": display} if display else {}
        if family:
            attrs["name"] = {"familyName": family}
        made.append(api.create_user(f"n{i:02d}", **attrs))
    return made


@pytest.mark.parametrize("sort_by", ["displayName", "name.familyName", "userName", "meta.created", "active"])
@pytest.mark.parametrize("order", ["ascending", "descending"])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_sorted_walks_follow_the_index_order(api, named, sort_by, order, count):
    expected = everything(api, sortBy=sort_by, sortOrder=order)
    fetch = lambda **p: listing(api, sortBy=sort_by, sortOrder=order, **p)  # noqa: E731
    pages = walk_forward(fetch, count)
    assert ids_of(pages) == expected
    back = walk_back(fetch, pages[-1], count)
    assert ids_of(list(reversed(back))) + ids_of(pages[-1:]) == expected


def test_nulls_sort_last_ascending_and_first_descending(api, named):
    ascending = ids_of(walk_forward(lambda **p: listing(api, sortBy="displayName", **p), 2))
    descending = ids_of(walk_forward(lambda **p: listing(api, sortBy="displayName", sortOrder="descending", **p), 2))
    by_id = {u["id"]: u.get("displayName") for u in named}
    assert [by_id[i] for i in ascending][-4:] == [None] * 4
    assert [by_id[i] for i in descending][:4] == [None] * 4
    assert [by_id[i] for i in ascending][:2] in (["Anna", "anna"], ["anna", "Anna"])  # case-insensitive


def test_filter_with_sort(api, named):
    params = {"filter": 'userName sw "n0" and not (displayName pr)', "sortBy": "name.familyName",
              "sortOrder": "descending"}
    expected = everything(api, **params)
    assert len(expected) == 4  # n01 n04 n07 n09 (n10 does not start with "n0")
    pages = walk_forward(lambda **p: listing(api, **params, **p), 1)
    assert ids_of(pages) == expected


def test_groups_page_too(api):
    for name in ["g-a", "g-b", "g-c", "g-d", "g-e"]:
        api.create_group(name)
    pages = walk_forward(lambda **p: listing(api, "/Groups", sortBy="displayName", **p), 2)
    assert [r["displayName"] for p in pages for r in p["Resources"]] == ["g-a", "g-b", "g-c", "g-d", "g-e"]


# ------------------------------------------------- changes between pages


def test_rows_inserted_between_pages_cause_no_duplicates_and_no_gaps(api, ten):
    fetch = lambda **p: listing(api, sortBy="userName", **p)  # noqa: E731
    first = fetch(cursor="", count=4)  # u00..u03
    api.create_user("u015")  # sorts before the cursor: not in this walk
    api.create_user("u055")  # sorts ahead: met once
    api.create_user("u00a")  # sorts among the pages already read
    pages = [first]
    while "nextCursor" in pages[-1]:
        pages.append(fetch(cursor=pages[-1]["nextCursor"], count=4))
    seen = [n for p in pages for n in user_names(p)]
    assert len(seen) == len(set(seen))
    assert {u["userName"] for u in ten} <= set(seen)
    assert "u055" in seen and "u015" not in seen


def test_rows_created_during_a_walk_in_default_order_come_at_the_end(api, ten):
    fetch = lambda **p: listing(api, **p)  # noqa: E731
    pages = [fetch(cursor="", count=3)]
    api.create_user("late-1")
    while "nextCursor" in pages[-1]:
        pages.append(fetch(cursor=pages[-1]["nextCursor"], count=3))
        if len(pages) == 2:
            api.create_user("late-2")
    assert [n for p in pages for n in user_names(p)] == [f"u{i:02d}" for i in range(10)] + ["late-1", "late-2"]


def test_the_cursor_row_may_be_deleted(api, ten):
    first = listing(api, cursor="", count=3)
    assert api.delete(f"/Users/{first['Resources'][-1]['id']}").status_code == 204
    assert user_names(listing(api, cursor=first["nextCursor"], count=3)) == ["u03", "u04", "u05"]


# ----------------------------------------------------------- bad cursors


def _tampered(cursor: str) -> str:
    body, mac = cursor.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-3] ^= 1  # one bit of the sort key
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + mac


@pytest.mark.parametrize("cursor", ["garbage", "a.b", "....", "é.é", "x" * 9000, "eyJ9.AAAA"])
def test_garbage_is_invalid_cursor(api, ten, cursor):
    assert_scim_error(api.get("/Users", query_string={"cursor": cursor}), 400, "invalidCursor")


def test_tampered_cursor_is_invalid(api, ten):
    cursor = listing(api, cursor="", count=3)["nextCursor"]
    assert_scim_error(api.get("/Users", query_string={"cursor": _tampered(cursor), "count": 3}), 400, "invalidCursor")


def test_cursor_of_another_tenant_is_invalid(api, other_api, ten):
    other_api.create_user("x1")
    cursor = listing(api, cursor="", count=3)["nextCursor"]
    assert_scim_error(other_api.get("/Users", query_string={"cursor": cursor, "count": 3}), 400, "invalidCursor")


@pytest.mark.parametrize("changed", [{"filter": 'userName sw "u"'}, {"sortBy": "userName"},
                                     {"sortOrder": "descending"}])
def test_cursor_of_another_query_is_invalid(api, ten, changed):
    cursor = listing(api, cursor="", count=3)["nextCursor"]
    response = api.get("/Users", query_string={"cursor": cursor, "count": 3, **changed})
    assert_scim_error(response, 400, "invalidCursor")


def test_cursor_of_another_resource_type_is_invalid(api, ten):
    for name in ["g1", "g2", "g3"]:
        api.create_group(name)
    cursor = listing(api, cursor="", count=3)["nextCursor"]
    assert_scim_error(api.get("/Groups", query_string={"cursor": cursor, "count": 3}), 400, "invalidCursor")


def test_count_may_change_between_pages(api, ten):
    cursor = listing(api, cursor="", count=3)["nextCursor"]
    assert user_names(listing(api, cursor=cursor, count=5)) == ["u03", "u04", "u05", "u06", "u07"]


def test_expired_cursor(api, ten, app, monkeypatch):
    cursor = listing(api, cursor="", count=3)["nextCursor"]
    timeout = app.config["SCIM"].cursor_timeout
    monkeypatch.setattr(paging, "clock", lambda: time.time() + timeout - 5)
    assert user_names(listing(api, cursor=cursor, count=3)) == ["u03", "u04", "u05"]  # still in time
    monkeypatch.setattr(paging, "clock", lambda: time.time() + timeout + 5)
    body = assert_scim_error(api.get("/Users", query_string={"cursor": cursor, "count": 3}), 400, "expiredCursor")
    assert str(timeout) in body["detail"]


def test_each_page_gives_fresh_cursors(api, ten, app, monkeypatch):
    """cursorTimeout is the time between page requests, not the time of the whole walk."""
    timeout = app.config["SCIM"].cursor_timeout
    cursor = listing(api, cursor="", count=2)["nextCursor"]
    for step in range(1, 4):
        monkeypatch.setattr(paging, "clock", lambda step=step: time.time() + step * (timeout - 10))
        cursor = listing(api, cursor=cursor, count=2)["nextCursor"]


def test_count_zero_still_checks_the_cursor(api, ten):
    assert_scim_error(api.get("/Users", query_string={"cursor": "garbage", "count": 0}), 400, "invalidCursor")


def test_the_key_comes_from_the_database_not_the_process(api, ten, monkeypatch):
    """Another worker (an empty cache of its own) reads the same key, so it accepts the cursor."""
    monkeypatch.setattr(secrets, "_known", {})
    cursor = listing(api, cursor="", count=3)["nextCursor"]
    monkeypatch.setattr(secrets, "_known", {})
    assert user_names(listing(api, cursor=cursor, count=3)) == ["u03", "u04", "u05"]


def test_start_index_and_cursor_together_are_refused(api, ten):
    response = api.get("/Users", query_string={"cursor": "", "startIndex": 1})
    assert_scim_error(response, 400, "invalidValue")
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "cursor": "", "startIndex": 2})
    assert_scim_error(response, 400, "invalidValue")


def test_cursor_must_be_a_string_in_a_search(api, ten):
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "cursor": 5})
    assert_scim_error(response, 400, "invalidCursor")


def test_bad_filter_or_sort_is_still_reported(api, ten):
    assert_scim_error(api.get("/Users", query_string={"cursor": "", "filter": "nope eq 1"}), 400, "invalidFilter")
    assert_scim_error(api.get("/Users", query_string={"cursor": "", "sortBy": "emails"}), 400, "invalidValue")


# ------------------------------------------------------------------ .search


def test_search_with_cursor(api, ten):
    fetch = lambda **p: search(api, filter='userName sw "u0"', sortBy="userName", sortOrder="descending", **p)  # noqa: E731
    pages = walk_forward(fetch, 4)
    assert [n for p in pages for n in user_names(p)] == [f"u{i:02d}" for i in range(9, -1, -1)]
    back = walk_back(fetch, pages[-1], 4)
    assert [user_names(p) for p in back] == [["u05", "u04", "u03", "u02"], ["u09", "u08", "u07", "u06"]]


def test_get_and_search_cursors_continue_each_other(api, ten):
    cursor = listing(api, cursor="", count=3, sortBy="userName")["nextCursor"]
    assert user_names(search(api, cursor=cursor, count=3, sortBy="userName")) == ["u03", "u04", "u05"]


def test_root_search_pages_across_users_and_groups(api):
    users = [api.create_user(f"r{i}")["id"] for i in range(4)]
    groups = [api.create_group(f"r-group-{i}")["id"] for i in range(3)]
    fetch = lambda **p: search(api, "/.search", **p)  # noqa: E731
    pages = walk_forward(fetch, 3)
    assert [len(p["Resources"]) for p in pages] == [3, 3, 1]
    assert ids_of(pages) == users + groups
    assert pages[1]["Resources"][0]["schemas"][0].endswith(":User")
    assert pages[1]["Resources"][1]["schemas"][0].endswith(":Group")
    back = walk_back(fetch, pages[-1], 3)
    assert ids_of(list(reversed(back))) == (users + groups)[:6]


def test_root_search_skips_a_type_the_filter_does_not_fit(api, ten):
    api.create_group("only-group")
    pages = walk_forward(lambda **p: search(api, "/.search", filter='userName sw "u"', **p), 4)
    assert [n for p in pages for n in user_names(p)] == [f"u{i:02d}" for i in range(10)]


def test_root_search_count_zero(api, ten):
    api.create_group("g")
    assert search(api, "/.search", cursor="", count=0)["totalResults"] == 11


# ------------------------------------------------------- discovery


def test_service_provider_config_advertises_both_kinds_of_paging(api, app):
    response = api.get("/ServiceProviderConfig")
    assert response.status_code == 200
    body = response.get_json()
    assert body["schemas"] == [SPC]
    settings = app.config["SCIM"]
    assert body["pagination"] == {"cursor": True, "index": True, "defaultPaginationMethod": "index",
                                  "defaultPageSize": settings.default_page_size,
                                  "maxPageSize": settings.max_page_size,
                                  "cursorTimeout": settings.cursor_timeout}
