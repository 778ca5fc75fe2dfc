"""The employment effectiveEan comes from is chosen when employments are written and kept on
the user (``users.chosen_unit_id``): every writer of employments, from either side, must
choose again, or GET, the filters and the billing report would go on naming a unit the user
has left. Each test writes employments one way and checks what GET, a filter and the billing
report say; the last checks that migration 0010 fills the column for users already there."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from test_bulk import bulk
from test_derived_values import EAN_A, EAN_B, EAN_OWN, ean13, employed, job, ok
from test_reports import billing, scoped, summary

from conftest import CORE_GROUP, ENTERPRISE, P2L_GROUP, P2L_USER, create_unit, filter_list, get_json, ids
from scim_server.storage.db import make_engine
from scim_server.storage.migrate import upgrade

EAN_C = ean13("579000000109")
assert EAN_C not in (EAN_A, EAN_B)


def effective_ean(api, user: dict) -> str | None:
    return (get_json(api, f"/Users/{user['id']}").get(P2L_USER) or {}).get("effectiveEan")


def found_by(api, ean: str) -> set[str]:
    return ids(filter_list(api, "Users", f'{P2L_USER}:effectiveEan eq "{ean}"', "&count=200"))


def assert_chosen(api, user: dict, ean: str | None, *others: str) -> None:
    """GET says ``ean``, the filter finds the user by it and by none of ``others``."""
    assert effective_ean(api, user) == ean
    if ean is not None:
        assert user["id"] in found_by(api, ean)
    for other in others:
        assert user["id"] not in found_by(api, other)


@pytest.fixture
def two_units(api):
    return create_unit(api, "A", ean=EAN_A), create_unit(api, "B", ean=EAN_B)


def test_removing_the_chosen_unit_s_member_chooses_the_next_employment(api, two_units):
    a, b = two_units
    user = employed(api, "u@k.dk", job(a, primary=True), job(b, startDate="2020-01-01T00:00:00Z"))
    assert_chosen(api, user, EAN_A, EAN_B)
    ok(api.patch_ops(f"/Groups/{a['id']}", {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}))
    assert_chosen(api, user, EAN_B, EAN_A)


def test_adding_the_user_to_a_unit_s_members_can_make_it_the_chosen_one(api, two_units):
    a, b = two_units
    user = employed(api, "u@k.dk", job(b, startDate="2020-01-01T00:00:00Z"))
    assert_chosen(api, user, EAN_B, EAN_A)
    # a member added through the group has no start date: employed from the beginning, so first
    ok(api.patch_ops(f"/Groups/{a['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}))
    assert_chosen(api, user, EAN_A, EAN_B)


def test_a_group_put_that_drops_the_member_chooses_again(api, two_units):
    a, b = two_units
    user = employed(api, "u@k.dk", job(a), job(b, startDate="2020-01-01T00:00:00Z"))
    assert_chosen(api, user, EAN_A, EAN_B)
    body = {"schemas": [CORE_GROUP, P2L_GROUP], "displayName": "A", "members": [],
            P2L_GROUP: {"unitCode": "A", "unitType": "department", "ean": EAN_A}}
    ok(api.put(f"/Groups/{a['id']}", json=body))
    assert_chosen(api, user, EAN_B, EAN_A)


def test_deleting_the_chosen_unit_chooses_the_next_employment(api, two_units):
    a, b = two_units
    user = employed(api, "u@k.dk", job(a, primary=True), job(b))
    assert_chosen(api, user, EAN_A, EAN_B)
    ok(api.delete(f"/Groups/{a['id']}"))
    assert_chosen(api, user, EAN_B, EAN_A)
    ok(api.delete(f"/Groups/{b['id']}"))
    assert_chosen(api, user, None, EAN_A, EAN_B)


def test_a_group_that_becomes_an_org_unit_employs_its_members(api, two_units):
    _, b = two_units
    user = employed(api, "u@k.dk", job(b, startDate="2020-01-01T00:00:00Z"))
    group = api.create_group("Plain", members=[user["id"]])
    assert_chosen(api, user, EAN_B, EAN_C)
    ok(api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": P2L_GROUP,
                                                  "value": {"unitCode": "PLAIN", "ean": EAN_C}}))
    assert_chosen(api, user, EAN_C, EAN_B)  # the membership is an employment without a start date now


def test_the_user_s_own_employments_patch_chooses_again(api, two_units):
    a, b = two_units
    user = employed(api, "u@k.dk", job(a), job(b, startDate="2020-01-01T00:00:00Z"))
    ok(api.patch_ops(f"/Users/{user['id']}", {
        "op": "replace", "path": f'{P2L_USER}:employments[value eq "{b["id"]}"].primary', "value": True}))
    assert_chosen(api, user, EAN_B, EAN_A)
    ok(api.patch_ops(f"/Users/{user['id']}", {
        "op": "remove", "path": f'{P2L_USER}:employments[value eq "{b["id"]}"]'}))
    assert_chosen(api, user, EAN_A, EAN_B)


def test_an_own_ean_wins_and_removing_it_falls_back_to_the_chosen_unit(api, two_units):
    a, _ = two_units
    user = employed(api, "u@k.dk", job(a), **{P2L_USER: {"ean": EAN_OWN}})
    assert_chosen(api, user, EAN_OWN, EAN_A)
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "remove", "path": f"{P2L_USER}:ean"}))
    assert_chosen(api, user, EAN_A, EAN_OWN)


def test_bulk_creates_and_bulk_member_adds_choose(api, two_units):
    a, b = two_units
    results = bulk(api, {"method": "POST", "path": "/Users", "bulkId": "u", "data": {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bulk@k.dk",
        P2L_USER: {"employments": [job(b, startDate="2020-01-01T00:00:00Z")]}}})
    user = {"id": results[0]["location"].rsplit("/", 1)[1]}
    assert_chosen(api, user, EAN_B, EAN_A)
    bulk(api, {"method": "PATCH", "path": f"/Groups/{a['id']}", "data": {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}]}})
    assert_chosen(api, user, EAN_A, EAN_B)


def test_placement_by_department_chooses_the_placed_unit(api, two_units, cli):
    a, b = two_units
    assert cli("tenant", "set", "acme", "--org-unit-attribute", "department").exit_code == 0
    user = api.create_user("a@k.dk", **{ENTERPRISE: {"department": "A"}})
    assert_chosen(api, user, EAN_A, EAN_B)
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "B"}))
    assert_chosen(api, user, EAN_B, EAN_A)


def test_the_billing_report_bills_the_chosen_unit(api, two_units, app):
    a, b = two_units
    user = employed(api, "u@k.dk", job(a, primary=True), job(b))
    auditor = scoped(app, "audit:read")
    assert summary(billing(auditor, "2026-01-01")) == [(EAN_A, 1, [("A", 1)])]
    ok(api.patch_ops(f"/Groups/{a['id']}", {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}))
    assert summary(billing(auditor, "2026-01-01")) == [(EAN_B, 1, [("B", 1)])]


# ------------------------------------------------------------------ migration 0010


def test_migration_0010_fills_the_chosen_unit_of_users_already_employed(empty_database):
    upgrade(empty_database, "0009")
    engine = make_engine(empty_database)
    now = "CURRENT_TIMESTAMP"
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (name, created, settings) VALUES ('acme', CURRENT_TIMESTAMP, '{}')"))
            tenant = conn.scalar(text("SELECT id FROM tenants"))
            for group_id, is_unit in (("unit-a", True), ("unit-b", True), ("plain", False)):
                conn.execute(text(f"INSERT INTO groups (id, tenant_id, display_name, attributes, version, created, "
                                  f"last_modified, is_org_unit) VALUES (:id, :t, :id, '{{}}', 1, {now}, {now}, :u)"),
                             {"id": group_id, "t": tenant, "u": is_unit})
            for user_id in ("primary-b", "undated-a", "plain-only", "none"):
                conn.execute(text(f"INSERT INTO users (id, tenant_id, user_name, attributes, version, created, "
                                  f"last_modified) VALUES (:id, :t, :id, '{{}}', 1, {now}, {now})"),
                             {"id": user_id, "t": tenant})
            jobs = [("primary-b", "unit-a", False, "2000-01-01"), ("primary-b", "unit-b", True, "2020-01-01"),
                    ("undated-a", "unit-b", False, "2000-01-01"), ("undated-a", "unit-a", False, None),
                    ("plain-only", "plain", False, None)]
            for user_id, group_id, primary, start in jobs:
                conn.execute(text(f"INSERT INTO memberships (tenant_id, group_id, user_id, is_primary, start_date, "
                                  f"created) VALUES (:t, :g, :u, :p, :s, {now})"),
                             {"t": tenant, "g": group_id, "u": user_id, "p": primary,
                              "s": f"{start} 00:00:00+00:00" if start else None})
        upgrade(empty_database)
        with engine.connect() as conn:
            chosen = dict(conn.execute(text("SELECT id, chosen_unit_id FROM users")).all())
        assert chosen == {"primary-b": "unit-b", "undated-a": "unit-a", "plain-only": None, "none": None}
    finally:
        engine.dispose()


# ------------------------------------------------------------------ a PUT that changes nothing


def test_a_user_put_naming_the_same_employments_in_another_order_changes_nothing(api, two_units):
    """Equal start dates, no primary: the employment written first decides. A PUT that names the
    same employments B-first must not rewrite them (which would make B the first written)."""
    a, b = two_units
    start = "2019-03-01T00:00:00Z"
    user = employed(api, "u@k.dk", job(a, startDate=start), job(b, startDate=start))
    assert_chosen(api, user, EAN_A, EAN_B)
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u@k.dk",
            P2L_USER: {"employments": [job(b, startDate=start), job(a, startDate=start)]}}
    ok(api.put(f"/Users/{user['id']}", json=body))
    assert_chosen(api, user, EAN_A, EAN_B)


def test_a_group_put_naming_the_same_members_keeps_their_employments(api, two_units):
    """An org unit's PUT with its members as they are: the employments keep their dates and title
    (deleting and adding the members again would have dropped them)."""
    a, _ = two_units
    user = employed(api, "u@k.dk", job(a, startDate="2020-01-01T00:00:00Z", endDate="2030-12-31T00:00:00Z",
                                       title="Pædagog", primary=True))
    body = {"schemas": [CORE_GROUP, P2L_GROUP], "displayName": "A", "members": [{"value": user["id"]}],
            P2L_GROUP: {"unitCode": "A", "unitType": "department", "ean": EAN_A}}
    ok(api.put(f"/Groups/{a['id']}", json=body))
    jobs = get_json(api, f"/Users/{user['id']}")[P2L_USER]["employments"]
    assert [(j["value"], j.get("startDate"), j.get("endDate"), j.get("title"), j.get("primary")) for j in jobs] == \
        [(a["id"], "2020-01-01T00:00:00Z", "2030-12-31T00:00:00Z", "Pædagog", True)]


def test_an_idp_put_of_active_wins_like_its_patch_when_the_employments_stay(api, two_units):
    """The leaver rule follows employment changes: a PUT that sets active and names the same
    employments changes none, so the IdP's active stands (as a PATCH of active does)."""
    a, _ = two_units
    ended = job(a, startDate="2000-01-01T00:00:00Z", endDate="2001-01-01T00:00:00Z")
    user = employed(api, "u@k.dk", ended)
    assert get_json(api, f"/Users/{user['id']}")["active"] is False  # the rule: every employment ended
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u@k.dk", "active": True,
            P2L_USER: {"employments": [ended]}}
    assert ok(api.put(f"/Users/{user['id']}", json=body)).get_json()["active"] is True
    assert get_json(api, f"/Users/{user['id']}")["active"] is True
    body[P2L_USER]["employments"] = [{**ended, "title": "Vikar"}]  # an employment change: the rule again
    assert ok(api.put(f"/Users/{user['id']}", json=body)).get_json()["active"] is False
