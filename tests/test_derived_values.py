"""One definition per derived attribute: for a user, GET /Users/{id}, a page of GET /Users and
the filters agree on effectiveEan, orgUnits, managerChain and groups (each is defined once,
in SQL, and the read copies what the filter compares)."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from conftest import ENTERPRISE, P2L_GROUP, P2L_USER, create_unit, filter_list, get_json, ids


def ean13(body12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


EAN_ROOT, EAN_DEPT, EAN_A, EAN_B, EAN_OWN = (ean13(f"57900000010{i}") for i in range(5))
EANS = (EAN_ROOT, EAN_DEPT, EAN_A, EAN_B, EAN_OWN)


def ok(response):
    assert response.status_code in (200, 204), (response.status_code, response.get_data(as_text=True))
    return response


def search(api, expression: str) -> set[str]:
    body = filter_list(api, "Users", expression, "&count=200")
    assert body["totalResults"] == len(body["Resources"])
    return ids(body)


def job(unit: dict, **details) -> dict:
    return {"value": unit["id"], **details}


def employed(api, user_name: str, *jobs: dict, **attrs) -> dict:
    ext = {**attrs.pop(P2L_USER, {}), "employments": list(jobs)} if jobs else attrs.pop(P2L_USER, None)
    return api.create_user(user_name, **({P2L_USER: ext} if ext else {}), **attrs)


def managed_by(manager: dict) -> dict:
    return {ENTERPRISE: {"manager": {"value": manager["id"]}}}


# ------------------------------------------------------------------ effectiveEan's rule


@pytest.mark.parametrize("dated", ["2020-01-01T00:00:00Z", "1965-01-01T00:00:00Z"])
def test_an_employment_without_start_date_is_the_earliest(api, dated):
    """No startDate means employed from the beginning: that employment wins over a dated one
    on every database. GET and the filter once disagreed here (Python sorted a missing date as
    1970, SQL's ORDER BY put NULLs first on SQLite and last on PostgreSQL)."""
    a = create_unit(api, "A", ean=EAN_A)
    b = create_unit(api, "B", ean=EAN_B)
    user = employed(api, "u@k.dk", job(b, startDate=dated), job(a))  # B is written first: ids do not decide
    assert get_json(api, f"/Users/{user['id']}")[P2L_USER]["effectiveEan"] == EAN_A
    assert search(api, f'{P2L_USER}:effectiveEan eq "{EAN_A}"') == {user["id"]}
    assert search(api, f'{P2L_USER}:effectiveEan eq "{EAN_B}"') == set()


def test_the_primary_employment_wins_over_an_earlier_one(api):
    a = create_unit(api, "A", ean=EAN_A)
    b = create_unit(api, "B", ean=EAN_B)
    user = employed(api, "u@k.dk", job(a), job(b, primary=True, startDate="2024-01-01T00:00:00Z"))
    assert get_json(api, f"/Users/{user['id']}")[P2L_USER]["effectiveEan"] == EAN_B
    assert search(api, f'{P2L_USER}:effectiveEan eq "{EAN_B}"') == {user["id"]}


def test_equal_start_dates_go_to_the_employment_written_first(api):
    a = create_unit(api, "A", ean=EAN_A)
    b = create_unit(api, "B", ean=EAN_B)
    start = "2019-03-01T00:00:00Z"
    first_b = employed(api, "b@k.dk", job(b, startDate=start), job(a, startDate=start))
    first_a = employed(api, "a@k.dk", job(a, startDate=start), job(b, startDate=start))
    assert get_json(api, f"/Users/{first_b['id']}")[P2L_USER]["effectiveEan"] == EAN_B
    assert get_json(api, f"/Users/{first_a['id']}")[P2L_USER]["effectiveEan"] == EAN_A
    assert search(api, f'{P2L_USER}:effectiveEan eq "{EAN_A}"') == {first_a["id"]}


def test_a_chosen_unit_without_ean_is_not_replaced_by_another_employments(api):
    bare = create_unit(api, "Bare")
    a = create_unit(api, "A", ean=EAN_A)
    user = employed(api, "u@k.dk", job(bare, primary=True), job(a, startDate="2000-01-01T00:00:00Z"))
    assert "effectiveEan" not in get_json(api, f"/Users/{user['id']}")[P2L_USER]
    assert search(api, f'{P2L_USER}:effectiveEan eq "{EAN_A}"') == set()
    assert user["id"] in search(api, f'not ({P2L_USER}:effectiveEan pr)')


def test_a_write_response_has_the_effective_ean_the_filter_finds(api):
    a = create_unit(api, "A", ean=EAN_A)
    b = create_unit(api, "B", ean=EAN_B)
    user = employed(api, "u@k.dk", job(b, startDate="2020-01-01T00:00:00Z"))
    body = ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": f"{P2L_USER}:employments",
                                                     "value": [job(a)]})).get_json()
    assert body[P2L_USER]["effectiveEan"] == EAN_A
    assert search(api, f'{P2L_USER}:effectiveEan eq "{EAN_A}"') == {user["id"]}


# ------------------------------------------------------------------ GET, list and filter agree


@pytest.fixture
def world(api):
    """root(EAN_ROOT) > dept(EAN_DEPT) > team ; root > other ; bare ; a(EAN_A).
    Managers: lead > mid > emp > ext. Groups: All ⊃ {Staff ⊃ other (an org unit), Leads ⊃ lead}."""
    root = create_unit(api, "Kommune", ean=EAN_ROOT)
    dept = create_unit(api, "Skole", parent=root["id"], ean=EAN_DEPT)
    team = create_unit(api, "Indskoling", parent=dept["id"])
    other = create_unit(api, "Sundhed", parent=root["id"])
    bare = create_unit(api, "Uden EAN")
    a = create_unit(api, "Andet", ean=EAN_A)
    units = {"root": root, "dept": dept, "team": team, "other": other, "bare": bare, "a": a}
    lead = employed(api, "lead@k.dk", job(team, primary=True), displayName="Lead", **{P2L_USER: {"ean": EAN_OWN}})
    mid = employed(api, "mid@k.dk", job(team, startDate="2020-01-01T00:00:00Z"), job(other),
                   displayName="Mid", **managed_by(lead))
    emp = employed(api, "emp@k.dk",
                   job(dept, primary=True, startDate="2000-01-01T00:00:00Z", endDate="2001-01-01T00:00:00Z"),
                   job(bare), displayName="Emp", **managed_by(mid))
    ext = api.create_user("ext@k.dk", displayName="Ext", **managed_by(emp))
    twin = employed(api, "twin@k.dk", job(bare, primary=True), job(a, startDate="1999-01-01T00:00:00Z"))
    tie = employed(api, "tie@k.dk", job(team, startDate="2019-01-01T00:00:00Z"),
                   job(a, startDate="2019-01-01T00:00:00Z"),
                   job(other, startDate="2019-02-01T00:00:00Z", endDate="2020-01-01T00:00:00Z"))
    users = {"lead": lead, "mid": mid, "emp": emp, "ext": ext, "twin": twin, "tie": tie}
    staff = api.create_group("Staff", members=[other["id"]])
    leads = api.create_group("Leads", members=[lead["id"]])
    everyone = api.create_group("All", members=[staff["id"], leads["id"]])
    groups = {"staff": staff, "leads": leads, "all": everyone}
    return {"units": units, "users": users, "groups": groups}


def derived(body: dict) -> dict:
    """What GET says a user's derived values are."""
    ext = body.get(P2L_USER) or {}
    return {"effectiveEan": ext.get("effectiveEan"),
            "orgUnits": {u["value"] for u in ext.get("orgUnits") or []},
            "managerChain": [m["value"] for m in ext.get("managerChain") or []],
            "groups": {g["value"]: g["type"] for g in body.get("groups") or []}}


def assert_get_list_and_filters_agree(api, world) -> dict[str, dict]:
    """For every user of ``world``: the page of a list renders what GET does, and each filter
    finds the user exactly when GET shows the value. Returns what GET showed, by user name."""
    users = world["users"]
    got = {name: get_json(api, f"/Users/{u['id']}") for name, u in users.items()}
    page = {u["id"]: u for u in get_json(api, "/Users?count=200")["Resources"]}
    for name, user in users.items():
        assert page[user["id"]].get(P2L_USER) == got[name].get(P2L_USER), name
        assert page[user["id"]].get("groups") == got[name].get("groups"), name
    shown = {name: derived(body) for name, body in got.items()}

    def agree(expression: str, has) -> None:
        found = search(api, expression)
        for name, user in users.items():
            assert (user["id"] in found) == has(shown[name]), (expression, name, shown[name])

    for ean in EANS:
        agree(f'{P2L_USER}:effectiveEan eq "{ean}"', lambda d, ean=ean: d["effectiveEan"] == ean)
    agree(f"{P2L_USER}:effectiveEan pr", lambda d: d["effectiveEan"] is not None)
    for unit in world["units"].values():
        agree(f'{P2L_USER}:orgUnits.value eq "{unit["id"]}"', lambda d, u=unit["id"]: u in d["orgUnits"])
        agree(f'{P2L_USER}:orgUnits.display eq "{unit["displayName"]}"', lambda d, u=unit["id"]: u in d["orgUnits"])
    agree(f"{P2L_USER}:orgUnits pr", lambda d: bool(d["orgUnits"]))
    for person in users.values():
        agree(f'{P2L_USER}:managerChain.value eq "{person["id"]}"',
              lambda d, p=person["id"]: p in d["managerChain"])
    agree(f"{P2L_USER}:managerChain pr", lambda d: bool(d["managerChain"]))
    for group in [*world["groups"].values(), *world["units"].values()]:
        agree(f'groups.value eq "{group["id"]}"', lambda d, g=group["id"]: g in d["groups"])
        for kind in ("direct", "indirect"):
            agree(f'groups[value eq "{group["id"]}" and type eq "{kind}"]',
                  lambda d, g=group["id"], k=kind: d["groups"].get(g) == k)
    return shown


def test_get_list_and_filters_agree(api, world):
    shown = assert_get_list_and_filters_agree(api, world)
    units, groups, users = world["units"], world["groups"], world["users"]
    # the rule, pinned: own ean; the primary's unit (an ended employment too); the earliest
    # start (none is earliest); ties by the employment written first; a chosen unit without one
    assert {n: d["effectiveEan"] for n, d in shown.items()} == {
        "lead": EAN_OWN, "mid": EAN_ROOT, "emp": EAN_DEPT, "ext": None, "twin": None, "tie": EAN_DEPT}
    # ended employments count: emp's ended job in dept, tie's in other
    assert shown["emp"]["orgUnits"] == {units[k]["id"] for k in ("dept", "root", "bare")}
    assert shown["tie"]["orgUnits"] == {units[k]["id"] for k in ("team", "dept", "root", "a", "other")}
    assert shown["ext"]["managerChain"] == [users[k]["id"] for k in ("emp", "mid", "lead")]
    assert shown["mid"]["groups"] == {units["team"]["id"]: "direct", units["other"]["id"]: "direct",
                                      groups["staff"]["id"]: "indirect", groups["all"]["id"]: "indirect"}
    assert shown["lead"]["groups"] == {units["team"]["id"]: "direct", groups["leads"]["id"]: "direct",
                                       groups["all"]["id"]: "indirect"}


def test_they_still_agree_after_the_master_data_changes(api, world):
    units, users, groups = world["units"], world["users"], world["groups"]
    ok(api.patch_ops(f"/Groups/{units['other']['id']}", {"op": "replace", "path": f"{P2L_GROUP}:parent",
                                                         "value": {"value": units["dept"]["id"]}}))
    ok(api.patch_ops(f"/Groups/{units['dept']['id']}", {"op": "remove", "path": f"{P2L_GROUP}:ean"}))
    ok(api.patch_ops(f"/Users/{users['mid']['id']}",
                     {"op": "replace", "path": f'{P2L_USER}:employments[value eq "{units["team"]["id"]}"].primary',
                      "value": True}))
    ok(api.patch_ops(f"/Users/{users['emp']['id']}", {"op": "remove", "path": f"{ENTERPRISE}:manager"}))
    ok(api.patch_ops(f"/Groups/{groups['all']['id']}",
                     {"op": "remove", "path": f'members[value eq "{groups["staff"]["id"]}"]'}))
    ok(api.delete(f"/Users/{users['lead']['id']}"))
    del world["users"]["lead"]
    shown = assert_get_list_and_filters_agree(api, world)
    assert shown["mid"]["effectiveEan"] == EAN_ROOT  # team's nearest ean is now the root's
    assert shown["ext"]["managerChain"] == [users["emp"]["id"]]
    assert groups["all"]["id"] not in shown["mid"]["groups"]


def test_sorting_by_effective_ean_uses_the_same_value(api, world):
    body = get_json(api, f"/Users?sortBy={quote(P2L_USER + ':effectiveEan')}&count=200")
    eans = [(u.get(P2L_USER) or {}).get("effectiveEan") for u in body["Resources"]]
    present = [e for e in eans if e is not None]
    assert present == sorted(present) and eans[:len(present)] == present  # no ean sorts last
