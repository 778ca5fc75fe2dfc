"""Filtering (RFC 7644 §3.4.2.2) through GET /Users?filter=, /Groups?filter= and POST .search.

Every test asserts the exact set of resources returned, so a filter term that is
silently dropped (matching too much) fails as surely as one that matches too little.
"""
from __future__ import annotations

import time

import pytest

from conftest import CORE_GROUP, CORE_USER, ENTERPRISE, LIST, assert_scim_error

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


# ------------------------------------------------------------------ helpers


def listing(client, endpoint: str, filter_text: str, **params) -> dict:
    response = client.get(endpoint, query_string={"filter": filter_text, **params})
    assert response.status_code == 200, (filter_text, response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == len(body["Resources"]), body  # all our sets fit in one page
    return body


def user_names(client, filter_text: str) -> set[str]:
    return {r["userName"] for r in listing(client, "/Users", filter_text)["Resources"]}


def group_names(client, filter_text: str) -> set[str]:
    return {r["displayName"] for r in listing(client, "/Groups", filter_text)["Resources"]}


def bad_filter(client, filter_text: str, endpoint: str = "/Users"):
    response = client.get(endpoint, query_string={"filter": filter_text})
    return assert_scim_error(response, 400, "invalidFilter")


@pytest.fixture
def people(api):
    """Four users with distinct, predictable attributes."""
    users = {
        "alice": api.create_user(
            "alice", displayName="Alice Andersen", title="Engineer", active=True, externalId="EXT-alice",
            name={"givenName": "Alice", "familyName": "Andersen"},
            emails=[{"value": "alice@x.dk", "type": "work", "primary": True},
                    {"value": "alice@home.example", "type": "home"}],
            **{ENTERPRISE: {"department": "R&D", "employeeNumber": "0042"}}),
        "bob": api.create_user(
            "bob", displayName="Bob Berg", title="Manager", active=False, externalId="EXT-bob",
            name={"givenName": "Bob", "familyName": "Berg"},
            emails=[{"value": "bob@y.dk", "type": "work"}, {"value": "bob@x.dk", "type": "home"}],
            **{ENTERPRISE: {"department": "Sales", "employeeNumber": "7"}}),
        "carol": api.create_user(
            "carol", displayName="Carol Christensen", active=True,
            name={"givenName": "Carol", "familyName": "Christensen"},
            emails=[{"value": "carol@x.dk", "type": "work"}],
            **{ENTERPRISE: {"department": "R&D", "employeeNumber": "10"}}),
        "dave": api.create_user(
            "dave", displayName="Dave Dahl", title="Engineer", active=True,
            name={"givenName": "Dave", "familyName": "Dahl"}),
    }
    return users


ALL = {"alice", "bob", "carol", "dave"}


# ------------------------------------------------------------- attribute operators


def test_eq(api, people):
    assert user_names(api, 'userName eq "alice"') == {"alice"}
    assert user_names(api, 'displayName eq "Bob Berg"') == {"bob"}
    assert user_names(api, 'userName eq "nobody"') == set()


def test_ne(api, people):
    assert user_names(api, 'userName ne "alice"') == ALL - {"alice"}
    # ne also matches resources that have no value at all for the attribute
    assert user_names(api, 'title ne "Engineer"') == {"bob", "carol"}


def test_co(api, people):
    assert user_names(api, 'displayName co "e"') == ALL  # Alice Andersen, Bob Berg, Carol Christensen, Dave Dahl
    assert user_names(api, 'displayName co "sen"') == {"alice", "carol"}
    assert user_names(api, 'displayName co "zz"') == set()


def test_sw(api, people):
    assert user_names(api, 'displayName sw "Ca"') == {"carol"}
    assert user_names(api, 'displayName sw "Dahl"') == set()


def test_ew(api, people):
    assert user_names(api, 'displayName ew "Dahl"') == {"dave"}
    assert user_names(api, 'displayName ew "sen"') == {"alice", "carol"}
    assert user_names(api, 'displayName ew "Dave"') == set()


def test_substring_operators_are_case_insensitive_for_case_insensitive_attributes(api, people):
    assert user_names(api, 'displayName co "SEN"') == {"alice", "carol"}
    assert user_names(api, 'displayName sw "ca"') == {"carol"}
    assert user_names(api, 'displayName ew "DAHL"') == {"dave"}


def test_pr(api, people):
    assert user_names(api, "title pr") == {"alice", "bob", "dave"}
    assert user_names(api, "emails pr") == {"alice", "bob", "carol"}
    assert user_names(api, "externalId pr") == {"alice", "bob"}
    assert user_names(api, "name pr") == ALL
    assert user_names(api, "nickName pr") == set()


def test_gt_ge_lt_le_on_strings_are_lexicographic(api, people):
    assert user_names(api, 'userName gt "bob"') == {"carol", "dave"}
    assert user_names(api, 'userName ge "bob"') == {"bob", "carol", "dave"}
    assert user_names(api, 'userName lt "carol"') == {"alice", "bob"}
    assert user_names(api, 'userName le "carol"') == {"alice", "bob", "carol"}


def test_ordering_respects_case_insensitivity(api, people):
    # userName is caseExact=false: "BOB" compares equal to "bob"
    assert user_names(api, 'userName gt "BOB"') == {"carol", "dave"}
    assert user_names(api, 'userName ge "BOB"') == {"bob", "carol", "dave"}
    assert user_names(api, 'userName le "CAROL"') == {"alice", "bob", "carol"}


def test_operators_are_case_insensitive(api, people):
    assert user_names(api, 'userName EQ "alice"') == {"alice"}
    assert user_names(api, 'title Pr AND userName Sw "a"') == {"alice"}


def test_attribute_names_are_case_insensitive(api, people):
    assert user_names(api, 'USERNAME eq "alice"') == {"alice"}
    assert user_names(api, 'Name.FamilyName eq "Berg"') == {"bob"}


# ---------------------------------------------------------------- logical operators


def test_and(api, people):
    assert user_names(api, 'title eq "Engineer" and active eq true') == {"alice", "dave"}
    assert user_names(api, 'title eq "Engineer" and userName eq "bob"') == set()


def test_or(api, people):
    assert user_names(api, 'userName eq "alice" or userName eq "carol"') == {"alice", "carol"}


def test_not(api, people):
    assert user_names(api, 'not (userName eq "alice")') == ALL - {"alice"}
    # not() of a missing attribute's comparison matches the users lacking it
    assert user_names(api, 'not (title eq "Engineer")') == {"bob", "carol"}
    assert user_names(api, "not (title pr)") == {"carol"}


def test_grouping_with_parentheses(api, people):
    assert user_names(api, '(userName eq "alice" or userName eq "bob") and active eq true') == {"alice"}
    assert user_names(api, 'userName eq "alice" or (userName eq "bob" and active eq true)') == {"alice"}
    assert user_names(api, '((userName eq "dave"))') == {"dave"}


def test_and_binds_tighter_than_or(api, people):
    # a or b and c  ==  a or (b and c); bob satisfies a, but not c
    assert user_names(api, 'userName eq "bob" or title eq "Engineer" and active eq true') == {"bob", "alice", "dave"}
    # a and b or c  ==  (a and b) or c
    assert user_names(api, 'userName eq "bob" and active eq true or userName eq "carol"') == {"carol"}
    # longer chain: a or b and c or d
    assert user_names(api, 'userName eq "bob" or title eq "Manager" and active eq true or userName eq "carol"') \
        == {"bob", "carol"}


def test_not_with_and_or(api, people):
    assert user_names(api, 'not (userName eq "alice" or userName eq "bob") and title pr') == {"dave"}


# --------------------------------------------------------------------- value paths


def test_value_path_with_and_inside_brackets(api, people):
    # the same element must satisfy both: bob has a work email and a @x.dk email, but not one that is both
    assert user_names(api, 'emails[type eq "work" and value co "@x.dk"]') == {"alice", "carol"}


def test_value_path_single_condition(api, people):
    assert user_names(api, 'emails[type eq "home"]') == {"alice", "bob"}
    assert user_names(api, 'emails[primary eq true]') == {"alice"}
    assert user_names(api, 'emails[value ew "@y.dk"]') == {"bob"}


def test_value_path_with_sub_attribute_entra_form(api, people):
    assert user_names(api, 'emails[type eq "work"].value eq "alice@x.dk"') == {"alice"}
    # bob@x.dk exists, but it is bob's home email
    assert user_names(api, 'emails[type eq "work"].value eq "bob@x.dk"') == set()
    assert user_names(api, 'emails[type eq "home"].value eq "bob@x.dk"') == {"bob"}


def test_value_path_combined_with_other_terms(api, people):
    assert user_names(api, 'emails[type eq "work" and value co "@x.dk"] and title pr') == {"alice"}
    assert user_names(api, 'not (emails[type eq "home"])') == {"carol", "dave"}


def test_multi_valued_attribute_without_brackets(api, people):
    # emails.value / emails co match any element
    assert user_names(api, 'emails.value eq "bob@x.dk"') == {"bob"}
    assert user_names(api, 'emails co "@x.dk"') == {"alice", "bob", "carol"}
    assert user_names(api, 'emails.type eq "home"') == {"alice", "bob"}


# ------------------------------------------------------ sub-attributes and extensions


def test_sub_attribute(api, people):
    assert user_names(api, 'name.familyName eq "Andersen"') == {"alice"}
    assert user_names(api, 'name.familyName sw "C"') == {"carol"}
    assert user_names(api, 'name.givenName eq "dave"') == {"dave"}


def test_extension_attribute_by_urn(api, people):
    assert user_names(api, f'{ENTERPRISE}:department eq "R&D"') == {"alice", "carol"}
    assert user_names(api, f'{ENTERPRISE}:department eq "Sales"') == {"bob"}
    assert user_names(api, f'{ENTERPRISE}:department pr') == {"alice", "bob", "carol"}


def test_extension_attribute_by_urn_url_encoded(api, people):
    response = api.get(f"/Users?filter={ENTERPRISE}:department%20eq%20%22R%26D%22")
    assert response.status_code == 200, response.get_json()
    assert {r["userName"] for r in response.get_json()["Resources"]} == {"alice", "carol"}


def test_extension_manager_value(api, people):
    boss = people["alice"]["id"]
    api.create_user("erik", **{ENTERPRISE: {"manager": {"value": boss}}})
    api.create_user("frida", **{ENTERPRISE: {"manager": {"value": people["bob"]["id"]}}})
    assert user_names(api, f'{ENTERPRISE}:manager.value eq "{boss}"') == {"erik"}
    assert user_names(api, f'{ENTERPRISE}:manager pr') == {"erik", "frida"}


def test_string_values_are_strings_not_numbers(api, people):
    # employeeNumber is a string: "0042" is not "42", and ordering is lexicographic ("10" < "7")
    assert user_names(api, f'{ENTERPRISE}:employeeNumber eq "0042"') == {"alice"}
    assert user_names(api, f'{ENTERPRISE}:employeeNumber eq "42"') == set()
    assert user_names(api, f'{ENTERPRISE}:employeeNumber gt "5"') == {"bob"}
    assert user_names(api, f'{ENTERPRISE}:employeeNumber lt "5"') == {"alice", "carol"}


def test_numeric_looking_user_names(api):
    api.create_user("1234567")
    api.create_user("12345678")
    assert user_names(api, 'userName eq "1234567"') == {"1234567"}
    assert user_names(api, 'userName sw "1234567"') == {"1234567", "12345678"}


def test_multi_digit_number_literal_is_parsed(api):
    """A JSON number as compValue is valid grammar: never a parse failure or a server error.
    (Comparing it with a string attribute may be refused as invalidFilter.)"""
    api.create_user("1234567")
    for literal in ("1234567", "12.5", "-3", "1e3"):
        response = api.get("/Users", query_string={"filter": f"userName eq {literal}"})
        assert response.status_code in (200, 400), response.get_data(as_text=True)
        if response.status_code == 400:
            assert_scim_error(response, 400, "invalidFilter")
        else:
            names = {r["userName"] for r in response.get_json()["Resources"]}
            assert names <= {"1234567"}


# ------------------------------------------------------------------- caseExact


def test_user_name_eq_is_case_insensitive(api, people):
    assert user_names(api, 'userName eq "ALICE"') == {"alice"}
    assert user_names(api, 'userName eq "aLiCe"') == {"alice"}


@pytest.mark.parametrize("stored, queried", [
    ("ÆBLEGRØD@example.dk", "æblegrød@example.dk"),
    ("æblegrød@example.dk", "ÆBLEGRØD@EXAMPLE.DK"),
    ("SØREN.ÅGÅRD@example.dk", "søren.ågård@example.dk"),
    ("søren.ågård@example.dk", "SØREN.ÅGÅRD@example.dk"),
])
def test_user_name_eq_is_case_insensitive_with_danish_letters(api, stored, queried):
    api.create_user(stored)
    api.create_user("someone.else@example.dk")
    assert user_names(api, f'userName eq "{queried}"') == {stored}


def test_user_name_co_is_case_insensitive_with_danish_letters(api):
    api.create_user("JØRGEN@example.dk")
    api.create_user("jorgen@example.dk")
    assert user_names(api, 'userName co "jørgen"') == {"JØRGEN@example.dk"}
    assert user_names(api, 'userName sw "JØR"') == {"JØRGEN@example.dk"}


def test_external_id_eq_is_case_sensitive(api, people):
    assert user_names(api, 'externalId eq "EXT-alice"') == {"alice"}
    assert user_names(api, 'externalId eq "ext-alice"') == set()
    assert user_names(api, 'externalId eq "EXT-ALICE"') == set()
    assert user_names(api, 'externalId sw "EXT-"') == {"alice", "bob"}
    assert user_names(api, 'externalId sw "ext-"') == set()


def test_external_id_case_sensitive_distinguishes_resources(api):
    api.create_user("one", externalId="abc")
    api.create_user("two", externalId="ABC")
    assert user_names(api, 'externalId eq "abc"') == {"one"}
    assert user_names(api, 'externalId eq "ABC"') == {"two"}


# -------------------------------------------------------------------- dateTime


def _tick():
    time.sleep(0.05)


def test_meta_created_comparisons(api):
    first = api.create_user("first")
    _tick()
    second = api.create_user("second")
    _tick()
    third = api.create_user("third")
    created2 = second["meta"]["created"]
    assert user_names(api, f'meta.created gt "{created2}"') == {"third"}
    assert user_names(api, f'meta.created ge "{created2}"') == {"second", "third"}
    assert user_names(api, f'meta.created lt "{created2}"') == {"first"}
    assert user_names(api, f'meta.created le "{created2}"') == {"first", "second"}
    assert user_names(api, f'meta.created eq "{created2}"') == {"second"}
    assert user_names(api, 'meta.created gt "2000-01-01T00:00:00Z"') == {"first", "second", "third"}
    assert user_names(api, 'meta.created lt "2000-01-01T00:00:00Z"') == set()
    assert user_names(api, 'meta.created gt "2999-01-01T00:00:00Z"') == set()
    assert first["meta"]["created"] < created2 < third["meta"]["created"]


def test_meta_last_modified_comparisons(api):
    old = api.create_user("old")
    _tick()
    new = api.create_user("new")
    _tick()
    boundary = new["meta"]["lastModified"]
    assert user_names(api, f'meta.lastModified gt "{old["meta"]["lastModified"]}"') == {"new"}
    # touch "old": its lastModified moves past the boundary
    r = api.patch_ops(f"/Users/{old['id']}", {"op": "replace", "path": "title", "value": "Touched"})
    assert r.status_code == 200, r.get_json()
    assert user_names(api, f'meta.lastModified gt "{boundary}"') == {"old"}
    assert user_names(api, f'meta.lastModified le "{boundary}"') == {"new"}


def test_datetime_with_offset_and_without_fraction(api):
    api.create_user("someone")
    # the same instant written with a time zone offset
    assert user_names(api, 'meta.created gt "2000-01-01T02:00:00+02:00"') == {"someone"}
    assert user_names(api, 'meta.created lt "2999-12-31T23:59:59+01:00"') == {"someone"}
    assert user_names(api, 'meta.lastModified ge "2000-01-01T00:00:00Z" and meta.lastModified le "2999-01-01T00:00:00Z"') \
        == {"someone"}


def test_datetime_not_a_date_is_invalid_filter(api):
    bad_filter(api, 'meta.created gt "yesterday"')


# ---------------------------------------------------------------------- boolean


def test_active_eq_true_false(api, people):
    assert user_names(api, "active eq true") == {"alice", "carol", "dave"}
    assert user_names(api, "active eq false") == {"bob"}
    assert user_names(api, "active ne true") == {"bob"}


def test_active_after_patch(api, people):
    r = api.patch_ops(f"/Users/{people['alice']['id']}", {"op": "replace", "path": "active", "value": False})
    assert r.status_code == 200, r.get_json()
    assert user_names(api, "active eq false") == {"alice", "bob"}


def test_gt_on_boolean_is_invalid_filter(api, people):
    bad_filter(api, "active gt true")
    bad_filter(api, "active lt false")
    bad_filter(api, 'active co "tru"')


# -------------------------------------------------------- escaping of string values


def test_like_wildcards_are_literal(api):
    api.create_user("percent%sign")
    api.create_user("under_score")
    api.create_user("plain")
    api.create_user("back\\slash")
    assert user_names(api, 'userName co "%"') == {"percent%sign"}
    assert user_names(api, 'userName co "_"') == {"under_score"}
    assert user_names(api, 'userName sw "percent%"') == {"percent%sign"}
    assert user_names(api, 'userName ew "_score"') == {"under_score"}
    assert user_names(api, 'userName co "\\\\"') == {"back\\slash"}
    assert user_names(api, 'userName sw "p%"') == set()
    assert user_names(api, 'userName sw "u_d"') == set()


def test_escaped_quotes_in_string_values(api):
    api.create_user('a"b')
    api.create_user("ab")
    assert user_names(api, 'userName eq "a\\"b"') == {'a"b'}
    assert user_names(api, 'userName co "\\""') == {'a"b'}


def test_unicode_escape_in_string_value(api):
    api.create_user("Åse")
    assert user_names(api, 'userName eq "\\u00c5se"') == {"Åse"}


# -------------------------------------------------------------------- rejections


@pytest.mark.parametrize("text", [
    'nonexistent eq "x"',
    'name.nonexistent eq "x"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nonexistent eq "x"',
    'urn:example:unknown:Schema:foo eq "x"',
    'emails[nonexistent eq "x"]',
    'nonexistent pr',
    'userName eq "alice" or nonexistent eq "x"',
])
def test_unknown_attribute_is_invalid_filter(api, people, text):
    bad_filter(api, text)


def test_password_is_not_filterable(api):
    api.create_user("pw", password="x")
    bad_filter(api, 'password eq "x"')
    bad_filter(api, "password pr")
    bad_filter(api, 'userName eq "pw" or password eq "x"')


@pytest.mark.parametrize("text", [
    'userName eq',
    'userName "alice"',
    'userName eq "alice',
    'userName equals "alice"',
    '(userName eq "alice"',
    'userName eq "alice")',
    'userName eq "alice" and',
    'and userName eq "alice"',
    'emails[type eq "work"',
    'emails[]',
    'userName eq "a" "b"',
    '   ',
])
def test_malformed_filter_is_invalid_filter(api, people, text):
    bad_filter(api, text)


def test_complex_attribute_compared_without_sub_attribute_is_invalid_filter(api, people):
    bad_filter(api, 'name eq "Alice"')


def test_boolean_compared_with_string_is_invalid_filter(api, people):
    bad_filter(api, 'active eq "yes"')


def test_invalid_filter_on_groups(api):
    bad_filter(api, 'userName eq "x"', endpoint="/Groups")
    bad_filter(api, 'displayName eq', endpoint="/Groups")


# ------------------------------------------------------------------------ groups


@pytest.fixture
def org(api):
    u1 = api.create_user("member1")
    u2 = api.create_user("member2")
    u3 = api.create_user("loner")
    g1 = api.create_group("Developers", members=[u1["id"], u2["id"]])
    g2 = api.create_group("Designers", members=[u1["id"]])
    g3 = api.create_group("Empty Group")
    return {"u1": u1, "u2": u2, "u3": u3, "g1": g1, "g2": g2, "g3": g3}


def test_group_display_name_eq(api, org):
    assert group_names(api, 'displayName eq "Developers"') == {"Developers"}
    assert group_names(api, 'displayName eq "developers"') == {"Developers"}  # caseExact false
    assert group_names(api, 'displayName sw "De"') == {"Developers", "Designers"}


def test_group_members_value_eq(api, org):
    assert group_names(api, f'members.value eq "{org["u1"]["id"]}"') == {"Developers", "Designers"}
    assert group_names(api, f'members.value eq "{org["u2"]["id"]}"') == {"Developers"}
    assert group_names(api, f'members.value eq "{org["u3"]["id"]}"') == set()
    assert group_names(api, f'members[value eq "{org["u2"]["id"]}"]') == {"Developers"}
    assert group_names(api, "members pr") == {"Developers", "Designers"}
    assert group_names(api, "not (members pr)") == {"Empty Group"}


def test_group_display_name_and_member(api, org):
    text = f'displayName eq "Designers" and members.value eq "{org["u1"]["id"]}"'
    assert group_names(api, text) == {"Designers"}
    text = f'displayName eq "Designers" and members.value eq "{org["u2"]["id"]}"'
    assert group_names(api, text) == set()


def test_user_groups_value_eq(api, org):
    assert user_names(api, f'groups.value eq "{org["g1"]["id"]}"') == {"member1", "member2"}
    assert user_names(api, f'groups.value eq "{org["g2"]["id"]}"') == {"member1"}
    assert user_names(api, f'groups.value eq "{org["g3"]["id"]}"') == set()
    assert user_names(api, "groups pr") == {"member1", "member2"}
    assert user_names(api, f'groups[value eq "{org["g2"]["id"]}"]') == {"member1"}


# ------------------------------------------------------------ encodings, .search


def test_entra_plus_encoded_spaces(api, people):
    response = api.get("/Users?filter=userName+eq+%22alice%22")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["totalResults"] == 1
    assert body["Resources"][0]["userName"] == "alice"


def test_entra_plus_encoded_external_id_and_group(api, people):
    response = api.get("/Users?filter=externalId+eq+%22EXT-bob%22")
    assert response.status_code == 200
    assert [r["userName"] for r in response.get_json()["Resources"]] == ["bob"]
    api.create_group("Sales Team")
    response = api.get("/Groups?filter=displayName+eq+%22Sales+Team%22&excludedAttributes=members")
    assert response.status_code == 200
    assert [r["displayName"] for r in response.get_json()["Resources"]] == ["Sales Team"]


def test_percent_encoded_filter(api, people):
    response = api.get("/Users?filter=userName%20eq%20%22carol%22")
    assert response.status_code == 200
    assert [r["userName"] for r in response.get_json()["Resources"]] == ["carol"]


def test_post_users_search(api, people):
    response = api.post("/Users/.search", json={
        "schemas": [SEARCH], "filter": 'title eq "Engineer"', "startIndex": 1, "count": 10})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 2
    assert {r["userName"] for r in body["Resources"]} == {"alice", "dave"}


def test_post_users_search_with_attributes_and_sort(api, people):
    response = api.post("/Users/.search", json={
        "schemas": [SEARCH], "filter": "active eq true", "sortBy": "userName", "sortOrder": "descending",
        "attributes": ["userName"]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [r["userName"] for r in body["Resources"]] == ["dave", "carol", "alice"]
    for r in body["Resources"]:
        assert "displayName" not in r and "emails" not in r


def test_post_users_search_invalid_filter(api, people):
    response = api.post("/Users/.search", json={"schemas": [SEARCH], "filter": "userName eq"})
    assert_scim_error(response, 400, "invalidFilter")


def test_post_groups_search(api, org):
    response = api.post("/Groups/.search", json={
        "schemas": [SEARCH], "filter": f'members.value eq "{org["u2"]["id"]}"'})
    assert response.status_code == 200, response.get_json()
    assert [r["displayName"] for r in response.get_json()["Resources"]] == ["Developers"]


def test_post_root_search(api, people):
    api.create_group("Alice Andersen")  # same displayName as the user alice
    response = api.post("/.search", json={"schemas": [SEARCH], "filter": 'displayName eq "Alice Andersen"'})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 2
    kinds = sorted(r["meta"]["resourceType"] for r in body["Resources"])
    assert kinds == ["Group", "User"]
    schemas = {s for r in body["Resources"] for s in r["schemas"]}
    assert CORE_USER in schemas and CORE_GROUP in schemas


def test_post_root_search_user_only_attribute(api, people):
    api.create_group("alice")
    response = api.post("/.search", json={"schemas": [SEARCH], "filter": 'userName eq "alice"'})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["totalResults"] == 1
    assert body["Resources"][0]["id"] == people["alice"]["id"]


def test_search_without_search_request_schema_is_rejected(api, people):
    response = api.post("/Users/.search", json={"filter": 'userName eq "alice"'})
    assert_scim_error(response, 400)


# ------------------------------------------------- one compiled statement per filter shape


def test_same_shape_new_values_match_their_own_resources(api, people):
    """A filter is compiled once per shape and its values bound per request: every value of
    a shape must still find exactly its own resources, escapes and case folding included."""
    assert user_names(api, 'userName eq "alice"') == {"alice"}
    assert user_names(api, 'userName eq "BOB"') == {"bob"}
    assert user_names(api, 'userName eq "nobody"') == set()
    assert user_names(api, 'emails[type eq "work" and value co "@x.dk"]') == {"alice", "carol"}
    assert user_names(api, 'emails[type eq "home" and value co "@x.dk"]') == {"bob"}
    assert user_names(api, 'displayName co "%"') == set()  # a LIKE wildcard in a value stays literal
    assert user_names(api, 'displayName co "Berg"') == {"bob"}


def test_placeholder_lookalike_values_are_values(api):
    """The shape's placeholders ("#0", "#1") cannot be confused with values that look like them."""
    api.create_user("#0")
    api.create_user("#1")
    assert user_names(api, 'userName eq "#1"') == {"#1"}
    assert user_names(api, 'userName eq "#1" or userName eq "#0"') == {"#0", "#1"}
    assert user_names(api, 'userName eq "x" or userName eq "#0"') == {"#0"}


def test_a_bad_value_of_a_known_shape_is_still_invalid_filter(api, people):
    assert user_names(api, 'meta.created gt "2000-01-01T00:00:00Z"') == ALL
    bad_filter(api, 'meta.created gt "not a date"')
    assert user_names(api, "active eq true") == {"alice", "carol", "dave"}
    bad_filter(api, 'active eq "true"')  # quoted: a string, not a boolean
    bad_filter(api, 'displayName eq "x" and active co "t"')  # co is no boolean operator


def test_malformed_string_escape_is_invalid_filter(api, people):
    bad_filter(api, 'userName eq "a\\qb"')  # \q is no JSON escape
    bad_filter(api, 'userName eq "unterminated')
