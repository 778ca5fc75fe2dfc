"""The org tree, the manager tree and the overview as the console reads them
(scim_server/reports/organisation.py and overview.py): data written through the SCIM API,
read by the report functions on a real session.

Every org-tree test runs three times: reading people person by person (small subtrees), in
one pass over the users table (what a subtree of more than ``MANY`` employments gets: the
headcounts summed per unit with the exceptions, users employed twice or inactive, counted
apart), and with a page of people found by reading the users in name order; all must give the
same answers.
"""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import ENTERPRISE, P2L_USER, create_unit
from scim_server.reports import organisation, overview, quality
from scim_server.storage import sources, tenants
from scim_server.storage.models import utcnow

PAST, ENDED, FUTURE = "2020-01-01T00:00:00Z", "2021-06-30T00:00:00Z", "2099-01-01T00:00:00Z"


@pytest.fixture(params=["person by person", "one pass", "in name order"])
def path(request, monkeypatch):
    if request.param != "person by person":
        monkeypatch.setattr(organisation, "MANY", 0)
        monkeypatch.setattr(organisation, "PEOPLE_MANY", {"postgresql": 0, "sqlite": 0})
        monkeypatch.setattr(organisation, "SCAN_USERS", 10**9 if request.param == "in name order" else 0)
    return request.param


@pytest.fixture
def session(app):
    with app.extensions["scim_sessions"]() as s:
        yield s


def tenant_id(session, name: str = "acme") -> int:
    return tenants.get_tenant(session, name).id


def job(unit: dict, *, primary: bool = False, title: str | None = None, start: str | None = PAST,
        end: str | None = None) -> dict:
    body = {"value": unit["id"], "primary": primary}
    body.update({k: v for k, v in (("title", title), ("startDate", start), ("endDate", end)) if v is not None})
    return body


def person(api, user_name: str, display_name: str, *jobs: dict, **attrs) -> dict:
    return api.create_user(user_name, displayName=display_name, **{P2L_USER: {"employments": list(jobs)}}, **attrs)


@pytest.fixture
def org(api):
    """Kommune > Skoler > Solbjerg Skole > Indskoling; Kommune > Sundhed; and a second root, Eksterne.

    Anna: Solbjerg Skole. Bo: Solbjerg Skole (primary, Lærer) and Indskoling (Teamleder).
    Carl: Indskoling, inactive. Dora: Skoler, and an ended job in Sundhed. Eva: Skoler, and a
    job in Sundhed that starts in 2099. Finn: Sundhed. Gitte: Kommune itself. Hans: a job in
    Sundhed that has ended only (so the leaver rule made him inactive).
    """
    root = create_unit(api, "Kommune")
    skoler = create_unit(api, "Skoler", parent=root["id"])
    skole = create_unit(api, "Solbjerg Skole", parent=skoler["id"])
    indskoling = create_unit(api, "Indskoling", parent=skole["id"])
    sundhed = create_unit(api, "Sundhed", parent=root["id"])
    eksterne = create_unit(api, "Eksterne")
    users = {
        "anna": person(api, "anna@k.dk", "Anna", job(skole, primary=True, title="Pædagog")),
        "bo": person(api, "bo@k.dk", "Bo", job(skole, primary=True, title="Lærer"),
                     job(indskoling, title="Teamleder")),
        "carl": person(api, "carl@k.dk", "Carl", job(indskoling, primary=True), active=False),
        "dora": person(api, "dora@k.dk", "Dora", job(skoler, primary=True), job(sundhed, end=ENDED)),
        "eva": person(api, "eva@k.dk", "Eva", job(skoler, primary=True), job(sundhed, start=FUTURE)),
        "finn": person(api, "finn@k.dk", "Finn", job(sundhed, primary=True, title="Sygeplejerske")),
        "gitte": person(api, "gitte@k.dk", "Gitte", job(root, primary=True, title="Direktør")),
        "hans": person(api, "hans@k.dk", "Hans", job(sundhed, primary=True, end=ENDED)),
    }
    units = {"root": root, "skoler": skoler, "skole": skole, "indskoling": indskoling, "sundhed": sundhed,
             "eksterne": eksterne}
    return {k: v["id"] for k, v in units.items()}, {k: v["id"] for k, v in users.items()}


def counts(nodes) -> dict[str, tuple[int, int, int]]:
    return {n.display_name: (n.children, n.headcount, n.subtree_headcount) for n in nodes}


# ------------------------------------------------------------------ units and headcounts


def test_roots_and_their_headcounts(session, org, path):
    units, _ = org
    nodes = organisation.units(session, tenant_id(session), None, utcnow())
    # Kommune: Gitte own; below: Anna, Bo (twice employed, once counted), Dora, Eva, Finn.
    # Carl is inactive, Hans's only job has ended: counted nowhere.
    assert counts(nodes) == {"Eksterne": (0, 0, 0), "Kommune": (2, 1, 6)}
    assert [n.display_name for n in nodes] == ["Eksterne", "Kommune"]
    kommune = nodes[1]
    assert (kommune.id, kommune.parent_id, kommune.unit_code, kommune.unit_type) == \
        (units["root"], None, "KOMMUNE", "department")


def test_children_one_level_with_own_and_subtree_headcounts(session, org, path):
    units, _ = org
    now, tid = utcnow(), tenant_id(session)
    # Sundhed: Finn only (Dora's job there has ended, Eva's has not begun, Hans is a leaver)
    assert counts(organisation.units(session, tid, units["root"], now)) == {"Skoler": (1, 2, 4), "Sundhed": (0, 1, 1)}
    # Solbjerg Skole: Anna and Bo; Bo's second job below it does not count him twice
    assert counts(organisation.units(session, tid, units["skoler"], now)) == {"Solbjerg Skole": (1, 2, 2)}
    # Indskoling: Bo (Carl is inactive)
    assert counts(organisation.units(session, tid, units["skole"], now)) == {"Indskoling": (0, 1, 1)}
    assert organisation.units(session, tid, units["indskoling"], now) == []


def test_one_unit(session, org, path):
    units, _ = org
    tid = tenant_id(session)
    node = organisation.unit(session, tid, units["skoler"], utcnow())
    assert (node.display_name, node.parent_id, node.children, node.headcount, node.subtree_headcount) == \
        ("Skoler", units["root"], 1, 2, 4)
    assert organisation.unit(session, tid, "no-such-unit", utcnow()) is None


def test_headcounts_follow_the_clock(session, org, path):
    """Before 2021-06-30 Dora still worked in Sundhed; from 2099 Eva does; before 2020 nobody did."""
    units, _ = org
    tid = tenant_id(session)
    in_2021 = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    # 2021: Finn, Dora, Hans in Sundhed (all but Hans active: his job has ended by now)
    assert counts(organisation.units(session, tid, units["root"], in_2021))["Sundhed"] == (0, 2, 2)
    in_2099 = dt.datetime(2099, 6, 1, tzinfo=dt.UTC)
    assert counts(organisation.units(session, tid, units["root"], in_2099))["Sundhed"] == (0, 2, 2)  # Finn, Eva
    in_2019 = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    assert counts(organisation.units(session, tid, None, in_2019))["Kommune"] == (2, 0, 0)
    # an end date is the first moment the job no longer holds
    assert counts(organisation.units(session, tid, units["root"], dt.datetime(2021, 6, 30, tzinfo=dt.UTC))
                  )["Sundhed"] == (0, 1, 1)


def test_a_user_without_active_counts_as_active(api, session, org, path):
    units, users = org
    response = api.patch_ops(f"/Users/{users['carl']}", {"op": "remove", "path": "active"})
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    node = organisation.unit(session, tenant_id(session), units["indskoling"], utcnow())
    assert (node.headcount, node.subtree_headcount) == (2, 2)


def test_a_person_in_two_branches_is_one_head_above_them(api, session, org, path):
    """Ida works in Skoler and in Sundhed now: one head in each, and one (not two) in Kommune;
    Jens (inactive) works in both too and is counted nowhere."""
    units, _ = org
    both = (job({"id": units["skoler"]}, primary=True), job({"id": units["sundhed"]}))
    person(api, "ida@k.dk", "Ida", *both)
    person(api, "jens@k.dk", "Jens", *both, active=False)
    tid, now = tenant_id(session), utcnow()
    roots = organisation.units(session, tid, None, now)
    assert counts(roots)["Kommune"] == (2, 1, 7)
    assert all(type(n) is int for node in roots for n in (node.headcount, node.subtree_headcount))
    assert counts(organisation.units(session, tid, units["root"], now)) == {"Skoler": (1, 3, 5), "Sundhed": (0, 2, 2)}
    node, children = organisation.unit_with_children(session, tid, units["root"], now)
    assert (node.headcount, node.subtree_headcount) == (1, 7)
    assert counts(children) == {"Skoler": (1, 3, 5), "Sundhed": (0, 2, 2)}
    total, page = organisation.people_in(session, tid, units["root"], now)
    assert total == 7 and [p.display_name for p in page].count("Ida") == 1 and "Jens" not in [p.display_name for p in page]


def test_unit_with_children_is_unit_and_units(session, org, path):
    units, _ = org
    tid, now = tenant_id(session), utcnow()
    for name, unit_id in units.items():
        node, children = organisation.unit_with_children(session, tid, unit_id, now)
        assert node == organisation.unit(session, tid, unit_id, now), name
        assert children == organisation.units(session, tid, unit_id, now), name
        assert organisation.people_in(session, tid, unit_id, now)[0] == node.subtree_headcount, name
    assert organisation.unit_with_children(session, tid, "no-such-unit", now) is None


def test_ancestors_root_first(session, org):
    units, _ = org
    tid = tenant_id(session)
    names = [name for _, name in organisation.ancestors(session, tid, units["indskoling"])]
    assert names == ["Kommune", "Skoler", "Solbjerg Skole"]
    assert [i for i, _ in organisation.ancestors(session, tid, units["indskoling"])] == \
        [units["root"], units["skoler"], units["skole"]]
    assert organisation.ancestors(session, tid, units["root"]) == []
    assert organisation.ancestors(session, tid, "no-such-unit") == []


# ------------------------------------------------------------------ people


def test_people_in_a_subtree_once_each_with_one_employment(session, org, path):
    units, users = org
    total, page = organisation.people_in(session, tenant_id(session), units["root"], utcnow())
    # everyone the headcount counts: active and employed now; not Carl (inactive), not Hans (ended)
    assert total == 6 == organisation.unit(session, tenant_id(session), units["root"], utcnow()).subtree_headcount
    assert [p.display_name for p in page] == ["Anna", "Bo", "Dora", "Eva", "Finn", "Gitte"]
    by_name = {p.display_name: p for p in page}
    assert (by_name["Bo"].title, by_name["Bo"].unit_id, by_name["Bo"].unit_name) == \
        ("Lærer", units["skole"], "Solbjerg Skole")  # the primary employment
    assert by_name["Anna"].active is True
    assert (by_name["Dora"].unit_id, by_name["Dora"].title) == (units["skoler"], None)  # not the ended job
    assert (by_name["Gitte"].id, by_name["Gitte"].user_name) == (users["gitte"], "gitte@k.dk")


def test_people_in_show_the_employment_in_the_subtree(session, org, path):
    units, _ = org
    tid, now = tenant_id(session), utcnow()
    total, page = organisation.people_in(session, tid, units["indskoling"], now)
    assert total == 1  # Bo; Carl is inactive
    assert [(p.display_name, p.title, p.unit_name) for p in page] == [("Bo", "Teamleder", "Indskoling")]
    total, page = organisation.people_in(session, tid, units["sundhed"], now)
    assert (total, [p.display_name for p in page]) == (1, ["Finn"])  # not Dora (ended), Eva (future), Hans
    assert organisation.people_in(session, tid, units["eksterne"], now) == (0, [])


def test_people_in_pages(session, org, path):
    units, _ = org
    tid, now = tenant_id(session), utcnow()
    pages = [organisation.people_in(session, tid, units["root"], now, offset=o, limit=4) for o in (0, 4, 8)]
    assert [total for total, _ in pages] == [6, 6, 6]
    assert [[p.display_name for p in page] for _, page in pages] == \
        [["Anna", "Bo", "Dora", "Eva"], ["Finn", "Gitte"], []]
    # the unit's own total given (as its page does) is the same
    assert organisation.people_in(session, tid, units["root"], now, offset=4, limit=4, total=6) == pages[1]


def test_people_sort_by_display_name_then_id_and_by_user_name_without_one(api, session, path):
    unit_ = create_unit(api, "Team")
    for user_name, display in (("x2@k.dk", "Same"), ("x1@k.dk", "Same"), ("aaron@k.dk", None)):
        extra = {"displayName": display} if display else {}
        api.create_user(user_name, **extra, **{P2L_USER: {"employments": [job(unit_)]}})
    total, page = organisation.people_in(session, tenant_id(session), unit_["id"], utcnow())
    assert total == 3
    assert page[0].user_name == "aaron@k.dk" and page[0].display_name is None
    assert [p.id for p in page[1:]] == sorted(p.id for p in page[1:])


# ------------------------------------------------------------------ managers


@pytest.fixture
def managers_tree(api):
    """Boss > (Mia > (Rut, Rolf > Rita)), (Max); Solo has no manager and no reports."""
    def user(name, manager=None, **attrs):
        extra = {ENTERPRISE: {"manager": {"value": manager}}} if manager else {}
        return api.create_user(f"{name.lower()}@k.dk", displayName=name, **extra, **attrs)["id"]

    boss = user("Boss")
    mia, max_ = user("Mia", boss), user("Max", boss)
    rut, rolf = user("Rut", mia), user("Rolf", mia, active=False)
    rita = user("Rita", rolf)
    user("Solo")
    return {"boss": boss, "mia": mia, "max": max_, "rut": rut, "rolf": rolf, "rita": rita}


def reports(nodes) -> dict[str, tuple[int, int]]:
    return {n.display_name: (n.direct_reports, n.total_reports) for n in nodes}


def test_the_top_of_the_manager_tree(session, managers_tree):
    nodes = organisation.managers(session, tenant_id(session), None)
    assert reports(nodes) == {"Boss": (2, 5)}  # Solo has no reports: no manager
    assert nodes[0].id == managers_tree["boss"] and nodes[0].user_name == "boss@k.dk"


def test_several_tops_each_with_their_own_tree(api, session, managers_tree):
    chief = api.create_user("chief@k.dk", displayName="Chief")["id"]
    aide = api.create_user("aide@k.dk", displayName="Aide", **{ENTERPRISE: {"manager": {"value": chief}}})["id"]
    for n in range(3):
        api.create_user(f"a{n}@k.dk", displayName=f"A{n}", **{ENTERPRISE: {"manager": {"value": aide}}})
    tid = tenant_id(session)
    tops = organisation.managers(session, tid, None)
    assert reports(tops) == {"Boss": (2, 5), "Chief": (1, 4)}
    assert all(type(n) is int for node in tops for n in (node.direct_reports, node.total_reports))
    assert reports(organisation.managers(session, tid, chief)) == {"Aide": (3, 3)}


def test_one_level_of_reports(session, managers_tree):
    tid = tenant_id(session)
    nodes = organisation.managers(session, tid, managers_tree["boss"])
    assert [n.display_name for n in nodes] == ["Max", "Mia"]
    assert reports(nodes) == {"Max": (0, 0), "Mia": (2, 3)}
    below_mia = organisation.managers(session, tid, managers_tree["mia"])
    assert reports(below_mia) == {"Rolf": (1, 1), "Rut": (0, 0)}  # inactive reports are still reports
    assert {n.display_name: n.active for n in below_mia} == {"Rolf": False, "Rut": True}
    assert organisation.managers(session, tid, managers_tree["rita"]) == []


# ------------------------------------------------------------------ tenants


def test_another_tenants_tree_is_invisible(api, other_api, session, org, managers_tree, path):
    units, _ = org
    theirs = create_unit(other_api, "Kommune")
    boss = other_api.create_user("boss@k.dk", displayName="Boss")["id"]
    other_api.create_user("x@k.dk", displayName="X", **{ENTERPRISE: {"manager": {"value": boss}},
                                                       P2L_USER: {"employments": [job(theirs)]}})
    acme, globex, now = tenant_id(session), tenant_id(session, "globex"), utcnow()
    assert [n.display_name for n in organisation.units(session, acme, None, now)] == ["Eksterne", "Kommune"]
    assert counts(organisation.units(session, globex, None, now)) == {"Kommune": (0, 1, 1)}
    assert organisation.unit(session, acme, theirs["id"], now) is None
    assert organisation.unit(session, globex, units["root"], now) is None
    assert organisation.units(session, globex, units["root"], now) == []
    assert organisation.people_in(session, acme, theirs["id"], now) == (0, [])
    assert organisation.people_in(session, globex, units["root"], now) == (0, [])
    assert organisation.ancestors(session, globex, units["indskoling"]) == []
    assert reports(organisation.managers(session, globex, None)) == {"Boss": (1, 1)}
    assert organisation.managers(session, globex, managers_tree["boss"]) == []
    assert reports(organisation.managers(session, acme, None)) == {"Boss": (2, 5)}


# ------------------------------------------------------------------ overview


def test_overview_counts(app, api, session, org):
    now = utcnow()
    with app.extensions["scim_sessions"].begin() as writing:
        tid = tenant_id(writing)
        source = sources.source(writing, tid, "hr")
        first = sources.start_run(writing, tid, source.id, "system:test", "full", False)
        first.started_at = now - dt.timedelta(hours=2)
        sources.finish_run(first, "applied", {"created": 3}, {})
        newest = sources.start_run(writing, tid, source.id, "system:test", "partial", True)
        sources.finish_run(newest, "dry-run", {"created": 1}, {})
        sources.source(writing, tid, "payroll")  # never ran
    found = overview.overview(session, tid, now)
    # Carl (IdP) and Hans (leaver rule) are inactive; the other six are active
    assert (found.users_active, found.users_inactive) == (6, 2)
    assert found.org_units == 6
    assert found.future_starters == quality.count(session, tid, "future_starters", now)
    assert found.leavers_due == quality.count(session, tid, "leavers_due", now)
    assert [(r.source, r.run_id, r.status, r.summary) for r in found.last_runs] == \
        [("hr", newest.id, "dry-run", {"created": 1})]
    [caller] = found.callers  # the api fixture's token, not used since (nothing after a response closed)
    assert caller.kind == "token"
    assert found.errors_24h == 0 and found.recent_errors == []
