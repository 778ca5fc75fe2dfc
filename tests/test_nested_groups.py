"""Nested groups: a user's ``groups`` lists the groups it is in through other groups with
``type: "indirect"`` (RFC 7643 §4.1.2), filters find indirect members, the group's ``members``
stays direct, and a nesting that would make a cycle is refused (400 invalidValue naming it)."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import partial

import pytest
from sqlalchemy import event

from conftest import (
    CORE_GROUP,
    P2L_USER,
    assert_scim_error,
    create_unit,
    filter_list,
    get_json,
    ids,
)


def groups_of(body: dict) -> dict[str, str]:
    """A user's groups as {group id: type}."""
    return {g["value"]: g["type"] for g in body.get("groups") or []}


def add_members(api, group_id: str, *member_ids: str):
    return api.patch_ops(f"/Groups/{group_id}", {"op": "add", "path": "members",
                                                 "value": [{"value": m} for m in member_ids]})


def ok(response):
    assert response.status_code in (200, 204), (response.status_code, response.get_data(as_text=True))
    return response


def search(api, expression: str) -> set[str]:
    return ids(filter_list(api, "Users", expression, "&count=100"))


@pytest.fixture
def nest(api):
    """Top ⊃ Outer ⊃ Inner ⊃ ann; bob is in Outer directly; cid is in no group."""
    ann = api.create_user("ann@example.com", displayName="Ann")
    bob = api.create_user("bob@example.com", displayName="Bob")
    cid = api.create_user("cid@example.com", displayName="Cid")
    inner = api.create_group("Inner", members=[ann["id"]])
    outer = api.create_group("Outer", members=[inner["id"], bob["id"]])
    top = api.create_group("Top", members=[outer["id"]])
    return {"ann": ann, "bob": bob, "cid": cid, "inner": inner, "outer": outer, "top": top}


# ------------------------------------------------------------------ read


def test_get_user_lists_indirect_groups(api, nest):
    body = get_json(api, f"/Users/{nest['ann']['id']}")
    assert groups_of(body) == {nest["inner"]["id"]: "direct", nest["outer"]["id"]: "indirect",
                               nest["top"]["id"]: "indirect"}
    # direct groups first, then the indirect ones, each in name order
    assert [g["display"] for g in body["groups"]] == ["Inner", "Outer", "Top"]
    top = body["groups"][2]
    assert top["$ref"].endswith(f"/Groups/{nest['top']['id']}")
    assert groups_of(get_json(api, f"/Users/{nest['bob']['id']}")) == {
        nest["outer"]["id"]: "direct", nest["top"]["id"]: "indirect"}
    assert "groups" not in get_json(api, f"/Users/{nest['cid']['id']}")


def test_list_and_search_list_indirect_groups_as_get_does(api, nest):
    listed = {u["id"]: u for u in get_json(api, "/Users?count=50")["Resources"]}
    found = {u["id"]: u for u in filter_list(api, "Users", 'userName sw "a"')["Resources"]}
    for user in (nest["ann"], nest["bob"], nest["cid"]):
        by_id = get_json(api, f"/Users/{user['id']}")
        assert listed[user["id"]].get("groups") == by_id.get("groups")
    assert found[nest["ann"]["id"]]["groups"] == get_json(api, f"/Users/{nest['ann']['id']}")["groups"]


def test_a_write_response_lists_indirect_groups(api, nest):
    body = ok(api.patch_ops(f"/Users/{nest['ann']['id']}", {"op": "replace", "path": "title",
                                                           "value": "Chef"})).get_json()
    assert groups_of(body)[nest["top"]["id"]] == "indirect"


def test_a_direct_membership_wins_over_an_indirect_one(api, nest):
    ok(add_members(api, nest["top"]["id"], nest["ann"]["id"]))
    body = get_json(api, f"/Users/{nest['ann']['id']}")
    assert [(g["display"], g["type"]) for g in body["groups"]] == [
        ("Inner", "direct"), ("Top", "direct"), ("Outer", "indirect")]


def test_two_paths_to_one_group_list_it_once(api, nest):
    side = api.create_group("Side", members=[nest["ann"]["id"]])
    ok(add_members(api, nest["top"]["id"], side["id"]))
    body = get_json(api, f"/Users/{nest['ann']['id']}")
    assert [g["value"] for g in body["groups"]].count(nest["top"]["id"]) == 1


def test_group_members_stay_direct(api, nest):
    outer = get_json(api, f"/Groups/{nest['outer']['id']}")
    assert {m["value"]: m["type"] for m in outer["members"]} == {nest["inner"]["id"]: "Group",
                                                                 nest["bob"]["id"]: "User"}
    assert ids(filter_list(api, "Groups", f'members.value eq "{nest["ann"]["id"]}"')) == {nest["inner"]["id"]}


def test_projection_of_groups(api, nest):
    body = get_json(api, f"/Users/{nest['ann']['id']}?attributes=groups.type")
    assert sorted(g["type"] for g in body["groups"]) == ["direct", "indirect", "indirect"]
    body = get_json(api, f"/Users/{nest['ann']['id']}?excludedAttributes=groups")
    assert "groups" not in body


# ------------------------------------------------------------------ filter


def test_filter_finds_indirect_members(api, nest):
    ann, bob = nest["ann"]["id"], nest["bob"]["id"]
    assert search(api, f'groups.value eq "{nest["top"]["id"]}"') == {ann, bob}
    assert search(api, f'groups.value eq "{nest["outer"]["id"]}"') == {ann, bob}
    assert search(api, f'groups.value eq "{nest["inner"]["id"]}"') == {ann}
    assert search(api, f'groups[value eq "{nest["top"]["id"]}"]') == {ann, bob}
    assert search(api, 'groups.display eq "top"') == {ann, bob}  # caseExact false


def test_filter_on_the_type_of_a_membership(api, nest):
    ann, bob = nest["ann"]["id"], nest["bob"]["id"]
    assert search(api, 'groups.type eq "indirect"') == {ann, bob}
    assert search(api, 'groups.type eq "direct"') == {ann, bob}
    assert search(api, f'groups[value eq "{nest["outer"]["id"]}" and type eq "indirect"]') == {ann}
    assert search(api, f'groups[value eq "{nest["outer"]["id"]}" and type eq "direct"]') == {bob}
    assert search(api, f'groups[value eq "{nest["inner"]["id"]}" and type eq "indirect"]') == set()
    assert search(api, f'not (groups.value eq "{nest["top"]["id"]}")') == {nest["cid"]["id"]}
    assert search(api, "groups pr") == {ann, bob}


def test_removing_the_nesting_removes_the_indirect_groups(api, nest):
    ann = nest["ann"]["id"]
    ok(api.patch_ops(f"/Groups/{nest['outer']['id']}",
                     {"op": "remove", "path": f'members[value eq "{nest["inner"]["id"]}"]'}))
    assert groups_of(get_json(api, f"/Users/{ann}")) == {nest["inner"]["id"]: "direct"}
    assert search(api, f'groups.value eq "{nest["top"]["id"]}"') == {nest["bob"]["id"]}
    ok(api.delete(f"/Groups/{nest['inner']['id']}"))
    assert "groups" not in get_json(api, f"/Users/{ann}")


def test_the_group_filter_keeps_to_the_tenant(api, other_api, nest):
    other_api.create_user("ann@example.com")
    assert search(other_api, 'groups.type eq "indirect"') == set()
    assert search(other_api, f'groups.value eq "{nest["top"]["id"]}"') == set()


# ------------------------------------------------------------------ org units


def test_an_org_units_parent_link_is_no_membership(api):
    root = create_unit(api, "Kommune")
    school = create_unit(api, "Skole", parent=root["id"])
    user = api.create_user("t@k.dk", **{P2L_USER: {"employments": [{"value": school["id"], "primary": True}]}})
    body = get_json(api, f"/Users/{user['id']}")
    assert groups_of(body) == {school["id"]: "direct"}
    assert {u["value"] for u in body[P2L_USER]["orgUnits"]} == {root["id"], school["id"]}
    assert search(api, f'groups.value eq "{root["id"]}"') == set()
    assert search(api, f'{P2L_USER}:orgUnits.value eq "{root["id"]}"') == {user["id"]}


def test_an_org_unit_nested_in_a_group_makes_its_employees_indirect_members(api):
    school = create_unit(api, "Skole")
    user = api.create_user("t@k.dk", **{P2L_USER: {"employments": [{"value": school["id"]}]}})
    teachers = api.create_group("Alle lærere", members=[school["id"]])
    assert groups_of(get_json(api, f"/Users/{user['id']}")) == {school["id"]: "direct",
                                                               teachers["id"]: "indirect"}
    assert search(api, f'groups.value eq "{teachers["id"]}"') == {user["id"]}
    body = get_json(api, f"/Users/{user['id']}")
    assert [e["value"] for e in body[P2L_USER]["employments"]] == [school["id"]]  # no employment there


# ------------------------------------------------------------------ cycles


def test_self_membership_is_still_refused(api):
    group = api.create_group("Solo")
    body = assert_scim_error(add_members(api, group["id"], group["id"]), 400, "invalidValue")
    assert "itself" in body["detail"]


def test_two_groups_cannot_contain_each_other(api):
    b = api.create_group("B")
    a = api.create_group("A", members=[b["id"]])
    body = assert_scim_error(add_members(api, b["id"], a["id"]), 400, "invalidValue")
    assert "'A' -> 'B' -> 'A'" in body["detail"], body["detail"]
    assert "cycle" in body["detail"]
    assert not get_json(api, f"/Groups/{b['id']}").get("members")


def test_a_three_group_cycle_is_refused_by_put_and_patch(api):
    c = api.create_group("C")
    b = api.create_group("B", members=[c["id"]])
    a = api.create_group("A", members=[b["id"]])
    body = assert_scim_error(add_members(api, c["id"], a["id"]), 400, "invalidValue")
    assert "'A' -> 'C' -> 'B' -> 'A'" in body["detail"], body["detail"]
    r = api.put(f"/Groups/{c['id']}", json={"schemas": [CORE_GROUP], "displayName": "C",
                                           "members": [{"value": a["id"]}]})
    assert "'A' -> 'C' -> 'B' -> 'A'" in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = api.patch_ops(f"/Groups/{c['id']}", {"op": "replace", "path": "members", "value": [{"value": a["id"]}]})
    assert_scim_error(r, 400, "invalidValue")
    assert not get_json(api, f"/Groups/{c['id']}").get("members")


def test_a_refused_cycle_changes_nothing_of_the_request(api):
    user = api.create_user("u@example.com")
    b = api.create_group("B")
    a = api.create_group("A", members=[b["id"]])
    before = get_json(api, f"/Groups/{b['id']}")
    r = api.patch_ops(f"/Groups/{b['id']}",
                      {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
                      {"op": "add", "path": "members", "value": [{"value": a["id"]}]})
    assert_scim_error(r, 400, "invalidValue")
    after = get_json(api, f"/Groups/{b['id']}")
    assert not after.get("members")
    assert after["meta"]["version"] == before["meta"]["version"]


def _race(*requests) -> list[int]:
    """Run the requests at the same moment; their status codes."""
    results: list[int] = []
    barrier = threading.Barrier(len(requests))

    def run(request):
        barrier.wait()
        results.append(request().status_code)

    threads = [threading.Thread(target=run, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_nestings_never_make_a_cycle(api):
    """Two requests race to put A in B and B in A: the cycle check holds the tenant's group
    nesting lock (as moves of units do), so the second sees the first and at most one wins."""
    for round_ in range(10):
        a, b = api.create_group(f"A{round_}"), api.create_group(f"B{round_}")
        results = _race(partial(add_members, api, a["id"], b["id"]), partial(add_members, api, b["id"], a["id"]))
        assert sorted(results) == [204, 400], results
        members = {g["id"]: {m["value"] for m in get_json(api, f"/Groups/{g['id']}").get("members") or []}
                   for g in (a, b)}
        assert not (b["id"] in members[a["id"]] and a["id"] in members[b["id"]]), "a group cycle was committed"


def test_a_diamond_is_no_cycle(api):
    d = api.create_group("D")
    b = api.create_group("B", members=[d["id"]])
    c = api.create_group("C", members=[d["id"]])
    a = api.create_group("A", members=[b["id"], c["id"]])
    ok(add_members(api, a["id"], d["id"]))  # a second path from D up to A: no cycle
    r = api.put(f"/Groups/{a['id']}", json={"schemas": [CORE_GROUP], "displayName": "A",
                                           "members": [{"value": b["id"]}]})
    assert r.status_code == 200, r.get_json()


def test_a_group_may_be_re_added_where_it_already_is(api):
    b = api.create_group("B")
    a = api.create_group("A", members=[b["id"]])
    ok(add_members(api, a["id"], b["id"]))
    assert [m["value"] for m in get_json(api, f"/Groups/{a['id']}")["members"]] == [b["id"]]


# ------------------------------------------------------------------ cost


@contextmanager
def statements_run(app):
    """Count the SQL statements the app runs meanwhile (both engines: reads have their own)."""
    engines = {id(e): e for e in (app.extensions["scim_engine"], app.extensions["scim_read_engine"])}
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)


def test_a_page_reads_indirect_groups_in_a_fixed_number_of_statements(app, api, nest):
    def page_cost() -> int:
        with statements_run(app) as seen:
            body = get_json(api, "/Users?count=100")
        assert all("indirect" in groups_of(u).values() for u in body["Resources"] if u.get("groups"))
        return len([s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))])

    few = page_cost()
    for i in range(6):
        user = api.create_user(f"more{i}@example.com")
        ok(add_members(api, nest["inner"]["id"] if i % 2 else nest["outer"]["id"], user["id"]))
    assert page_cost() == few
