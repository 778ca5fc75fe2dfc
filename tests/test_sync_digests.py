"""A sync compares only the people whose rows changed, or whose user someone else wrote since
the source last wrote it (``sync_digests``): the nightly file with 1 % changed must not read,
resolve and compare the other 99 %, and must still put back what an IdP, an admin or an org
unit's ``members`` changed in a person the source owns."""
from __future__ import annotations

from sqlalchemy import select
from test_sync import PEOPLE, counts, employments, full_sync, summary, sync, units, user, users_file

from conftest import ENTERPRISE, P2L_GROUP, create_unit, get_json
from scim_server.storage.models import SyncDigest, User
from scim_server.sync import engine


def compared_people(monkeypatch) -> list[str]:
    """The externalIds the sync compares with their users (``_update_people``) from now on."""
    seen: list[str] = []
    original = engine.SnapshotSync._update_people

    def recording(self, people):
        seen.extend(p.external_id for p in people)
        return original(self, people)

    monkeypatch.setattr(engine.SnapshotSync, "_update_people", recording)
    return seen


def digests(app) -> dict[str, tuple[int, int]]:
    """externalId -> (the user's version, the version its digest was kept at)."""
    with app.extensions["scim_sessions"]() as session:
        rows = session.execute(select(User.external_id, User.version, SyncDigest.version)
                               .join(SyncDigest, SyncDigest.user_id == User.id))
        return {ext: (version, kept) for ext, version, kept in rows}


def test_a_sync_keeps_a_digest_of_every_person_it_wrote(app, api, cli, tmp_path):
    full_sync(cli, tmp_path)
    kept = digests(app)
    assert set(kept) == {"1001", "1002", "1003"}
    assert all(version == at for version, at in kept.values())


def test_the_same_file_again_compares_nobody(app, api, cli, tmp_path, monkeypatch):
    full_sync(cli, tmp_path)
    compared = compared_people(monkeypatch)
    again = full_sync(cli, tmp_path)
    assert summary(again) == "created 0, updated 0, unchanged 6, deactivated 0, conflicts 0, errors 0"
    assert compared == []


def test_only_the_changed_person_is_compared(app, api, cli, tmp_path, monkeypatch):
    full_sync(cli, tmp_path)
    compared = compared_people(monkeypatch)
    changed = [PEOPLE[0], ["1002", "bo@acme.dk", "Bo", "Dahl", "bo@acme.dk", "Overlærer", "SKOLE", "1001",
                           "2021-08-01"], PEOPLE[2]]
    result = full_sync(cli, tmp_path, changed)
    assert counts(result)["updated"] == 1 and counts(result)["unchanged"] == 5
    assert compared == ["1002"]
    assert user(api, "bo@acme.dk")["title"] == "Overlærer"


def test_what_an_idp_changed_in_an_unchanged_person_is_put_back(app, api, cli, tmp_path, monkeypatch):
    full_sync(cli, tmp_path)
    bo = user(api, "bo@acme.dk")
    api.patch_ops(f"/Users/{bo['id']}", {"op": "replace", "path": "title", "value": "Vikar"})
    compared = compared_people(monkeypatch)
    result = full_sync(cli, tmp_path)
    assert counts(result)["updated"] == 1
    assert compared == ["1002"]
    assert user(api, "bo@acme.dk")["title"] == "Lærer"
    kept = digests(app)["1002"]
    assert kept[0] == kept[1]  # the digest follows the version the sync left
    assert compared_after_again(cli, tmp_path, compared) == []


def test_a_write_of_the_user_by_anyone_forgets_its_digest(app, api, cli, tmp_path):
    """The digest is the sync's word that no one wrote the user since (a trigger on the users'
    version, migration 0012): a PATCH and the DELETE of a manager take the digests of the users
    they write, and only theirs."""
    full_sync(cli, tmp_path)
    bo, anna = user(api, "bo@acme.dk"), user(api, "anna@acme.dk")
    api.patch_ops(f"/Users/{bo['id']}", {"op": "replace", "path": "title", "value": "Vikar"})
    assert set(digests(app)) == {"1001", "1003"}
    full_sync(cli, tmp_path)
    assert set(digests(app)) == {"1001", "1002", "1003"}
    assert api.delete(f"/Users/{anna['id']}").status_code == 204  # her reports lose their manager
    assert set(digests(app)) == set()


def compared_after_again(cli, tmp_path, compared: list[str]) -> list[str]:
    compared.clear()
    full_sync(cli, tmp_path)
    return list(compared)


def test_an_employment_an_org_unit_dropped_is_put_back(app, api, cli, tmp_path, monkeypatch):
    """A unit's members PATCH removes a person's employment without a write of the user: the
    user's version moves all the same, so the next sync compares the person and employs them
    again."""
    full_sync(cli, tmp_path)
    bo = user(api, "bo@acme.dk")
    skole = units(api)["SKOLE"]
    response = api.patch_ops(f"/Groups/{skole['id']}", {"op": "remove", "path": f'members[value eq "{bo["id"]}"]'})
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    assert employments(user(api, "bo@acme.dk")) == []
    compared = compared_people(monkeypatch)
    result = full_sync(cli, tmp_path)
    assert counts(result)["updated"] == 1 and compared == ["1002"]
    assert [job["value"] for job in employments(user(api, "bo@acme.dk"))] == [skole["id"]]


def test_an_org_unit_changing_a_users_employments_moves_the_users_version(api):
    """The user's ``employments`` are part of the user: a change made through an org unit's
    ``members`` gives the user a new ETag (it kept the old one before, so a client's
    If-None-Match was told nothing had changed)."""
    unit = create_unit(api, "Skolen")
    eva = api.create_user("eva@acme.dk")
    before = eva["meta"]["version"]
    added = api.patch_ops(f"/Groups/{unit['id']}", {"op": "add", "path": "members", "value": [{"value": eva["id"]}]})
    assert added.status_code in (200, 204), added.get_data(as_text=True)
    after_add = get_json(api, f"/Users/{eva['id']}")
    assert after_add["meta"]["version"] != before
    assert [job["value"] for job in employments(after_add)] == [unit["id"]]
    removed = api.patch_ops(f"/Groups/{unit['id']}", {"op": "remove", "path": f'members[value eq "{eva["id"]}"]'})
    assert removed.status_code in (200, 204), removed.get_data(as_text=True)
    assert get_json(api, f"/Users/{eva['id']}")["meta"]["version"] != after_add["meta"]["version"]


def test_a_unit_code_that_comes_to_name_another_unit_moves_the_person(app, api, cli, tmp_path):
    """The rows are the same, but the unitCode they name is another unit now (an admin gave the
    old unit another code; the sync made a new SKOLE): the person is compared and moved."""
    full_sync(cli, tmp_path)
    old = units(api)["SKOLE"]
    renamed = api.patch_ops(f"/Groups/{old['id']}", {"op": "replace", "path": f"{P2L_GROUP}:unitCode",
                                                     "value": "SKOLE-OLD"})
    assert renamed.status_code in (200, 204), renamed.get_data(as_text=True)
    full_sync(cli, tmp_path)
    new = units(api)["SKOLE"]
    assert new["id"] != old["id"]
    assert [job["value"] for job in employments(user(api, "bo@acme.dk"))] == [new["id"]]


def test_an_emptied_sub_attribute_is_removed(api, cli, tmp_path):
    """Bo's familyName cell is emptied: his name becomes the given name alone, as a PUT of the
    person would make it (a PATCH replace of ``name`` would merge, and keep the family name)."""
    full_sync(cli, tmp_path)
    changed = [PEOPLE[0], ["1002", "bo@acme.dk", "Bo", "", "bo@acme.dk", "Lærer", "SKOLE", "1001",
                           "2021-08-01"], PEOPLE[2]]
    assert counts(full_sync(cli, tmp_path, changed))["updated"] == 1
    assert user(api, "bo@acme.dk")["name"] == {"givenName": "Bo"}


def _person(ext: str, name: str, manager: str) -> list[str]:
    return [ext, f"{name}@acme.dk", name.title(), "N", f"{name}@acme.dk", "Lærer", "SKOLE", manager, "2020-01-01"]


def _manager_of(api, name: str) -> str | None:
    return ((user(api, f"{name}@acme.dk").get(ENTERPRISE) or {}).get("manager") or {}).get("value")


def test_new_managers_of_one_run_cannot_close_a_cycle_through_a_stored_person(api, cli, tmp_path):
    """X reports to A (stored). A partial run makes A report to B and B to X: each change is
    fine against the chain as stored, together they close A -> B -> X -> A. The second is a
    row error, not a stored cycle."""
    full_sync(cli, tmp_path, [_person("A", "ada", ""), _person("B", "ben", ""), _person("X", "xi", "A")])
    result = sync(cli, "--partial", "--users", users_file(tmp_path, [_person("A", "ada", "B"),
                                                                     _person("B", "ben", "X")], name="u2.csv"))
    assert result.exit_code == 1 and counts(result)["errors"] == 1, result.output
    chain = {n: _manager_of(api, n) for n in ("ada", "ben", "xi")}
    ids = {n: user(api, f"{n}@acme.dk")["id"] for n in ("ada", "ben", "xi")}
    assert not (chain["ada"] == ids["ben"] and chain["ben"] == ids["xi"] and chain["xi"] == ids["ada"])


def test_managers_swapped_in_one_run_in_any_order(api, cli, tmp_path):
    full_sync(cli, tmp_path, [_person("A", "ada", ""), _person("B", "ben", "A"), _person("C", "cy", "")])
    swapped = [_person("C", "cy", ""), _person("B", "ben", "C"), _person("A", "ada", "B")]
    result = full_sync(cli, tmp_path, swapped)
    assert counts(result)["errors"] == 0 and counts(result)["updated"] == 2
    assert _manager_of(api, "ada") == user(api, "ben@acme.dk")["id"]
    assert _manager_of(api, "ben") == user(api, "cy@acme.dk")["id"]
