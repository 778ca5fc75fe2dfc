"""The sync over HTTP (issue 13, "Over HTTP"; README "Syncing from HR, payroll and member
registers"): ``POST /admin/v1/sources/{source}/sync`` with a CSV body, a multipart upload (CSV
and XLSX parts) or JSON of SCIM resources, its flags as query parameters, and the run log at
``GET /admin/v1/sources/{source}/runs[/{id}]``. Everything is driven through Flask's test
client and read back through the SCIM API and ``GET /admin/v1/audit``."""
from __future__ import annotations

import csv
import io
import threading
import time
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from conftest import CORE_GROUP, CORE_USER, ENTERPRISE, ERROR, P2L_GROUP, P2L_USER, tenant_of
from scim_server import create_app
from scim_server.config import Settings
from scim_server.storage import tenants
from scim_server.storage.models import BearerToken

ADMIN = "/admin/v1/sources"

UNIT_ROWS = [
    ["unitCode", "displayName", "parentUnitCode", "unitType"],
    ["SKOLE", "Solbjerg Skole", "ROOT", "department"],  # the parent comes after its child
    ["ROOT", "Solbjerg Kommune", "", "municipality"],
    ["PLEJE", "Plejehjemmet", "ROOT", "department"],
]
EMPLOYEE_HEADER = ["externalId", "userName", "givenName", "familyName", "email", "title", "orgUnit",
                   "managerExternalId", "startDate"]
EMPLOYEES = [
    ["1002", "bo@solbjerg.dk", "Bo", "Dahl", "bo@solbjerg.dk", "Lærer", "SKOLE", "1001", "2021-08-01"],
    ["1001", "anna@solbjerg.dk", "Anna", "Berg", "anna@solbjerg.dk", "Direktør", "ROOT", "", "2020-01-01"],
    ["1003", "cai@solbjerg.dk", "Cai", "Eng", "cai@solbjerg.dk", "Assistent", "PLEJE", "1001", "01-02-2022"],
    ["1003", "cai@solbjerg.dk", "Cai", "Eng", "cai@solbjerg.dk", "Vikar", "SKOLE", "1001", "2023-01-01"],
]
MEMBER_HEADER = ["externalId", "userName", "givenName", "familyName", "email", "userType", "managerExternalId"]


def member(number: int, manager: str = "") -> list[str]:
    return [f"M{number:03d}", f"m{number:03d}@union.dk", f"Given{number}", f"Family{number}",
            f"m{number:03d}@union.dk", "External", manager]


MEMBERS = [member(1), member(2, "M001"), member(3, "M001")]


# ------------------------------------------------------------------ helpers


def csv_bytes(rows: list[list[str]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append([cell if cell != "" else None for cell in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


class Client:
    """One bearer token of one tenant, speaking to the app's admin and SCIM APIs."""

    def __init__(self, app, token: str | None):
        self.http = app.test_client()
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def sync(self, source: str = "hr", body: Any = None, content_type: str | None = "text/csv",
             query: str = "", json: Any = None):
        url = f"{ADMIN}/{source}/sync" + (f"?{query}" if query else "")
        if json is not None:
            return self.http.post(url, json=json, headers=self._headers())
        if content_type is None:
            return self.http.post(url, data=body, headers=self._headers())
        return self.http.post(url, data=body, headers=self._headers(), content_type=content_type)

    def upload(self, source: str = "hr", query: str = "", **parts: tuple[bytes, str]):
        data = {name: (io.BytesIO(content), filename) for name, (content, filename) in parts.items()}
        url = f"{ADMIN}/{source}/sync" + (f"?{query}" if query else "")
        return self.http.post(url, data=data, headers=self._headers(), content_type="multipart/form-data")

    def get(self, path: str):
        return self.http.get(path, headers=self._headers())


def token_for(app, scope: str, tenant: str = "acme") -> str:
    with app.extensions["scim_sessions"].begin() as session:
        return tenants.create_token(session, tenant_of(session, tenant), f"sync test {scope}", scope=scope)


def token_id(app, token: str) -> str:
    with app.extensions["scim_sessions"]() as session:
        return session.scalar(select(BearerToken.id).where(BearerToken.token_hash == tenants.hash_token(token)))


@pytest.fixture
def syncer(app) -> Client:
    """sync:write only: what an HR integration holds."""
    return Client(app, token_for(app, "sync:write"))


@pytest.fixture
def auditor(app) -> Client:
    return Client(app, token_for(app, "audit:read"))


@pytest.fixture
def reader(app) -> Client:
    return Client(app, token_for(app, "scim:read"))


@pytest.fixture
def writer(app) -> Client:
    """An API client of the same tenant (an IdP, say): scim:read scim:write."""
    return Client(app, token_for(app, "scim:read scim:write"))


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def scim_error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body["schemas"] == [ERROR], body
    assert body["status"] == str(status), body
    assert body.get("detail"), body
    return body


def users(reader: Client) -> dict[str, dict]:
    """The tenant's users by externalId (those without one by userName)."""
    body = ok(reader.get("/scim/v2/Users?count=500"))
    return {u.get("externalId") or u["userName"]: u for u in body["Resources"]}


def units(reader: Client) -> dict[str, dict]:
    """The tenant's org units by unitCode."""
    body = ok(reader.get("/scim/v2/Groups?count=500"))
    return {g[P2L_GROUP]["unitCode"]: g for g in body["Resources"] if (g.get(P2L_GROUP) or {}).get("unitCode")}


def audit_trail(auditor: Client) -> list[dict]:
    return ok(auditor.get("/admin/v1/audit?count=500"))["Resources"]


def counts(body: dict) -> tuple[int, ...]:
    return tuple(body[k] for k in ("created", "updated", "unchanged", "deactivated", "conflicts", "errors"))


def run_of(auditor: Client, body: dict, source: str = "hr") -> dict:
    return ok(auditor.get(f"{ADMIN}/{source}/runs/{body['id']}"))


def employers(user: dict, by_id: dict[str, str]) -> set[str]:
    """The unitCodes of a user's employments."""
    return {by_id[j["value"]] for j in (user.get(P2L_USER) or {}).get("employments", [])}


# ------------------------------------------------------------------ the three input forms


def test_csv_body_full_sync_creates_users(syncer, reader, auditor):
    r = syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS]))
    body = ok(r)
    assert body["status"] == "applied"
    assert counts(body) == (3, 0, 0, 0, 0, 0)
    assert body["rowErrors"] == []
    assert body["mode"] == "full" and body["dryRun"] is False
    assert r.headers["Location"].endswith(f"{ADMIN}/hr/runs/{body['id']}")
    found = users(reader)
    assert set(found) == {"M001", "M002", "M003"}
    m2 = found["M002"]
    assert m2["userName"] == "m002@union.dk"
    assert m2["name"]["givenName"] == "Given2" and m2["name"]["familyName"] == "Family2"
    assert [e["value"] for e in m2["emails"]] == ["m002@union.dk"]
    assert m2["userType"] == "External"
    assert m2["active"] is True
    assert m2[ENTERPRISE]["manager"]["value"] == found["M001"]["id"]
    # the body is the run, and the run log has it
    assert ok(auditor.get(f"{ADMIN}/hr/runs"))["totalResults"] == 1


def test_csv_body_semicolons_and_application_csv(syncer, reader):
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS], delimiter=";"), content_type="application/csv"))
    assert body["created"] == 3
    assert set(users(reader)) == {"M001", "M002", "M003"}


def test_multipart_upload_with_xlsx_units_and_csv_users(syncer, reader):
    r = syncer.upload(users=(csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), "medarbejdere.csv"),
                      units=(xlsx_bytes(UNIT_ROWS), "afdelinger.xlsx"))
    body = ok(r)
    assert body["status"] == "applied", body
    assert body["rowErrors"] == []
    assert body["created"] == 6  # 3 units and 3 people
    found_units = units(reader)
    assert set(found_units) == {"ROOT", "SKOLE", "PLEJE"}
    code_of = {g["id"]: code for code, g in found_units.items()}
    assert found_units["ROOT"]["displayName"] == "Solbjerg Kommune"
    assert found_units["SKOLE"][P2L_GROUP]["parent"]["value"] == found_units["ROOT"]["id"]
    assert found_units["PLEJE"][P2L_GROUP]["unitType"] == "department"
    people = users(reader)
    assert set(people) == {"1001", "1002", "1003"}
    assert employers(people["1003"], code_of) == {"PLEJE", "SKOLE"}  # two rows, two employments
    assert employers(people["1001"], code_of) == {"ROOT"}
    assert people["1002"][ENTERPRISE]["manager"]["value"] == people["1001"]["id"]  # named before it appeared
    assert all(p["active"] for p in people.values())


def test_multipart_upload_with_xlsx_users(syncer, reader):
    ok(syncer.upload(units=(csv_bytes(UNIT_ROWS), "units.csv")))
    body = ok(syncer.upload(users=(xlsx_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), "users.xlsx")))
    assert counts(body)[:2] == (3, 0), body
    people = users(reader)
    assert set(people) == {"1001", "1002", "1003"}
    assert people["1001"]["title"] == "Direktør"


def test_multipart_without_users_or_units_part(syncer, reader):
    r = syncer.upload(other=(csv_bytes([MEMBER_HEADER, *MEMBERS]), "x.csv"))
    scim_error(r, 400)
    assert users(reader) == {}


def json_users() -> list[dict]:
    def person(ext, user_name, given, jobs, manager=None):
        user: dict[str, Any] = {
            "schemas": [CORE_USER, ENTERPRISE, P2L_USER], "externalId": ext, "userName": user_name,
            "name": {"givenName": given, "familyName": "Jensen"},
            "emails": [{"type": "work", "value": user_name}],
            P2L_USER: {"employments": [{"value": code, "startDate": "2022-03-01T00:00:00Z"} for code in jobs]},
        }
        if manager:
            user[ENTERPRISE] = {"manager": {"value": manager}, "department": "Skole"}
        return user

    return [person("E2", "e2@solbjerg.dk", "Eva", ["SKOLE"], manager="E1"),
            person("E1", "e1@solbjerg.dk", "Erik", ["ROOT"]),
            person("E3", "e3@solbjerg.dk", "Ea", ["SKOLE", "PLEJE"], manager="E1")]


def json_units() -> list[dict]:
    def unit(code, name, parent=None):
        ext: dict[str, Any] = {"unitCode": code, "unitType": "department"}
        if parent:
            ext["parent"] = {"value": parent}
        return {"schemas": [CORE_GROUP, P2L_GROUP], "displayName": name, P2L_GROUP: ext}

    return [unit("SKOLE", "Skolen", "ROOT"), unit("ROOT", "Kommunen"), unit("PLEJE", "Plejen", "ROOT")]


def test_json_body_of_scim_resources(syncer, reader):
    body = ok(syncer.sync(json={"users": json_users(), "units": json_units()}))
    assert body["status"] == "applied", body
    assert body["rowErrors"] == []
    assert body["created"] == 6
    found_units = units(reader)
    code_of = {g["id"]: code for code, g in found_units.items()}
    assert found_units["SKOLE"][P2L_GROUP]["parent"]["value"] == found_units["ROOT"]["id"]
    assert found_units["PLEJE"]["displayName"] == "Plejen"
    people = users(reader)
    assert set(people) == {"E1", "E2", "E3"}
    assert people["E2"][ENTERPRISE]["manager"]["value"] == people["E1"]["id"]
    assert people["E2"][ENTERPRISE]["department"] == "Skole"
    assert employers(people["E3"], code_of) == {"SKOLE", "PLEJE"}
    assert people["E2"]["name"]["givenName"] == "Eva"


def test_json_body_application_scim_json_and_row_errors(syncer, reader):
    ok(syncer.sync(json={"units": json_units()}))
    bad = {"schemas": [CORE_USER], "externalId": "E9", "userName": "e9@solbjerg.dk",
           P2L_USER: {"employments": [{"value": "NOWHERE"}]}}
    import json
    r = syncer.sync(body=json.dumps({"users": [*json_users(), bad]}), content_type="application/scim+json")
    body = ok(r)
    assert body["created"] == 3
    assert [(e["file"], e["line"]) for e in body["rowErrors"]] == [("users", 4)]
    assert "NOWHERE" in body["rowErrors"][0]["reason"]
    assert set(users(reader)) == {"E1", "E2", "E3"}


@pytest.mark.parametrize("payload", [[], {"people": []}, {"users": "not a list"}])
def test_json_body_of_the_wrong_shape(syncer, reader, payload):
    scim_error(syncer.sync(json=payload), 400)
    assert users(reader) == {}


# ------------------------------------------------------------------ the flags


def test_partial_mode_deactivates_nobody_by_absence(syncer, reader):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS])))
    changed = member(2, "M001")
    changed[2] = "Renamed"
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, changed]), query="mode=partial"))
    assert body["mode"] == "partial"
    assert counts(body) == (0, 1, 0, 0, 0, 0)
    found = users(reader)
    assert found["M002"]["name"]["givenName"] == "Renamed"
    assert found["M001"]["active"] is True and found["M003"]["active"] is True


def test_full_mode_deactivates_leavers_by_absence(syncer, reader):
    ok(syncer.upload(users=(csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), "users.csv"),
                     units=(csv_bytes(UNIT_ROWS), "units.csv")))
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS]), source="members"))
    # the payroll file without Cai (employed) and the member file without M003 (external)
    body = ok(syncer.sync(body=csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES[:2]])))
    assert counts(body) == (0, 0, 2, 1, 0, 0), body
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS[:2]]), source="members"))
    assert counts(body) == (0, 0, 2, 1, 0, 0), body
    found = users(reader)
    assert found["1003"]["active"] is False
    assert all(j.get("endDate") for j in found["1003"][P2L_USER]["employments"])
    assert found["M003"]["active"] is False
    assert all(found[k]["active"] for k in ("1001", "1002", "M001", "M002"))  # nobody else, of either source
    assert len(found) == 6  # deactivated, not deleted


def test_full_mode_judges_only_the_tables_it_was_given(syncer, reader):
    ok(syncer.sync(json={"users": json_users(), "units": json_units()}, source="HR"))  # source names fold case
    body = ok(syncer.sync(json={"units": json_units()}))  # no users list: nobody is a leaver
    assert counts(body) == (0, 0, 3, 0, 0, 0), body
    body = ok(syncer.sync(json={"users": json_users()}))  # no units list: no unit is dropped
    assert counts(body) == (0, 0, 3, 0, 0, 0), body
    assert len(units(reader)) == 3 and all(u["active"] for u in users(reader).values())


def test_full_mode_deletes_empty_units_missing_from_the_units_file(syncer, reader):
    ok(syncer.upload(users=(csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES[:2]]), "users.csv"),
                     units=(csv_bytes(UNIT_ROWS), "units.csv")))
    extra = ["TOM", "Tom enhed", "ROOT", "department"]
    ok(syncer.upload(units=(csv_bytes([*UNIT_ROWS, extra]), "units.csv")))
    assert set(units(reader)) == {"ROOT", "SKOLE", "PLEJE", "TOM"}
    # TOM and PLEJE are left out: nobody works in them and they have no children
    body = ok(syncer.upload(units=(csv_bytes(UNIT_ROWS[:3]), "units.csv")))
    assert body["deactivated"] == 2, body
    assert set(units(reader)) == {"ROOT", "SKOLE"}
    # SKOLE is left out but Bo works there: kept, and reported
    body = ok(syncer.upload(units=(csv_bytes(UNIT_ROWS[:1] + UNIT_ROWS[2:3]), "units.csv")))
    assert body["deactivated"] == 0
    assert any("SKOLE" in line and "kept" in line for line in body["changes"]), body["changes"]
    assert set(units(reader)) == {"ROOT", "SKOLE"}


def test_dry_run_writes_nothing_and_lists_the_changes(syncer, reader, auditor):
    body = ok(syncer.upload(users=(csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), "users.csv"),
                            units=(csv_bytes(UNIT_ROWS), "units.csv"), query="dryRun=true"))
    assert body["status"] == "dry-run" and body["dryRun"] is True
    assert body["created"] == 6
    assert any("1002" in line and "created" in line for line in body["changes"]), body["changes"]
    assert any("SKOLE" in line and "created" in line for line in body["changes"]), body["changes"]
    assert users(reader) == {} and units(reader) == {}
    assert audit_trail(auditor) == []
    assert run_of(auditor, body)["eventsTotal"] == 0

    ok(syncer.upload(users=(csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), "users.csv"),
                     units=(csv_bytes(UNIT_ROWS), "units.csv")))
    before = users(reader)
    events_before = len(audit_trail(auditor))
    edited = [row[:] for row in EMPLOYEES[:2]]
    edited[0][2] = "Bjarne"  # Bo's givenName; Cai (1003) is left out: a leaver
    body = ok(syncer.sync(body=csv_bytes([EMPLOYEE_HEADER, *edited]), query="dryRun=1&mode=full"))
    assert body["status"] == "dry-run"
    assert counts(body)[:4] == (0, 1, 1, 1), body
    update = [line for line in body["changes"] if line.startswith("user 1002")]
    assert update and "'Bo'" in update[0] and "'Bjarne'" in update[0], body["changes"]
    assert any(line.startswith("user 1003") and "deactivated" in line for line in body["changes"])
    assert users(reader) == before
    assert len(audit_trail(auditor)) == events_before


def test_dry_run_false_applies(syncer, reader):
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS]), query="dryRun=false"))
    assert body["status"] == "applied" and body["dryRun"] is False
    assert len(users(reader)) == 3


def many_members(n: int) -> list[list[str]]:
    return [member(i) for i in range(1, n + 1)]


def test_deactivation_guard_refuses_and_writes_nothing(syncer, reader, auditor):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *many_members(14)])))
    events_before = audit_trail(auditor)
    truncated = csv_bytes([MEMBER_HEADER, *many_members(2)])  # would deactivate 12 > 10
    r = syncer.sync(body=truncated)
    body = scim_error(r, 400)
    assert "12" in body["detail"], body
    assert all(u["active"] for u in users(reader).values())
    assert audit_trail(auditor) == events_before
    # a limit too low is refused as well; one high enough applies
    scim_error(syncer.sync(body=truncated, query="maxDeactivations=11"), 400)
    assert all(u["active"] for u in users(reader).values())
    body = ok(syncer.sync(body=truncated, query="maxDeactivations=12"))
    assert body["deactivated"] == 12
    found = users(reader)
    assert sum(1 for u in found.values() if not u["active"]) == 12
    assert found["M001"]["active"] and found["M002"]["active"]


def test_deactivation_guard_with_a_percentage_and_partial_mode(syncer, reader):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *many_members(14)])))
    one = csv_bytes([MEMBER_HEADER, member(1)])
    scim_error(syncer.sync(body=one, query="maxDeactivations=50%"), 400)  # 13 > 7
    body = ok(syncer.sync(body=one, query="mode=partial"))  # no guard: nothing ends by absence
    assert body["deactivated"] == 0
    assert all(u["active"] for u in users(reader).values())
    body = ok(syncer.sync(body=one, query="maxDeactivations=100%"))
    assert body["deactivated"] == 13


def test_refused_run_is_in_the_run_log(syncer, auditor):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *many_members(12)])))
    scim_error(syncer.sync(body=csv_bytes([MEMBER_HEADER, member(1)])), 400)
    runs = ok(auditor.get(f"{ADMIN}/hr/runs"))["Resources"]
    assert sorted(r["status"] for r in runs) == ["applied", "refused"]
    refused = next(r for r in runs if r["status"] == "refused")
    assert refused.get("message")
    assert run_of(auditor, refused)["eventsTotal"] == 0


@pytest.mark.parametrize("query", ["mode=fast", "mode=", "dryRun=maybe", "dryRun=", "maxDeactivations=abc",
                                   "maxDeactivations=-1", "maxDeactivations=150%", "maxDeactivations=",
                                   "maxDeactivations=5.5"])
def test_bad_query_parameters(syncer, reader, query):
    scim_error(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS]), query=query), 400)
    assert users(reader) == {}


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream",
                                          "application/x-www-form-urlencoded", None])
def test_wrong_content_type(syncer, reader, content_type):
    scim_error(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS]), content_type=content_type), 415)
    assert users(reader) == {}


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("header", [["externalId", "givenName", "email"], ["userName", "givenName", "email"]])
def test_missing_required_column_refuses_the_run(syncer, reader, auditor, header):
    rows = [header, ["1", "Ann", "ann@x.dk"], ["2", "Bob", "bob@x.dk"]]
    body = scim_error(syncer.sync(body=csv_bytes(rows)), 400)
    missing = ({"externalId", "userName"} - set(header)).pop()
    assert missing in body["detail"], body
    assert users(reader) == {}
    assert audit_trail(auditor) == []


def test_missing_required_unit_column_in_multipart_writes_nothing(syncer, reader):
    units_file = csv_bytes([["unitCode", "parentUnitCode"], ["ROOT", ""]])
    scim_error(syncer.upload(users=(csv_bytes([MEMBER_HEADER, *MEMBERS]), "users.csv"),
                             units=(units_file, "units.csv")), 400)
    assert users(reader) == {} and units(reader) == {}


def test_row_errors_answer_200_and_apply_the_valid_rows(syncer, reader):
    ok(syncer.upload(units=(csv_bytes(UNIT_ROWS), "units.csv")))
    rows = [EMPLOYEE_HEADER,
            ["2001", "ok1@solbjerg.dk", "Ok", "One", "ok1@solbjerg.dk", "", "ROOT", "", "2020-01-01"],
            ["2002", "bad-date@solbjerg.dk", "Bad", "Date", "", "", "ROOT", "", "31/12/2020"],
            ["2003", "ok2@solbjerg.dk", "Ok", "Two", "", "", "SKOLE", "2001", ""],
            ["2004", "no-unit@solbjerg.dk", "No", "Unit", "", "", "NOWHERE", "", ""],
            ["2005", "no-boss@solbjerg.dk", "No", "Boss", "", "", "ROOT", "9999", ""]]
    body = ok(syncer.upload(users=(csv_bytes(rows), "people.csv")))
    assert body["status"] == "applied"
    assert body["created"] == 2
    assert body["errors"] == 3 == len(body["rowErrors"])
    by_line = {e["line"]: e for e in body["rowErrors"]}
    assert set(by_line) == {3, 5, 6}, body["rowErrors"]
    # the file is named by its part ("users") or by the uploaded file's name
    assert all(e["file"] in ("users", "people.csv") for e in body["rowErrors"]), body["rowErrors"]
    assert "31/12/2020" in by_line[3]["reason"] or "date" in by_line[3]["reason"].lower()
    assert "NOWHERE" in by_line[5]["reason"]
    assert "9999" in by_line[6]["reason"]
    assert set(users(reader)) == {"2001", "2003"}


def test_csv_body_row_errors_name_the_users_file(syncer, reader):
    rows = [MEMBER_HEADER, *MEMBERS, ["M004", "m001@union.dk", "", "", "", "External", ""]]  # duplicate userName
    body = ok(syncer.sync(body=csv_bytes(rows), query="mode=partial"))
    assert body["rowErrors"], body
    assert {e["file"] for e in body["rowErrors"]} == {"users"}
    assert all(isinstance(e["line"], int) and e["reason"] for e in body["rowErrors"])
    assert "M004" not in users(reader)


def test_a_person_with_a_row_error_is_no_leaver(syncer, reader):
    ok(syncer.upload(users=(csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), "users.csv"),
                     units=(csv_bytes(UNIT_ROWS), "units.csv")))
    bad = [row[:] for row in EMPLOYEES]
    bad[0][8] = "not a date"  # Bo's row: Bo is left out of this run, not absent from the file
    body = ok(syncer.sync(body=csv_bytes([EMPLOYEE_HEADER, *bad])))
    assert body["deactivated"] == 0 and body["errors"] == 1, body
    assert [(e["file"], e["line"]) for e in body["rowErrors"]] == [("users", 2)]
    assert all(u["active"] for u in users(reader).values())


@pytest.mark.parametrize("payload", [b"", b"\n\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
                                     b"PK\x03\x04 not really a workbook"])
def test_unreadable_body_refuses_the_run(syncer, reader, auditor, payload):
    scim_error(syncer.sync(body=payload), 400)
    assert users(reader) == {}
    assert audit_trail(auditor) == []


def test_windows_1252_body(syncer, reader):
    rows = [MEMBER_HEADER, ["M001", "jorgen@union.dk", "Jørgen", "Ærø", "", "External", ""]]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    body = ok(syncer.sync(body=buffer.getvalue().encode("cp1252")))
    assert body["created"] == 1, body
    name = users(reader)["M001"]["name"]
    assert (name["givenName"], name["familyName"]) == ("Jørgen", "Ærø")


def test_deactivation_guard_allows_exactly_the_default_limit(syncer, reader):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *many_members(11)])))
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, member(1)])))  # 10 leavers: not more than 10
    assert body["deactivated"] == 10
    assert sum(1 for u in users(reader).values() if u["active"]) == 1


def test_dry_run_past_the_guard_still_writes_nothing(syncer, reader, auditor):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *many_members(14)])))
    events = len(audit_trail(auditor))
    r = syncer.sync(body=csv_bytes([MEMBER_HEADER, member(1)]), query="dryRun=true")
    assert r.status_code in (200, 400), r.get_data(as_text=True)
    if r.status_code == 200:  # the diff shows what the real run would do (and be refused for)
        assert r.get_json()["deactivated"] == 13
    assert all(u["active"] for u in users(reader).values())
    assert len(audit_trail(auditor)) == events


def test_location_honours_the_forwarded_headers(syncer):
    r = syncer.http.post(f"{ADMIN}/hr/sync", data=csv_bytes([MEMBER_HEADER, *MEMBERS]), content_type="text/csv",
                         headers={**syncer._headers(), "X-Forwarded-Proto": "https",
                                  "X-Forwarded-Host": "scim.example.dk"})
    body = ok(r)
    # README: SCIM_TRUST_FORWARDED_HEADERS=1 (the default) builds locations from X-Forwarded-Proto/Host
    assert r.headers["Location"] == f"https://scim.example.dk{ADMIN}/hr/runs/{body['id']}"


# ------------------------------------------------------------------ scopes


def test_sync_needs_the_sync_write_scope(app, reader, auditor):
    payload = csv_bytes([MEMBER_HEADER, *MEMBERS])
    for scope in ("scim:read scim:write", "audit:read", "scim:read scim:write audit:read"):
        r = Client(app, token_for(app, scope)).sync(body=payload)
        scim_error(r, 403)
        assert 'error="insufficient_scope"' in r.headers.get("WWW-Authenticate", "")
    scim_error(Client(app, None).sync(body=payload), 401)
    scim_error(Client(app, "not-a-token").sync(body=payload), 401)
    assert users(reader) == {}
    assert ok(Client(app, token_for(app, "sync:write")).sync(body=payload))["created"] == 3


def test_run_log_needs_the_audit_read_scope(app, syncer):
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS])))
    for client in (syncer, Client(app, token_for(app, "scim:read scim:write"))):
        scim_error(client.get(f"{ADMIN}/hr/runs"), 403)
        scim_error(client.get(f"{ADMIN}/hr/runs/{body['id']}"), 403)
    scim_error(Client(app, None).get(f"{ADMIN}/hr/runs"), 401)
    both = Client(app, token_for(app, "sync:write audit:read"))
    assert ok(both.get(f"{ADMIN}/hr/runs"))["totalResults"] == 1


# ------------------------------------------------------------------ the run log


def test_runs_list_counts_status_mode_and_who(app, syncer, auditor):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS]), query="dryRun=true&mode=partial"))
    time.sleep(0.01)
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS])))
    body = ok(auditor.get(f"{ADMIN}/hr/runs"))
    assert body["totalResults"] == 2
    newest, oldest = body["Resources"]
    who = f"token:{token_id(app, syncer.token)}"
    assert (newest["mode"], newest["dryRun"], newest["status"]) == ("full", False, "applied")
    assert (oldest["mode"], oldest["dryRun"], oldest["status"]) == ("partial", True, "dry-run")
    for run in (newest, oldest):
        assert run["startedBy"] == who
        assert run["source"] == "hr"
        assert run["startedAt"] and run["finishedAt"]
        assert counts(run) == (3, 0, 0, 0, 0, 0)
    assert newest["startedAt"] >= oldest["startedAt"]


def test_run_detail_row_errors_conflicts_changes_and_events(app, syncer, auditor, writer):
    # a userName an API client holds already: a conflict, not applied
    r = writer.http.post("/scim/v2/Users", json={"schemas": [CORE_USER], "userName": "M003@union.dk"},
                         headers=writer._headers())
    assert r.status_code == 201, r.get_data(as_text=True)
    rows = [MEMBER_HEADER, *MEMBERS, ["M004", "m004@union.dk", "", "", "not-an-email", "External", "M999"]]
    body = ok(syncer.sync(body=csv_bytes(rows)))
    assert counts(body) == (2, 0, 0, 0, 1, 1), body
    run = run_of(auditor, body)
    assert run["id"] == body["id"] and run["status"] == "applied"
    assert [(e["file"], e["line"]) for e in run["rowErrors"]] == [("users", 5)]
    assert "M999" in run["rowErrors"][0]["reason"]
    assert len(run["conflictList"]) == 1 and "M003" in run["conflictList"][0]
    assert sorted(line.split(" ")[1] for line in run["changes"]) == ["M001", "M002"]
    assert run["eventsTotal"] == 2 == len(run["events"])
    created = {u["externalId"]: u["id"] for u in users(Client(app, writer.token)).values() if u.get("externalId")}
    assert {(e["resourceType"], e["resourceId"], e["operation"]) for e in run["events"]} == {
        ("User", created["M001"], "create"), ("User", created["M002"], "create")}
    assert all(e["id"] for e in run["events"])
    # each event is the audit trail's
    trail = {e["id"]: e for e in audit_trail(auditor)}
    for event in run["events"]:
        assert trail[event["id"]]["resourceId"] == event["resourceId"]
        assert trail[event["id"]]["runId"] == run["id"]


def test_audit_trail_actor_and_run_id(syncer, auditor, writer):
    first = ok(syncer.upload(users=(csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), "users.csv"),
                             units=(csv_bytes(UNIT_ROWS), "units.csv")))
    second = ok(syncer.sync(body=csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES[:2]])))  # Cai leaves
    writer.http.post("/scim/v2/Users", json={"schemas": [CORE_USER], "userName": "idp@acme.com"},
                     headers=writer._headers())
    trail = audit_trail(auditor)
    by_run: dict[str | None, list[dict]] = {}
    for event in trail:
        by_run.setdefault(event.get("runId"), []).append(event)
    assert set(by_run) == {first["id"], second["id"], None}
    for run in (first, second):
        assert {e["actor"] for e in by_run[run["id"]]} == {"sync:hr"}
        assert len(by_run[run["id"]]) == run_of(auditor, run)["eventsTotal"] > 0
    assert len(by_run[first["id"]]) == 6  # 3 units and 3 people created
    # the leaver's changes (its employment ended, the leaver rule's deactivation) are the run's too
    assert [e["actor"] for e in by_run[None]] != ["sync:hr"] and len(by_run[None]) == 1
    assert {e["resourceType"] for e in by_run[first["id"]]} == {"User", "Group"}


def test_same_csv_twice_is_idempotent(syncer, reader, auditor):
    users_csv, units_csv = csv_bytes([EMPLOYEE_HEADER, *EMPLOYEES]), csv_bytes(UNIT_ROWS)
    first = ok(syncer.upload(users=(users_csv, "users.csv"), units=(units_csv, "units.csv")))
    assert first["created"] == 6
    state, events = users(reader), len(audit_trail(auditor))
    second = ok(syncer.upload(users=(users_csv, "users.csv"), units=(units_csv, "units.csv")))
    assert counts(second) == (0, 0, 6, 0, 0, 0), second
    assert second["changes"] == []
    third = ok(syncer.sync(body=users_csv))
    assert counts(third) == (0, 0, 3, 0, 0, 0), third
    assert len(audit_trail(auditor)) == events
    assert run_of(auditor, second)["eventsTotal"] == 0 == run_of(auditor, third)["eventsTotal"]
    assert users(reader) == state


def test_json_twice_is_idempotent(syncer, auditor):
    payload = {"users": json_users(), "units": json_units()}
    ok(syncer.sync(json=payload))
    events = len(audit_trail(auditor))
    again = ok(syncer.sync(json=payload))
    assert counts(again) == (0, 0, 6, 0, 0, 0), again
    assert len(audit_trail(auditor)) == events


# ------------------------------------------------------------------ sources and tenants


def test_unknown_source_and_run_are_404(syncer, auditor):
    scim_error(auditor.get(f"{ADMIN}/nosuch/runs"), 404)
    scim_error(auditor.get(f"{ADMIN}/nosuch/runs/00000000-0000-0000-0000-000000000000"), 404)
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS])))
    scim_error(auditor.get(f"{ADMIN}/hr/runs/00000000-0000-0000-0000-000000000000"), 404)
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER]), source="payroll", query="mode=partial"))
    scim_error(auditor.get(f"{ADMIN}/payroll/runs/{body['id']}"), 404)  # a run of another source
    assert ok(auditor.get(f"{ADMIN}/payroll/runs"))["totalResults"] == 1


def test_another_tenant_never_sees_the_runs(app, syncer, auditor, reader):
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS])))
    globex_auditor = Client(app, token_for(app, "audit:read", tenant="globex"))
    scim_error(globex_auditor.get(f"{ADMIN}/hr/runs"), 404)  # globex has no source 'hr'
    scim_error(globex_auditor.get(f"{ADMIN}/hr/runs/{body['id']}"), 404)
    globex_syncer = Client(app, token_for(app, "sync:write", tenant="globex"))
    theirs = ok(globex_syncer.sync(body=csv_bytes([MEMBER_HEADER, member(1)])))  # globex's own 'hr'
    assert theirs["created"] == 1  # M001 of acme is no conflict: another tenant
    listing = ok(globex_auditor.get(f"{ADMIN}/hr/runs"))
    assert [r["id"] for r in listing["Resources"]] == [theirs["id"]]
    scim_error(globex_auditor.get(f"{ADMIN}/hr/runs/{body['id']}"), 404)
    scim_error(auditor.get(f"{ADMIN}/hr/runs/{theirs['id']}"), 404)
    assert [r["id"] for r in ok(auditor.get(f"{ADMIN}/hr/runs"))["Resources"]] == [body["id"]]
    assert set(users(reader)) == {"M001", "M002", "M003"}
    assert all(u["active"] for u in users(reader).values())
    assert all(e["runId"] != theirs["id"] for e in audit_trail(auditor))


def test_sources_do_not_touch_each_others_users(syncer, reader):
    ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, *MEMBERS]), source="members"))
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER, member(1)]), source="payroll"))
    assert body["conflicts"] == 1 and body["created"] == 0  # M001's userName is the members source's
    body = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER]), source="payroll"))  # an empty full snapshot
    assert body["deactivated"] == 0
    assert all(u["active"] for u in users(reader).values())


# ------------------------------------------------------------------ large uploads


def poll(auditor: Client, accepted, run_id: str) -> dict:
    """The run behind a 202, once it is no longer running (at most ~10 s)."""
    location = accepted.headers["Location"]
    assert location.endswith(f"/runs/{run_id}")
    path = location[location.index(ADMIN):]
    deadline = time.monotonic() + 10
    run = ok(auditor.get(path))
    while run["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = ok(auditor.get(path))
    for thread in threading.enumerate():  # the worker commits, then lets go of its connection
        if thread.name == f"sync-{run_id}":
            thread.join(5)
    return run


def test_large_upload_runs_in_the_background(app):
    settings = Settings.from_env(database_url=app.config["SCIM"].database_url, public_base_url=None,
                                 token_cache_seconds=0, sync_inline_bytes=100, max_body_bytes=2000,
                                 sync_max_bytes=20000)
    app2 = create_app(settings)
    app2.config["TESTING"] = True
    try:
        syncer = Client(app2, token_for(app, "sync:write"))
        auditor = Client(app2, token_for(app, "audit:read"))
        reader = Client(app2, token_for(app, "scim:read"))
        payload = csv_bytes([MEMBER_HEADER, *many_members(20)])
        assert len(payload) > 100
        r = syncer.sync(body=payload)
        accepted = ok(r, 202)
        location = r.headers["Location"]
        assert location.endswith(f"{ADMIN}/hr/runs/{accepted['id']}")
        run = poll(auditor, r, accepted["id"])
        assert run["status"] == "applied", run
        assert run["created"] == 20 and run["errors"] == 0
        assert run["startedBy"] == f"token:{token_id(app, syncer.token)}"
        assert run["eventsTotal"] == 20
        assert len(users(reader)) == 20
        # a small body on the same app is still answered inline
        small = ok(syncer.sync(body=csv_bytes([MEMBER_HEADER]), query="mode=partial"))
        assert small["status"] == "applied"
        # the guard in the background: the run is refused and writes nothing
        events = len(audit_trail(auditor))
        r = syncer.sync(body=csv_bytes([MEMBER_HEADER, *many_members(2)]) + b"\n" * 100)
        refused = poll(auditor, r, ok(r, 202)["id"])
        assert refused["status"] == "refused", refused
        assert "deactivate" in refused.get("message", "") and refused["eventsTotal"] == 0
        assert all(u["active"] for u in users(reader).values())
        assert len(audit_trail(auditor)) == events
        # a file larger than SCIM_MAX_BODY_BYTES is still a file; past SCIM_SYNC_MAX_BYTES it is 413
        big = csv_bytes([MEMBER_HEADER, *many_members(20)]) + b"\n" * 3000
        r = syncer.sync(body=big, query="mode=partial")
        assert poll(auditor, r, ok(r, 202)["id"])["status"] == "applied"
        r = syncer.sync(body=big + b"\n" * 20000, query="mode=partial")
        assert r.status_code == 413, (r.status_code, r.get_data(as_text=True))
    finally:
        app2.extensions["scim_engine"].dispose()
