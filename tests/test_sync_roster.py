"""A sync goes through a users file lightly first (``sync/roster.py``) and reads in full only the
people whose rows changed since the source last wrote them. What must still hold for the people
it does not read: the checks that span people (a userName given twice, a manager cycle) see
them, a change of the mapping is a change of everyone, and rows that read alike are alike."""
from __future__ import annotations

import codecs

from stdnum import ean
from test_sync import (
    EAN_OK,
    PEOPLE,
    USER_HEADER,
    counts,
    full_sync,
    summary,
    sync,
    units,
    units_file,
    user,
    users_file,
    write_csv,
)
from test_sync_digests import compared_people

from conftest import ENTERPRISE, P2L_GROUP, P2L_USER


def test_a_changed_person_taking_an_unchanged_persons_user_name_leaves_both_out(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    cai = [*PEOPLE[2][:1], "bo@acme.dk", *PEOPLE[2][2:]]  # line 4 now gives Bo's userName, Bo unchanged
    result = sync(cli, "--users", users_file(tmp_path, [PEOPLE[0], PEOPLE[1], cai]), "--units", units_file(tmp_path))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert any("users.csv, line 3" in e and "userName 'bo@acme.dk' is also given to externalId '1003'" in e
               for e in errors), result.output
    assert any("users.csv, line 4" in e and "is also given to externalId '1002'" in e for e in errors), result.output
    assert counts(result) == {"created": 0, "updated": 0, "unchanged": 4, "deactivated": 0, "conflicts": 0,
                              "errors": 2}
    assert user(api, "bo@acme.dk")["externalId"] == "1002"
    assert user(api, "cai@acme.dk")["active"] is True  # left out, not a leaver


def test_a_manager_cycle_through_an_unchanged_person_is_an_error_on_both(api, cli, tmp_path):
    full_sync(cli, tmp_path)
    anna = [*PEOPLE[0][:7], "1002", PEOPLE[0][8]]  # Anna's manager is now Bo, whose manager is Anna
    result = sync(cli, "--users", users_file(tmp_path, [anna, PEOPLE[1], PEOPLE[2]]), "--units", units_file(tmp_path))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len([e for e in errors if "manager cycle" in e]) == 2, result.output
    assert any("line 2" in e for e in errors) and any("line 3" in e for e in errors)
    assert "manager" not in (user(api, "anna@acme.dk").get(ENTERPRISE) or {})


def test_a_changed_mapping_is_a_change_of_everyone(api, cli, tmp_path):
    mapping = tmp_path / "map.toml"
    mapping.write_text('[users.fixed]\nuserType = "Employee"\n')
    args = ("--users", users_file(tmp_path, PEOPLE), "--units", units_file(tmp_path), "--mapping", str(mapping))
    assert counts(sync(cli, *args))["created"] == 6
    assert summary(sync(cli, *args)) == "created 0, updated 0, unchanged 6, deactivated 0, conflicts 0, errors 0"
    mapping.write_text('[users.fixed]\nuserType = "External"\n')
    assert counts(sync(cli, *args))["updated"] == 3
    assert {user(api, p[1])["userType"] for p in PEOPLE} == {"External"}


def test_people_moved_in_the_file_are_not_compared_again(api, cli, tmp_path, monkeypatch):
    full_sync(cli, tmp_path)
    compared = compared_people(monkeypatch)
    result = full_sync(cli, tmp_path, [PEOPLE[2], PEOPLE[0], PEOPLE[1]])
    assert summary(result) == "created 0, updated 0, unchanged 6, deactivated 0, conflicts 0, errors 0"
    assert compared == []


def test_cells_that_read_alike_change_nothing(api, cli, tmp_path, monkeypatch):
    full_sync(cli, tmp_path)
    compared = compared_people(monkeypatch)
    padded = [f" {cell} " if cell else cell for cell in PEOPLE[1]]  # the cells are stripped as read
    result = full_sync(cli, tmp_path, [PEOPLE[0], padded, PEOPLE[2]])
    assert summary(result) == "created 0, updated 0, unchanged 6, deactivated 0, conflicts 0, errors 0"
    assert compared == ["1002"]  # other text than last time: compared, and found as it was
    assert summary(full_sync(cli, tmp_path, [PEOPLE[0], padded, PEOPLE[2]])).startswith("created 0, updated 0")
    assert compared == ["1002"]  # and not again


def test_a_nul_character_refuses_the_run(api, cli, tmp_path):
    text = "\n".join(",".join(row) for row in [USER_HEADER, PEOPLE[0], ["1009", "n\x00l@acme.dk"]]) + "\n"
    path = tmp_path / "users.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    result = sync(cli, "--users", str(path), "--units", units_file(tmp_path))
    assert result.exit_code == 2, result.output
    assert "NUL" in result.stdout
    assert user(api, "anna@acme.dk") is None


def test_new_units_are_made_together_parents_first_and_inherit_their_ean(api, cli, tmp_path):
    """A sync makes its new org units a thousand at a time (``create_many``): a unit waits for
    its new parent, wherever the file lists it, and inherits the nearest EAN above it, whether
    that unit was made in this run or a run before."""
    school_ean = "579000000001" + ean.calc_check_digit("579000000001")
    unit_rows = [["unitCode", "displayName", "parentUnitCode", "unitType", "ean"],
                 ["KLASSE", "3. klasse", "SKOLE", "team", ""],  # before its parent
                 ["ROOT", "Solbjerg Kommune", "", "municipality", EAN_OK],
                 ["SKOLE", "Solbjerg Skole", "OMRAADE", "department", school_ean],
                 ["OMRAADE", "Børneområdet", "ROOT", "area", ""]]
    people = [["1001", "anna@acme.dk", "Anna", "Berg", "", "", "KLASSE", "", ""],
              ["1002", "bo@acme.dk", "Bo", "Dahl", "", "", "OMRAADE", "", ""]]
    units_path = write_csv(tmp_path, "units.csv", unit_rows)
    result = sync(cli, "--users", users_file(tmp_path, people), "--units", units_path)
    assert result.exit_code == 0, result.output
    assert counts(result)["created"] == 6
    made = units(api)
    assert made["KLASSE"][P2L_GROUP]["parent"]["value"] == made["SKOLE"]["id"]
    assert made["SKOLE"][P2L_GROUP]["parent"]["value"] == made["OMRAADE"]["id"]
    assert user(api, "anna@acme.dk")[P2L_USER]["effectiveEan"] == school_ean
    assert user(api, "bo@acme.dk")[P2L_USER]["effectiveEan"] == EAN_OK
    unit_rows.append(["HOLD", "Hold 2", "KLASSE", "team", ""])  # a later run: under a unit made before
    people.append(["1003", "cai@acme.dk", "Cai", "Eng", "", "", "HOLD", "", ""])
    result = sync(cli, "--users", users_file(tmp_path, people), "--units", write_csv(tmp_path, "units.csv", unit_rows))
    assert counts(result)["created"] == 2, result.output
    assert user(api, "cai@acme.dk")[P2L_USER]["effectiveEan"] == school_ean


def test_one_row_holding_a_separator_is_not_two_rows(api, cli, tmp_path):
    """A cell may hold any character but NUL: a row whose cell holds the character that divides a
    person's rows in their hash must not hash as two rows (here a person's second row without
    orgUnit, a row error the light read would have skipped as "unchanged")."""
    header = ["externalId", "userName", "displayName", "", ""]
    one = [["1", "ann@acme.dk", "Ann\x1e1", "ann@acme.dk", "Ann"]]
    assert sync(cli, "--users", write_csv(tmp_path, "users.csv", [header, *one]),
                "--units", units_file(tmp_path)).exit_code == 0
    two = [["1", "ann@acme.dk", "Ann"], ["1", "ann@acme.dk", "Ann"]]
    result = sync(cli, "--users", write_csv(tmp_path, "users.csv", [header, *two]), "--units", units_file(tmp_path))
    assert result.exit_code == 1, result.output
    assert counts(result)["errors"] == 1 and "a second row without orgUnit" in result.stdout
