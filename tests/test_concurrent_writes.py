"""Concurrent writes: each request is one transaction, writers wait their turn, none fails.

On SQLite the writers queue on a lock file beside the database (``WriterQueue``) and
must leave the queue after a commit, a failed request and a rollback alike, or the next
writer would wait forever. On PostgreSQL the same tests exercise row locks.
"""
from __future__ import annotations

import threading

import pytest

from conftest import CORE_USER, ENTERPRISE, P2L_GROUP, another_writer_renames, create_unit

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
THREADS = 8
PER_THREAD = 6


def _patch_title(api, user_id: str, title: str):
    return api.patch(f"/Users/{user_id}", json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": title}]})


def test_concurrent_patches_and_creates_all_succeed(api):
    users = [api.create_user(f"writer{i}") for i in range(THREADS)]
    statuses: list[int] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for k in range(PER_THREAD):
                statuses.append(_patch_title(api, users[n]["id"], f"t{n}-{k}").status_code)
                statuses.append(api.post("/Users", json={"schemas": [CORE_USER],
                                                         "userName": f"new-{n}-{k}"}).status_code)
                # every other one shares a user with the next thread: the same row, concurrently
                statuses.append(_patch_title(api, users[(n + 1) % THREADS]["id"], f"x{n}-{k}").status_code)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert not any(t.is_alive() for t in threads), "a writer never got its turn"
    assert statuses.count(200) == 2 * THREADS * PER_THREAD
    assert statuses.count(201) == THREADS * PER_THREAD
    for user in users:  # every PATCH was applied once: two per thread-round on each user
        version = api.get(f"/Users/{user['id']}").get_json()["meta"]["version"]
        assert version == f'W/"{1 + 2 * PER_THREAD}"'
    total = api.get("/Users", query_string={"count": 0}).get_json()["totalResults"]
    assert total == THREADS + THREADS * PER_THREAD


def test_failed_writes_leave_the_queue(api):
    """A write that fails (409, 400, 412, 404) must not keep later writers waiting."""
    user = api.create_user("taken")
    for _ in range(3):
        assert api.post("/Users", json={"schemas": [CORE_USER], "userName": "TAKEN"}).status_code == 409
        assert api.patch(f"/Users/{user['id']}", json={"schemas": [PATCH_OP], "Operations": [
            {"op": "bogus"}]}).status_code == 400
        assert api.put(f"/Users/{user['id']}", headers={"If-Match": 'W/"999"'},
                       json={"schemas": [CORE_USER], "userName": "taken"}).status_code == 412
        assert _patch_title(api, "no-such-id", "x").status_code == 404
    done = threading.Event()

    def write() -> None:
        if _patch_title(api, user["id"], "after failures").status_code == 200:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(30)
    assert done.is_set(), "the write after failed writes did not get its turn"


def _race(first, second) -> list[int]:
    """Run two requests at the same moment; their status codes, in order."""
    results: list[int | None] = [None, None]
    barrier = threading.Barrier(2)

    def run(i, request):
        barrier.wait()
        results[i] = request().status_code

    threads = [threading.Thread(target=run, args=(i, r)) for i, r in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_unit_moves_never_make_a_cycle(api):
    """Two requests race to put unit A under B and B under A: at most one may win."""
    for round_ in range(10):
        a = create_unit(api, f"A{round_}")
        b = create_unit(api, f"B{round_}")

        def move(unit, parent):
            return lambda: api.patch(f"/Groups/{unit['id']}", json={"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": f"{P2L_GROUP}:parent", "value": {"value": parent["id"]}}]})

        statuses = _race(move(a, b), move(b, a))
        assert sorted(statuses) == [204, 400], statuses
        parents = {u["id"]: (api.get(f"/Groups/{u['id']}").get_json()[P2L_GROUP].get("parent") or {}).get("value")
                   for u in (a, b)}
        assert not (parents[a["id"]] == b["id"] and parents[b["id"]] == a["id"]), "a unit cycle was committed"


def test_concurrent_manager_changes_never_make_a_cycle(api):
    """User writes read before they take SQLite's write lock; a check that decides whether
    a write is allowed (here: no manager cycle) must still see what the others committed.
    Two requests race to make A manage B and B manage A: at most one may win."""
    for round_ in range(10):
        a = api.create_user(f"a{round_}")
        b = api.create_user(f"b{round_}")

        def manage(user, boss):
            return lambda: api.patch(f"/Users/{user['id']}", json={"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": boss["id"]}}]})

        statuses = _race(manage(a, b), manage(b, a))
        assert sorted(statuses) == [200, 400], statuses
        managers = {u["id"]: (api.get(f"/Users/{u['id']}").get_json().get(ENTERPRISE) or {}).get("manager", {})
                    .get("value") for u in (a, b)}
        assert not (managers[a["id"]] == b["id"] and managers[b["id"]] == a["id"]), "a manager cycle was committed"


def test_a_patch_that_lost_the_race_runs_again(app, api, monkeypatch):
    """On SQLite a user PATCH reads without the write lock; if another writer changes the user
    before this one writes, the version check fails and the request runs once more, now with
    the lock up front: the client sees one 200 and both changes are kept, in order."""
    if app.extensions["scim_engine"].dialect.name != "sqlite":
        pytest.skip("PostgreSQL locks the user's row when the write reads it: no one can change it in between")
    from scim_server.storage.users import UserStore

    user = api.create_user("raced", title="First")
    real_update = UserStore.update
    calls: list[int] = []

    def update_after_another_writer(store, row, doc):
        calls.append(row.version)
        if len(calls) == 1:  # another writer commits between this request's read and its write
            another_writer_renames(app, user["id"], "Theirs")
        return real_update(store, row, doc)

    monkeypatch.setattr(UserStore, "update", update_after_another_writer)
    response = _patch_title(api, user["id"], "Mine")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert calls == [1, 2]  # the second run read the other writer's version
    after = api.get(f"/Users/{user['id']}").get_json()
    assert (after["title"], after["displayName"], after["meta"]["version"]) == ("Mine", "Theirs", 'W/"3"')
