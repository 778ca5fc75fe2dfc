"""Leavers and starters: ``active`` follows employment dates, through the HTTP
API and ``scim-server deactivate-leavers``.

No test waits for a date to pass: an employment ends (or starts) an hour from now, so the API
sees it in the future, and ``deactivate-leavers --now`` (a hidden option, for tests) is told a
clock past it."""
from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from conftest import CORE_USER, ENTERPRISE, P2L_USER, create_unit, get_json
from scim_server.cli import main

get = get_json
unit = create_unit


EMPLOYMENTS = f"{P2L_USER}:employments"

PAST = "2001-01-01T00:00:00Z"
PAST2 = "2002-02-02T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soon(seconds: int = 3600) -> tuple[str, dt.datetime]:
    """A moment in the near future: (ISO 8601 text, the moment)."""
    moment = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).replace(microsecond=0)
    return iso(moment), moment


def after(moment: dt.datetime) -> str:
    """The clock to give ``deactivate-leavers --now``: a minute past ``moment``."""
    return iso(moment + dt.timedelta(minutes=1))


def active(api, user_id) -> bool:
    return get(api, f"/Users/{user_id}")["active"]


def version(api, user_id) -> str:
    return get(api, f"/Users/{user_id}")["meta"]["version"]


def ok(response):
    assert response.status_code in (200, 204), (response.status_code, response.get_data(as_text=True))
    return response


def hire(api, user_name, *employments, **attrs):
    return api.create_user(user_name, **{P2L_USER: {"employments": list(employments)}}, **attrs)


@pytest.fixture
def units(api):
    root = unit(api, "Kommune")
    return {"a": unit(api, "Skole", root["id"]), "b": unit(api, "Plejehjem", root["id"])}


@pytest.fixture
def cli(app):
    env = {"SCIM_DATABASE_URL": app.config["SCIM"].database_url}

    def run(*args):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return result

    return run


# ------------------------------------------------------------------ through the API


def test_all_employments_ended_is_inactive(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "startDate": "2000-01-01T00:00:00Z", "endDate": PAST},
                {"value": units["b"]["id"], "endDate": PAST2}, active=True)
    assert user["active"] is False
    assert active(api, user["id"]) is False


def test_one_current_employment_keeps_active(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "endDate": PAST},
                {"value": units["b"]["id"], "startDate": PAST2}, active=True)
    assert user["active"] is True
    user = hire(api, "b@k.dk", {"value": units["a"]["id"], "endDate": FUTURE}, active=True)
    assert user["active"] is True


def test_only_future_employments_is_inactive(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "startDate": FUTURE}, active=True)
    assert user["active"] is False
    user = hire(api, "b@k.dk", {"value": units["a"]["id"], "startDate": FUTURE},
                {"value": units["b"]["id"], "endDate": PAST}, active=True)
    assert user["active"] is False


def test_ending_the_employment_by_patch_deactivates_at_once(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "primary": True}, active=True)
    r = ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace",
                         "path": f'{EMPLOYMENTS}[value eq "{units["a"]["id"]}"].endDate', "value": PAST}))
    if r.status_code == 200:
        assert r.get_json()["active"] is False
    assert active(api, user["id"]) is False
    # extending it again makes the user active again
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "replace",
                     "path": f'{EMPLOYMENTS}[value eq "{units["a"]["id"]}"].endDate', "value": FUTURE}))
    assert active(api, user["id"]) is True


def test_new_current_employment_reactivates_leaver(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "endDate": PAST}, active=True)
    assert user["active"] is False
    ok(api.patch_ops(f"/Users/{user['id']}", {"op": "add", "path": EMPLOYMENTS,
                                              "value": [{"value": units["b"]["id"], "startDate": PAST2}]}))
    assert active(api, user["id"]) is True


def test_removing_current_employment_via_group_leaves_only_ended(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "endDate": PAST},
                {"value": units["b"]["id"], "primary": True}, active=True)
    assert user["active"] is True
    ok(api.patch_ops(f"/Groups/{units['b']['id']}", {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}))
    assert active(api, user["id"]) is False


def test_group_membership_added_to_leaver_reactivates(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "endDate": PAST}, active=True)
    assert user["active"] is False
    ok(api.patch_ops(f"/Groups/{units['b']['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}))
    assert active(api, user["id"]) is True


def test_deleting_unit_of_current_employment_leaves_only_ended(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"], "endDate": PAST},
                {"value": units["b"]["id"], "primary": True}, active=True)
    assert api.delete(f"/Groups/{units['b']['id']}").status_code == 204
    assert active(api, user["id"]) is False


def test_put_with_ended_employments_deactivates(api, units):
    user = hire(api, "a@k.dk", {"value": units["a"]["id"]}, active=True)
    r = api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "userName": "a@k.dk", "active": True,
                                             P2L_USER: {"employments": [{"value": units["a"]["id"], "endDate": PAST}]}})
    assert r.status_code == 200, r.get_json()
    assert active(api, user["id"]) is False


def test_filter_finds_inactive_leavers(api, units):
    leaver = hire(api, "l@k.dk", {"value": units["a"]["id"], "endDate": PAST})
    hire(api, "s@k.dk", {"value": units["a"]["id"]})
    body = get(api, "/Users?filter=active%20eq%20false")
    assert {u["id"] for u in body["Resources"]} == {leaver["id"]}


# ------------------------------------------------------------------ IdP wins


def test_idp_patch_of_active_wins_over_the_rule(api, units, cli):
    leaver = hire(api, "l@k.dk", {"value": units["a"]["id"], "endDate": PAST})
    assert leaver["active"] is False
    ok(api.patch_ops(f"/Users/{leaver['id']}", {"op": "replace", "path": "active", "value": True}))
    assert active(api, leaver["id"]) is True
    staff = hire(api, "s@k.dk", {"value": units["a"]["id"]})
    ok(api.patch_ops(f"/Users/{staff['id']}", {"op": "replace", "value": {"active": False}}))
    before = (version(api, leaver["id"]), version(api, staff["id"]))
    result = cli("deactivate-leavers")
    assert result.exit_code == 0, result.output
    assert active(api, leaver["id"]) is True
    assert active(api, staff["id"]) is False
    assert (version(api, leaver["id"]), version(api, staff["id"])) == before
    assert "l@k.dk" not in result.stdout and "s@k.dk" not in result.stdout


def test_idp_override_lasts_until_next_employment_change(api, units):
    staff = hire(api, "s@k.dk", {"value": units["a"]["id"], "primary": True})
    ok(api.patch_ops(f"/Users/{staff['id']}", {"op": "replace", "path": "active", "value": False}))
    # the employment ends: the rule applies again (already inactive) ...
    ok(api.patch_ops(f"/Users/{staff['id']}", {"op": "replace",
                     "path": f'{EMPLOYMENTS}[value eq "{units["a"]["id"]}"].endDate', "value": PAST}))
    assert active(api, staff["id"]) is False
    # ... and a new current employment makes the user active
    ok(api.patch_ops(f"/Users/{staff['id']}", {"op": "add", "path": EMPLOYMENTS,
                                               "value": [{"value": units["b"]["id"]}]}))
    assert active(api, staff["id"]) is True


def test_employment_change_after_idp_reactivation_applies_the_rule_again(api, units):
    """The IdP re-activates a leaver; HR then changes the (still ended) employment:
    that is the next employment change, so the rule applies again."""
    leaver = hire(api, "l@k.dk", {"value": units["a"]["id"], "endDate": PAST})
    ok(api.patch_ops(f"/Users/{leaver['id']}", {"op": "replace", "path": "active", "value": True}))
    assert active(api, leaver["id"]) is True
    ok(api.patch_ops(f"/Users/{leaver['id']}", {"op": "replace",
                     "path": f'{EMPLOYMENTS}[value eq "{units["a"]["id"]}"].endDate', "value": PAST2}))
    assert active(api, leaver["id"]) is False


# ------------------------------------------------------------------ deactivate-leavers


def test_deactivate_leavers_when_end_date_passes_and_is_idempotent(api, units, cli):
    end, moment = soon(2)
    leaver = hire(api, "leaver@k.dk", {"value": units["a"]["id"], "endDate": end}, displayName="Søren Ørsted")
    staff = hire(api, "staff@k.dk", {"value": units["a"]["id"]})
    assert leaver["active"] is True
    staff_version = version(api, staff["id"])
    early = cli("deactivate-leavers")  # the real clock: the end date has not passed
    assert early.exit_code == 0, early.output
    assert "leaver@k.dk" not in early.stdout
    assert active(api, leaver["id"]) is True
    first = cli("deactivate-leavers", "--now", after(moment))
    assert first.exit_code == 0, first.output
    assert "leaver@k.dk" in first.stdout and leaver["id"] in first.stdout
    assert "staff@k.dk" not in first.stdout
    assert active(api, leaver["id"]) is False
    modified = get(api, f"/Users/{leaver['id']}")["meta"]["lastModified"]
    assert dt.datetime.fromisoformat(modified.replace("Z", "+00:00")) <= dt.datetime.now(dt.UTC), \
        "lastModified is when the row changed, not the clock the job was told"
    assert active(api, staff["id"]) is True
    assert version(api, staff["id"]) == staff_version
    leaver_version = version(api, leaver["id"])
    second = cli("deactivate-leavers", "--now", after(moment))
    assert second.exit_code == 0, second.output
    assert "leaver@k.dk" not in second.stdout
    assert second.stdout.strip() == ""
    assert version(api, leaver["id"]) == leaver_version
    assert active(api, leaver["id"]) is False


def test_future_starter_activated_when_start_date_arrives(api, units, cli):
    start, moment = soon(2)
    starter = hire(api, "starter@k.dk", {"value": units["b"]["id"], "startDate": start})
    assert starter["active"] is False
    # before the start date nothing changes
    early = cli("deactivate-leavers")
    assert early.exit_code == 0, early.output
    assert active(api, starter["id"]) is False
    result = cli("deactivate-leavers", "--now", after(moment))
    assert result.exit_code == 0, result.output
    assert "starter@k.dk" in result.stdout
    assert active(api, starter["id"]) is True
    again = cli("deactivate-leavers", "--now", after(moment))
    assert "starter@k.dk" not in again.stdout
    assert active(api, starter["id"]) is True


def test_deactivate_leavers_dry_run_changes_nothing(api, units, cli):
    end, moment = soon(2)
    leaver = hire(api, "leaver@k.dk", {"value": units["a"]["id"], "endDate": end})
    dry = cli("deactivate-leavers", "--dry-run", "--now", after(moment))
    assert dry.exit_code == 0, dry.output
    assert "leaver@k.dk" in dry.stdout
    assert active(api, leaver["id"]) is True
    real = cli("deactivate-leavers", "--now", after(moment))
    assert "leaver@k.dk" in real.stdout
    assert active(api, leaver["id"]) is False


def test_deactivate_leavers_for_one_tenant(api, other_api, units, cli):
    other_unit = unit(other_api, "Globex")
    end, moment = soon(2)
    mine = hire(api, "mine@k.dk", {"value": units["a"]["id"], "endDate": end})
    theirs = hire(other_api, "theirs@globex.com", {"value": other_unit["id"], "endDate": end})
    result = cli("deactivate-leavers", "--tenant", "acme", "--now", after(moment))
    assert result.exit_code == 0, result.output
    assert "mine@k.dk" in result.stdout and "theirs@globex.com" not in result.stdout
    assert active(api, mine["id"]) is False
    assert active(other_api, theirs["id"]) is True
    cli("deactivate-leavers", "--now", after(moment))
    assert active(other_api, theirs["id"]) is False


def test_external_users_are_never_touched(api, units, cli):
    ext_on = api.create_user("borger@example.dk", userType="External", active=True)
    ext_off = api.create_user("frivillig@example.dk", userType="External", active=False)
    end, moment = soon(2)
    hire(api, "leaver@k.dk", {"value": units["a"]["id"], "endDate": end})
    before = {u["id"]: version(api, u["id"]) for u in (ext_on, ext_off)}
    for _ in range(2):
        result = cli("deactivate-leavers", "--now", after(moment))
        assert result.exit_code == 0, result.output
        assert "borger@example.dk" not in result.stdout and "frivillig@example.dk" not in result.stdout
    assert active(api, ext_on["id"]) is True
    assert active(api, ext_off["id"]) is False
    assert {u["id"]: version(api, u["id"]) for u in (ext_on, ext_off)} == before
    got = get(api, f"/Users/{ext_on['id']}")
    assert not (got.get(P2L_USER) or {}).get("employments")
    assert not (got.get(ENTERPRISE) or {}).get("manager")
