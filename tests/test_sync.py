"""The sync from HR, payroll and member registers (issue 13), end to end: files written to
``tmp_path``, ``scim-server sync`` run through the CLI, and what it did read back through the
SCIM API, the admin audit API and ``scim-server sync-runs``.

Rules covered: ownership and conflicts, full vs partial, leavers by absence, org units missing
from the units file, the deactivation guard, idempotence, several employments, forward
references, cycles, encodings, XLSX, dry runs, the audit actor and run id, the summary line,
``--json``, exit statuses, bad input, tenant isolation, the run log and ``source``.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from conftest import ENTERPRISE, P2L_GROUP, P2L_USER, create_unit, filter_list, get_json
from scim_server.storage import tenants
from scim_server.storage.models import AuditEvent, Tenant

EMPLOYMENTS = P2L_USER
SUMMARY = re.compile(r"^created (\d+), updated (\d+), unchanged (\d+), deactivated (\d+), "
                     r"conflicts (\d+), errors (\d+)$")
SUMMARY_KEYS = ("created", "updated", "unchanged", "deactivated", "conflicts", "errors")
EAN_OK = "5790000000005"
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"

UNITS = [
    ["unitCode", "displayName", "parentUnitCode", "unitType"],
    ["ROOT", "Solbjerg Kommune", "", "municipality"],
    ["SKOLE", "Solbjerg Skole", "ROOT", "department"],
    ["PLEJE", "Plejehjemmet", "ROOT", "department"],
]
USER_HEADER = ["externalId", "userName", "givenName", "familyName", "email", "title", "orgUnit",
               "managerExternalId", "startDate"]
PEOPLE = [
    ["1001", "anna@acme.dk", "Anna", "Berg", "anna@acme.dk", "Direktør", "ROOT", "", "2020-01-01"],
    ["1002", "bo@acme.dk", "Bo", "Dahl", "bo@acme.dk", "Lærer", "SKOLE", "1001", "2021-08-01"],
    ["1003", "cai@acme.dk", "Cai", "Eng", "cai@acme.dk", "Assistent", "PLEJE", "1001", "01-02-2022"],
]


# ------------------------------------------------------------------ helpers


def write_csv(tmp_path, name: str, rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue().encode(encoding))
    return str(path)


def users_file(tmp_path, rows: list[list[str]], header: list[str] = USER_HEADER, name: str = "users.csv") -> str:
    return write_csv(tmp_path, name, [header, *rows])


def units_file(tmp_path, rows: list[list[str]] | None = None, name: str = "units.csv") -> str:
    return write_csv(tmp_path, name, UNITS if rows is None else [UNITS[0], *rows])


def staff(count: int, start: int = 5000, unit: str = "") -> list[list[str]]:
    """``count`` people without a manager, in ``unit`` (an external user when empty)."""
    return [[str(n), f"p{n}@acme.dk", "P", str(n), "", "", unit, "", ""] for n in range(start, start + count)]


def sync(cli, *args: str, tenant: str = "acme", source: str = "hr"):
    """``scim-server sync``; checks what every run must do: no traceback, and (text output)
    the summary exactly on the last line of stdout."""
    result = cli("sync", "--tenant", tenant, "--source", source, *args)
    assert "Traceback" not in result.output
    if "--json" not in args:
        lines = result.stdout.splitlines()
        assert lines and SUMMARY.match(lines[-1]), result.output
    return result


def counts(result) -> dict[str, int]:
    """The summary line's counts."""
    found = SUMMARY.match(result.stdout.splitlines()[-1])
    assert found, result.output
    return dict(zip(SUMMARY_KEYS, map(int, found.groups())))


def summary(result) -> str:
    return result.stdout.splitlines()[-1]


def full_sync(cli, tmp_path, people=PEOPLE, units=None, *args: str, **kw):
    """A full sync of ``people`` and ``units`` (default: UNITS) that must succeed."""
    result = sync(cli, "--users", users_file(tmp_path, people), "--units", units_file(tmp_path, units), *args, **kw)
    assert result.exit_code == 0, result.output
    return result


def user(api, user_name: str) -> dict | None:
    found = filter_list(api, "Users", f'userName eq "{user_name}"')["Resources"]
    assert len(found) <= 1
    return found[0] if found else None


def all_users(api) -> dict[str, dict]:
    return {u["userName"]: u for u in get_json(api, "/Users?count=1000")["Resources"]}


def units(api) -> dict[str, dict]:
    """The tenant's org units by unitCode."""
    groups = get_json(api, "/Groups?count=1000&excludedAttributes=members")["Resources"]
    return {g[P2L_GROUP]["unitCode"]: g for g in groups if (g.get(P2L_GROUP) or {}).get("unitCode")}


def employments(resource: dict) -> list[dict]:
    return (resource.get(EMPLOYMENTS) or {}).get("employments") or []


def auditor(app, tenant: str = "acme"):
    from conftest import bearer

    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, tenant), "auditor", "audit:read")
    return bearer(app, token)


def audit_events(reader) -> list[dict]:
    response = reader.get("http://localhost/admin/v1/audit?count=1000")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["totalResults"] == len(body["Resources"])
    return body["Resources"]


def run_ids_of_events(app, event_ids: list) -> dict:
    """The run id stored with each audit event (the admin API does not show it)."""
    with app.extensions["scim_sessions"]() as session:
        return dict(session.execute(select(AuditEvent.id, AuditEvent.run_id).where(AuditEvent.id.in_(event_ids))).all())


def set_tenant_setting(app, tenant: str, key: str, value) -> None:
    with app.extensions["scim_sessions"].begin() as session:
        found = session.scalar(select(Tenant).where(Tenant.name == tenant))
        found.settings = {**(found.settings or {}), key: value}


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


# ------------------------------------------------------------------ a first full sync


def test_first_full_sync_creates_units_and_people(api, cli, tmp_path):
    result = full_sync(cli, tmp_path)
    assert summary(result) == "created 6, updated 0, unchanged 0, deactivated 0, conflicts 0, errors 0"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    found = units(api)
    assert set(found) == {"ROOT", "SKOLE", "PLEJE"}
    assert found["ROOT"]["displayName"] == "Solbjerg Kommune"
    assert found["SKOLE"][P2L_GROUP]["parent"]["value"] == found["ROOT"]["id"]
    assert found["SKOLE"][P2L_GROUP]["unitType"] == "department"
    anna, bo, cai = (user(api, n) for n in ("anna@acme.dk", "bo@acme.dk", "cai@acme.dk"))
    assert anna["externalId"] == "1001" and anna["active"] is True
    assert anna["name"]["givenName"] == "Anna" and anna["name"]["familyName"] == "Berg"
    assert anna["emails"][0]["value"] == "anna@acme.dk"
    assert anna["title"] == "Direktør"
    assert bo[ENTERPRISE]["manager"]["value"] == anna["id"]
    [job] = employments(bo)
    assert job["value"] == found["SKOLE"]["id"]
    assert job["startDate"].startswith("2021-08-01")
    [job] = employments(cai)
    assert job["value"] == found["PLEJE"]["id"] and job["startDate"].startswith("2022-02-01")  # DD-MM-YYYY
    # the source is created on first use
    listed = cli("source", "list", "--tenant", "acme")
    assert listed.exit_code == 0 and listed.stdout.split() == ["hr"]


def test_summary_is_the_last_line_and_json_prints_one_object(api, cli, tmp_path):
    result = sync(cli, "--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)  # one JSON object, nothing else
    assert set(SUMMARY_KEYS) | {"runId", "rowErrors"} <= set(body)
    assert {k: body[k] for k in SUMMARY_KEYS} == {"created": 6, "updated": 0, "unchanged": 0, "deactivated": 0,
                                                   "conflicts": 0, "errors": 0}
    assert body["rowErrors"] == [] and body["runId"]
    bad = [*PEOPLE, ["1009", "zed@acme.dk", "Zed", "", "", "", "NOWHERE", "", ""]]
    result = sync(cli, "--users", users_file(tmp_path, bad), "--json", "--partial")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["errors"] == 1 and body["unchanged"] == 3
    [error] = body["rowErrors"]
    assert error["file"] == "users.csv" and error["line"] == 5 and "NOWHERE" in error["reason"]


# ------------------------------------------------------------------ idempotence and updates


def test_same_files_again_change_nothing_and_write_no_audit_event(app, api, cli, tmp_path):
    full_sync(cli, tmp_path)
    reader = auditor(app)
    before = audit_events(reader)
    assert before
    versions = {n: u["meta"]["version"] for n, u in all_users(api).items()}
    again = full_sync(cli, tmp_path)
    assert summary(again) == "created 0, updated 0, unchanged 6, deactivated 0, conflicts 0, errors 0"
    assert audit_events(reader) == before
    # a third time, as JSON: still nothing
    third = sync(cli, "--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path), "--json")
    assert json.loads(third.stdout)["unchanged"] == 6
    assert audit_events(reader) == before
    assert {n: u["meta"]["version"] for n, u in all_users(api).items()} == versions


def test_a_changed_attribute_is_updated_and_an_empty_cell_clears_it(app, api, cli, tmp_path):
    full_sync(cli, tmp_path)
    changed = [PEOPLE[0], ["1002", "bo@acme.dk", "Bo", "Dahl", "bo.dahl@acme.dk", "Overlærer", "SKOLE", "1001",
                           "2021-08-01"], PEOPLE[2]]
    result = full_sync(cli, tmp_path, changed)
    assert counts(result)["updated"] == 1 and counts(result)["unchanged"] == 5
    bo = user(api, "bo@acme.dk")
    assert bo["emails"][0]["value"] == "bo.dahl@acme.dk"
    assert bo["title"] == "Overlærer"
    # an empty cell means no value: the attribute is cleared
    cleared = [PEOPLE[0], ["1002", "bo@acme.dk", "Bo", "Dahl", "", "Overlærer", "SKOLE", "1001", "2021-08-01"],
               PEOPLE[2]]
    result = full_sync(cli, tmp_path, cleared)
    assert counts(result)["updated"] == 1
    bo = user(api, "bo@acme.dk")
    assert not bo.get("emails")
    assert bo["name"]["givenName"] == "Bo" and bo["title"] == "Overlærer"


def test_what_the_file_does_not_provide_is_left_alone(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    anna = user(api, "anna@acme.dk")
    r = api.patch_ops(f"/Users/{anna['id']}", {"op": "add", "path": "nickName", "value": "Annie"})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    again = full_sync(cli, tmp_path)
    assert counts(again)["updated"] == 0 and counts(again)["unchanged"] == 6
    assert user(api, "anna@acme.dk")["nickName"] == "Annie"
    # a file without the email column leaves everyone's e-mail as it is
    header = [c for c in USER_HEADER if c != "email"]
    rows = [[v for c, v in zip(USER_HEADER, row) if c != "email"] for row in PEOPLE]
    result = sync(cli, "--users", users_file(tmp_path, rows, header), "--units", units_file(tmp_path))
    assert result.exit_code == 0, result.output
    assert counts(result)["updated"] == 0
    anna = user(api, "anna@acme.dk")
    assert anna["emails"][0]["value"] == "anna@acme.dk" and anna["nickName"] == "Annie"


# ------------------------------------------------------------------ ownership and conflicts


def test_a_sync_never_touches_what_an_idp_or_another_source_owns(api, cli, tmp_path):
    idp_user = api.create_user("Anna@Acme.dk", name={"givenName": "Anne"}, externalId="entra-1")
    idp_loner = api.create_user("solo@acme.dk", title="IdP")
    idp_unit = create_unit(api, "IdP Skole", code="SKOLE")
    # payroll owns a person and a unit
    payroll = sync(cli, "--users", users_file(tmp_path, [["7001", "per@acme.dk", "Per", "", "", "", "", "", ""]],
                                              name="payroll.csv"),
                   "--units", units_file(tmp_path, [["PAY", "Lønkontoret", "", ""]], name="payroll-units.csv"),
                   source="payroll")
    assert payroll.exit_code == 0, payroll.output
    people = [[*row[:7], "", row[8]] for row in PEOPLE] + [
              ["1004", "PER@acme.dk", "Per", "Hr", "", "", "ROOT", "", ""],
              ["1005", "dan@acme.dk", "Dan", "", "", "", "ROOT", "", ""]]
    unit_rows = [*UNITS[1:], ["PAY", "HR's Lønkontor", "ROOT", ""]]
    result = sync(cli, "--users", users_file(tmp_path, people), "--units", units_file(tmp_path, unit_rows))
    assert result.exit_code == 0, result.output  # conflicts are reported, they are not row errors
    # anna (userName held by the IdP, another case), per (held by payroll), SKOLE and PAY
    assert counts(result)["conflicts"] == 4, result.output
    conflicts = [line for line in result.stdout.splitlines() if line.startswith("conflict")]
    assert len(conflicts) == 4
    assert any("1001" in line for line in conflicts) and any("1004" in line for line in conflicts)
    assert any("SKOLE" in line for line in conflicts) and any("PAY" in line for line in conflicts)
    everyone = all_users(api)
    assert "dan@acme.dk" in everyone and "cai@acme.dk" in everyone
    assert get_json(api, f"/Users/{idp_user['id']}")["name"]["givenName"] == "Anne"
    assert get_json(api, f"/Users/{idp_user['id']}")["externalId"] == "entra-1"
    assert get_json(api, f"/Groups/{idp_unit['id']}")["displayName"] == "IdP Skole"
    assert units(api)["PAY"]["displayName"] == "Lønkontoret"
    per = user(api, "per@acme.dk")
    assert per["externalId"] == "7001" and per["name"] == {"givenName": "Per"}
    # a full sync of hr with nobody else in it: the IdP's and payroll's are not leavers
    result = sync(cli, "--users", users_file(tmp_path, [PEOPLE[0]]), "--units", units_file(tmp_path, UNITS[1:2]),
                  "--max-deactivations", "100%")
    assert user(api, "per@acme.dk")["active"] is True
    assert get_json(api, f"/Users/{idp_loner['id']}")["active"] is True
    assert get_json(api, f"/Users/{idp_loner['id']}")["title"] == "IdP"
    assert get_json(api, f"/Users/{idp_user['id']}")["active"] is True
    found = units(api)
    assert found["PAY"]["displayName"] == "Lønkontoret" and found["SKOLE"]["id"] == idp_unit["id"]


# ------------------------------------------------------------------ full vs partial, leavers


def test_leavers_by_absence_are_deactivated_not_deleted(app, api, cli, tmp_path):
    external = ["2001", "ext@acme.dk", "Eva", "Ekstern", "", "", "", "", ""]
    twice = [["1004", "dan@acme.dk", "Dan", "", "", "", "SKOLE", "", ""],
             ["1004", "dan@acme.dk", "Dan", "", "", "", "PLEJE", "", ""]]
    full_sync(cli, tmp_path, [*PEOPLE, external, *twice])
    cai_id, ext_id = user(api, "cai@acme.dk")["id"], user(api, "ext@acme.dk")["id"]
    result = full_sync(cli, tmp_path, PEOPLE[:2])
    assert counts(result) == {"created": 0, "updated": 0, "unchanged": 5, "deactivated": 3, "conflicts": 0,
                              "errors": 0}
    dan = user(api, "dan@acme.dk")
    assert dan["active"] is False and len(employments(dan)) == 2
    assert all(job["endDate"].startswith(today()) for job in employments(dan))
    cai = get_json(api, f"/Users/{cai_id}")  # still there
    assert cai["active"] is False
    [job] = employments(cai)
    assert job["endDate"].startswith(today())  # the employment ended today: the leaver rule did the rest
    ext = get_json(api, f"/Users/{ext_id}")
    assert ext["active"] is False and not employments(ext)
    assert user(api, "anna@acme.dk")["active"] is True and user(api, "bo@acme.dk")["active"] is True
    # every change of the run is the source's
    events = [e for e in audit_events(auditor(app)) if e["resourceId"] in (cai_id, ext_id)
              and e["operation"] != "create"]
    assert events and {e["actor"] for e in events} == {"sync:hr"}
    # the same file again: nobody is deactivated twice
    again = full_sync(cli, tmp_path, PEOPLE[:2])
    assert counts(again)["deactivated"] == 0 and counts(again)["updated"] == 0
    # a full sync without a units file leaves the units alone
    result = sync(cli, "--users", users_file(tmp_path, PEOPLE[:1]), "--max-deactivations", "5")
    assert result.exit_code == 0, result.output
    assert counts(result)["deactivated"] == 1 and set(units(api)) == {"ROOT", "SKOLE", "PLEJE"}


def test_a_leaver_who_comes_back_is_active_again(api, cli, tmp_path):
    external = ["2001", "ext@acme.dk", "Eva", "Ekstern", "", "", "", "", ""]
    full_sync(cli, tmp_path, [*PEOPLE, external])
    full_sync(cli, tmp_path, PEOPLE[:2])
    result = full_sync(cli, tmp_path, [*PEOPLE, external])
    assert counts(result)["updated"] == 2
    cai, ext = user(api, "cai@acme.dk"), user(api, "ext@acme.dk")
    assert cai["active"] is True and ext["active"] is True
    assert not employments(cai)[0].get("endDate")
    assert counts(full_sync(cli, tmp_path, [*PEOPLE, external]))["unchanged"] == 7


def test_partial_applies_the_rows_given_and_deactivates_nobody(api, cli, tmp_path):
    external = ["2001", "ext@acme.dk", "Eva", "Ekstern", "", "", "", "", ""]
    full_sync(cli, tmp_path, [*PEOPLE, external])
    changed = ["1002", "bo@acme.dk", "Bo", "Dahl", "bo@acme.dk", "Skoleleder", "SKOLE", "1001", "2021-08-01"]
    new = ["1004", "dan@acme.dk", "Dan", "", "", "", "PLEJE", "1003", ""]
    result = sync(cli, "--partial", "--users", users_file(tmp_path, [changed, new]),
                  "--units", units_file(tmp_path, UNITS[1:2]))
    assert result.exit_code == 0, result.output
    assert counts(result) == {"created": 1, "updated": 1, "unchanged": 1, "deactivated": 0, "conflicts": 0,
                              "errors": 0}
    everyone = all_users(api)
    assert all(u["active"] for u in everyone.values()) and len(everyone) == 5
    assert everyone["bo@acme.dk"]["title"] == "Skoleleder"
    assert everyone["dan@acme.dk"][ENTERPRISE]["manager"]["value"] == everyone["cai@acme.dk"]["id"]
    assert set(units(api)) == {"ROOT", "SKOLE", "PLEJE"}
    assert all(not job.get("endDate") for u in everyone.values() for job in employments(u))


def test_units_missing_from_the_file_are_deleted_when_empty_else_kept(api, cli, tmp_path):
    unit_rows = [*UNITS[1:], ["TOM", "Tom afdeling", "ROOT", ""], ["OLD", "Gammel", "ROOT", ""],
                 ["OLD-A", "Gammel A", "OLD", ""], ["GONE", "Forsvundet", "", ""], ["GONE-A", "Underafdeling", "GONE", ""]]
    full_sync(cli, tmp_path, PEOPLE, unit_rows)
    before = units(api)
    # PLEJE has cai; OLD has a child that stays; TOM is empty; GONE and its child are both dropped and empty
    keep = [r for r in unit_rows if r[0] not in ("PLEJE", "TOM", "OLD", "GONE", "GONE-A")]
    result = sync(cli, "--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path, keep))
    assert result.exit_code == 0, result.output
    after = units(api)
    assert set(after) == {"ROOT", "SKOLE", "PLEJE", "OLD", "OLD-A"}
    assert after["PLEJE"]["id"] == before["PLEJE"]["id"] and after["OLD"]["id"] == before["OLD"]["id"]
    assert user(api, "cai@acme.dk")["active"] is True
    assert counts(result)["created"] == 0 and counts(result)["conflicts"] == 0
    # kept units are reported in the run log
    [run] = [json.loads(line) for line in cli("sync-runs", "--tenant", "acme", "--limit", "1").stdout.splitlines()]
    report = "\n".join(run["changes"])
    assert "PLEJE" in report and "OLD" in report and "kept" in report
    assert all(f"{code}: deleted" in report for code in ("TOM", "GONE", "GONE-A"))


def test_changed_units_are_updated(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    before = units(api)
    unit_rows = [UNITS[1], ["SKOLE", "Solbjerg Skole og SFO", "ROOT", "department"],
                 ["PLEJE", "Plejehjemmet", "SKOLE", "institution"]]
    result = full_sync(cli, tmp_path, PEOPLE, unit_rows)
    assert counts(result) == {"created": 0, "updated": 2, "unchanged": 4, "deactivated": 0, "conflicts": 0,
                              "errors": 0}
    after = units(api)
    assert after["SKOLE"]["displayName"] == "Solbjerg Skole og SFO"
    assert after["PLEJE"][P2L_GROUP]["parent"]["value"] == before["SKOLE"]["id"]
    assert after["PLEJE"][P2L_GROUP]["unitType"] == "institution"
    assert {k: v["id"] for k, v in after.items()} == {k: v["id"] for k, v in before.items()}


def test_a_dry_run_shows_units_it_would_keep(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    result = sync(cli, "--dry-run", "--users", users_file(tmp_path, PEOPLE),
                  "--units", units_file(tmp_path, UNITS[1:3]))  # PLEJE dropped, cai is in it
    assert result.exit_code == 0
    assert any("PLEJE" in line and "kept" in line for line in result.stdout.splitlines()), result.output


# ------------------------------------------------------------------ the deactivation guard


def _twelve(cli, tmp_path) -> list[list[str]]:
    people = staff(12, unit="ROOT")
    full_sync(cli, tmp_path, people)
    return people


def test_the_guard_refuses_a_run_that_would_deactivate_too_many(app, api, cli, tmp_path):
    people = _twelve(cli, tmp_path)
    reader = auditor(app)
    before = audit_events(reader)
    newcomer = ["9999", "new@acme.dk", "New", "", "", "", "ROOT", "", ""]
    args = ("--users", users_file(tmp_path, [people[0], newcomer]), "--units", units_file(tmp_path))
    result = sync(cli, *args)
    assert result.exit_code == 2
    text = result.stdout
    assert "11" in text and "--max-deactivations" in text  # how many, and how to go on
    # nothing was written, so the summary reports nothing created or updated
    assert summary(result).startswith("created 0, updated 0"), summary(result)
    assert all(u["active"] for u in all_users(api).values()) and user(api, "new@acme.dk") is None
    assert audit_events(reader) == before
    assert all(not job.get("endDate") for u in all_users(api).values() for job in employments(u))
    # the operator lets it through
    result = sync(cli, *args, "--max-deactivations", "11")
    assert result.exit_code == 0, result.output
    assert counts(result)["deactivated"] == 11 and counts(result)["created"] == 1
    assert sum(u["active"] for u in all_users(api).values()) == 2


@pytest.mark.parametrize("keep, limit, allowed", [
    (2, None, True),      # 10 deactivations: the default allows 10
    (1, "10", False),     # 11 > 10
    (7, "50%", True),     # 5 <= 6 (50 % of 12)
    (5, "50%", False),    # 7 > 6
    (5, "60%", True),     # 7 <= 7.2
])
def test_the_guard_limit_as_count_or_percentage(api, cli, tmp_path, keep, limit, allowed):
    people = _twelve(cli, tmp_path)
    extra = ("--max-deactivations", limit) if limit else ()
    result = sync(cli, "--users", users_file(tmp_path, people[:keep]), "--units", units_file(tmp_path), *extra)
    assert result.exit_code == (0 if allowed else 2), result.output
    active = sum(u["active"] for u in all_users(api).values())
    assert active == (keep if allowed else 12)


def test_the_guard_default_is_five_percent_of_a_large_source(api, cli, tmp_path):
    people = staff(220, unit="ROOT")  # 5 % of 220 = 11 > 10
    full_sync(cli, tmp_path, people)
    refused = sync(cli, "--users", users_file(tmp_path, people[12:]), "--units", units_file(tmp_path))
    assert refused.exit_code == 2 and "12" in refused.stdout
    allowed = sync(cli, "--users", users_file(tmp_path, people[11:]), "--units", units_file(tmp_path))
    assert allowed.exit_code == 0, allowed.output
    assert counts(allowed)["deactivated"] == 11


def test_the_guard_follows_the_tenant_setting(app, api, cli, tmp_path):
    people = _twelve(cli, tmp_path)
    set_tenant_setting(app, "acme", "sync_max_deactivations", "2")
    result = sync(cli, "--users", users_file(tmp_path, people[:9]), "--units", units_file(tmp_path))
    assert result.exit_code == 2 and "3" in result.stdout
    assert sum(u["active"] for u in all_users(api).values()) == 12
    # the flag still wins over the setting
    result = sync(cli, "--users", users_file(tmp_path, people[:9]), "--units", units_file(tmp_path),
                  "--max-deactivations", "3")
    assert result.exit_code == 0, result.output
    assert sum(u["active"] for u in all_users(api).values()) == 9


def test_a_partial_run_is_never_stopped_by_the_guard(api, cli, tmp_path):
    people = _twelve(cli, tmp_path)
    result = sync(cli, "--partial", "--users", users_file(tmp_path, people[:1]))
    assert result.exit_code == 0
    assert counts(result)["deactivated"] == 0


# ------------------------------------------------------------------ rows of the file


def test_several_rows_of_one_person_are_several_employments(api, cli, tmp_path):
    rows = [*PEOPLE, ["1004", "dan@acme.dk", "Dan", "Falk", "", "Lærer", "SKOLE", "", "2020-01-01"],
            ["1004", "DAN@acme.dk", "Dan", "Falk", "", "Nattevagt", "PLEJE", "", "2021-01-01"]]
    result = full_sync(cli, tmp_path, rows)
    assert counts(result)["created"] == 7
    found = units(api)
    dan = user(api, "dan@acme.dk")
    jobs = {j["value"]: j for j in employments(dan)}
    assert set(jobs) == {found["SKOLE"]["id"], found["PLEJE"]["id"]}
    assert jobs[found["SKOLE"]["id"]]["startDate"].startswith("2020-01-01")
    assert jobs[found["PLEJE"]["id"]]["startDate"].startswith("2021-01-01")
    # the same file again: unchanged
    assert counts(full_sync(cli, tmp_path, rows))["unchanged"] == 7
    # one employment dropped from the file: the person keeps one
    result = full_sync(cli, tmp_path, rows[:-1])
    assert counts(result)["updated"] == 1
    dan = user(api, "dan@acme.dk")
    assert [j["value"] for j in employments(dan)] == [found["SKOLE"]["id"]] and dan["active"] is True


def test_rows_of_one_person_that_disagree_leave_the_person_out(api, cli, tmp_path):
    rows = [*PEOPLE, ["1004", "dan@acme.dk", "Dan", "Falk", "", "", "SKOLE", "", ""],
            ["1004", "dan@acme.dk", "Daniel", "Falk", "", "", "PLEJE", "", ""],
            ["1005", "eli@acme.dk", "Eli", "", "", "", "SKOLE", "", ""],
            ["1005", "eli@acme.dk", "Eli", "", "", "", "PLEJE", "", "31-31-2020"]]
    result = sync(cli, "--users", users_file(tmp_path, rows), "--units", units_file(tmp_path))
    assert result.exit_code == 1
    assert user(api, "dan@acme.dk") is None and user(api, "eli@acme.dk") is None  # never half-applied
    assert counts(result)["created"] == 6
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert any("users.csv, line 6" in line and "givenName" in line for line in errors), errors
    assert any("users.csv, line 8" in line and "startDate" in line for line in errors), errors


def test_forward_references_to_managers_and_parents(api, cli, tmp_path):
    unit_rows = [["SKOLE", "Solbjerg Skole", "ROOT", ""], ["KLASSE", "5.A", "SKOLE", ""], ["ROOT", "Kommune", "", ""]]
    people = [["1003", "cai@acme.dk", "Cai", "", "", "", "KLASSE", "1002", ""],
              ["1002", "bo@acme.dk", "Bo", "", "", "", "SKOLE", "1001", ""],
              ["1001", "anna@acme.dk", "Anna", "", "", "", "ROOT", "", ""]]
    result = full_sync(cli, tmp_path, people, unit_rows)
    assert counts(result)["created"] == 6 and counts(result)["errors"] == 0
    found = units(api)
    assert found["KLASSE"][P2L_GROUP]["parent"]["value"] == found["SKOLE"]["id"]
    assert found["SKOLE"][P2L_GROUP]["parent"]["value"] == found["ROOT"]["id"]
    everyone = all_users(api)
    assert everyone["cai@acme.dk"][ENTERPRISE]["manager"]["value"] == everyone["bo@acme.dk"]["id"]
    assert everyone["bo@acme.dk"][ENTERPRISE]["manager"]["value"] == everyone["anna@acme.dk"]["id"]
    assert counts(full_sync(cli, tmp_path, people, unit_rows))["unchanged"] == 6


def test_a_manager_cycle_is_a_row_error_and_the_others_are_applied(api, cli, tmp_path):
    people = [*PEOPLE, ["1004", "dan@acme.dk", "Dan", "", "", "", "ROOT", "1005", ""],
              ["1005", "eli@acme.dk", "Eli", "", "", "", "ROOT", "1004", ""],
              ["1006", "fie@acme.dk", "Fie", "", "", "", "ROOT", "1006", ""]]
    result = sync(cli, "--users", users_file(tmp_path, people), "--units", units_file(tmp_path))
    assert result.exit_code == 1
    assert counts(result)["created"] == 6 and counts(result)["errors"] == 3
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    for line_no in (5, 6, 7):
        assert any(f"users.csv, line {line_no}" in line for line in errors), errors
    assert "cycle" in "\n".join(errors)
    everyone = all_users(api)
    assert set(everyone) == {"anna@acme.dk", "bo@acme.dk", "cai@acme.dk"}


def test_a_manager_cycle_within_the_file_between_stored_people(api, cli, tmp_path):
    full_sync(cli, tmp_path)  # bo and cai report to anna
    people = [["1001", "anna@acme.dk", "Anna", "Berg", "anna@acme.dk", "Direktør", "ROOT", "1002", "2020-01-01"],
              *PEOPLE[1:]]
    result = sync(cli, "--users", users_file(tmp_path, people), "--units", units_file(tmp_path))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert any("users.csv, line 2" in e and "cycle" in e for e in errors), errors
    assert not (user(api, "anna@acme.dk").get(ENTERPRISE) or {}).get("manager")


def test_a_manager_cycle_through_stored_people_names_the_file_and_line(api, cli, tmp_path):
    full_sync(cli, tmp_path)  # bo reports to anna
    people = [PEOPLE[2], ["1001", "anna@acme.dk", "Anna", "Berg", "anna@acme.dk", "Direktør", "ROOT", "1002",
                          "2020-01-01"]]
    result = sync(cli, "--partial", "--json", "--users", users_file(tmp_path, people))
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["unchanged"] == 1 and body["errors"] == 1
    [error] = body["rowErrors"]
    assert "cycle" in error["reason"]
    assert (error["file"], error["line"]) == ("users.csv", 3), error
    assert not (user(api, "anna@acme.dk").get(ENTERPRISE) or {}).get("manager")


def test_a_parent_cycle_through_stored_units_names_the_file_and_line(api, cli, tmp_path):
    full_sync(cli, tmp_path)  # SKOLE is below ROOT
    unit_rows = [UNITS[3], ["ROOT", "Solbjerg Kommune", "SKOLE", "municipality"]]
    result = sync(cli, "--partial", "--json", "--units", units_file(tmp_path, unit_rows))
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    [error] = body["rowErrors"]
    assert "cycle" in error["reason"]
    assert (error["file"], error["line"]) == ("units.csv", 3), error
    assert not units(api)["ROOT"][P2L_GROUP].get("parent")


def test_a_parent_cycle_is_a_row_error_and_the_others_are_applied(api, cli, tmp_path):
    unit_rows = [*UNITS[1:], ["X", "Ex", "Y", ""], ["Y", "Why", "X", ""], ["Z", "Zed", "Z", ""]]
    result = sync(cli, "--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path, unit_rows))
    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    for line_no in (5, 6, 7):
        assert any(f"units.csv, line {line_no}" in line for line in errors), errors
    assert set(units(api)) == {"ROOT", "SKOLE", "PLEJE"}
    assert counts(result)["created"] == 6 and counts(result)["errors"] == 3


@pytest.mark.parametrize("encoding, delimiter", [("utf-8-sig", ","), ("cp1252", ","), ("utf-8", ";"),
                                                 ("cp1252", ";")])
def test_encodings_and_delimiters(api, cli, tmp_path, encoding, delimiter):
    header = ["ExternalID", "USERNAME", "givenname", "familyName", "locality", "orgUnit"]  # any case
    rows = [["1001", "soeren@acme.dk", "Søren", "Æbelø", "Århus", "ÅKANDE"]]
    units_path = write_csv(tmp_path, "units.csv", [["unitCode", "displayName"], ["ÅKANDE", "Børnehaven Åkanden"]],
                           delimiter, encoding)
    users_path = write_csv(tmp_path, "users.csv", [header, *rows], delimiter, encoding)
    if encoding == "utf-8-sig":
        assert open(users_path, "rb").read().startswith(b"\xef\xbb\xbf")
    result = sync(cli, "--users", users_path, "--units", units_path)
    assert result.exit_code == 0, result.output
    assert counts(result)["created"] == 2
    soeren = user(api, "soeren@acme.dk")
    assert soeren["externalId"] == "1001"
    assert soeren["name"] == {"givenName": "Søren", "familyName": "Æbelø"}
    assert soeren["addresses"][0]["locality"] == "Århus"
    assert units(api)["ÅKANDE"]["displayName"] == "Børnehaven Åkanden"
    assert employments(soeren)[0]["value"] == units(api)["ÅKANDE"]["id"]


def test_xlsx_files(api, cli, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["unitCode", "displayName", "parentUnitCode", "ean"])
    sheet.append(["ROOT", "Kommune", None, int(EAN_OK)])
    sheet.append(["SKOLE", "Skole", "ROOT", None])
    book.save(tmp_path / "units.xlsx")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["userName", "externalId", "givenName", "orgUnit", "startDate", "managerExternalId"])
    sheet.append(["bo@acme.dk", 1002, "Bo", "SKOLE", dt.datetime(2021, 8, 1), 1001])
    sheet.append(["anna@acme.dk", 1001, "Anna", "ROOT", dt.date(2020, 1, 1), None])
    book.save(tmp_path / "users.xlsx")
    args = ("--users", str(tmp_path / "users.xlsx"), "--units", str(tmp_path / "units.xlsx"))
    result = sync(cli, *args)
    assert result.exit_code == 0, result.output
    assert counts(result)["created"] == 4
    found = units(api)
    assert found["ROOT"][P2L_GROUP]["ean"] == EAN_OK
    bo, anna = user(api, "bo@acme.dk"), user(api, "anna@acme.dk")
    assert bo["externalId"] == "1002" and bo[ENTERPRISE]["manager"]["value"] == anna["id"]
    assert employments(bo)[0]["startDate"].startswith("2021-08-01")
    assert employments(bo)[0]["value"] == found["SKOLE"]["id"]
    assert counts(sync(cli, *args))["unchanged"] == 4
    sheet.append(["cai@acme.dk", 1003, "Cai", "SKOLE", "2021-02-30", None])  # row 4
    book.save(tmp_path / "users.xlsx")
    result = sync(cli, *args)
    assert result.exit_code == 1
    assert any(line.startswith("error") and "users.xlsx, line 4" in line for line in result.stdout.splitlines())


def test_a_mapping_for_a_danish_payroll_export(api, cli, tmp_path):
    mapping = EXAMPLES / "payroll-mapping.toml"
    units_path = tmp_path / "afdelinger.csv"
    units_path.write_bytes("Afdelingsnummer;Afdelingsnavn;Overafdeling\nSKOLE;Skolen;KOMMUNE\n"
                           "KOMMUNE;Kommunen;\n".encode("cp1252"))
    users_path = tmp_path / "medarbejdere.csv"
    users_path.write_bytes(("Medarbejdernummer;Brugernavn;Fornavn;Efternavn;Afdeling;Leder;Ansat fra;"
                            "Omkostningssted\n"
                            "1002;bo@acme.dk;Bo;Ørsted;SKOLE;1001;01.08.2021;4711\n"
                            "1001;anna@acme.dk;Anna;Åberg;KOMMUNE;;1.1.2020;4700\n").encode("cp1252"))
    args = ("--users", str(users_path), "--units", str(units_path), "--mapping", str(mapping))
    result = sync(cli, *args, source="payroll")
    assert result.exit_code == 0, result.output
    assert counts(result)["created"] == 4
    bo, anna = user(api, "bo@acme.dk"), user(api, "anna@acme.dk")
    assert bo["externalId"] == "1002" and bo["userType"] == "Employee"
    assert bo["name"]["familyName"] == "Ørsted"
    assert bo[ENTERPRISE]["employeeNumber"] == "1002" and bo[ENTERPRISE]["costCenter"] == "4711"
    assert bo[ENTERPRISE]["manager"]["value"] == anna["id"]
    assert employments(bo)[0]["startDate"].startswith("2021-08-01")
    assert employments(bo)[0]["value"] == units(api)["SKOLE"]["id"]
    assert counts(sync(cli, *args, source="payroll"))["unchanged"] == 4


def test_an_unknown_target_in_a_mapping_refuses_the_run(api, cli, tmp_path):
    mapping = tmp_path / "map.toml"
    mapping.write_text('[users.columns]\nAfdeling = "orgUnit"\nFoo = "noSuchAttribute"\n')
    result = sync(cli, "--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path),
                  "--mapping", str(mapping))
    assert result.exit_code == 2
    assert "noSuchAttribute" in result.stdout
    assert get_json(api, "/Users")["totalResults"] == 0 and units(api) == {}


# ------------------------------------------------------------------ dry runs, audit, run log


def test_a_dry_run_writes_nothing_and_prints_the_diff(app, api, cli, tmp_path):
    reader = auditor(app)
    result = sync(cli, "--dry-run", "--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path))
    assert result.exit_code == 0, result.output
    assert summary(result) == "created 6, updated 0, unchanged 0, deactivated 0, conflicts 0, errors 0"
    lines = result.stdout.splitlines()
    for key in ("1001", "1002", "1003", "ROOT", "SKOLE", "PLEJE"):
        assert any(key in line and "created" in line for line in lines[:-1]), result.output
    assert get_json(api, "/Users")["totalResults"] == 0 and units(api) == {}
    assert audit_events(reader) == []
    # after a real run: a dry run of changes shows old -> new, and the leavers
    full_sync(cli, tmp_path)
    before = audit_events(reader)
    changed = [["1001", "anna@acme.dk", "Anna", "Berg", "anna@acme.dk", "Borgmester", "ROOT", "", "2020-01-01"],
               PEOPLE[1]]
    result = sync(cli, "--dry-run", "--users", users_file(tmp_path, changed), "--units", units_file(tmp_path))
    assert result.exit_code == 0, result.output
    assert counts(result) == {"created": 0, "updated": 1, "unchanged": 4, "deactivated": 1, "conflicts": 0,
                              "errors": 0}
    text = result.stdout
    assert "Direktør" in text and "Borgmester" in text and "->" in text
    assert any("1003" in line and "deactivated" in line for line in text.splitlines())
    assert audit_events(reader) == before
    assert user(api, "anna@acme.dk")["title"] == "Direktør" and user(api, "cai@acme.dk")["active"] is True


def test_audit_events_of_a_run_have_the_source_as_actor_and_the_run_id(app, api, cli, tmp_path):
    api.create_user("idp@acme.dk")
    reader = auditor(app)
    first = sync(cli, "--json", "--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path))
    run_id = json.loads(first.stdout)["runId"]
    events = [e for e in audit_events(reader) if not e["actor"].startswith("token:")]
    assert len(events) >= 6
    assert {e["actor"] for e in events} == {"sync:hr"}
    assert {e["resourceType"] for e in events} == {"User", "Group"}
    # the run id: the admin API's event JSON has no field for it, the stored event has it
    if any("runId" in e for e in events):
        assert {e.get("runId") for e in events} == {run_id}
    assert set(run_ids_of_events(app, [e["id"] for e in events]).values()) == {run_id}
    second = sync(cli, "--json", "--source", "payroll", "--users",
                  users_file(tmp_path, [["1001", "x@acme.dk", "X", "", "", "", "", "", ""]], name="p.csv"))
    assert second.exit_code == 0, second.output
    new = [e for e in audit_events(reader) if e["id"] not in {x["id"] for x in events}
           and not e["actor"].startswith("token:")]
    assert {e["actor"] for e in new} == {"sync:payroll"}
    assert set(run_ids_of_events(app, [e["id"] for e in new]).values()) == {json.loads(second.stdout)["runId"]}


def test_sync_runs_prints_the_run_log(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    bad = [*PEOPLE, ["1009", "zed@acme.dk", "Zed", "", "", "", "", "", "2020-13-45"]]
    assert sync(cli, "--users", users_file(tmp_path, bad), "--units", units_file(tmp_path)).exit_code == 1
    assert sync(cli, "--source", "members", "--users",
                users_file(tmp_path, [["M1", "m1@acme.dk", "M", "", "", "", "", "", ""]])).exit_code == 0
    result = cli("sync-runs", "--tenant", "acme", "--source", "hr")
    assert result.exit_code == 0, result.output
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(runs) == 2
    newest, oldest = runs
    assert oldest["source"] == newest["source"] == "hr"
    assert {k: oldest[k] for k in SUMMARY_KEYS} == {"created": 6, "updated": 0, "unchanged": 0, "deactivated": 0,
                                                     "conflicts": 0, "errors": 0}
    assert oldest["mode"] == "full" and oldest["status"] == "applied" and oldest["rowErrors"] == []
    assert newest["errors"] == 1 and newest["unchanged"] == 6
    [error] = newest["rowErrors"]
    assert error["file"] == "users.csv" and error["line"] == 5 and "startDate" in error["reason"]
    everything = [json.loads(line) for line in cli("sync-runs", "--tenant", "acme").stdout.splitlines()]
    assert [r["source"] for r in everything] == ["members", "hr", "hr"]
    assert cli("sync-runs", "--tenant", "acme", "--source", "nosuch").exit_code != 0
    assert cli("sync-runs", "--tenant", "nosuch").exit_code != 0


def test_refused_runs_are_in_the_run_log(api, cli, tmp_path):
    people = staff(12, unit="ROOT")
    full_sync(cli, tmp_path, people)
    assert sync(cli, "--users", users_file(tmp_path, people[:1]), "--units", units_file(tmp_path)).exit_code == 2
    assert sync(cli, "--dry-run", "--partial", "--users", users_file(tmp_path, people[:1])).exit_code == 0
    runs = [json.loads(line) for line in cli("sync-runs", "--tenant", "acme").stdout.splitlines()]
    runs = [r for r in runs if not r["dryRun"]]  # whether a dry run is logged is not the to say
    assert [(r["status"], r["mode"]) for r in runs] == [("refused", "full"), ("applied", "full")]
    assert "11" in runs[0]["message"] and "--max-deactivations" in runs[0]["message"]
    assert runs[0]["startedBy"] and runs[0]["startedAt"]


# ------------------------------------------------------------------ bad input


def test_a_missing_required_column_refuses_the_run(api, cli, tmp_path):
    header = ["externalId", "givenName", "orgUnit"]
    result = sync(cli, "--users", users_file(tmp_path, [["1001", "Anna", "ROOT"]], header),
                  "--units", units_file(tmp_path))
    assert result.exit_code == 2
    assert "userName" in result.stdout and "users.csv" in result.stdout
    assert units(api) == {} and get_json(api, "/Users")["totalResults"] == 0  # not even the units
    result = sync(cli, "--json", "--units", write_csv(tmp_path, "u.csv", [["unitCode", "name"], ["A", "B"]]))
    assert result.exit_code == 2
    assert json.loads(result.stdout)["status"] == "refused" and units(api) == {}


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02binary\x00", b"PK\x03\x04not a zip at all"])
def test_an_unreadable_file_refuses_the_run(api, cli, tmp_path, content):
    path = tmp_path / "users.csv"
    path.write_bytes(content)
    result = sync(cli, "--users", str(path), "--units", units_file(tmp_path))
    assert result.exit_code == 2, result.output
    assert units(api) == {}


def test_a_missing_file_refuses_the_run(api, cli, tmp_path):
    result = sync(cli, "--users", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2 and "nope.csv" in result.stdout


def test_bad_rows_are_row_errors_with_file_and_line(api, cli, tmp_path):
    header = [*USER_HEADER, "ean"]
    rows = [[*row, ""] for row in PEOPLE] + [
        ["1004", "dan@acme.dk", "Dan", "", "", "", "ROOT", "", "2020-02-30", ""],         # line 5: bad date
        ["1005", "eli@acme.dk", "Eli", "", "", "", "ROOT", "", "", "5790000000006"],      # line 6: bad EAN
        ["1006", "fie@acme.dk", "Fie", "", "", "", "NOWHERE", "", "", ""],                # line 7: unknown orgUnit
        ["1007", "gus@acme.dk", "Gus", "", "", "", "ROOT", "4242", "", ""],               # line 8: unknown manager
        ["1008", "twin@acme.dk", "Twin", "", "", "", "ROOT", "", "", ""],                 # line 9: duplicate
        ["1009", "TWIN@acme.dk", "Twin", "", "", "", "ROOT", "", "", ""],                 # line 10: duplicate
        ["1010", "hal@acme.dk", "Hal", "", "", "", "ROOT", "", "", EAN_OK],               # fine
    ]
    result = sync(cli, "--users", users_file(tmp_path, rows, header), "--units", units_file(tmp_path))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    expected = {5: "startDate", 6: "ean", 7: "NOWHERE", 8: "4242", 9: "userName", 10: "userName"}
    for line_no, word in expected.items():
        assert any(f"users.csv, line {line_no}" in e and word in e for e in errors), (line_no, errors)
    assert counts(result)["errors"] == len(errors) == 6
    everyone = all_users(api)
    assert set(everyone) == {"anna@acme.dk", "bo@acme.dk", "cai@acme.dk", "hal@acme.dk"}
    assert everyone["hal@acme.dk"][P2L_USER]["ean"] == EAN_OK


def test_bad_unit_rows_are_row_errors_and_not_taken_for_absent_units(api, cli, tmp_path):
    full_sync(cli, tmp_path, PEOPLE, [*UNITS[1:], ["TOM", "Tom", "ROOT", ""]])
    rows = [[*row, ""] for row in UNITS[1:]] + [
        ["TOM", "Tom", "ROOT", "", "123"],       # line 5: bad EAN (an empty unit: not deleted for it)
        ["skole", "Dublet", "", "", ""],          # line 6: unitCode given twice (case-insensitively)
        ["NEW", "", "", "", ""],                  # line 7: displayName empty
        ["NEW2", "Ny", "NOPE", "", ""],           # line 8: unknown parent
        ["NEW3", "Ny 3", "ROOT", "", EAN_OK],     # fine
    ]
    result = sync(cli, "--users", users_file(tmp_path, PEOPLE),
                  "--units", write_csv(tmp_path, "units.csv", [[*UNITS[0], "ean"], *rows]))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
    for line_no, word in {5: "ean", 6: "skole", 7: "displayName", 8: "NOPE"}.items():
        assert any(f"units.csv, line {line_no}" in e and word in e for e in errors), (line_no, errors)
    assert counts(result)["errors"] == 4 and counts(result)["created"] == 1
    found = units(api)
    assert set(found) == {"ROOT", "SKOLE", "PLEJE", "TOM", "NEW3"}
    assert found["SKOLE"]["displayName"] == "Solbjerg Skole" and found["NEW3"][P2L_GROUP]["ean"] == EAN_OK


def test_a_rename_to_a_user_name_held_by_the_idp_is_a_conflict_not_a_leaver(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    api.create_user("taken@acme.dk")
    renamed = [PEOPLE[0], ["1002", "TAKEN@acme.dk", *PEOPLE[1][2:]], PEOPLE[2]]
    result = sync(cli, "--users", users_file(tmp_path, renamed), "--units", units_file(tmp_path))
    assert counts(result) == {"created": 0, "updated": 0, "unchanged": 5, "deactivated": 0, "conflicts": 1,
                              "errors": 0}
    assert any(line.startswith("conflict") and "1002" in line for line in result.stdout.splitlines())
    assert user(api, "bo@acme.dk")["active"] is True
    assert "externalId" not in user(api, "taken@acme.dk")


def test_rows_with_errors_are_not_taken_for_leavers(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    rows = [PEOPLE[0], PEOPLE[1], [*PEOPLE[2][:8], "2022-02-31"]]  # cai's row is bad, not absent
    result = sync(cli, "--users", users_file(tmp_path, rows), "--units", units_file(tmp_path))
    assert result.exit_code == 1
    assert counts(result)["deactivated"] == 0
    assert user(api, "cai@acme.dk")["active"] is True


def test_a_bad_max_deactivations_value_is_refused(api, cli, tmp_path):
    result = sync(cli, "--users", users_file(tmp_path, PEOPLE), "--max-deactivations", "lots")
    assert result.exit_code == 2 and "lots" in result.stdout
    assert get_json(api, "/Users")["totalResults"] == 0


# ------------------------------------------------------------------ tenants and sources


def test_a_sync_never_touches_another_tenant(api, other_api, cli, tmp_path):
    theirs = other_api.create_user("anna@acme.dk", title="Globex")
    their_unit = create_unit(other_api, "Globex root", code="ROOT")
    result = full_sync(cli, tmp_path)
    assert counts(result)["created"] == 6 and counts(result)["conflicts"] == 0
    assert get_json(other_api, f"/Users/{theirs['id']}")["title"] == "Globex"
    assert get_json(other_api, "/Users")["totalResults"] == 1
    assert set(units(other_api)) == {"ROOT"} and units(other_api)["ROOT"]["id"] == their_unit["id"]
    # globex runs its own hr source: acme's people are neither seen nor deactivated
    globex = sync(cli, "--users", users_file(tmp_path, [["1001", "zed@globex.com", "Zed", "", "", "", "", "", ""]],
                                             name="globex.csv"),
                  tenant="globex")
    assert globex.exit_code == 0, globex.output
    assert counts(globex) == {"created": 1, "updated": 0, "unchanged": 0, "deactivated": 0, "conflicts": 0,
                              "errors": 0}
    assert all(u["active"] for u in all_users(api).values()) and len(all_users(api)) == 3
    acme_again = full_sync(cli, tmp_path, PEOPLE[:2], None, "--max-deactivations", "5")
    assert counts(acme_again)["deactivated"] == 1
    assert get_json(other_api, f"/Users/{theirs['id']}")["active"] is True
    assert all(u["active"] for u in all_users(other_api).values())
    runs = [json.loads(line) for line in cli("sync-runs", "--tenant", "globex").stdout.splitlines()]
    assert len(runs) == 1 and runs[0]["created"] == 1


def test_source_create_and_list(api, other_api, cli):
    assert cli("source", "list", "--tenant", "acme").stdout.strip() == ""
    for name in ("payroll", "hr", "HR"):
        created = cli("source", "create", "--tenant", "acme", name)
        assert created.exit_code == 0, created.output
    assert created.stdout.strip() == "hr"
    assert cli("source", "create", "--tenant", "globex", "members").exit_code == 0
    assert cli("source", "list", "--tenant", "acme").stdout.split() == ["hr", "payroll"]
    assert cli("source", "list", "--tenant", "globex").stdout.split() == ["members"]
    bad = cli("source", "create", "--tenant", "acme", "no spaces/allowed")
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert cli("source", "create", "--tenant", "nosuch", "hr").exit_code != 0
    assert cli("source", "list", "--tenant", "acme").stdout.split() == ["hr", "payroll"]


def test_a_user_created_by_a_source_counts_as_its_own(api, cli, tmp_path):
    """Sanity of the ownership rule the other way round: the source's own user is updated by its
    own runs even after an IdP changed it, and the IdP's PATCH of an attribute the file provides
    is overwritten by the file."""
    full_sync(cli, tmp_path)
    anna = user(api, "anna@acme.dk")
    assert api.patch_ops(f"/Users/{anna['id']}", {"op": "replace", "path": "title", "value": "IdP"}).status_code \
        in (200, 204)
    result = full_sync(cli, tmp_path)
    assert counts(result)["updated"] == 1
    assert user(api, "anna@acme.dk")["title"] == "Direktør"


def test_sync_needs_a_file_and_a_known_tenant(api, cli, tmp_path):
    assert cli("sync", "--tenant", "acme", "--source", "hr").exit_code != 0
    result = cli("sync", "--tenant", "nosuch", "--source", "hr", "--users", users_file(tmp_path, PEOPLE))
    assert result.exit_code != 0 and "Traceback" not in result.output



def test_a_future_starter_who_drops_out_loses_the_employment_that_never_began(api, cli, tmp_path):
    """An employment that has not started cannot end before it starts: a future starter missing
    from the next full snapshot loses it (no row error), and stays inactive."""
    starter = ["3001", "new@acme.dk", "Ny", "Start", "", "", "SKOLE", "", "2999-01-01"]
    full_sync(cli, tmp_path, [*PEOPLE, starter])
    assert user(api, "new@acme.dk")["active"] is False
    result = full_sync(cli, tmp_path, PEOPLE)
    assert result.exit_code == 0, result.output
    assert counts(result)["errors"] == 0
    gone = user(api, "new@acme.dk")
    assert gone["active"] is False and not employments(gone)
    assert counts(full_sync(cli, tmp_path, PEOPLE))["updated"] == 0
