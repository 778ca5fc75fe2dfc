"""The reports over the admin API (scope ``audit:read``): billing per effective EAN and unit on
a date (JSON, CSV, XLSX), and the data-quality checks (counts, and each check's paged list).
The data is written through the SCIM API, as an IdP or a sync would."""
from __future__ import annotations

import csv
import io

import pytest

from conftest import ENTERPRISE, P2L_USER, ScimClient, assert_scim_error, bearer, create_unit
from scim_server.storage import tenants

BILLING = "http://localhost/admin/v1/reports/billing"
QUALITY = "http://localhost/admin/v1/reports/quality"


def ean13(body12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


# ascending as listed: the report sorts its lines by EAN
EAN_ROOT, EAN_DEPT, EAN_OWN = (ean13(f"57900000020{i}") for i in range(1, 4))


def scoped(app, scope: str, tenant: str = "acme") -> ScimClient:
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, tenant), "reports", scope)
    return bearer(app, token)


def job(unit: dict, **dates) -> dict:
    return {"value": unit["id"], **dates}


def person(api: ScimClient, user_name: str, *jobs: dict, ean: str | None = None, manager: dict | None = None,
           emails: list[dict] | None = None, **attrs) -> dict:
    ext = {**({"employments": list(jobs)} if jobs else {}), **({"ean": ean} if ean else {})}
    return api.create_user(user_name, **({P2L_USER: ext} if ext else {}),
                           **({ENTERPRISE: {"manager": {"value": manager["id"]}}} if manager else {}),
                           **({"emails": emails} if emails else {}), **attrs)


def reactivate(api: ScimClient, user: dict) -> None:
    """An IdP sets ``active`` back: it wins over the leaver rule until the next employment change."""
    r = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": True})
    assert r.status_code in (200, 204), r.get_data(as_text=True)


def billing(auditor: ScimClient, date: str, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in {"date": date, **params}.items())
    r = auditor.get(f"{BILLING}?{query}")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def summary(body: dict) -> list[tuple]:
    """(ean, users, [(unitCode, users)]) per line, in the report's order."""
    return [(line["ean"], line["users"], [(u["unitCode"], u["users"]) for u in line["units"]])
            for line in body["eans"]]


# ------------------------------------------------------------------ billing


@pytest.fixture
def payroll(api):
    """Kommune (EAN_ROOT) > Skole (EAN_DEPT) > Indskoling; Kommune > Sundhed; Løs (no EAN anywhere)."""
    root = create_unit(api, "Kommune", ean=EAN_ROOT)
    dept = create_unit(api, "Skole", parent=root["id"], ean=EAN_DEPT)
    team = create_unit(api, "Indskoling", parent=dept["id"])
    health = create_unit(api, "Sundhed", parent=root["id"])
    loose = create_unit(api, "Løs", code="LOES")
    users = {
        "a": person(api, "a@k.dk", job(team, startDate="2020-01-01T00:00:00Z")),
        "b": person(api, "b@k.dk", job(team)),
        "c": person(api, "c@k.dk", job(dept)),
        "j": person(api, "j@k.dk", job(team, endDate="2099-12-31T00:00:00Z")),
        "d": person(api, "d@k.dk", job(health)),
        "own": person(api, "own@k.dk", ean=EAN_OWN),                      # billed on their own EAN
        "own_employed": person(api, "k@k.dk", job(health), ean=EAN_OWN),  # own EAN wins, while employed
        "f": person(api, "f@k.dk", job(loose)),                           # active, no EAN: the last line
        "inactive": person(api, "g@k.dk", job(team), active=False),
        "external": person(api, "h@k.dk"),                                # no employment, no EAN: never billed
    }
    return {"root": root, "dept": dept, "team": team, "health": health, "loose": loose, **users}


def test_billing_counts_active_users_per_ean_and_unit(app, api, payroll):
    body = billing(scoped(app, "audit:read"), "2024-06-01")
    assert body["date"] == "2024-06-01"
    assert body["totalUsers"] == 8
    assert summary(body) == [
        (EAN_ROOT, 1, [("SUNDHED", 1)]),
        (EAN_DEPT, 4, [("INDSKOLING", 3), ("SKOLE", 1)]),
        (EAN_OWN, 2, [(None, 2)]),
        (None, 1, [("LOES", 1)]),
    ]
    team = body["eans"][1]["units"][0]
    assert team == {"id": payroll["team"]["id"], "unitCode": "INDSKOLING", "displayName": "Indskoling", "users": 3}
    assert body["eans"][2]["units"] == [{"id": None, "unitCode": None, "displayName": None, "users": 2}]
    assert body["eans"][3]["units"][0]["id"] == payroll["loose"]["id"]


def test_billing_follows_start_and_end_dates(app, api, payroll):
    auditor = scoped(app, "audit:read")
    before_start = {line["ean"]: line["users"] for line in billing(auditor, "2019-12-31")["eans"]}
    assert before_start[EAN_DEPT] == 3  # a starts on 2020-01-01
    first_day = {line["ean"]: line["users"] for line in billing(auditor, "2020-01-01")["eans"]}
    assert first_day[EAN_DEPT] == 4
    last_day = {line["ean"]: line["users"] for line in billing(auditor, "2099-12-31")["eans"]}
    assert last_day[EAN_DEPT] == 4
    after_end = billing(auditor, "2100-01-01")
    assert summary(after_end)[1] == (EAN_DEPT, 3, [("INDSKOLING", 2), ("SKOLE", 1)])  # j ended on 2099-12-31
    assert after_end["totalUsers"] == 7


def test_billing_leaves_out_inactive_and_external_users(app, api, payroll):
    auditor = scoped(app, "audit:read")
    assert billing(auditor, "2024-06-01")["totalUsers"] == 8
    api.patch_ops(f"/Users/{payroll['b']['id']}", {"op": "replace", "path": "active", "value": False})
    api.patch_ops(f"/Users/{payroll['own']['id']}", {"op": "replace", "path": "active", "value": False})
    body = billing(auditor, "2024-06-01")
    assert body["totalUsers"] == 6
    assert summary(body)[1:3] == [(EAN_DEPT, 3, [("INDSKOLING", 2), ("SKOLE", 1)]), (EAN_OWN, 1, [(None, 1)])]
    # a user with employments, none of them in effect, is not billed on an own EAN either
    person(api, "past@k.dk", job(payroll["team"], startDate="2030-01-01T00:00:00Z"), ean=EAN_OWN)
    assert billing(auditor, "2024-06-01")["totalUsers"] == 6


def test_billing_is_empty_without_billable_users(app, api):
    person(api, "external@k.dk")
    body = billing(scoped(app, "audit:read"), "2024-06-01")
    assert body == {"date": "2024-06-01", "totalUsers": 0, "eans": []}


def test_billing_date_defaults_to_today(app, api, payroll):
    import datetime as dt
    r = scoped(app, "audit:read").get(BILLING)
    assert r.status_code == 200
    assert r.get_json()["date"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert r.get_json()["totalUsers"] == 8


def test_billing_as_csv(app, api, payroll):
    r = scoped(app, "audit:read").get(f"{BILLING}?date=2024-06-01&format=csv")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="billing-2024-06-01.csv"'
    text = r.get_data().decode("utf-8")
    assert text.splitlines()[0] == "ean,unitCode,unitName,users"
    assert list(csv.reader(io.StringIO(text)))[1:] == [
        [EAN_ROOT, "SUNDHED", "Sundhed", "1"],
        [EAN_DEPT, "INDSKOLING", "Indskoling", "3"],
        [EAN_DEPT, "SKOLE", "Skole", "1"],
        [EAN_OWN, "", "", "2"],
        ["", "LOES", "Løs", "1"],
    ]


def test_billing_as_xlsx_and_no_cell_is_a_formula(app, api):
    from openpyxl import load_workbook

    unit = create_unit(api, "=HYPERLINK(\"http://x\")", code="EVIL", ean=EAN_ROOT)
    person(api, "a@k.dk", job(unit))
    auditor = scoped(app, "audit:read")
    sheet_csv = auditor.get(f"{BILLING}?date=2024-06-01&format=csv").get_data().decode()
    assert list(csv.reader(io.StringIO(sheet_csv)))[1] == [EAN_ROOT, "EVIL", "'=HYPERLINK(\"http://x\")", "1"]
    r = auditor.get(f"{BILLING}?date=2024-06-01&format=xlsx")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == 'attachment; filename="billing-2024-06-01.xlsx"'
    sheet = load_workbook(io.BytesIO(r.get_data())).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows == [["ean", "unitCode", "unitName", "users"], [EAN_ROOT, "EVIL", "=HYPERLINK(\"http://x\")", 1]]
    assert sheet["C2"].data_type == "s"


@pytest.mark.parametrize("query", ["date=2024-13-01", "date=yesterday", "date=20240601", "date=2024-W01-1",
                                   "format=pdf", "date=2024-06-01&format="])
def test_billing_bad_parameters(app, api, query):
    if query.endswith("format="):  # an empty format is the default, JSON
        assert scoped(app, "audit:read").get(f"{BILLING}?{query}").status_code == 200
        return
    assert_scim_error(scoped(app, "audit:read").get(f"{BILLING}?{query}"), 400, "invalidValue")


@pytest.mark.parametrize("url", [BILLING, QUALITY])
def test_reports_require_the_audit_scope(app, api, anonymous, url):
    r = api.get(url)  # scim:read scim:write, no audit:read
    assert_scim_error(r, 403)
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert_scim_error(anonymous.get(url), 401)


def test_reports_are_per_tenant(app, api, other_api, payroll):
    theirs = create_unit(other_api, "Kommune", ean=EAN_ROOT)
    for i in range(3):
        person(other_api, f"x{i}@globex.dk", job(theirs))
    person(other_api, "nobody@globex.dk")
    acme = billing(scoped(app, "audit:read"), "2024-06-01")
    assert acme["totalUsers"] == 8 and summary(acme)[0] == (EAN_ROOT, 1, [("SUNDHED", 1)])
    globex = billing(scoped(app, "audit:read", tenant="globex"), "2024-06-01")
    assert summary(globex) == [(EAN_ROOT, 3, [("KOMMUNE", 3)])]
    checks = {c["name"]: c["count"] for c in
              scoped(app, "audit:read", tenant="globex").get(QUALITY).get_json()["checks"]}
    assert checks["without_org_unit"] == 1 and checks["units_without_ean"] == 0


# ------------------------------------------------------------------ data quality


@pytest.fixture
def messy(api):
    alfa = create_unit(api, "Alfa", ean=EAN_ROOT)
    beta = create_unit(api, "Beta", parent=alfa["id"])
    gamma = create_unit(api, "Gamma")
    delta = create_unit(api, "Delta")
    boss = person(api, "boss", job(alfa))
    managed = {"manager": boss}
    users = {
        "boss": boss,
        "anna": person(api, "anna", job(beta), **managed, emails=[{"value": "anna@x.dk", "type": "work"}]),
        "bent": person(api, "bent"),                                   # no unit, no manager, no EAN
        "carl": person(api, "carl", job(gamma), **managed),            # a unit without EAN
        "dora": person(api, "dora", job(alfa), **managed, emails=[{"value": "Shared@x.dk", "type": "work"}]),
        "erik": person(api, "erik", job(alfa), **managed, emails=[{"value": "shared@X.dk"}]),
        "gustav": person(api, "gustav", job(alfa), **managed, emails=[{"value": "solo@x.dk", "type": "work"}]),
        # inactive: never listed, but gustav shares an e-mail with her
        "hanne": person(api, "hanne", active=False, emails=[{"value": "SOLO@x.dk", "type": "work"}]),
        # home e-mails are no work e-mails
        "ivan": person(api, "ivan", job(alfa), **managed, emails=[{"value": "home@x.dk", "type": "home"}]),
        "jens": person(api, "jens", job(alfa), **managed, emails=[{"value": "home@x.dk", "type": "home"},
                                                                  {"value": "jens@x.dk", "type": "work"}]),
        "karl": person(api, "karl", job(alfa, startDate="2099-01-01T00:00:00Z"), **managed),
        "lars": person(api, "lars", job(alfa, startDate="2000-01-01T00:00:00Z", endDate="2001-01-01T00:00:00Z"),
                       **managed),
        "mona": person(api, "mona", job(beta, startDate="2000-01-01T00:00:00Z", endDate="2001-01-01T00:00:00Z"),
                       job(alfa, startDate="2098-05-01T00:00:00Z"), job(gamma, startDate="2099-05-01T00:00:00Z"),
                       **managed),  # a rehire: an ended employment and two to come
    }
    assert users["lars"]["active"] is False and users["karl"]["active"] is False  # the leaver rule
    reactivate(api, users["lars"])
    return {"alfa": alfa, "beta": beta, "gamma": gamma, "delta": delta, **users}


EXPECTED = {
    "without_org_unit": [("bent", None)],
    "without_manager": [("bent", None), ("boss", None)],
    "without_effective_ean": [("bent", None), ("carl", None)],
    "duplicate_emails": [("dora", "shared@x.dk"), ("erik", "shared@x.dk"), ("gustav", "solo@x.dk")],
    "units_without_ean": [("Delta", "DELTA"), ("Gamma", "GAMMA")],
    "future_starters": [("karl", "2099-01-01"), ("mona", "2098-05-01")],
    "leavers_due": [("lars", "2001-01-01")],
}


def test_quality_counts(app, api, messy):
    body = scoped(app, "audit:read").get(QUALITY).get_json()
    assert body == {"checks": [{"name": name, "count": len(found)} for name, found in EXPECTED.items()]}


@pytest.mark.parametrize("check", list(EXPECTED))
def test_quality_check_lists(app, api, messy, check):
    r = scoped(app, "audit:read").get(f"{QUALITY}?check={check}")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["check"] == check
    assert body["totalResults"] == len(EXPECTED[check]) == body["itemsPerPage"]
    assert body["startIndex"] == 1
    assert [(f["name"], f["detail"]) for f in body["Resources"]] == EXPECTED[check]
    first = body["Resources"][0]
    if check == "units_without_ean":
        assert first == {"resourceType": "Group", "id": messy["delta"]["id"], "name": "Delta",
                         "displayName": "Delta", "detail": "DELTA"}
    else:
        name = first["name"]
        assert first["resourceType"] == "User" and first["id"] == messy[name]["id"]


def test_quality_lists_follow_changes(app, api, messy):
    auditor = scoped(app, "audit:read")
    create_unit(api, "Epsilon", parent=messy["alfa"]["id"])  # inherits Alfa's EAN
    r = api.patch_ops(f"/Groups/{messy['gamma']['id']}",
                      {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:Group:ean",
                       "value": EAN_DEPT})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    api.patch_ops(f"/Users/{messy['erik']['id']}", {"op": "replace", "path": "active", "value": False})
    counts = {c["name"]: c["count"] for c in auditor.get(QUALITY).get_json()["checks"]}
    assert counts["units_without_ean"] == 1        # Delta
    assert counts["without_effective_ean"] == 1    # bent; carl's unit has an EAN now
    assert counts["duplicate_emails"] == 2         # dora still shares hers with erik, inactive or not


def test_quality_list_paging(app, api):
    for name in ("u5", "u3", "u1", "u4", "u2"):
        person(api, name)
    auditor = scoped(app, "audit:read")
    pages = [auditor.get(f"{QUALITY}?check=without_manager&startIndex={start}&count=2").get_json()
             for start in (1, 3, 5, 7)]
    assert [[f["name"] for f in page["Resources"]] for page in pages] == [["u1", "u2"], ["u3", "u4"], ["u5"], []]
    assert {page["totalResults"] for page in pages} == {5}
    assert [page["itemsPerPage"] for page in pages] == [2, 2, 1, 0]
    empty = auditor.get(f"{QUALITY}?check=without_manager&count=0").get_json()
    assert empty["totalResults"] == 5 and empty["Resources"] == []
    assert_scim_error(auditor.get(f"{QUALITY}?check=without_manager&count=two"), 400, "invalidValue")


def test_quality_unknown_check(app, api):
    body = assert_scim_error(scoped(app, "audit:read").get(f"{QUALITY}?check=nonsense"), 400, "invalidValue")
    assert "without_org_unit" in body["detail"]
