"""Reading sync files into records (issue 13): formats, encodings, mappings and row checks.

Pure Python: no database and no HTTP. The diff and apply steps are tested elsewhere; here a file
goes in and ``PersonRecord``/``UnitRecord``s and ``RowError``s come out.
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest

from scim_server.sync.mapping import Mapping, TableMapping, load_mapping, mapping_from_dict
from scim_server.sync.readers import SourceRow, read_table
from scim_server.sync.records import SyncRefused, read_people, read_units

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
P2L_USER = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
EXAMPLE_MAPPING = Path(__file__).resolve().parent.parent / "docs" / "examples" / "payroll-mapping.toml"
EAN_OK = "5790000000005"  # valid check digit
EAN_OK_2 = "5798000000001"


@pytest.fixture(autouse=True)
def clean_database():
    """These tests need no database: this replaces conftest's fixture of the same name."""
    yield


def users(data: str | bytes, name: str = "users.csv", table: TableMapping | None = None):
    """Read a users file into (people, errors), with the reader's warnings."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    reader = read_table(raw, name, table or Mapping().users)
    people, errors = read_people(reader)
    return people, errors, reader.warnings


def units(data: str | bytes, name: str = "units.csv", table: TableMapping | None = None):
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return read_units(read_table(raw, name, table or Mapping().units))


def by_id(people):
    return {p.external_id: p for p in people}


def xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- formats and encodings ---------------------------------------------------------------------

@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_with_comma_or_semicolon(delimiter):
    text = "\n".join(delimiter.join(r) for r in [
        ["externalId", "userName", "givenName", "familyName", "email"],
        ["1001", "anna@example.dk", "Anna", "Berg", "anna@example.dk"],
        ["1002", "bo@example.dk", "Bo", "", ""],
    ]) + "\n"
    people, errors, warnings = users(text)
    assert errors == [] and warnings == []
    anna, bo = people
    assert anna.resource == {
        "schemas": [CORE_USER], "externalId": "1001", "userName": "anna@example.dk",
        "name": {"givenName": "Anna", "familyName": "Berg"},
        "emails": [{"value": "anna@example.dk", "type": "work", "primary": True}],
    }
    assert (anna.lines, anna.file, anna.user_name) == ([2], "users.csv", "anna@example.dk")
    # an empty cell is no value: the attribute is absent (so an update clears it)
    assert bo.resource == {"schemas": [CORE_USER], "externalId": "1002", "userName": "bo@example.dk",
                           "name": {"givenName": "Bo"}}
    assert anna.employments == [] and anna.manager_external_id is None


def test_utf8_with_bom_and_crlf():
    data = "\ufeffexternalId;userName;givenName;locality\r\n7;søren;Søren;Århus\r\n".encode()
    people, errors, _ = users(data)
    assert errors == []
    assert people[0].resource["name"] == {"givenName": "Søren"}
    assert people[0].resource["addresses"] == [{"type": "work", "locality": "Århus"}]
    assert people[0].external_id == "7"  # the BOM is not part of the first column's name


def test_windows_1252_when_not_utf8():
    data = "externalId;userName;givenName;familyName\n1;aeoe;Æble;Østergård-Ærø\n".encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    people, errors, _ = users(data)
    assert errors == []
    assert people[0].resource["name"] == {"givenName": "Æble", "familyName": "Østergård-Ærø"}


def test_windows_1252_detected_even_late_in_the_file():
    rows = [f"{n};user{n};Navn" for n in range(5000)] + ["9999;sidst;Bjørn"]
    data = ("externalId;userName;givenName\n" + "\n".join(rows) + "\n").encode("cp1252")
    people, errors, _ = users(data)
    assert errors == [] and people[-1].resource["name"] == {"givenName": "Bjørn"}


def test_a_file_neither_utf8_nor_windows_1252_is_refused():
    data = b"externalId,userName\n1,a\x81b\n"  # 0x81 is undefined in Windows-1252, invalid UTF-8
    with pytest.raises(SyncRefused, match=r"users\.csv: not UTF-8 or Windows-1252 text \(byte 0x81 on line 2\)"):
        read_table(data, "users.csv", Mapping().users)
    # a byte order mark says UTF-8: no second guess
    with pytest.raises(SyncRefused, match=r"users\.csv: not UTF-8 text, as its byte order mark says \(byte 0xf8"):
        read_table(b"\xef\xbb\xbfexternalId,userName\n1,s\xf8ren\n", "users.csv", Mapping().users)


def test_a_mapped_encoding_that_does_not_fit_is_refused():
    mapping = mapping_from_dict({"encoding": "utf-8"})
    with pytest.raises(SyncRefused, match=r"users\.csv: not utf-8 text, as the mapping says"):
        read_table("externalId,userName\n1,søren\n".encode("cp1252"), "users.csv", mapping.users)


def test_xlsx_first_sheet_with_dates_and_numbers(tmp_path):
    data = xlsx([
        ["EXTERNALID", "username", "OrgUnit", "StartDate", "EndDate", "ean", "postalCode", "Mobile"],
        [1001, "anna", "U1", dt.datetime(2024, 1, 1), dt.date(2024, 12, 31), 5790000000005, 8000, "+4512345678"],
        [],  # a blank row is skipped, but counts for the line numbers
        [1002.0, "bo", "U1", "15-03-2023", None, None, None, 12345678],
    ])
    (tmp_path / "users.xlsx").write_bytes(data)
    reader = read_table(tmp_path / "users.xlsx", None, Mapping().users)
    rows = list(reader)
    assert [(r.file, r.line) for r in rows] == [("users.xlsx", 2), ("users.xlsx", 4)]
    assert rows[0].values["externalId"] == "1001" and rows[1].values["externalId"] == "1002"
    assert rows[0].values["startDate"] == "2024-01-01" and rows[0].values["endDate"] == "2024-12-31"
    assert rows[0].values["ean"] == EAN_OK and rows[0].values["postalCode"] == "8000"
    people, errors = read_people(rows)
    assert errors == []
    anna, bo = people
    assert anna.employments[0].start_date == "2024-01-01T00:00:00Z"
    assert anna.employments[0].end_date == "2024-12-31T23:59:59Z"
    assert anna.resource[P2L_USER] == {"ean": EAN_OK}
    assert bo.resource["phoneNumbers"] == [{"value": "12345678", "type": "mobile"}]
    assert bo.employments[0].start_date == "2023-03-15T00:00:00Z"


def test_xlsx_recognised_by_its_magic_when_given_as_bytes():
    data = xlsx([["externalId", "userName"], ["1", "a"]])
    people, errors, _ = users(data, name="upload")
    assert errors == [] and people[0].user_name == "a"


def test_a_damaged_workbook_is_refused():
    with pytest.raises(SyncRefused, match=r"users\.xlsx: not a readable \.xlsx workbook"):
        read_table(b"PK\x03\x04 not really a zip", "users.xlsx", Mapping().users)


def test_headers_case_insensitive_in_any_order_and_unknown_columns_reported_once():
    text = ("FAMILYNAME,Notes,userNAME,ExternalID,givenname,Cost\n"
            "Berg,x,anna,1,Anna,1\n"
            "Lund,y,bo,2,Bo,2\n")
    people, errors, warnings = users(text)
    assert errors == []
    assert [p.resource["name"] for p in people] == [{"givenName": "Anna", "familyName": "Berg"},
                                                     {"givenName": "Bo", "familyName": "Lund"}]
    assert warnings == ["users.csv: columns ignored (not users columns): Notes, Cost"]


@pytest.mark.parametrize(("header", "missing"), [
    ("externalId,givenName", "'userName'"),
    ("userName,givenName", "'externalId'"),
    ("givenName", "'externalId', 'userName'"),
])
def test_a_missing_required_column_is_refused(header, missing):
    with pytest.raises(SyncRefused, match=f"users.csv: the required columns? {missing} (is|are) missing"):
        read_table(f"{header}\nx\n".encode(), "users.csv", Mapping().users)


def test_a_units_file_needs_unit_code_and_display_name():
    with pytest.raises(SyncRefused, match="units.csv: the required column 'displayName' is missing"):
        read_table(b"unitCode;parentUnitCode\nA;\n", "units.csv", Mapping().units)


def test_unreadable_and_empty_files_are_refused(tmp_path):
    with pytest.raises(SyncRefused, match="nope.csv: cannot read the file"):
        read_table(tmp_path / "nope.csv", None, Mapping().users)
    with pytest.raises(SyncRefused, match="empty.csv: line 1 must be the header row"):
        read_table(b"", "empty.csv", Mapping().users)
    with pytest.raises(SyncRefused, match="appears twice"):
        read_table(b"externalId,userName,UserName\n", "users.csv", Mapping().users)


def test_quoted_multi_line_field_keeps_the_line_where_the_row_starts():
    text = ('externalId,userName,streetAddress\n'
            '1,a,"Vestergade 1\nbaghuset"\n'
            '2,b,Torvet 2\n'
            '\n'
            '3,,Torvet 3\n')
    people, errors, _ = users(text)
    assert [p.lines for p in people] == [[2], [4]]
    assert people[0].resource["addresses"] == [{"type": "work", "streetAddress": "Vestergade 1\nbaghuset"}]
    assert [(e.file, e.line, e.reason, e.key) for e in errors] == [("users.csv", 6, "userName is empty", "3")]


def test_a_row_with_the_wrong_number_of_fields_is_a_row_error():
    text = "externalId,userName,givenName\n1,a,Anna\n2,b\n3,c,C,extra\n4,d,D,,\n"
    people, errors, _ = users(text)
    assert [p.external_id for p in people] == ["1", "4"]  # trailing empty fields are harmless
    assert [(e.line, e.reason) for e in errors] == [(3, "the row has 2 fields, the header 3"),
                                                     (4, "the row has 4 fields, the header 3")]
    # a header with a trailing delimiter: rows without it are whole
    people, errors, _ = users("externalId;userName;\n1;a\n2;b;\n")
    assert errors == [] and len(people) == 2


def test_a_row_without_external_id_is_an_error_without_a_key():
    _, errors, _ = users("externalId,userName\n,a\n")
    assert [(e.line, e.reason, e.key) for e in errors] == [(2, "externalId is empty", None)]


# --- people ------------------------------------------------------------------------------------

FULL_HEADER = ("externalId;userName;givenName;familyName;displayName;email;mobile;phone;title;streetAddress;"
               "postalCode;locality;country;ean;employeeNumber;userType;orgUnit;managerExternalId;startDate;endDate")


def test_every_default_column_lands_in_the_resource():
    row = (f"1001;anna@k.dk;Anna;Berg;Anna Berg;anna@k.dk;+4511111111;+4522222222;Lærer;Skolevej 1;8000;Aarhus;DK;"
           f"{EAN_OK};E-1001;Employee;SKOLE1;900;2020-08-01;")
    people, errors, _ = users(f"{FULL_HEADER}\n{row}\n")
    assert errors == []
    (anna,) = people
    assert anna.resource == {
        "schemas": [CORE_USER, ENTERPRISE, P2L_USER],
        "externalId": "1001", "userName": "anna@k.dk",
        "name": {"givenName": "Anna", "familyName": "Berg"}, "displayName": "Anna Berg",
        "title": "Lærer", "userType": "Employee",
        "emails": [{"value": "anna@k.dk", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+4511111111", "type": "mobile"}, {"value": "+4522222222", "type": "work"}],
        "addresses": [{"type": "work", "streetAddress": "Skolevej 1", "postalCode": "8000", "locality": "Aarhus",
                       "country": "DK"}],
        ENTERPRISE: {"employeeNumber": "E-1001"},
        P2L_USER: {"ean": EAN_OK},
    }
    assert anna.manager_external_id == "900"
    (job,) = anna.employments
    assert (job.unit_code, job.start_date, job.end_date, job.title, job.line, job.primary) == (
        "SKOLE1", "2020-08-01T00:00:00Z", None, "Lærer", 2, True)
    assert "managerExternalId" in anna.provided and "email" in anna.provided


def test_several_rows_of_one_person_are_several_employments():
    text = ("externalId,userName,givenName,orgUnit,title,startDate,endDate\n"
            "1,anna,Anna,SKOLE1,Lærer,2020-08-01,\n"
            "2,bo,Bo,SKOLE1,Pedel,,\n"
            "1,ANNA,Anna,SFO2,Pædagog,01-01-2022,31-07-2024\n")  # not adjacent; userName case differs
    people, errors, _ = users(text)
    assert errors == []
    anna = by_id(people)["1"]
    assert anna.lines == [2, 4]
    assert [(j.unit_code, j.title, j.start_date, j.end_date, j.line, j.primary) for j in anna.employments] == [
        ("SKOLE1", "Lærer", "2020-08-01T00:00:00Z", None, 2, True),
        ("SFO2", "Pædagog", "2022-01-01T00:00:00Z", "2024-07-31T23:59:59Z", 4, False),
    ]
    assert anna.resource["title"] == "Lærer"  # the person's title is the first (primary) employment's


def test_a_person_without_org_unit_is_an_external_user():
    people, errors, _ = users("externalId,userName,orgUnit,userType\nM1,medlem,,External\n")
    assert errors == [] and people[0].employments == [] and people[0].resource["userType"] == "External"


def test_rows_of_one_person_that_disagree_leave_the_person_out():
    text = ("externalId,userName,givenName,email,orgUnit\n"
            "1,anna,Anna,anna@k.dk,U1\n"
            "2,bo,Bo,,U1\n"
            "1,anna,Ann,anna@k.dk,U2\n"
            "1,anna,Anna,,U3\n")
    people, errors, _ = users(text)
    assert [p.external_id for p in people] == ["2"]
    assert [(e.file, e.line, e.key) for e in errors] == [("users.csv", 4, "1"), ("users.csv", 5, "1")]
    assert errors[0].reason.startswith("givenName is 'Ann' here but 'Anna' on line 2")
    assert errors[1].reason.startswith("email is empty here but 'anna@k.dk' on line 2")
    assert str(errors[0]).startswith("users.csv, line 4: givenName")


def test_the_same_org_unit_twice_or_a_row_without_one_is_an_error():
    text = ("externalId,userName,orgUnit\n"
            "1,anna,U1\n"
            "1,anna,u1\n"
            "2,bo,\n"
            "2,bo,U1\n")
    people, errors, _ = users(text)
    assert people == []
    assert [(e.line, e.reason) for e in errors] == [
        (3, "a second employment in orgUnit 'u1' (the first is line 2)"),
        (5, "orgUnit 'U1' given here but empty on line 4"),
    ]


def test_bad_dates_eans_and_duplicate_user_names_are_row_errors():
    text = ("externalId;userName;orgUnit;startDate;endDate;ean\n"
            f"1;anna;U1;2024-02-30;;{EAN_OK}\n"        # no 30 February
            "2;bo;U1;2024-01-01;;5790000000006\n"       # wrong check digit
            "3;carl;U1;01/02/2024;;\n"                  # not an accepted format
            "4;dorte;U1;2024-06-01;2024-05-31;\n"       # ends before it starts
            "5;Eva;U1;;;\n"
            "6;eva;U2;;;\n"                             # eva again, another person
            f"7;finn;U1;2024-01-01;2025-01-01;{EAN_OK_2}\n"
            "8;gert;U1;;;579-0000-000005\n")            # separators are compacted away
    people, errors, _ = users(text, name="løn.csv")
    assert [p.external_id for p in people] == ["7", "8"]
    assert by_id(people)["8"].resource[P2L_USER] == {"ean": EAN_OK}
    assert [(e.file, e.line, e.key) for e in errors] == [
        ("løn.csv", 2, "1"), ("løn.csv", 3, "2"), ("løn.csv", 4, "3"), ("løn.csv", 5, "4"),
        ("løn.csv", 6, "5"), ("løn.csv", 7, "6")]
    reasons = [e.reason for e in errors]
    assert reasons[0] == "startDate '2024-02-30' is not a date (YYYY-MM-DD or DD-MM-YYYY)"
    assert reasons[1].startswith("ean '5790000000006' is not a valid EAN")
    assert reasons[2] == "startDate '01/02/2024' is not a date (YYYY-MM-DD or DD-MM-YYYY)"
    assert reasons[3] == "endDate '2024-05-31' is before startDate '2024-06-01'"
    assert reasons[4] == "userName 'Eva' is also given to externalId '6' (line 7)"
    assert reasons[5] == "userName 'eva' is also given to externalId '5' (line 6)"


def test_a_person_with_an_error_on_one_row_is_left_out_whole():
    text = ("externalId,userName,orgUnit,startDate\n"
            "1,anna,U1,2024-01-01\n"
            "1,anna,U2,never\n")
    people, errors, _ = users(text)
    assert people == [] and [(e.line, e.key) for e in errors] == [(3, "1")]


def test_manager_cycles_within_the_file_are_row_errors():
    text = ("externalId,userName,managerExternalId\n"
            "1,a,2\n"
            "2,b,3\n"
            "3,c,1\n"
            "4,d,1\n"      # reports to someone in a cycle: not in it
            "5,e,5\n"      # their own manager
            "6,f,X9\n")    # a manager not in the file: for the diff to resolve
    people, errors, _ = users(text)
    assert sorted(p.external_id for p in people) == ["4", "6"]
    assert [(e.line, e.reason) for e in errors] == [
        (2, "manager cycle: 1 -> 2 -> 3 -> 1"), (3, "manager cycle: 1 -> 2 -> 3 -> 1"),
        (4, "manager cycle: 1 -> 2 -> 3 -> 1"), (6, "managerExternalId is the person themself")]


# --- units -------------------------------------------------------------------------------------

def test_units_parents_after_children_come_out_parents_first():
    text = ("unitCode;displayName;parentUnitCode;unitType;ean\n"
            "SKOLE1;Skolen;FORV;Skole;\n"
            "SFO1;SFO'en;skole1;SFO;\n"          # unit codes match case-insensitively
            f"FORV;Forvaltningen;KOMMUNE;Forvaltning;{EAN_OK}\n"
            "KOMMUNE;Kommunen;;;\n"
            "ANDEN;Anden;UDENFOR;;\n")          # a parent not in the file: the diff's to resolve
    result, errors = units(text)
    assert errors == []
    assert [u.unit_code for u in result] == ["KOMMUNE", "ANDEN", "FORV", "SKOLE1", "SFO1"]
    forv = result[2]
    assert (forv.display_name, forv.parent_unit_code, forv.unit_type, forv.ean, forv.line, forv.file) == (
        "Forvaltningen", "KOMMUNE", "Forvaltning", EAN_OK, 4, "units.csv")


def test_a_parent_cycle_is_an_error_on_each_row_of_it():
    text = ("unitCode,displayName,parentUnitCode\n"
            "A,a,B\n"
            "B,b,C\n"
            "C,c,A\n"
            "D,d,A\n"
            "E,e,E\n"
            "F,f,\n")
    result, errors = units(text)
    assert [u.unit_code for u in result] == ["D", "F"]  # D's parent is in the cycle: left for the diff
    assert [(e.line, e.reason, e.key) for e in errors] == [
        (2, "parent cycle: A -> B -> C -> A", "A"), (3, "parent cycle: A -> B -> C -> A", "B"),
        (4, "parent cycle: A -> B -> C -> A", "C"), (6, "parentUnitCode is the unit itself", "E")]


def test_unit_duplicates_bad_eans_and_missing_values():
    text = ("unitCode,displayName,ean\n"
            "A,a,\n"
            "a,again,\n"
            "B,b,123\n"
            ",nameless,\n"
            "C,,\n")
    result, errors = units(text)
    assert [u.unit_code for u in result] == ["A"]
    assert [(e.line, e.reason, e.key) for e in errors] == [
        (3, "unitCode 'a' is already given on line 2", "a"),
        (4, "ean '123' is not a 13-digit EAN", "B"),
        (5, "unitCode is empty", None),
        (6, "displayName is empty", "C")]


def test_units_from_xlsx():
    result, errors = units(xlsx([["UnitCode", "DisplayName", "ParentUnitCode"], [10, "Ti", 1], [1, "En", None]]),
                           name="units.xlsx")
    assert errors == [] and [(u.unit_code, u.parent_unit_code, u.line) for u in result] == [("1", None, 3),
                                                                                             ("10", "1", 2)]


# --- mappings ----------------------------------------------------------------------------------

PAYROLL_ROWS = [
    ["Medarbejdernummer", "Brugernavn", "Fornavn", "Efternavn", "Stilling", "Afdeling", "Leder", "Ansat fra",
     "Ansat til", "EAN", "Omkostningssted", "Lønklasse"],
    ["1001", "anna.berg", "Anna", "Berg", "Skoleleder", "SKOLE1", "", "01.08.2015", "", EAN_OK, "4711", "38"],
    ["1002", "bo.lund", "Bo", "Lund", "Lærer", "SKOLE1", "1001", "01.08.2019", "31.07.2025", "", "4711", "31"],
    ["1002", "bo.lund", "Bo", "Lund", "Pædagog", "SFO1", "1001", "01.01.2024", "", "", "4711", "31"],
]


def check_payroll(people, errors, warnings, file):
    assert errors == []
    assert warnings == [f"{file}: columns ignored (not users columns and not mapped): Lønklasse",
                        f"{file}: mapped columns not in the file: E-mail, Mobil"]
    anna, bo = people
    assert anna.resource == {
        "schemas": [CORE_USER, ENTERPRISE, P2L_USER], "externalId": "1001", "userName": "anna.berg",
        "name": {"givenName": "Anna", "familyName": "Berg"}, "title": "Skoleleder", "userType": "Employee",
        ENTERPRISE: {"employeeNumber": "1001", "costCenter": "4711"}, P2L_USER: {"ean": EAN_OK}}
    assert anna.manager_external_id is None and bo.manager_external_id == "1001"
    assert [(j.unit_code, j.title, j.start_date, j.end_date) for j in bo.employments] == [
        ("SKOLE1", "Lærer", "2019-08-01T00:00:00Z", "2025-07-31T23:59:59Z"),
        ("SFO1", "Pædagog", "2024-01-01T00:00:00Z", None)]


def test_danish_payroll_mapping_csv_in_windows_1252(tmp_path):
    mapping = load_mapping(EXAMPLE_MAPPING)
    assert mapping.users.date_format == "%d.%m.%Y" and mapping.users.delimiter == ";"
    path = tmp_path / "medarbejdere.csv"
    path.write_bytes(("\r\n".join(";".join(r) for r in PAYROLL_ROWS) + "\r\n").encode("cp1252"))
    reader = read_table(path, None, mapping.users)
    people, errors = read_people(reader)
    check_payroll(people, errors, reader.warnings, "medarbejdere.csv")


def test_danish_payroll_mapping_xlsx(tmp_path):
    mapping = load_mapping(EXAMPLE_MAPPING)
    rows = [PAYROLL_ROWS[0]] + [[c or None for c in r] for r in PAYROLL_ROWS[1:]]
    rows[1][0] = 1001  # a number cell; dates stay text as the payroll wrote them
    rows[2][7] = dt.datetime(2019, 8, 1)  # a date cell reads as YYYY-MM-DD, accepted besides the format
    path = tmp_path / "medarbejdere.xlsx"
    path.write_bytes(xlsx(rows))
    reader = read_table(path, None, mapping.users)
    people, errors = read_people(reader)
    check_payroll(people, errors, reader.warnings, "medarbejdere.xlsx")


def test_danish_payroll_mapping_bad_date_in_the_mapped_format():
    mapping = load_mapping(EXAMPLE_MAPPING)
    text = "Medarbejdernummer;Brugernavn;Afdeling;Ansat fra\n1;a;U1;2024-13-01\n2;b;U1;1.2.2024\n"
    people, errors = read_people(read_table(text.encode(), "løn.csv", mapping.users))
    assert [p.employments[0].start_date for p in people] == ["2024-02-01T00:00:00Z"]
    assert [(e.line, e.reason) for e in errors] == [(2, "startDate '2024-13-01' is not a date ('%d.%m.%Y' or YYYY-MM-DD)")]


def test_danish_payroll_mapping_for_units():
    mapping = load_mapping(EXAMPLE_MAPPING)
    text = "Afdelingsnummer;Afdelingsnavn;Overafdeling;Enhedstype\nSKOLE1;Skolen;KOMMUNE;Skole\nKOMMUNE;Kommunen;;\n"
    result, errors = read_units(read_table(text.encode(), "afdelinger.csv", mapping.units))
    assert errors == [] and [(u.unit_code, u.display_name, u.unit_type) for u in result] == [
        ("KOMMUNE", "Kommunen", None), ("SKOLE1", "Skolen", "Skole")]


def test_a_mapping_missing_its_required_column_names_the_file_column():
    mapping = load_mapping(EXAMPLE_MAPPING)
    with pytest.raises(SyncRefused, match=r"løn.csv: the required column 'externalId' \(mapped from "
                                          r"'Medarbejdernummer'\) is missing"):
        read_table(b"Brugernavn;Fornavn\na;A\n", "løn.csv", mapping.users)


def test_fixed_values_and_mapped_attribute_paths():
    mapping = mapping_from_dict({
        "users": {"columns": {"Afdeling": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                              "Mellemnavn": "name.middleName", "Sprog": "preferredLanguage",
                              "Medlemsnr": "externalId", "Mail": "urn:ietf:params:scim:schemas:core:2.0:User:userName"},
                  "fixed": {"userType": "External", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
                                                    "organization": "Fagforeningen"}},
    })
    text = "medlemsnr,mail,afdeling,mellemnavn,sprog\nM1,m1@x.dk,Kreds Nord,Marie,da\nM2,m2@x.dk,,,\n"
    people, errors, _ = users(text, name="medlemmer.csv", table=mapping.users)
    assert errors == []
    m1, m2 = people
    assert m1.resource == {
        "schemas": [CORE_USER, ENTERPRISE], "externalId": "M1", "userName": "m1@x.dk", "userType": "External",
        "name": {"middleName": "Marie"}, "preferredLanguage": "da",
        ENTERPRISE: {"department": "Kreds Nord", "organization": "Fagforeningen"}}
    assert m2.resource == {"schemas": [CORE_USER, ENTERPRISE], "externalId": "M2", "userName": "m2@x.dk",
                           "userType": "External", ENTERPRISE: {"organization": "Fagforeningen"}}


def test_a_path_that_one_of_our_columns_fills_becomes_that_column():
    table = TableMapping("users", columns={
        "EAN-nummer": "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User:ean",
        "Fornavn": "name.GIVENNAME", "Løn-nr": ["externalId", "employeeNumber"]})
    assert table.targets("ean-NUMMER") == ("ean",)
    assert table.targets("fornavn") == ("givenName",)
    assert table.targets("løn-nr") == ("externalId", "employeeNumber")
    people, errors, _ = users(f"Løn-nr,userName,EAN-nummer\n42,a,{EAN_OK}\n", table=table)
    assert errors == []
    assert people[0].resource[P2L_USER] == {"ean": EAN_OK}
    assert people[0].resource[ENTERPRISE] == {"employeeNumber": "42"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"users": {"columns": {"Afd": "department"}}}, "unknown column or attribute path 'department'"),
    ({"users": {"columns": {"X": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope"}}},
     "unknown column or attribute path"),
    ({"units": {"columns": {"X": "givenName"}}}, r"mapping \[units\] column 'X': unknown column"),
    ({"users": {"columns": {"X": "emails"}}}, "multi-valued"),
    ({"users": {"columns": {"X": "name"}}}, "complex"),
    ({"users": {"columns": {"X": "active"}}}, "active follows the source"),
    ({"users": {"columns": {"X": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"}}},
     "managerExternalId"),
    ({"users": {"columns": {"X": "meta.created"}}}, "read-only"),
    ({"users": {"fixed": {"nope": "x"}}}, r"mapping \[users\] fixed: unknown column"),
    ({"delimiter": ";;"}, "delimiter must be one character"),
    ({"encoding": "klingon"}, "unknown encoding"),
    ({"users": {"date_format": "%d.%m"}}, "date_format"),
    ({"delimeter": ";"}, "unknown mapping settings: delimeter"),
    ({"users": {"colums": {}}}, r"\[users\]: unknown settings: colums"),
])
def test_a_bad_mapping_is_refused(raw, message):
    with pytest.raises(SyncRefused, match=message):
        mapping_from_dict(raw)


def test_load_mapping_refuses_unknown_targets_and_bad_toml(tmp_path):
    path = tmp_path / "map.toml"
    path.write_text('[users.columns]\nAfdeling = "afdeling"\n', encoding="utf-8")
    with pytest.raises(SyncRefused, match=r"map.toml \[users\] column 'Afdeling': unknown column"):
        load_mapping(path)
    path.write_text("[users.columns\n", encoding="utf-8")
    with pytest.raises(SyncRefused, match="map.toml: not a valid TOML mapping"):
        load_mapping(path)
    with pytest.raises(SyncRefused, match="cannot read the mapping"):
        load_mapping(tmp_path / "missing.toml")
    assert load_mapping(None) == Mapping()


def test_a_mapped_column_and_a_default_column_for_the_same_target_are_refused():
    mapping = mapping_from_dict({"users": {"columns": {"Fornavn": "givenName"}}})
    with pytest.raises(SyncRefused, match="the columns 'Fornavn' and 'givenName' both give givenName"):
        read_table(b"externalId,userName,Fornavn,givenName\n", "users.csv", mapping.users)
    mapping = mapping_from_dict({"users": {"fixed": {"userType": "External"}}})
    with pytest.raises(SyncRefused, match="fixes to 'External'"):
        read_table(b"externalId,userName,userType\n", "users.csv", mapping.users)


def test_delimiter_and_encoding_from_the_mapping():
    mapping = mapping_from_dict({"delimiter": "|", "encoding": "latin-1"})
    text = "externalId|userName|givenName\n1|a|Åse\n".encode("latin-1")
    people, errors, _ = users(text, table=mapping.users)
    assert errors == [] and people[0].resource["name"] == {"givenName": "Åse"}


# --- streaming ---------------------------------------------------------------------------------

def test_a_100000_row_file_is_streamed(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("externalId;userName;givenName;familyName;email;orgUnit;managerExternalId;startDate\n")
        for n in range(100_000):
            out.write(f"{n};user{n}@k.dk;Fornavn{n};Efternavn;user{n}@k.dk;U{n % 5000};{n // 10};2020-01-01\n")
    reader = read_table(path, None, Mapping().users)
    assert not isinstance(reader, list | tuple)
    count, last = 0, None
    for row in reader:  # consumed one at a time, none kept
        count += 1
        last = row
    assert count == 100_000
    assert isinstance(last, SourceRow) and last.line == 100_001 and last.values["externalId"] == "99999"


class _Upload(io.RawIOBase):
    """A request body: read once, no seeking."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.name = "upload.csv"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def test_an_unseekable_upload_stream_is_read():
    upload = _Upload("externalId;userName;givenName\n1;a;Åse\n".encode("cp1252"))
    reader = read_table(upload, None, Mapping().users)
    people, errors = read_people(reader)
    assert errors == [] and people[0].resource["name"] == {"givenName": "Åse"}
    assert reader.file == "upload.csv" and people[0].file == "upload.csv"
    assert not upload.closed  # the caller's stream is the caller's to close
