"""plan2learn user master data through the HTTP API: ean, employments (the same
records as org-unit Group memberships), orgUnits, managerChain, effectiveEan and
the enterprise manager, in POST, PUT, PATCH, filters, sorting and projection."""
from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest

from conftest import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE,
    P2L_GROUP,
    P2L_USER,
    assert_scim_error,
    create_unit,
    filter_list,
    get_json,
    ids,
)

get = get_json
unit = create_unit

MANAGER = f"{ENTERPRISE}:manager"
EMPLOYMENTS = f"{P2L_USER}:employments"


def ean13(body12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


EAN_ROOT = ean13("579000000001")
EAN_DEPT = ean13("579000000002")
EAN_USER = ean13("579000000003")
BAD_CHECK = EAN_USER[:-1] + str((int(EAN_USER[-1]) + 1) % 10)


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def search(api, expression, extra=""):
    return filter_list(api, "Users", expression, extra)


def p2l(user):
    return user.get(P2L_USER) or {}


def employments(api, user_id):
    return {e["value"]: e for e in p2l(get(api, f"/Users/{user_id}")).get("employments") or []}


def member_ids(api, group_id):
    return {m["value"] for m in get(api, f"/Groups/{group_id}").get("members") or []}


def ok(response):
    assert response.status_code in (200, 204), (response.status_code, response.get_data(as_text=True))
    return response


def user_body(user_name, **attrs):
    return {"schemas": [CORE_USER], "userName": user_name, **attrs}


@pytest.fixture
def tree(api):
    """root(EAN_ROOT) > dept(EAN_DEPT) > team ; root > other"""
    root = unit(api, "Kommune", ean=EAN_ROOT)
    dept = unit(api, "Skole", parent=root["id"], ean=EAN_DEPT)
    team = unit(api, "Indskoling", parent=dept["id"])
    other = unit(api, "Sundhed", parent=root["id"])
    return {"root": root, "dept": dept, "team": team, "other": other}


# ------------------------------------------------------------------ ean


def test_user_ean_valid_is_stored(api):
    user = api.create_user("a@k.dk", **{P2L_USER: {"ean": EAN_USER}})
    assert user[P2L_USER]["ean"] == EAN_USER
    assert P2L_USER in user["schemas"]
    assert get(api, f"/Users/{user['id']}")[P2L_USER]["ean"] == EAN_USER


@pytest.mark.parametrize("bad", [BAD_CHECK, "123", "57900000000301", "57900000000a1"])
def test_user_ean_invalid_on_post(api, bad):
    r = api.post("/Users", json=user_body("a@k.dk", **{P2L_USER: {"ean": bad}}))
    assert "ean" in assert_scim_error(r, 400, "invalidValue")["detail"]


def test_user_ean_invalid_on_put_and_patch(api):
    user = api.create_user("a@k.dk", **{P2L_USER: {"ean": EAN_USER}})
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{P2L_USER}:ean", "value": BAD_CHECK})
    assert "ean" in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = api.put(f"/Users/{user['id']}", json=user_body("a@k.dk", **{P2L_USER: {"ean": BAD_CHECK}}))
    assert "ean" in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "value": {f"{P2L_USER}:ean": BAD_CHECK}})
    assert "ean" in assert_scim_error(r, 400, "invalidValue")["detail"]
    assert get(api, f"/Users/{user['id']}")[P2L_USER]["ean"] == EAN_USER


# ------------------------------------------------------------------ employments


def test_employment_round_trip(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{
        "value": tree["team"]["id"], "title": "Lærer", "primary": True,
        "startDate": "2020-08-01T00:00:00Z", "endDate": "2099-07-31T00:00:00Z"}]}})
    [emp] = user[P2L_USER]["employments"]
    assert emp["value"] == tree["team"]["id"]
    assert emp["display"] == "Indskoling"
    assert emp["$ref"].endswith(f"/Groups/{tree['team']['id']}")
    assert emp["title"] == "Lærer"
    assert emp["primary"] is True
    assert parse(emp["startDate"]) == dt.datetime(2020, 8, 1, tzinfo=dt.UTC)
    assert parse(emp["endDate"]) == dt.datetime(2099, 7, 31, tzinfo=dt.UTC)
    assert user["active"] is True
    assert employments(api, user["id"]) == {tree["team"]["id"]: emp}


def test_every_read_renders_a_users_groups_and_employments_alike(api, tree):
    """GET by id and a page of a list read a user's memberships with the user (a JSON array per
    row); a write's response reads them on their own. All of them give the same groups, in
    name order, with the same employment details (dates to the microsecond)."""
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "title": "Lærer", "primary": True, "startDate": "2020-08-01T07:30:15.25Z"},
        {"value": tree["other"]["id"], "title": "Sygeplejerske", "endDate": "2099-07-31T00:00:00Z"}]}})
    plain = api.create_group("Ægir")
    ok(api.patch_ops(f"/Groups/{plain['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}))
    written = ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "x"})).get_json()
    by_id = get(api, f"/Users/{user['id']}")
    [found] = search(api, 'userName eq "a@k.dk"')["Resources"]
    [listed] = [u for u in get(api, "/Users?count=50")["Resources"] if u["id"] == user["id"]]
    for body in (by_id, found, listed):
        assert body["groups"] == written["groups"]
        assert body[P2L_USER] == written[P2L_USER]
        assert body["meta"]["version"] == written["meta"]["version"]
    assert [g["display"] for g in by_id["groups"]] == ["Indskoling", "Sundhed", "Ægir"]
    jobs = {e["display"]: e for e in by_id[P2L_USER]["employments"]}
    assert parse(jobs["Indskoling"]["startDate"]) == dt.datetime(2020, 8, 1, 7, 30, 15, 250000, tzinfo=dt.UTC)
    assert parse(jobs["Sundhed"]["endDate"]) == dt.datetime(2099, 7, 31, tzinfo=dt.UTC)
    assert jobs["Indskoling"]["primary"] is True and jobs["Sundhed"]["primary"] is False


def test_employment_display_is_readonly(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "display": "Forged"}]}})
    assert user[P2L_USER]["employments"][0]["display"] == "Indskoling"


def test_employment_in_unknown_unit_is_rejected(api):
    r = api.post("/Users", json=user_body("a@k.dk", **{P2L_USER: {"employments": [
        {"value": "00000000-0000-0000-0000-000000000000"}]}}))
    assert_scim_error(r, 400, "invalidValue")


def test_employment_in_plain_group_is_rejected(api):
    plain = api.create_group("Not an org unit")
    r = api.post("/Users", json=user_body("a@k.dk", **{P2L_USER: {"employments": [{"value": plain["id"]}]}}))
    assert_scim_error(r, 400, "invalidValue")


def test_employment_in_other_tenants_unit_is_rejected(api, other_api):
    foreign = unit(other_api, "Globex")
    r = api.post("/Users", json=user_body("a@k.dk", **{P2L_USER: {"employments": [{"value": foreign["id"]}]}}))
    assert_scim_error(r, 400, "invalidValue")
    user = api.create_user("b@k.dk")
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": EMPLOYMENTS, "value": [{"value": foreign["id"]}]})
    assert_scim_error(r, 400, "invalidValue")
    assert member_ids(other_api, foreign["id"]) == set()


def test_employment_invalid_date_is_rejected(api, tree):
    r = api.post("/Users", json=user_body("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "startDate": "not a date"}]}}))
    assert_scim_error(r, 400)


def test_at_most_one_primary_employment_on_post(api, tree):
    r = api.post("/Users", json=user_body("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "primary": True}, {"value": tree["other"]["id"], "primary": True}]}}))
    if r.status_code == 201:
        emps = r.get_json()[P2L_USER]["employments"]
        assert sum(1 for e in emps if e.get("primary")) <= 1, emps
    else:
        assert_scim_error(r, 400)


def test_patch_add_primary_employment_clears_previous_primary(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "primary": True}]}})
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": EMPLOYMENTS,
                                              "value": [{"value": tree["other"]["id"], "primary": True}]}))
    emps = employments(api, user["id"])
    assert set(emps) == {tree["team"]["id"], tree["other"]["id"]}
    assert [k for k, e in emps.items() if e.get("primary")] == [tree["other"]["id"]]


def test_patch_employment_subattribute_by_value_filter(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "title": "Lærer", "primary": True}, {"value": tree["other"]["id"]}]}})
    ok(api.patch_ops(f"/Users/{user['id']}",
                     {"op": "replace", "path": f'{EMPLOYMENTS}[value eq "{tree["team"]["id"]}"].title',
                      "value": "Skoleleder"},
                     {"op": "replace", "path": f'{EMPLOYMENTS}[value eq "{tree["other"]["id"]}"].endDate',
                      "value": "2098-01-01T00:00:00Z"}))
    emps = employments(api, user["id"])
    assert emps[tree["team"]["id"]]["title"] == "Skoleleder"
    assert emps[tree["team"]["id"]]["primary"] is True
    assert not emps[tree["team"]["id"]].get("endDate")
    assert parse(emps[tree["other"]["id"]]["endDate"]) == dt.datetime(2098, 1, 1, tzinfo=dt.UTC)


def test_patch_remove_employment_by_filter(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "primary": True}, {"value": tree["other"]["id"]}]}})
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": f'{EMPLOYMENTS}[value eq "{tree["other"]["id"]}"]'}))
    assert set(employments(api, user["id"])) == {tree["team"]["id"]}
    assert member_ids(api, tree["other"]["id"]) == set()
    assert member_ids(api, tree["team"]["id"]) == {user["id"]}


def test_put_replaces_employments(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "primary": True}]}})
    r = api.put(f"/Users/{user['id']}", json=user_body("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["other"]["id"], "primary": True, "title": "SOSU"}]}}))
    assert r.status_code == 200, r.get_json()
    assert set(employments(api, user["id"])) == {tree["other"]["id"]}
    assert member_ids(api, tree["team"]["id"]) == set()
    assert member_ids(api, tree["other"]["id"]) == {user["id"]}


# ------------------------------------------------------------------ employment == membership


def test_employment_written_on_user_is_membership_on_group(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"]}]}})
    assert member_ids(api, tree["team"]["id"]) == {user["id"]}
    got = get(api, f"/Users/{user['id']}")
    assert tree["team"]["id"] in {g["value"] for g in got.get("groups") or []}
    body = get(api, f'/Groups?filter={quote("members.value eq " + chr(34) + user["id"] + chr(34))}')
    assert ids(body) == {tree["team"]["id"]}


def test_membership_written_on_group_is_employment_on_user(api, tree):
    user = api.create_user("a@k.dk")
    ok(api.patch_ops(f"/Groups/{tree['team']['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}))
    emps = employments(api, user["id"])
    assert set(emps) == {tree["team"]["id"]}
    assert emps[tree["team"]["id"]]["display"] == "Indskoling"
    got = get(api, f"/Users/{user['id']}")
    assert {u["value"] for u in p2l(got)["orgUnits"]} == {tree["root"]["id"], tree["dept"]["id"], tree["team"]["id"]}
    assert ids(search(api, f'{P2L_USER}:orgUnits.value eq "{tree["root"]["id"]}"')) == {user["id"]}


def test_removing_membership_on_group_removes_employment(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "primary": True}, {"value": tree["other"]["id"]}]}})
    ok(api.patch_ops(f"/Groups/{tree['team']['id']}",
                     {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}))
    assert set(employments(api, user["id"])) == {tree["other"]["id"]}
    assert tree["dept"]["id"] not in {u["value"] for u in p2l(get(api, f"/Users/{user['id']}"))["orgUnits"]}


def test_removing_employment_on_user_removes_membership(api, tree):
    user = api.create_user("a@k.dk")
    ok(api.patch_ops(f"/Groups/{tree['team']['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}))
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": EMPLOYMENTS}))
    assert member_ids(api, tree["team"]["id"]) == set()
    assert not p2l(get(api, f"/Users/{user['id']}")).get("employments")


def test_group_put_members_replaces_employments(api, tree):
    a = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "title": "Lærer"}]}})
    b = api.create_user("b@k.dk")
    r = api.put(f"/Groups/{tree['team']['id']}", json={
        "schemas": [CORE_GROUP, P2L_GROUP], "displayName": "Indskoling", "members": [{"value": b["id"]}],
        P2L_GROUP: {"unitCode": "INDSKOLING", "unitType": "team", "parent": {"value": tree["dept"]["id"]}}})
    assert r.status_code == 200, r.get_json()
    assert not employments(api, a["id"])
    assert set(employments(api, b["id"])) == {tree["team"]["id"]}


def test_group_membership_keeps_employment_details(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "title": "Lærer", "startDate": "2021-01-01T00:00:00Z"}]}})
    # a group PATCH touching another member must not rewrite this employment
    other = api.create_user("b@k.dk")
    ok(api.patch_ops(f"/Groups/{tree['team']['id']}", {"op": "add", "path": "members", "value": [{"value": other["id"]}]}))
    emp = employments(api, user["id"])[tree["team"]["id"]]
    assert emp["title"] == "Lærer"
    assert parse(emp["startDate"]) == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    assert member_ids(api, tree["team"]["id"]) == {user["id"], other["id"]}


def test_deleting_user_removes_membership(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"]}]}})
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    assert member_ids(api, tree["team"]["id"]) == set()


# ------------------------------------------------------------------ orgUnits


def test_org_units_union_of_all_employments_and_ancestors(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["team"]["id"], "primary": True}, {"value": tree["other"]["id"]}]}})
    units = p2l(get(api, f"/Users/{user['id']}"))["orgUnits"]
    values = [u["value"] for u in units]
    assert len(values) == len(set(values)), units  # the shared root only once
    assert set(values) == {tree[k]["id"] for k in ("root", "dept", "team", "other")}
    assert {u["value"]: u["display"] for u in units}[tree["dept"]["id"]] == "Skole"


def test_org_units_readonly_is_ignored(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"orgUnits": [{"value": tree["team"]["id"]}],
                                                   "managerChain": [{"value": "x"}], "effectiveEan": EAN_USER}})
    got = p2l(get(api, f"/Users/{user['id']}"))
    assert not got.get("orgUnits")
    assert not got.get("managerChain")
    assert not got.get("effectiveEan")
    assert member_ids(api, tree["team"]["id"]) == set()


def test_org_units_filter_finds_subtree(api, tree):
    t = api.create_user("t@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"]}]}})
    d = api.create_user("d@k.dk", **{P2L_USER: {"employments": [{"value": tree["dept"]["id"]}]}})
    o = api.create_user("o@k.dk", **{P2L_USER: {"employments": [{"value": tree["other"]["id"]}]}})
    api.create_user("none@k.dk")
    assert ids(search(api, f'{P2L_USER}:orgUnits.value eq "{tree["root"]["id"]}"')) == {t["id"], d["id"], o["id"]}
    assert ids(search(api, f'{P2L_USER}:orgUnits.value eq "{tree["dept"]["id"]}"')) == {t["id"], d["id"]}
    assert ids(search(api, f'{P2L_USER}:orgUnits.value eq "{tree["team"]["id"]}"')) == {t["id"]}
    assert ids(search(api, f'{P2L_USER}:orgUnits[value eq "{tree["other"]["id"]}"]')) == {o["id"]}
    body = search(api, f'{P2L_USER}:orgUnits.value eq "{tree["root"]["id"]}" and userName sw "t"')
    assert ids(body) == {t["id"]}


def test_employment_filters(api, tree):
    t = api.create_user("t@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "title": "Lærer",
                                                                 "primary": True}]}})
    o = api.create_user("o@k.dk", **{P2L_USER: {"employments": [{"value": tree["other"]["id"], "title": "SOSU"}]}})
    assert ids(search(api, f'{EMPLOYMENTS}.value eq "{tree["team"]["id"]}"')) == {t["id"]}
    assert ids(search(api, f'{EMPLOYMENTS}.title eq "SOSU"')) == {o["id"]}
    assert ids(search(api, f'{EMPLOYMENTS}[value eq "{tree["team"]["id"]}" and primary eq true]')) == {t["id"]}
    assert ids(search(api, f'{EMPLOYMENTS}[value eq "{tree["other"]["id"]}" and primary eq true]')) == set()


# ------------------------------------------------------------------ effectiveEan


def test_effective_ean_nearest_unit_from_primary(api, tree):
    in_team = api.create_user("t@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "primary": True}]}})
    in_other = api.create_user("o@k.dk", **{P2L_USER: {"employments": [{"value": tree["other"]["id"], "primary": True}]}})
    own = api.create_user("own@k.dk", **{P2L_USER: {"ean": EAN_USER, "employments": [{"value": tree["team"]["id"]}]}})
    assert p2l(get(api, f"/Users/{in_team['id']}"))["effectiveEan"] == EAN_DEPT
    assert p2l(get(api, f"/Users/{in_other['id']}"))["effectiveEan"] == EAN_ROOT
    assert p2l(get(api, f"/Users/{own['id']}"))["effectiveEan"] == EAN_USER


def test_effective_ean_uses_primary_not_other_employments(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [
        {"value": tree["other"]["id"], "primary": True}, {"value": tree["team"]["id"]}]}})
    assert p2l(get(api, f"/Users/{user['id']}"))["effectiveEan"] == EAN_ROOT
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f'{EMPLOYMENTS}[value eq "{tree["team"]["id"]}"].primary',
                                              "value": True}))
    assert p2l(get(api, f"/Users/{user['id']}"))["effectiveEan"] == EAN_DEPT


def test_effective_ean_follows_unit_changes(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "primary": True}]}})
    ok(api.patch_ops(f"/Groups/{tree['dept']['id']}", {"op": "remove", "path": f"{P2L_GROUP}:ean"}))
    assert p2l(get(api, f"/Users/{user['id']}"))["effectiveEan"] == EAN_ROOT
    new = ean13("579000000009")
    ok(api.patch_ops(f"/Groups/{tree['team']['id']}", {"op": "add", "path": f"{P2L_GROUP}:ean", "value": new}))
    assert p2l(get(api, f"/Users/{user['id']}"))["effectiveEan"] == new
    # own ean wins, removing it falls back
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": f"{P2L_USER}:ean", "value": EAN_USER}))
    assert p2l(get(api, f"/Users/{user['id']}"))["effectiveEan"] == EAN_USER
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": f"{P2L_USER}:ean"}))
    assert p2l(get(api, f"/Users/{user['id']}"))["effectiveEan"] == new


def test_effective_ean_follows_a_move(api, tree):
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "primary": True}]}})
    ok(api.patch_ops(f"/Groups/{tree['team']['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent",
                                                       "value": {"value": tree["other"]["id"]}}))
    assert p2l(get(api, f"/Users/{user['id']}"))["effectiveEan"] == EAN_ROOT


def test_effective_ean_absent_without_any(api):
    bare = unit(api, "No EAN")
    user = api.create_user("a@k.dk", **{P2L_USER: {"employments": [{"value": bare["id"], "primary": True}]}})
    assert not p2l(get(api, f"/Users/{user['id']}")).get("effectiveEan")
    assert not p2l(get(api, f"/Users/{api.create_user('b@k.dk')['id']}")).get("effectiveEan")


def test_filter_and_sort_on_effective_ean_and_ean(api, tree):
    t = api.create_user("t@k.dk", **{P2L_USER: {"employments": [{"value": tree["team"]["id"], "primary": True}]}})
    o = api.create_user("o@k.dk", **{P2L_USER: {"employments": [{"value": tree["other"]["id"], "primary": True}]}})
    own = api.create_user("own@k.dk", **{P2L_USER: {"ean": EAN_USER}})
    assert ids(search(api, f'{P2L_USER}:effectiveEan eq "{EAN_DEPT}"')) == {t["id"]}
    assert ids(search(api, f'{P2L_USER}:effectiveEan eq "{EAN_USER}"')) == {own["id"]}
    assert ids(search(api, f'{P2L_USER}:ean eq "{EAN_USER}"')) == {own["id"]}
    assert ids(search(api, f'{P2L_USER}:ean pr')) == {own["id"]}
    body = get(api, f"/Users?sortBy={quote(P2L_USER + ':effectiveEan')}")
    assert [u["id"] for u in body["Resources"]] == [o["id"], t["id"], own["id"]]  # EAN_ROOT < EAN_DEPT < EAN_USER
    body = get(api, f"/Users?sortBy={quote(P2L_USER + ':effectiveEan')}&sortOrder=descending")
    assert [u["id"] for u in body["Resources"]] == [own["id"], t["id"], o["id"]]


def test_sort_by_user_ean(api):
    eans = [ean13("579000000005"), ean13("579000000004"), ean13("579000000006")]
    for i, e in enumerate(eans):
        api.create_user(f"u{i}@k.dk", **{P2L_USER: {"ean": e}})
    body = get(api, f"/Users?sortBy={quote(P2L_USER + ':ean')}")
    assert [u[P2L_USER]["ean"] for u in body["Resources"]] == sorted(eans)


# ------------------------------------------------------------------ manager and managerChain


def chain(api, user_id):
    return [m["value"] for m in p2l(get(api, f"/Users/{user_id}")).get("managerChain") or []]


def manager_of(api, user_id):
    return (get(api, f"/Users/{user_id}").get(ENTERPRISE) or {}).get("manager")


@pytest.fixture
def people(api):
    boss = api.create_user("boss@k.dk", displayName="Bjørn Østergaard")
    mid = api.create_user("mid@k.dk", displayName="Åse Lærkesen", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    emp = api.create_user("emp@k.dk", displayName="Æbbe Holm", **{ENTERPRISE: {"manager": {"value": mid["id"]}}})
    return {"boss": boss, "mid": mid, "emp": emp}


def test_manager_display_name_and_ref_filled(api, people):
    manager = manager_of(api, people["emp"]["id"])
    assert manager["value"] == people["mid"]["id"]
    assert manager["displayName"] == "Åse Lærkesen"
    assert manager["$ref"].endswith(f"/Users/{people['mid']['id']}")
    assert people["emp"][ENTERPRISE]["manager"]["displayName"] == "Åse Lærkesen"


def test_manager_chain(api, people):
    assert chain(api, people["emp"]["id"]) == [people["mid"]["id"], people["boss"]["id"]]
    assert chain(api, people["mid"]["id"]) == [people["boss"]["id"]]
    assert chain(api, people["boss"]["id"]) == []
    mc = p2l(get(api, f"/Users/{people['emp']['id']}"))["managerChain"]
    assert [m["display"] for m in mc] == ["Åse Lærkesen", "Bjørn Østergaard"]


def test_reports_filters(api, people):
    assert ids(search(api, f'{P2L_USER}:managerChain.value eq "{people["boss"]["id"]}"')) == {
        people["mid"]["id"], people["emp"]["id"]}
    assert ids(search(api, f'{ENTERPRISE}:manager.value eq "{people["boss"]["id"]}"')) == {people["mid"]["id"]}
    assert ids(search(api, f'{P2L_USER}:managerChain.value eq "{people["emp"]["id"]}"')) == set()


def test_manager_chain_follows_middle_manager_change(api, people):
    top = api.create_user("top@k.dk", displayName="Top")
    ok(api.patch_ops(f"/Users/{people['boss']['id']}", {"op": "add", "path": MANAGER, "value": {"value": top["id"]}}))
    assert chain(api, people["emp"]["id"]) == [people["mid"]["id"], people["boss"]["id"], top["id"]]
    assert ids(search(api, f'{P2L_USER}:managerChain.value eq "{top["id"]}"')) == {
        people["boss"]["id"], people["mid"]["id"], people["emp"]["id"]}
    ok(api.patch_ops(f"/Users/{people['mid']['id']}", {"op": "replace", "path": MANAGER, "value": {"value": top["id"]}}))
    assert chain(api, people["emp"]["id"]) == [people["mid"]["id"], top["id"]]


def test_manager_display_name_follows_rename(api, people):
    ok(api.patch_ops(f"/Users/{people['mid']['id']}", {"op": "replace", "path": "displayName", "value": "Åse Ny"}))
    assert manager_of(api, people["emp"]["id"])["displayName"] == "Åse Ny"
    assert p2l(get(api, f"/Users/{people['emp']['id']}"))["managerChain"][0]["display"] == "Åse Ny"


@pytest.mark.parametrize("form", ["bare", "object", "no-path", "capitalised-op"])
def test_entra_forms_of_setting_manager(api, form):
    boss = api.create_user("boss@k.dk", displayName="Boss")
    emp = api.create_user("emp@k.dk")
    op = {"bare": {"op": "replace", "path": MANAGER, "value": boss["id"]},
          "object": {"op": "add", "path": MANAGER, "value": {"value": boss["id"]}},
          "no-path": {"op": "add", "value": {MANAGER: boss["id"]}},
          "capitalised-op": {"op": "Replace", "path": MANAGER, "value": boss["id"]}}[form]
    ok(api.patch_ops(f"/Users/{emp['id']}", op))
    manager = manager_of(api, emp["id"])
    assert manager["value"] == boss["id"]
    assert manager["displayName"] == "Boss"
    assert chain(api, emp["id"]) == [boss["id"]]


@pytest.mark.parametrize("form", ["empty-string", "empty-value-object", "remove", "null-no-path"])
def test_entra_forms_of_clearing_manager(api, people, form):
    op = {"empty-string": {"op": "replace", "path": MANAGER, "value": ""},
          "empty-value-object": {"op": "replace", "path": MANAGER, "value": {"value": ""}},
          "remove": {"op": "remove", "path": MANAGER},
          "null-no-path": {"op": "replace", "value": {MANAGER: ""}}}[form]
    ok(api.patch_ops(f"/Users/{people['emp']['id']}", op))
    assert not manager_of(api, people["emp"]["id"])
    assert chain(api, people["emp"]["id"]) == []
    assert ids(search(api, f'{P2L_USER}:managerChain.value eq "{people["boss"]["id"]}"')) == {people["mid"]["id"]}


def test_manager_set_on_post_as_bare_string(api):
    boss = api.create_user("boss@k.dk", displayName="Boss")
    emp = api.create_user("emp@k.dk", **{ENTERPRISE: {"manager": boss["id"]}})
    assert emp[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert chain(api, emp["id"]) == [boss["id"]]


def test_deleting_user_clears_manager_of_direct_reports(api, people):
    assert api.delete(f"/Users/{people['mid']['id']}").status_code == 204
    assert not manager_of(api, people["emp"]["id"])
    assert chain(api, people["emp"]["id"]) == []
    assert ids(search(api, f'{P2L_USER}:managerChain.value eq "{people["boss"]["id"]}"')) == set()
    assert ids(search(api, f'{ENTERPRISE}:manager.value eq "{people["mid"]["id"]}"')) == set()


def test_unknown_manager_is_rejected(api):
    emp = api.create_user("emp@k.dk")
    r = api.patch_ops(f"/Users/{emp['id']}", {"op": "replace", "path": MANAGER,
                                              "value": "00000000-0000-0000-0000-000000000000"})
    assert_scim_error(r, 400, "invalidValue")
    r = api.post("/Users", json=user_body("x@k.dk", **{ENTERPRISE: {"manager": {"value": "nobody"}}}))
    assert_scim_error(r, 400, "invalidValue")


def test_manager_deleted_while_a_report_is_created_is_invalid_value(app, api, monkeypatch):
    """A new user's manager is checked for existence without the manager tree's lock (a new
    user closes no cycle); a manager deleted between that check and the insert is caught by
    the foreign key, and named as such: not as a userName clash."""
    from sqlalchemy import text

    from scim_server.storage import hierarchy

    boss = api.create_user("boss@k.dk")
    checked = hierarchy.check_manager

    def check_then_delete(session, tenant_id, user, manager_id, new=False):
        checked(session, tenant_id, user, manager_id, new=new)
        with app.extensions["scim_engine"].begin() as other:  # another request, committed first
            other.execute(text("DELETE FROM users WHERE id = :id"), {"id": manager_id})

    monkeypatch.setattr(hierarchy, "check_manager", check_then_delete)
    r = api.post("/Users", json=user_body("emp@k.dk", **{ENTERPRISE: {"manager": {"value": boss["id"]}}}))
    assert_scim_error(r, 400, "invalidValue")
    assert "manager" in r.get_json()["detail"]
    assert api.get('/Users?filter=userName eq "emp@k.dk"').get_json()["totalResults"] == 0


def test_manager_from_other_tenant_is_rejected(api, other_api):
    foreign = other_api.create_user("boss@globex.com")
    emp = api.create_user("emp@k.dk")
    r = api.patch_ops(f"/Users/{emp['id']}", {"op": "replace", "path": MANAGER, "value": foreign["id"]})
    assert_scim_error(r, 400, "invalidValue")
    r = api.put(f"/Users/{emp['id']}", json=user_body("emp@k.dk", **{ENTERPRISE: {"manager": {"value": foreign["id"]}}}))
    assert_scim_error(r, 400, "invalidValue")
    assert not manager_of(api, emp["id"])


def test_self_manager_is_a_cycle(api):
    a = api.create_user("a@k.dk", displayName="Anna")
    r = api.patch_ops(f"/Users/{a['id']}", {"op": "replace", "path": MANAGER, "value": a["id"]})
    body = assert_scim_error(r, 400, "invalidValue")
    assert "cycle" in body["detail"].lower() or "own manager" in body["detail"].lower(), body
    assert not manager_of(api, a["id"])


def test_two_person_manager_cycle(api):
    a = api.create_user("a@k.dk", displayName="Anna")
    b = api.create_user("b@k.dk", displayName="Bent", **{ENTERPRISE: {"manager": {"value": a["id"]}}})
    r = api.patch_ops(f"/Users/{a['id']}", {"op": "replace", "path": MANAGER, "value": {"value": b["id"]}})
    body = assert_scim_error(r, 400, "invalidValue")
    assert "cycle" in body["detail"].lower()
    for person in (a, b):
        assert person["displayName"] in body["detail"] or person["id"] in body["detail"] \
            or person["userName"] in body["detail"], body["detail"]
    assert not manager_of(api, a["id"])


def test_long_manager_cycle_via_put(api, people):
    r = api.put(f"/Users/{people['boss']['id']}", json=user_body(
        "boss@k.dk", displayName="Bjørn Østergaard", **{ENTERPRISE: {"manager": {"value": people["emp"]["id"]}}}))
    body = assert_scim_error(r, 400, "invalidValue")
    assert "cycle" in body["detail"].lower()
    assert chain(api, people["emp"]["id"]) == [people["mid"]["id"], people["boss"]["id"]]


# ------------------------------------------------------------------ projection and discovery


def test_attributes_and_excluded_attributes(api, tree, people):
    ok(api.patch_ops(f"/Users/{people['emp']['id']}", {"op": "add", "path": EMPLOYMENTS,
                                                       "value": [{"value": tree["team"]["id"], "primary": True}]}))
    uid = people["emp"]["id"]
    body = get(api, f"/Users/{uid}?attributes={quote(P2L_USER + ':effectiveEan')}")
    assert body["id"] == uid
    assert body[P2L_USER] == {"effectiveEan": EAN_DEPT}
    assert "userName" not in body
    body = get(api, f"/Users/{uid}?attributes={quote(P2L_USER + ':managerChain.value')}")
    assert body[P2L_USER] == {"managerChain": [{"value": people["mid"]["id"]}, {"value": people["boss"]["id"]}]}
    body = get(api, f"/Users/{uid}?excludedAttributes={quote(P2L_USER + ':orgUnits,' + P2L_USER + ':managerChain')}")
    assert "orgUnits" not in body[P2L_USER] and "managerChain" not in body[P2L_USER]
    assert body[P2L_USER]["employments"][0]["value"] == tree["team"]["id"]
    assert body[P2L_USER]["effectiveEan"] == EAN_DEPT
    body = get(api, f"/Users?filter={quote(P2L_USER + ':orgUnits.value eq ' + chr(34) + tree['root']['id'] + chr(34))}"
                    f"&attributes={quote(P2L_USER + ':employments.title')}")
    assert body["totalResults"] == 1
    assert set(body["Resources"][0]) <= {"id", "schemas", P2L_USER}


def test_schema_endpoint_has_user_extension(api):
    body = get(api, f"/Schemas/{P2L_USER}")
    attrs = {a["name"]: a for a in body["attributes"]}
    assert set(attrs) >= {"ean", "employments", "orgUnits", "managerChain", "effectiveEan"}
    for name in ("orgUnits", "managerChain", "effectiveEan"):
        assert attrs[name]["mutability"] == "readOnly"
    subs = {s["name"]: s for s in attrs["employments"]["subAttributes"]}
    assert set(subs) >= {"value", "$ref", "display", "title", "startDate", "endDate", "primary"}
    assert subs["display"]["mutability"] == "readOnly"
    assert subs["startDate"]["type"] == "dateTime"
    rt = get(api, "/ResourceTypes/User")
    assert P2L_USER in {e["schema"] for e in rt.get("schemaExtensions") or []}


# ------------------------------------------------------------------ tenancy


def test_user_filters_do_not_leak_across_tenants(api, other_api, tree, people):
    ok(api.patch_ops(f"/Users/{people['emp']['id']}", {"op": "add", "path": EMPLOYMENTS,
                                                       "value": [{"value": tree["team"]["id"], "primary": True}]}))
    other_api.create_user("x@globex.com", **{P2L_USER: {"ean": EAN_DEPT}})
    assert search(other_api, f'{P2L_USER}:orgUnits.value eq "{tree["root"]["id"]}"')["totalResults"] == 0
    assert search(other_api, f'{P2L_USER}:managerChain.value eq "{people["boss"]["id"]}"')["totalResults"] == 0
    assert search(other_api, f'{ENTERPRISE}:manager.value eq "{people["mid"]["id"]}"')["totalResults"] == 0
    assert ids(search(api, f'{P2L_USER}:effectiveEan eq "{EAN_DEPT}"')) == {people["emp"]["id"]}
    r = other_api.patch_ops(f"/Groups/{tree['team']['id']}", {"op": "remove", "path": "members"})
    assert r.status_code == 404
    assert set(employments(api, people["emp"]["id"])) == {tree["team"]["id"]}
