"""The plan2learn commands of ``scim-server``: ``tenant set --org-unit-attribute``
(placing users from an enterprise attribute) and ``demo``, checked through the
HTTP API on the same database."""
from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from conftest import CORE_USER, ENTERPRISE, P2L_GROUP, P2L_USER, bearer, create_unit, get_json
from scim_server.cli import main

get = get_json


def unit(api, name, code, parent=None):
    return create_unit(api, name, parent, unitCode=code)


def ok(response):
    assert response.status_code in (200, 204), (response.status_code, response.get_data(as_text=True))
    return response


def employment_units(api, user_id):
    user = get(api, f"/Users/{user_id}")
    return {e["value"] for e in (user.get(P2L_USER) or {}).get("employments") or []}


def org_units(api, user_id):
    user = get(api, f"/Users/{user_id}")
    return {e["value"] for e in (user.get(P2L_USER) or {}).get("orgUnits") or []}


def member_ids(api, group_id):
    return {m["value"] for m in get(api, f"/Groups/{group_id}").get("members") or []}


def search_all(api, resource, expression=None, extra=""):
    """Every resource matching, following pages."""
    found, start = [], 1
    while True:
        query = f"/{resource}?count=500&startIndex={start}{extra}"
        if expression:
            query += f"&filter={quote(expression)}"
        body = get(api, query)
        found.extend(body["Resources"])
        if not body["Resources"] or len(found) >= body["totalResults"]:
            return found
        start += len(body["Resources"])


@pytest.fixture
def cli(app):
    env = {"SCIM_DATABASE_URL": app.config["SCIM"].database_url}

    def run(*args):
        return CliRunner().invoke(main, list(args), env=env)

    return run


@pytest.fixture
def units(api):
    root = unit(api, "Solbjerg Kommune", "K")
    skole = unit(api, "Solbjerg Skole", "SKOLE-1", root["id"])
    pleje = unit(api, "Plejehjemmet Solgården", "PLEJE-7", root["id"])
    return {"root": root, "skole": skole, "pleje": pleje}


# ------------------------------------------------------------------ tenant set --org-unit-attribute


def test_department_places_user_by_unit_code(api, units, cli):
    result = cli("tenant", "set", "acme", "--org-unit-attribute", "department")
    assert result.exit_code == 0, result.output
    user = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"}})
    assert employment_units(api, user["id"]) == {units["skole"]["id"]}
    assert org_units(api, user["id"]) == {units["root"]["id"], units["skole"]["id"]}
    assert member_ids(api, units["skole"]["id"]) == {user["id"]}
    body = get(api, f'/Users?filter={quote(P2L_USER + ":orgUnits.value eq " + chr(34) + units["root"]["id"] + chr(34))}')
    assert [u["id"] for u in body["Resources"]] == [user["id"]]


def test_department_matches_display_name(api, units, cli):
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    user = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "Plejehjemmet Solgården"}})
    assert employment_units(api, user["id"]) == {units["pleje"]["id"]}


def test_department_matches_unit_names_as_the_database_folds_them(api, cli):
    """Python's lower() folds a final sigma differently from PostgreSQL's: both sides of the
    match use the database's, so a department equal to a unit's name always finds it."""
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    unit = create_unit(api, "ΣΑΣ Afdeling", unitCode="ΣΑΣ")
    user = api.create_user("sigma@k.dk", **{ENTERPRISE: {"department": "ΣΑΣ"}})
    assert employment_units(api, user["id"]) == {unit["id"]}


def test_changing_department_moves_the_user(api, units, cli):
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    user = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"}})
    # Entra's forms: a path, and a path-less value
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": f"{ENTERPRISE}:department",
                                              "value": "PLEJE-7"}))
    assert employment_units(api, user["id"]) == {units["pleje"]["id"]}
    assert member_ids(api, units["skole"]["id"]) == set()
    assert member_ids(api, units["pleje"]["id"]) == {user["id"]}
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "value": {f"{ENTERPRISE}:department": "Solbjerg Skole"}}))
    assert employment_units(api, user["id"]) == {units["skole"]["id"]}


def test_department_without_match_keeps_the_placement_and_removing_it_ends_it(api, units, cli):
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    user = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"}})
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Nowhere"}))
    assert employment_units(api, user["id"]) == {units["skole"]["id"]}  # a typo ends no employment
    assert org_units(api, user["id"]) == {units["root"]["id"], units["skole"]["id"]}
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "PLEJE-7"}))
    assert employment_units(api, user["id"]) == {units["pleje"]["id"]}
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": f"{ENTERPRISE}:department"}))
    assert employment_units(api, user["id"]) == set()


def test_department_via_put(api, units, cli):
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    user = api.create_user("a@k.dk")
    r = api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER, ENTERPRISE], "userName": "a@k.dk",
                                             ENTERPRISE: {"department": "PLEJE-7"}})
    assert r.status_code == 200, r.get_json()
    assert employment_units(api, user["id"]) == {units["pleje"]["id"]}


def test_client_written_employments_are_kept(api, units, cli):
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    user = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"},
                                        P2L_USER: {"employments": [{"value": units["pleje"]["id"], "title": "SOSU"}]}})
    assert employment_units(api, user["id"]) == {units["skole"]["id"], units["pleje"]["id"]}
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": f"{ENTERPRISE}:department"}))
    assert employment_units(api, user["id"]) == {units["pleje"]["id"]}


@pytest.mark.parametrize("attribute", ["costCenter", "division", "organization"])
def test_other_attributes(api, units, cli, attribute):
    result = cli("tenant", "set", "acme", "--org-unit-attribute", attribute)
    assert result.exit_code == 0, result.output
    user = api.create_user("a@k.dk", **{ENTERPRISE: {attribute: "SKOLE-1", "department": "PLEJE-7"}})
    assert employment_units(api, user["id"]) == {units["skole"]["id"]}
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:{attribute}", "value": "PLEJE-7"}))
    assert employment_units(api, user["id"]) == {units["pleje"]["id"]}


def test_without_setting_department_places_nobody(api, units, cli):
    user = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"}})
    assert employment_units(api, user["id"]) == set()
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "none").exit_code == 0
    user = api.create_user("b@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"}})
    assert employment_units(api, user["id"]) == set()


def test_mapping_stays_in_its_tenant(api, other_api, units, cli):
    assert cli("tenant", "set", "globex", "--org-unit-attribute", "department").exit_code == 0
    theirs = other_api.create_user("x@globex.com", **{ENTERPRISE: {"department": "SKOLE-1"}})
    assert employment_units(other_api, theirs["id"]) == set()
    assert member_ids(api, units["skole"]["id"]) == set()
    mine = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "SKOLE-1"}})  # acme is not mapped
    assert employment_units(api, mine["id"]) == set()


def test_tenant_set_unknown_tenant_fails(cli, api):
    result = cli("tenant", "set", "no-such-tenant", "--org-unit-attribute", "department")
    assert result.exit_code != 0


def test_tenant_set_rejects_unknown_attribute(cli, api):
    result = cli("tenant", "set", "acme", "--org-unit-attribute", "employeeNumber")
    assert result.exit_code != 0


# ------------------------------------------------------------------ demo


DEMO_EMPLOYEES, DEMO_EXTERNALS = 200, 20


def valid_ean(value: str) -> bool:
    if len(value) != 13 or not value.isdigit():
        return False
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(value[:12]))
    return (10 - total % 10) % 10 == int(value[12])


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def demo(app, cli):
    result = cli("demo", "--tenant", "solbjerg", "--employees", str(DEMO_EMPLOYEES),
                 "--externals", str(DEMO_EXTERNALS))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token and "\n" not in token and " " not in token
    return bearer(app, token)


def test_demo_tree(demo):
    units = search_all(demo, "Groups", f"{P2L_GROUP}:unitCode pr")
    assert len(units) > 20
    roots = [u for u in units if not u[P2L_GROUP].get("parent")]
    assert len(roots) == 1
    root = roots[0]
    by_id = {u["id"]: u for u in units}
    depths = set()
    for u in units:
        anc = [a["value"] for a in u[P2L_GROUP].get("ancestors") or []]
        depths.add(len(anc) + 1)
        if u is not root:
            assert anc[0] == root["id"]
            assert anc[-1] == u[P2L_GROUP]["parent"]["value"]
            assert all(a in by_id for a in anc)
    assert max(depths) == 5
    assert depths == {1, 2, 3, 4, 5}
    codes = [u[P2L_GROUP]["unitCode"] for u in units]
    assert len(codes) == len(set(codes))
    eans = [u[P2L_GROUP]["ean"] for u in units if u[P2L_GROUP].get("ean")]
    assert eans and all(valid_ean(e) for e in eans)


def test_demo_people(demo):
    users = search_all(demo, "Users")
    employees = [u for u in users if u.get("userType") == "Employee"]
    externals = [u for u in users if u.get("userType") == "External"]
    assert len(employees) == DEMO_EMPLOYEES
    assert len(externals) == DEMO_EXTERNALS
    names = " ".join(u.get("displayName", "") + " " + u["userName"] for u in users).lower()
    assert all(ch in names for ch in "æøå")
    for e in externals:
        assert not (e.get(P2L_USER) or {}).get("employments")
        assert not (e.get(ENTERPRISE) or {}).get("manager")
    for e in employees:
        assert (e.get(P2L_USER) or {}).get("employments"), e["userName"]
    assert any((e.get(P2L_USER) or {}).get("effectiveEan") for e in employees)
    assert all(valid_ean(e[P2L_USER]["effectiveEan"]) for e in employees if e[P2L_USER].get("effectiveEan"))


def test_demo_leavers_are_inactive_and_consistent(demo):
    now = dt.datetime.now(dt.UTC)
    employees = search_all(demo, "Users", 'userType eq "Employee"')
    inactive = [u for u in employees if u["active"] is False]
    assert inactive, "the demo has some leavers"
    assert any(u["active"] for u in employees)
    for u in employees:
        emps = u[P2L_USER]["employments"]
        current = any((not e.get("startDate") or parse(e["startDate"]) <= now)
                      and (not e.get("endDate") or parse(e["endDate"]) > now) for e in emps)
        assert u["active"] is current, (u["userName"], u["active"], emps)
    assert sum(1 for u in employees for e in u[P2L_USER]["employments"] if e.get("startDate")) > len(employees) // 2
    # a leaver is someone whose employments have ended
    assert any(all(e.get("endDate") and parse(e["endDate"]) <= now for e in u[P2L_USER]["employments"])
               for u in inactive)


def test_demo_org_units_filter_on_root_finds_every_employee(demo):
    root = [u for u in search_all(demo, "Groups", f"{P2L_GROUP}:unitCode pr") if not u[P2L_GROUP].get("parent")][0]
    found = search_all(demo, "Users", f'{P2L_USER}:orgUnits.value eq "{root["id"]}"', "&attributes=userType")
    assert len(found) == DEMO_EMPLOYEES
    assert {u.get("userType") for u in found} == {"Employee"}


def test_demo_manager_chain_of_top_leader(demo):
    employees = search_all(demo, "Users", 'userType eq "Employee"')
    tops = [u for u in employees if not (u.get(ENTERPRISE) or {}).get("manager")]
    assert len(tops) == 1
    top = tops[0]
    reports = search_all(demo, "Users", f'{P2L_USER}:managerChain.value eq "{top["id"]}"')
    assert {u["id"] for u in reports} == {u["id"] for u in employees} - {top["id"]}
    direct = search_all(demo, "Users", f'{ENTERPRISE}:manager.value eq "{top["id"]}"')
    assert direct and {u["id"] for u in direct} < {u["id"] for u in reports}
    by_id = {u["id"]: u for u in employees}
    for u in employees:
        manager = (u.get(ENTERPRISE) or {}).get("manager")
        chain = [m["value"] for m in u[P2L_USER].get("managerChain") or []]
        if manager:
            assert manager["displayName"] == by_id[manager["value"]]["displayName"]
            assert chain == [manager["value"]] + [m["value"] for m in by_id[manager["value"]][P2L_USER].get("managerChain") or []]
            assert chain[-1] == top["id"]
        else:
            assert chain == []


def test_demo_memberships_match_employments(demo):
    units = search_all(demo, "Groups", f"{P2L_GROUP}:unitCode pr")
    some = sorted(units, key=lambda u: len(u.get("members") or []), reverse=True)[:3]
    for u in some:
        members = {m["value"] for m in u.get("members") or []}
        assert members
        employed = search_all(demo, "Users", f'{P2L_USER}:employments.value eq "{u["id"]}"', "&attributes=id")
        assert members == {e["id"] for e in employed}


def test_demo_tenant_is_isolated(demo, api):
    assert get(api, "/Users")["totalResults"] == 0
    assert get(api, "/Groups")["totalResults"] == 0


def test_demo_twice_into_same_tenant_fails(demo, cli):
    result = cli("demo", "--tenant", "solbjerg", "--employees", "10", "--externals", "1")
    assert result.exit_code != 0
    assert len(search_all(demo, "Users", 'userType eq "Employee"')) == DEMO_EMPLOYEES
