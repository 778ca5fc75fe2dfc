"""POST /Bulk (RFC 7644 §3.7): many operations in one request, each succeeding or failing on
its own, with bulkId cross-references, failOnErrors, the advertised limits, ETags, tenant
isolation and the audit trail.

Assumptions made where the RFC and our contract leave room (each is repeated where it is used):

* the per-operation ``status`` is the bare HTTP code as a string ("201"), as in the RFC's examples;
* the echoed ``method`` is compared case-insensitively (a request may send "post");
* a successful PATCH may answer "200" or "204" (a Group PATCH is 204 as a single request);
* a request-level refusal whose exact code the contract leaves open (duplicate bulkId, an
  operation that is not an object) is checked as "a 4xx SCIM error and nothing written".
"""
from __future__ import annotations

import json
import uuid

import pytest
from stdnum import ean

from conftest import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE,
    ERROR,
    P2L_GROUP,
    P2L_USER,
    PATCH_OP,
    ScimClient,
    another_writer_renames,
    assert_scim_error,
    bearer,
    create_unit,
    filter_list,
    get_json,
    unit_body,
)
from scim_server.storage import tenants

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
MANAGER = f"{ENTERPRISE}:manager"
METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PATCHED = ("200", "204")

GOOD_EAN = "579000000001" + ean.calc_check_digit("579000000001")
BAD_EAN = GOOD_EAN[:-1] + str((int(GOOD_EAN[-1]) + 1) % 10)
assert ean.is_valid(GOOD_EAN) and not ean.is_valid(BAD_EAN)


# ------------------------------------------------------------------ building requests


def ref(bulk_id: str) -> str:
    return f"bulkId:{bulk_id}"


def op(method: str, path, data=None, bulk_id: str | None = None, version: str | None = None) -> dict:
    operation = {"method": method, "path": path}
    if bulk_id is not None:
        operation["bulkId"] = bulk_id
    if version is not None:
        operation["version"] = version
    if data is not None:
        operation["data"] = data
    return operation


def user_data(user_name: str, **attrs) -> dict:
    schemas = [CORE_USER] + [urn for urn in (ENTERPRISE, P2L_USER) if urn in attrs]
    return {"schemas": schemas, "userName": user_name, **attrs}


def post_user(bulk_id: str | None, user_name: str, **attrs) -> dict:
    return op("POST", "/Users", user_data(user_name, **attrs), bulk_id)


def post_group(bulk_id: str | None, name: str, members=(), **attrs) -> dict:
    data = {"schemas": [CORE_GROUP], "displayName": name, **attrs}
    if members:
        data["members"] = [{"value": m} for m in members]
    return op("POST", "/Groups", data, bulk_id)


def post_unit(bulk_id: str, name: str, parent: str | None = None, **ext) -> dict:
    return op("POST", "/Groups", unit_body(name, parent, **ext), bulk_id)


def patch(path: str, *operations: dict, version: str | None = None) -> dict:
    return op("PATCH", path, {"schemas": [PATCH_OP], "Operations": list(operations)}, version=version)


def put(path: str, data: dict, version: str | None = None) -> dict:
    return op("PUT", path, data, version=version)


def delete(path: str, version: str | None = None) -> dict:
    return op("DELETE", path, version=version)


def add_members(*ids: str) -> dict:
    return {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}


def envelope(operations, fail_on_errors=None) -> dict:
    body = {"schemas": [BULK_REQUEST], "Operations": list(operations)}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return body


def send(api: ScimClient, operations, fail_on_errors=None, headers=None):
    return api.post("/Bulk", json=envelope(operations, fail_on_errors), headers=headers)


# ------------------------------------------------------------------ reading responses


def results_of(response) -> list[dict]:
    """The Operations of a 200 BulkResponse; every status a 3-digit string, never 5xx."""
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [BULK_RESPONSE]
    results = body["Operations"]
    assert isinstance(results, list)
    for result in results:
        status = result["status"]
        assert isinstance(status, str) and len(status) == 3 and status.isdigit(), result
        assert not status.startswith("5"), result
    return results


def bulk(api: ScimClient, *operations, headers=None) -> list[dict]:
    """Send a bulk request without failOnErrors: one result per operation, in request order."""
    results = results_of(send(api, operations, headers=headers))
    assert len(results) == len(operations), results
    for operation, result in zip(operations, results):
        if not isinstance(operation, dict):
            continue
        method = operation.get("method")
        if isinstance(method, str) and method.upper() in METHODS:  # RFC: the method is echoed
            assert str(result.get("method", "")).upper() == method.upper(), (operation, result)
        if "bulkId" in operation:
            assert result.get("bulkId") == operation["bulkId"], (operation, result)
    return results


def failed(result: dict, status: int, scim_type: str | None = None) -> dict:
    """A failed operation: its status and a SCIM error body in ``response``."""
    assert result["status"] == str(status), result
    error = result["response"]
    assert error["schemas"] == [ERROR], result
    assert error["status"] == str(status), result
    assert error.get("detail"), result
    if scim_type is not None:
        assert error.get("scimType") == scim_type, result
    return error


def created(result: dict) -> str:
    """The id of the resource a successful POST created (the last segment of its location)."""
    assert result["status"] == "201", result
    location = result["location"]
    assert location.startswith(("http://", "https://")), result  # absolute URL
    return location.rstrip("/").rsplit("/", 1)[1]


def assert_refused(response, status: int | None = None) -> dict:
    """The whole request refused with a SCIM error (``status`` or any 4xx)."""
    if status is not None:
        return assert_scim_error(response, status)
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(response.status_code)
    return body


def total(api: ScimClient, resource: str, expression: str | None = None) -> int:
    if expression:
        return filter_list(api, resource, expression)["totalResults"]
    return get_json(api, f"/{resource}?count=0")["totalResults"]


def member_ids(api: ScimClient, group_id: str) -> set[str]:
    return {m["value"] for m in get_json(api, f"/Groups/{group_id}").get("members") or []}


def manager_of(api: ScimClient, user_id: str) -> str | None:
    manager = (get_json(api, f"/Users/{user_id}").get(ENTERPRISE) or {}).get("manager")
    return manager.get("value") if isinstance(manager, dict) else None


def limits(api: ScimClient) -> dict:
    return get_json(api, "/ServiceProviderConfig")["bulk"]


def scoped(app, scope: str, tenant: str = "acme") -> ScimClient:
    """A client of an existing tenant with a token of exactly this scope."""
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, tenant), "bulk test", scope)
    return bearer(app, token)


# ------------------------------------------------------------------ discovery


def test_service_provider_config_advertises_bulk(api):
    config = limits(api)
    assert config["supported"] is True
    assert isinstance(config["maxOperations"], int) and config["maxOperations"] >= 1000
    assert isinstance(config["maxPayloadSize"], int) and config["maxPayloadSize"] > 0


# ------------------------------------------------------------------ the response


def test_creates_answer_201_with_location_and_version(api):
    results = bulk(api, post_user("ann", "ann@example.com", displayName="Ann"),
                   post_user("bob", "bob@example.com"), post_group("team", "Team"))
    assert [r["bulkId"] for r in results] == ["ann", "bob", "team"]
    for result, endpoint in zip(results, ["Users", "Users", "Groups"]):
        resource_id = created(result)
        response = get_json(api, f"/{endpoint}/{resource_id}")
        assert result["location"] == response["meta"]["location"]
        assert f"/{endpoint}/" in result["location"]
        assert result["version"] == response["meta"]["version"]
    assert get_json(api, f"/Users/{created(results[0])}")["displayName"] == "Ann"
    assert total(api, "Users") == 2 and total(api, "Groups") == 1


def test_put_patch_delete_of_existing_resources(api):
    user = api.create_user("a@example.com", title="Clerk")
    other = api.create_user("b@example.com")
    victim = api.create_user("c@example.com")
    member = api.create_user("d@example.com")
    group = api.create_group("Team")
    results = bulk(api,
                   put(f"/Users/{user['id']}", user_data("a@example.com", title="Manager")),
                   patch(f"/Users/{other['id']}", {"op": "replace", "path": "displayName", "value": "Bee"}),
                   patch(f"/Groups/{group['id']}", add_members(member["id"])),
                   delete(f"/Users/{victim['id']}"))
    assert results[0]["status"] == "200"
    assert results[1]["status"] in PATCHED
    assert results[2]["status"] in PATCHED  # a Group PATCH: either is fine
    assert results[3]["status"] == "204"
    for result, resource in zip(results, [user, other, group, victim]):
        assert result["location"] == resource["meta"]["location"]
    after_put = get_json(api, f"/Users/{user['id']}")
    after_patch = get_json(api, f"/Users/{other['id']}")
    after_group = get_json(api, f"/Groups/{group['id']}")
    assert after_put["title"] == "Manager"
    assert after_patch["displayName"] == "Bee"
    assert member_ids(api, group["id"]) == {member["id"]}
    # version: the ETag after the write
    assert results[0]["version"] == after_put["meta"]["version"] != user["meta"]["version"]
    assert results[1]["version"] == after_patch["meta"]["version"] != other["meta"]["version"]
    assert results[2]["version"] == after_group["meta"]["version"] != group["meta"]["version"]
    assert_scim_error(api.get(f"/Users/{victim['id']}"), 404)


def test_method_names_are_case_insensitive(api):
    user = api.create_user("case@example.com")
    victim = api.create_user("gone@example.com")
    results = bulk(api,
                   {**post_user("new", "new@example.com"), "method": "post"},
                   {**patch(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "T"}), "method": "Patch"},
                   {**put(f"/Users/{user['id']}", user_data("case@example.com", nickName="N")), "method": "pUt"},
                   {**delete(f"/Users/{victim['id']}"), "method": "delete"})
    created(results[0])
    assert results[1]["status"] in PATCHED
    assert results[2]["status"] == "200"
    assert results[3]["status"] == "204"
    assert get_json(api, f"/Users/{user['id']}")["nickName"] == "N"
    assert total(api, "Users") == 2


def test_delete_of_unknown_id_is_404_for_that_operation_only(api):
    results = bulk(api, delete(f"/Users/{uuid.uuid4()}"), delete(f"/Groups/{uuid.uuid4()}"),
                   post_user("u", "u@example.com"))
    failed(results[0], 404)
    failed(results[1], 404)
    created(results[2])


# ------------------------------------------------------------------ each operation on its own


def test_failed_operation_does_not_stop_the_others(api):
    api.create_user("taken@example.com")
    results = bulk(api, post_user("a", "a@example.com"), post_user("dup", "taken@example.com"),
                   post_user("b", "b@example.com"))
    created(results[0])
    failed(results[1], 409, "uniqueness")
    created(results[2])
    assert total(api, "Users") == 3


def test_failed_patch_leaves_the_user_unchanged(api):
    user = api.create_user("p@example.com", title="Clerk", displayName="P")
    before = get_json(api, f"/Users/{user['id']}")
    results = bulk(api, patch(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Boss"},
                              {"op": "frobnicate", "path": "displayName", "value": "X"}))
    failed(results[0], 400)
    assert results[0]["location"] == before["meta"]["location"]  # a failed PATCH names its target
    assert get_json(api, f"/Users/{user['id']}") == before


def test_post_with_unknown_manager_leaves_no_user(api):
    results = bulk(api, post_user("m", "managed@example.com", **{ENTERPRISE: {"manager": {"value": str(uuid.uuid4())}}}),
                   post_user("ok", "ok@example.com"))
    failed(results[0], 400)
    created(results[1])
    assert total(api, "Users", 'userName eq "managed@example.com"') == 0
    assert total(api, "Users") == 1


# ------------------------------------------------------------------ bulkId references


def test_group_members_reference_resources_created_before_and_after(api):
    results = bulk(api,
                   post_user("early", "early@example.com"),
                   post_group("team", "Team", members=[ref("early"), ref("late"), ref("inner")]),
                   post_user("late", "late@example.com"),
                   post_group("inner", "Inner"))
    early, team, late, inner = (created(r) for r in results)
    assert member_ids(api, team) == {early, late, inner}
    assert [g["value"] for g in get_json(api, f"/Users/{late}")["groups"]] == [team]
    assert get_json(api, f"/Groups/{team}")["meta"]["location"] == results[1]["location"]


def test_manager_references_by_bulk_id_as_object_and_as_bare_string(api):
    results = bulk(api,
                   post_user("r1", "r1@example.com", **{ENTERPRISE: {"manager": {"value": ref("boss")}}}),  # forward
                   post_user("boss", "boss@example.com"),
                   post_user("r2", "r2@example.com", **{ENTERPRISE: {"manager": ref("boss")}}))  # Entra's form
    r1, boss, r2 = (created(r) for r in results)
    assert manager_of(api, r1) == boss
    assert manager_of(api, r2) == boss
    assert [m["value"] for m in get_json(api, f"/Users/{r1}")[P2L_USER]["managerChain"]] == [boss]


def test_org_units_and_employments_reference_each_other_by_bulk_id(api):
    results = bulk(api,
                   post_user("teacher", "teacher@example.com",
                             **{P2L_USER: {"employments": [{"value": ref("school"), "primary": True}]}}),
                   post_unit("root", "Kommune", code="K-1", ean=GOOD_EAN),
                   post_unit("school", "Skole", parent=ref("root"), code="K-1.1"))
    teacher, root, school = (created(r) for r in results)
    unit = get_json(api, f"/Groups/{school}")[P2L_GROUP]
    assert unit["parent"]["value"] == root
    assert [a["value"] for a in unit["ancestors"]] == [root]
    assert get_json(api, f"/Groups/{root}")[P2L_GROUP]["ean"] == GOOD_EAN
    user = get_json(api, f"/Users/{teacher}")[P2L_USER]
    assert [e["value"] for e in user["employments"]] == [school]
    assert {u["value"] for u in user["orgUnits"]} == {school, root}
    assert user["effectiveEan"] == GOOD_EAN  # inherited from the root unit through the primary employment
    assert member_ids(api, school) == {teacher}


def test_path_references_resolve_for_put_patch_and_delete(api):
    results = bulk(api,
                   post_user("a", "a@example.com", title="Clerk"),
                   post_user("b", "b@example.com"),
                   post_user("c", "c@example.com"),
                   post_group("g", "G"),
                   patch(f"/Users/{ref('a')}", {"op": "replace", "path": "title", "value": "Boss"}),
                   put(f"/Users/{ref('b')}", user_data("b@example.com", displayName="Bee",
                                                        **{ENTERPRISE: {"manager": {"value": ref("a")}}})),
                   delete(f"/Users/{ref('c')}"),
                   patch(f"/Groups/{ref('g')}", add_members(ref("b"))))
    a, b, c, g = (created(r) for r in results[:4])
    assert results[4]["status"] in PATCHED and results[4]["location"] == results[0]["location"]
    assert results[5]["status"] == "200" and results[5]["location"] == results[1]["location"]
    assert results[6]["status"] == "204" and results[6]["location"] == results[2]["location"]
    assert results[7]["status"] in PATCHED and results[7]["location"] == results[3]["location"]
    user_a = get_json(api, f"/Users/{a}")
    assert user_a["title"] == "Boss"
    assert results[4]["version"] == user_a["meta"]["version"]
    assert get_json(api, f"/Users/{b}")["displayName"] == "Bee"
    assert manager_of(api, b) == a
    assert_scim_error(api.get(f"/Users/{c}"), 404)
    assert member_ids(api, g) == {b}


def test_patch_path_may_name_a_user_created_later_in_the_request(api):
    results = bulk(api, patch(f"/Users/{ref('later')}", {"op": "replace", "path": "title", "value": "Set"}),
                   post_user("later", "later@example.com"))
    assert results[0]["status"] in PATCHED, results
    later = created(results[1])
    assert results[0]["location"] == results[1]["location"]
    assert get_json(api, f"/Users/{later}")["title"] == "Set"


def test_patch_values_reference_bulk_ids(api):
    group = api.create_group("Existing")
    user = api.create_user("employee@example.com")
    results = bulk(api,
                   patch(f"/Groups/{group['id']}", add_members(ref("n1"), ref("n2"))),  # forward
                   post_user("n1", "n1@example.com"),
                   post_user("n2", "n2@example.com"),
                   patch(f"/Users/{user['id']}", {"op": "add", "path": MANAGER, "value": {"value": ref("n1")}}))
    assert results[0]["status"] in PATCHED
    n1, n2 = created(results[1]), created(results[2])
    assert results[3]["status"] in PATCHED
    assert member_ids(api, group["id"]) == {n1, n2}
    assert manager_of(api, user["id"]) == n1


def test_unknown_bulk_id_is_409_and_writes_nothing(api):
    existing = api.create_group("Existing")
    results = bulk(api,
                   post_group("ghosts", "Ghosts", members=[ref("fine"), ref("nobody")]),
                   post_user("u", "u@example.com", **{ENTERPRISE: {"manager": {"value": ref("nobody")}}}),
                   post_unit("unit", "Orphan", parent=ref("nobody")),
                   patch(f"/Users/{ref('nobody')}", {"op": "replace", "path": "title", "value": "x"}),
                   patch(f"/Groups/{existing['id']}", add_members(ref("fine"), ref("nobody"))),
                   post_user("fine", "fine@example.com"))
    for result in results[:5]:
        failed(result, 409)
    fine = created(results[5])
    assert [u["id"] for u in get_json(api, "/Users")["Resources"]] == [fine]
    assert not get_json(api, f"/Users/{fine}").get("groups")  # a failed op leaves no half of itself
    assert [g["id"] for g in get_json(api, "/Groups")["Resources"]] == [existing["id"]]
    assert get_json(api, f"/Groups/{existing['id']}")["meta"]["version"] == existing["meta"]["version"]


def test_reference_to_a_failed_operation_is_409(api):
    results = bulk(api,
                   op("POST", "/Users", {"schemas": [CORE_USER], "displayName": "No userName"}, "broken"),
                   post_group("g", "G", members=[ref("broken")]),
                   post_user("r", "r@example.com", **{ENTERPRISE: {"manager": ref("broken")}}),
                   delete(f"/Users/{ref('broken')}"))
    failed(results[0], 400)
    for result in results[1:]:
        failed(result, 409)
    assert total(api, "Users") == 0 and total(api, "Groups") == 0


def test_manager_cycle_is_409_and_the_rest_succeeds(api):
    results = bulk(api,
                   post_user("x", "x@example.com", **{ENTERPRISE: {"manager": {"value": ref("y")}}}),
                   post_user("y", "y@example.com", **{ENTERPRISE: {"manager": {"value": ref("x")}}}),
                   post_user("z", "z@example.com"))
    failed(results[0], 409)
    failed(results[1], 409)
    z = created(results[2])
    assert [u["id"] for u in get_json(api, "/Users")["Resources"]] == [z]


def test_parent_cycle_is_409_and_the_rest_succeeds(api):
    results = bulk(api,
                   post_unit("a", "A", parent=ref("b")),
                   post_unit("b", "B", parent=ref("a")),
                   post_unit("c", "C"))
    failed(results[0], 409)
    failed(results[1], 409)
    c = created(results[2])
    assert [g["id"] for g in get_json(api, "/Groups")["Resources"]] == [c]


def test_group_membership_cycle_is_409_and_the_rest_succeeds(api):
    # RFC 7644 §3.7.1 lets a service provider resolve such a cycle or answer 409; our contract
    # chose 409 (an unresolvable cycle), so that is what is asserted.
    results = bulk(api,
                   post_group("a", "A", members=[ref("b")]),
                   post_group("b", "B", members=[ref("a")]),
                   post_group("c", "C"))
    failed(results[0], 409)
    failed(results[1], 409)
    c = created(results[2])
    assert [g["id"] for g in get_json(api, "/Groups")["Resources"]] == [c]


def test_duplicate_bulk_id_refuses_the_whole_request(api):
    # The exact code is open (400 invalidValue is likely): any 4xx SCIM error, nothing written.
    response = send(api, [post_user("same", "a@example.com"), post_user("same", "b@example.com"),
                          post_user("other", "c@example.com")])
    assert_refused(response)
    assert total(api, "Users") == 0


# ------------------------------------------------------------------ failOnErrors


def test_fail_on_errors_1_stops_at_the_first_error(api):
    api.create_user("taken@example.com")
    response = send(api, [post_user("a", "a@example.com"), post_user("dup", "taken@example.com"),
                          post_user("c", "c@example.com")], fail_on_errors=1)
    results = results_of(response)
    assert [r["bulkId"] for r in results] == ["a", "dup"]
    created(results[0])
    failed(results[1], 409)
    assert total(api, "Users", 'userName eq "a@example.com"') == 1  # earlier successes stay
    assert total(api, "Users", 'userName eq "c@example.com"') == 0
    assert total(api, "Users") == 2


def test_fail_on_errors_counts_errors_before_stopping(api):
    def broken(bulk_id):
        return op("POST", "/Users", {"schemas": [CORE_USER]}, bulk_id)

    response = send(api, [broken("e1"), post_user("ok1", "ok1@example.com"), broken("e2"),
                          post_user("ok2", "ok2@example.com"), broken("e3")], fail_on_errors=2)
    results = results_of(response)
    assert [r["bulkId"] for r in results] == ["e1", "ok1", "e2"]
    failed(results[0], 400)
    created(results[1])
    failed(results[2], 400)
    assert total(api, "Users") == 1
    assert total(api, "Users", 'userName eq "ok2@example.com"') == 0


def test_fail_on_errors_not_reached_processes_everything(api):
    response = send(api, [post_user("a", "a@example.com"), op("POST", "/Users", {"schemas": [CORE_USER]}, "bad"),
                          post_user("b", "b@example.com")], fail_on_errors=2)
    results = results_of(response)
    assert [r["bulkId"] for r in results] == ["a", "bad", "b"]
    assert [r["status"] for r in results] == ["201", "400", "201"]
    assert total(api, "Users") == 2


# ------------------------------------------------------------------ limits


def test_more_operations_than_max_operations_is_413_and_writes_nothing(api):
    count = limits(api)["maxOperations"] + 1
    response = send(api, [post_user(f"u{i}", f"u{i}@example.com") for i in range(count)])
    assert_refused(response, 413)
    assert total(api, "Users") == 0


def test_payload_larger_than_max_payload_size_is_413_and_writes_nothing(api):
    limit = limits(api)["maxPayloadSize"]
    operations = [post_user("first", "first@example.com"), post_user("big", "big@example.com", displayName="")]
    padding = max(limit - len(json.dumps(envelope(operations)).encode()) + 1, 0)
    operations[1]["data"]["displayName"] = "x" * padding
    raw = json.dumps(envelope(operations))
    assert len(raw.encode()) > limit
    assert_refused(api.post("/Bulk", data=raw), 413)
    assert total(api, "Users") == 0


# ------------------------------------------------------------------ malformed requests


VALID_OP = post_user("v", "v@example.com")


@pytest.mark.parametrize("body", [
    pytest.param({"schemas": [PATCH_OP], "Operations": [VALID_OP]}, id="wrong-schema"),
    pytest.param({"Operations": [VALID_OP]}, id="no-schemas"),
    pytest.param({"schemas": BULK_REQUEST, "Operations": [VALID_OP]}, id="schemas-not-a-list"),
    pytest.param({"schemas": [BULK_REQUEST], "Operations": VALID_OP}, id="operations-an-object"),
    pytest.param({"schemas": [BULK_REQUEST], "Operations": "POST /Users"}, id="operations-a-string"),
    pytest.param({"schemas": [BULK_REQUEST]}, id="operations-missing"),
    pytest.param([VALID_OP], id="body-a-list"),
    pytest.param("bulk", id="body-a-string"),
])
def test_malformed_envelope_is_400(api, body):
    assert_refused(api.post("/Bulk", json=body), 400)
    assert total(api, "Users") == 0


def test_body_that_is_not_json_is_400(api):
    assert_refused(api.post("/Bulk", data='{"schemas": ["' + BULK_REQUEST + '"], "Operations": [{'), 400)
    assert total(api, "Users") == 0


MALFORMED_OPS = {
    "method-GET": lambda uid: {"method": "GET", "path": f"/Users/{uid}"},
    "method-FOO": lambda uid: {"method": "FOO", "path": "/Users", "data": user_data("foo@example.com")},
    "method-missing": lambda uid: {"path": "/Users", "data": user_data("nomethod@example.com")},
    "method-not-a-string": lambda uid: {"method": 5, "path": f"/Users/{uid}"},
    "path-missing": lambda uid: {"method": "POST", "data": user_data("nopath@example.com")},
    "path-not-a-string": lambda uid: {"method": "DELETE", "path": ["/Users", uid]},
    "path-unknown-endpoint": lambda uid: {"method": "POST", "path": "/Foo", "data": user_data("foo@example.com")},
    "path-too-deep": lambda uid: {"method": "DELETE", "path": "/Users/x/y"},
    "post-with-id": lambda uid: {"method": "POST", "path": f"/Users/{uid}", "data": user_data("withid@example.com")},
    "post-without-data": lambda uid: {"method": "POST", "path": "/Users"},
    "post-data-a-string": lambda uid: {"method": "POST", "path": "/Users", "data": "userName=x"},
    "post-data-a-list": lambda uid: {"method": "POST", "path": "/Users", "data": [user_data("list@example.com")]},
    "put-data-a-number": lambda uid: {"method": "PUT", "path": f"/Users/{uid}", "data": 5},
    "patch-without-data": lambda uid: {"method": "PATCH", "path": f"/Users/{uid}"},
    "patch-without-operations": lambda uid: {"method": "PATCH", "path": f"/Users/{uid}", "data": {"schemas": [PATCH_OP]}},
    "patch-data-a-list": lambda uid: {"method": "PATCH", "path": f"/Users/{uid}",
                                      "data": [{"op": "replace", "path": "title", "value": "x"}]},
}


@pytest.mark.parametrize("name", list(MALFORMED_OPS))
def test_malformed_operation_is_400_for_that_operation_only(api, name):
    user = api.create_user("target@example.com", title="Kept")
    before = get_json(api, f"/Users/{user['id']}")
    results = bulk(api, MALFORMED_OPS[name](user["id"]), post_user("ok", "ok@example.com"))
    failed(results[0], 400)
    created(results[1])
    assert total(api, "Users") == 2
    assert get_json(api, f"/Users/{user['id']}") == before


@pytest.mark.parametrize("operation", ["POST /Users", 5, None, [VALID_OP]], ids=["string", "number", "null", "list"])
def test_operation_that_is_not_an_object_is_refused(api, operation):
    # Either reading: a malformed single operation (that one 400, the rest processed) or a
    # malformed envelope (the whole request 400, nothing written). Never a 500.
    response = send(api, [post_user("ok", "ok@example.com"), operation])
    if response.status_code == 200:
        results = results_of(response)
        assert len(results) == 2
        created(results[0])
        failed(results[1], 400)
        assert total(api, "Users") == 1
    else:
        assert_refused(response, 400)
        assert total(api, "Users") == 0


@pytest.mark.parametrize("operations, fail_on_errors", [
    pytest.param([{**VALID_OP, "bulkId": 5}], None, id="bulkId-a-number"),
    pytest.param([{**VALID_OP, "bulkId": ""}], None, id="bulkId-empty"),
    pytest.param([{**VALID_OP, "bulkId": None}], None, id="bulkId-null"),
    pytest.param([delete(f"/Users/{uuid.uuid4()}", version=5)], None, id="version-a-number"),
    pytest.param([VALID_OP], "two", id="failOnErrors-a-string"),
    pytest.param([VALID_OP], -1, id="failOnErrors-negative"),
    pytest.param([VALID_OP], 0, id="failOnErrors-zero"),
    pytest.param([VALID_OP], 1.5, id="failOnErrors-fraction"),
    pytest.param([delete("/Users/bulkId:")], None, id="path-empty-bulkId"),
    pytest.param([delete("/Users/\u0000")], None, id="path-nul"),
    pytest.param([post_group("g", "G", members=["bulkId:"])], None, id="member-empty-bulkId"),
    pytest.param([op("POST", "/Groups", {"schemas": [CORE_GROUP], "displayName": "G", "members": "x"}, "g")], None,
                 id="members-a-string"),
    pytest.param([post_user("m", "m@example.com", **{ENTERPRISE: {"manager": {"value": 5}}})], None,
                 id="manager-a-number"),
    pytest.param([post_user("m", "m@example.com", **{ENTERPRISE: {"manager": ["bulkId:m"]}})], None,
                 id="manager-a-list-of-self"),
    pytest.param([post_user("m", "m@example.com", **{ENTERPRISE: {"manager": {"value": ref("m")}}})], None,
                 id="manager-self"),
    pytest.param([patch(f"/Users/{ref('p')}", {"op": "add", "path": MANAGER, "value": ref("p")}),
                  post_user("p", "p@example.com")], None, id="patch-manager-self"),
    pytest.param([post_unit("u", "U", parent=ref("u"))], None, id="parent-self"),
    pytest.param([post_group("g", "G", members=[ref("g")])], None, id="member-self"),
])
def test_odd_input_is_never_a_server_error(api, operations, fail_on_errors):
    response = send(api, operations, fail_on_errors)
    if response.status_code == 200:
        results_of(response)  # no operation answered 5xx
    else:
        assert_refused(response)


# ------------------------------------------------------------------ IdP quirks and plan2learn data


def test_entra_forms_work_in_bulk(api):
    user = api.create_user("entra@example.com", active=True)
    a = api.create_user("a@example.com")
    b = api.create_user("b@example.com")
    group = api.create_group("Entra group", members=[a["id"], b["id"]])
    results = bulk(api,
                   patch(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"},
                         {"op": "Add", "path": MANAGER, "value": ref("boss")}),  # manager as a bare string
                   post_user("boss", "boss@example.com"),
                   patch(f"/Groups/{group['id']}", {"op": "Remove", "path": "members",
                                                    "value": [{"$ref": None, "value": a["id"]}]}),
                   op("POST", "/Groups", {"schemas": [CORE_GROUP, MS_GROUP], "displayName": "MS", "externalId": "e-1",
                                          "members": [{"$ref": None, "value": ref("boss")}]}, "ms"))
    assert results[0]["status"] in PATCHED
    boss = created(results[1])
    assert results[2]["status"] in PATCHED
    ms = created(results[3])
    got = get_json(api, f"/Users/{user['id']}")
    assert got["active"] is False
    assert got[ENTERPRISE]["manager"]["value"] == boss
    assert member_ids(api, group["id"]) == {b["id"]}
    assert member_ids(api, ms) == {boss}
    assert get_json(api, f"/Groups/{ms}")["externalId"] == "e-1"


def test_invalid_ean_fails_that_operation_only(api):
    results = bulk(api,
                   post_unit("bad-unit", "Bad", ean=BAD_EAN),
                   post_user("bad-user", "bad@example.com", **{P2L_USER: {"ean": BAD_EAN}}),
                   post_unit("good-unit", "Good", ean=GOOD_EAN),
                   post_user("good-user", "good@example.com", **{P2L_USER: {"ean": GOOD_EAN}}))
    assert "ean" in failed(results[0], 400, "invalidValue")["detail"]
    assert "ean" in failed(results[1], 400, "invalidValue")["detail"]
    unit, user = created(results[2]), created(results[3])
    assert get_json(api, f"/Groups/{unit}")[P2L_GROUP]["ean"] == GOOD_EAN
    assert get_json(api, f"/Users/{user}")[P2L_USER]["ean"] == GOOD_EAN
    assert total(api, "Groups") == 1 and total(api, "Users") == 1


# ------------------------------------------------------------------ ETags


def _write(method: str, user: dict, version: str) -> dict:
    path = f"/Users/{user['id']}"
    if method == "PUT":
        return put(path, user_data(user["userName"], title="New"), version=version)
    if method == "PATCH":
        return patch(path, {"op": "replace", "path": "title", "value": "New"}, version=version)
    return delete(path, version=version)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_matching_version_succeeds(api, method):
    user = api.create_user("v@example.com", title="Old")
    [result] = bulk(api, _write(method, user, user["meta"]["version"]))
    if method == "DELETE":
        assert result["status"] == "204"
        assert_scim_error(api.get(f"/Users/{user['id']}"), 404)
        return
    assert result["status"] in (("200",) if method == "PUT" else PATCHED)
    after = get_json(api, f"/Users/{user['id']}")
    assert after["title"] == "New"
    assert result["version"] == after["meta"]["version"] != user["meta"]["version"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_stale_version_is_412_and_changes_nothing(api, method):
    user = api.create_user("v@example.com", title="Old")
    response = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "D"})
    assert response.status_code == 200
    before = get_json(api, f"/Users/{user['id']}")
    assert before["meta"]["version"] != user["meta"]["version"]
    results = bulk(api, _write(method, user, user["meta"]["version"]), post_user("ok", "ok@example.com"))
    failed(results[0], 412)
    assert results[0]["location"] == before["meta"]["location"]
    created(results[1])
    assert get_json(api, f"/Users/{user['id']}") == before


# ------------------------------------------------------------------ tenants


@pytest.fixture
def acme(api):
    """Tenant acme's resources, which tenant globex must not touch."""
    user = api.create_user("own@acme.dk", displayName="Own", title="Staff")
    group = api.create_group("Own group", members=[user["id"]])
    unit = create_unit(api, "Acme unit", code="ACME-1")
    return {"user": user, "group": group, "unit": unit}


def _acme_state(api, acme) -> list[dict]:
    return [get_json(api, f"/Users/{acme['user']['id']}"), get_json(api, f"/Groups/{acme['group']['id']}"),
            get_json(api, f"/Groups/{acme['unit']['id']}")]


def test_other_tenants_resources_are_404_as_targets(api, other_api, acme):
    before = _acme_state(api, acme)
    uid, gid, unit = acme["user"]["id"], acme["group"]["id"], acme["unit"]["id"]
    results = bulk(other_api,
                   patch(f"/Users/{uid}", {"op": "replace", "path": "title", "value": "Hacked"}),
                   put(f"/Users/{uid}", user_data("own@acme.dk", title="Hacked")),
                   patch(f"/Groups/{gid}", {"op": "replace", "path": "displayName", "value": "Hacked"}),
                   patch(f"/Groups/{unit}", {"op": "replace", "path": f"{P2L_GROUP}:unitCode", "value": "X"}),
                   delete(f"/Users/{uid}"),
                   delete(f"/Groups/{gid}"),
                   delete(f"/Groups/{unit}"))
    for result in results:
        failed(result, 404)
    assert _acme_state(api, acme) == before


def test_other_tenants_resources_cannot_be_referenced(api, other_api, acme):
    before = _acme_state(api, acme)
    uid, gid, unit = acme["user"]["id"], acme["group"]["id"], acme["unit"]["id"]
    team = other_api.create_group("Globex team")
    results = bulk(other_api,
                   post_group("g", "Sneaky", members=[uid]),
                   post_group("n", "Nested", members=[gid]),
                   post_user("m1", "m1@globex.dk", **{ENTERPRISE: {"manager": {"value": uid}}}),
                   post_user("m2", "m2@globex.dk", **{ENTERPRISE: {"manager": uid}}),
                   post_unit("child", "Child", parent=unit),
                   post_user("e", "e@globex.dk", **{P2L_USER: {"employments": [{"value": unit}]}}),
                   patch(f"/Groups/{team['id']}", add_members(uid)),
                   patch(f"/Groups/{team['id']}", add_members(gid)))
    for result in results:
        failed(result, 400, "invalidValue")
    assert total(other_api, "Users") == 0
    assert [g["id"] for g in get_json(other_api, "/Groups")["Resources"]] == [team["id"]]
    assert member_ids(other_api, team["id"]) == set()
    assert _acme_state(api, acme) == before


# ------------------------------------------------------------------ audit


def test_each_successful_operation_is_one_audit_event(app, api):
    old = api.create_user("old@example.com")
    kept = api.create_user("kept@example.com")
    response = send(api, [post_user("a", "a@example.com"),
                          op("POST", "/Users", {"schemas": [CORE_USER]}, "broken"),
                          patch(f"/Users/{ref('a')}", {"op": "replace", "path": "title", "value": "T"}),
                          delete(f"/Users/{old['id']}"),
                          put(f"/Users/{kept['id']}", user_data("kept@example.com", title="Put"))],
                    headers={"X-Request-ID": "bulk-audit-1"})
    assert response.headers["X-Request-ID"] == "bulk-audit-1"
    results = results_of(response)
    assert [r["status"] for r in results] == ["201", "400", results[2]["status"], "204", "200"]
    assert results[2]["status"] in PATCHED
    a = created(results[0])
    auditor = scoped(app, "audit:read")
    trail = auditor.get("http://localhost/admin/v1/audit?count=1000")
    assert trail.status_code == 200, trail.get_data(as_text=True)
    events = [e for e in trail.get_json()["Resources"] if e["requestId"] == "bulk-audit-1"]
    assert len(events) == 4, events  # the failed operation wrote none
    by_index = {e["bulkOperation"]["index"]: e for e in events}
    assert sorted(by_index) == [0, 2, 3, 4]
    assert (by_index[0]["operation"], by_index[0]["resourceId"]) == ("create", a)
    assert by_index[0]["bulkOperation"] == {"index": 0, "bulkId": "a"}
    assert (by_index[2]["operation"], by_index[2]["resourceId"]) == ("patch", a)
    assert (by_index[3]["operation"], by_index[3]["resourceId"]) == ("delete", old["id"])
    assert (by_index[4]["operation"], by_index[4]["resourceId"]) == ("replace", kept["id"])
    for index in (2, 3, 4):  # no bulkId in the request: none recorded (absent or null)
        assert by_index[index]["bulkOperation"].get("bulkId") is None
    assert all(e["resourceType"] == "User" for e in events)


# ------------------------------------------------------------------ groups at scale


def test_thousand_member_adds_to_one_group(api):
    users = bulk(api, *[post_user(f"u{i}", f"member{i:04d}@example.com") for i in range(1000)])
    user_ids = [created(r) for r in users]
    group = api.create_group("Everyone")
    results = bulk(api, *[patch(f"/Groups/{group['id']}", add_members(uid)) for uid in user_ids])
    assert {r["status"] for r in results} <= set(PATCHED), {r["status"] for r in results}
    assert member_ids(api, group["id"]) == set(user_ids)
    assert len(get_json(api, f"/Groups/{group['id']}")["members"]) == 1000


def test_thousand_user_creates(api):
    results = bulk(api, *[post_user(f"u{i}", f"user{i:04d}@example.com") for i in range(1000)])
    assert [r["status"] for r in results] == ["201"] * 1000
    assert len({r["location"] for r in results}) == 1000
    assert total(api, "Users") == 1000


# ------------------------------------------------------------------ authorisation


def test_token_without_write_scope_is_403(app, api):
    reader = scoped(app, "scim:read")
    response = send(reader, [post_user("a", "a@example.com")])
    assert_refused(response, 403)
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert total(api, "Users") == 0


def test_missing_token_is_401(anonymous, api):
    assert_refused(send(anonymous, [post_user("a", "a@example.com")]), 401)
    assert total(api, "Users") == 0


def test_creates_written_together_keep_the_employment_rules(api):
    """User creates of one request are written together (multi-row statements): each still
    gets its employments, the leaver rule (a future starter is inactive), its own error and its
    own audit event, exactly as a single POST would."""
    unit = create_unit(api, "Skole", code="SK-9")["id"]
    results = bulk(api,
                   post_user("now", "now@example.com", **{P2L_USER: {"employments": [
                       {"value": unit, "startDate": "2020-01-01T00:00:00Z", "primary": True}]}}),
                   post_user("later", "later@example.com", **{P2L_USER: {"employments": [
                       {"value": unit, "startDate": "2999-01-01T00:00:00Z"}]}}),
                   post_user("ghost", "ghost@example.com", **{P2L_USER: {"employments": [
                       {"value": "no-such-unit"}]}}),
                   post_user("plain", "plain@example.com"))
    now, later = created(results[0]), created(results[1])
    failed(results[2], 400, "invalidValue")
    created(results[3])
    assert get_json(api, f"/Users/{now}")["active"] is True
    starter = get_json(api, f"/Users/{later}")
    assert starter["active"] is False  # starts in the future: inactive until then
    assert results[1]["version"] == starter["meta"]["version"]
    assert member_ids(api, unit) == {now, later}
    assert total(api, "Users", 'userName eq "ghost@example.com"') == 0


def test_a_bulk_that_lost_a_race_runs_again(app, api, monkeypatch):
    """On SQLite a Bulk request validates its PATCHes before it takes the write lock; if another
    writer changes one of the users in between, the version check of the batched UPDATE fails
    and the whole request runs once more with the lock up front: every operation 200, both
    changes kept."""
    if app.extensions["scim_engine"].dialect.name != "sqlite":
        pytest.skip("PostgreSQL locks the users' rows when the batch reads them")
    from scim_server.storage.users import UserStore

    user = api.create_user("raced-bulk@example.com", title="First")
    real = UserStore.update_many
    calls: list[int] = []

    def update_after_another_writer(store, writes):
        calls.append(len(writes))
        if len(calls) == 1:  # another writer commits between the batch's read and its write
            another_writer_renames(app, user["id"], "Theirs")
        return real(store, writes)

    monkeypatch.setattr(UserStore, "update_many", update_after_another_writer)
    results = bulk(api, patch(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Mine"}))
    assert results[0]["status"] == "200", results
    assert calls == [1, 1]
    after = get_json(api, f"/Users/{user['id']}")
    assert (after["title"], after["displayName"], after["meta"]["version"]) == ("Mine", "Theirs", 'W/"3"')


def test_patches_of_one_request_cannot_make_a_manager_cycle_together(api):
    """Two PATCHes of one request, each naming the other's user as manager: each check alone
    passes against the chain as stored, so a new manager is written alone, after the ones
    before it (written together, both passed and the cycle was stored)."""
    a, b = api.create_user("cyc-a@acme.dk"), api.create_user("cyc-b@acme.dk")

    def to_manager(who: dict, manager: dict) -> dict:
        return op("PATCH", f"/Users/{who['id']}", {"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": MANAGER, "value": {"value": manager["id"]}}]})

    results = bulk(api, to_manager(a, b), to_manager(b, a))
    assert results[0]["status"] == "200", results
    failed(results[1], 400, "invalidValue")
    assert manager_of(api, a["id"]) == b["id"] and manager_of(api, b["id"]) is None


def test_an_operation_naming_a_create_written_in_a_batch_keeps_its_place(api):
    """The creates of users are written together at the end of their run; an operation naming
    one of them waited for the next pass, and a later DELETE of the same user overtook it (the
    group add and the PUT then failed with 400 and 404)."""
    unit = create_unit(api, "Skolen")
    results = bulk(api, post_user("u", "eva@acme.dk"),
                   patch(f"/Groups/{unit['id']}", add_members(ref("u"))),
                   put("/Users/bulkId:u", user_data("eva@acme.dk", title="Lærer")),
                   patch(f"/Groups/{unit['id']}", {"op": "remove", "path": "members"}),
                   delete("/Users/bulkId:u"))
    assert [r["status"] for r in results] == ["201", "200", "200", "200", "204"], results


def test_puts_written_together_keep_the_employment_rules(app, api):
    """User PUTs of one request are written together (``replace_many``): each still gets its
    employments as the PUT names them (rows named again kept, the others gone, new ones added),
    the leaver rule, its own error, its own ETag and its own audit event, as a single PUT would."""
    school, care = create_unit(api, "Skole", code="SK-1")["id"], create_unit(api, "Pleje", code="PL-1")["id"]
    plain = api.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Not a unit"}).get_json()["id"]

    def employed(user_name: str, *jobs: dict) -> dict:
        return user_data(user_name, **{P2L_USER: {"employments": list(jobs)}})

    ada = api.post("/Users", json=employed("ada@acme.dk", {"value": school, "title": "Lærer", "primary": True}))
    bo = api.post("/Users", json=employed("bo@acme.dk", {"value": school}))
    cy = api.post("/Users", json=employed("cy@acme.dk", {"value": care, "title": "Assistent"}))
    ada, bo, cy = ada.get_json(), bo.get_json(), cy.get_json()
    results = bulk(
        api,
        put(f"/Users/{ada['id']}", employed("ada@acme.dk", {"value": school, "title": "Overlærer", "primary": True},
                                            {"value": care, "startDate": "2020-01-01T00:00:00Z"})),
        put(f"/Users/{bo['id']}", employed("bo@acme.dk", {"value": school, "endDate": "2001-01-31T23:59:59Z"})),
        put(f"/Users/{cy['id']}", employed("cy@acme.dk", {"value": plain})),
        put(f"/Users/{cy['id']}", user_data("cy@acme.dk", title="Uden ansættelse"), version=cy["meta"]["version"]),
        headers={"X-Request-ID": "bulk-puts"})
    assert [r["status"] for r in results] == ["200", "200", "400", "200"], results
    failed(results[2], 400, "invalidValue")
    after = {u["id"]: get_json(api, f"/Users/{u['id']}") for u in (ada, bo, cy)}
    jobs = {j["value"]: j for j in after[ada["id"]][P2L_USER]["employments"]}
    assert jobs[school]["title"] == "Overlærer" and jobs[school]["primary"] is True
    assert jobs[care]["startDate"].startswith("2020-01-01") and set(jobs) == {school, care}
    assert after[bo["id"]]["active"] is False  # employed until 2001: the leaver rule
    assert results[1]["version"] == after[bo["id"]]["meta"]["version"]
    assert P2L_USER not in after[cy["id"]] or not after[cy["id"]][P2L_USER].get("employments")
    assert after[cy["id"]]["title"] == "Uden ansættelse" and member_ids(api, care) == {ada["id"]}
    assert results[3]["version"] == after[cy["id"]]["meta"]["version"]
    trail = scoped(app, "audit:read").get("http://localhost/admin/v1/audit?count=1000").get_json()["Resources"]
    events = [e for e in trail if e["requestId"] == "bulk-puts" and e["operation"] == "replace"]
    assert sorted(e["bulkOperation"]["index"] for e in events) == [0, 1, 3]
    title = next(e for e in events if e["bulkOperation"]["index"] == 0)["changes"]
    assert any("employments" in key for key in title), title


def test_a_put_and_a_patch_of_one_user_keep_their_order(api):
    user = api.create_user("order@acme.dk", title="Start")
    results = bulk(api, put(f"/Users/{user['id']}", user_data("order@acme.dk", title="Put")),
                   patch(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Patch"}),
                   put(f"/Users/{user['id']}", user_data("order@acme.dk", title="Last", displayName="Last")))
    assert [r["status"] for r in results] == ["200", "200", "200"], results
    after = get_json(api, f"/Users/{user['id']}")
    assert (after["title"], after["displayName"]) == ("Last", "Last")
    assert after["meta"]["version"] == results[2]["version"]
