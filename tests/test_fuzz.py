"""A bounded fuzz of every input a client controls: no request may answer 5xx.

Filters, PATCH bodies, resource bodies, query parameters and headers are generated from a
fixed seed (so a failure replays) by mutating valid requests: odd types, deep and wide
values, unknown attributes, broken syntax, huge and empty strings, control characters.
Each case gets a time budget, so the suite stays fast; every answer must be a SCIM answer
below 500. Run longer with SCIM_FUZZ_SECONDS=60.
"""
from __future__ import annotations

import json
import os
import random
import time
from urllib.parse import quote

import pytest

from conftest import CORE_GROUP, CORE_USER, ENTERPRISE, P2L_GROUP, P2L_USER, PATCH_OP

SECONDS = float(os.environ.get("SCIM_FUZZ_SECONDS", "4"))
ATTRIBUTES = ["userName", "displayName", "name.givenName", "name.familyName", "emails", "emails.value",
              'emails[type eq "work"].value', "active", "title", "externalId", "meta.created", "meta.lastModified",
              "groups", "members", "members.value", "phoneNumbers", "addresses.locality", "nickName", "x", "",
              f"{ENTERPRISE}:manager", f"{ENTERPRISE}:manager.value", f"{ENTERPRISE}:department",
              f"{P2L_USER}:employments", f"{P2L_USER}:employments.value", f"{P2L_USER}:ean",
              f"{P2L_USER}:effectiveEan", f"{P2L_USER}:orgUnits.value", f"{P2L_USER}:managerChain.value",
              f"{P2L_GROUP}:unitCode", f"{P2L_GROUP}:parent.value", "urn:x:y:z", "name..givenName", "emails[",
              "emails[type eq]", "a.b.c.d"]
OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "EQ", "xx", ""]
ODD_TEXT = ["", " ", "\x00", "\ud800", "é" * 300, "x" * 5000, "%", "_", "\\", '"', "'", "(", ")", "[", "]",
            "null", "true", "2026-13-45T99:99:99Z", "9999-12-31T23:59:59Z", "-1", "1e309", "NaN", "🙂"]


def _value(rnd: random.Random, depth: int = 0):
    """A random JSON value, sometimes deep or wide."""
    kind = rnd.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return rnd.choice(ODD_TEXT)
    if kind == 1:
        return rnd.choice([0, -1, 1.5, 10**30, True, False, None])
    if kind == 2:
        return rnd.choice(ATTRIBUTES)
    if kind == 3:
        return {"value": rnd.choice(ODD_TEXT + ["00000000-0000-0000-0000-000000000000"])}
    if kind == 4:
        deep = "x"
        for _ in range(rnd.choice([5, 31, 40, 200])):
            deep = {"a": deep} if rnd.random() < 0.5 else [deep]
        return deep
    if kind == 5:
        return rnd.choice(ODD_TEXT)[:50]
    if kind in (6, 7):
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {rnd.choice(ATTRIBUTES + ODD_TEXT[:5]): _value(rnd, depth + 1) for _ in range(rnd.randrange(4))}


def _filter(rnd: random.Random) -> str:
    parts = []
    for _ in range(rnd.randrange(1, 4)):
        attr, op = rnd.choice(ATTRIBUTES), rnd.choice(OPERATORS)
        value = rnd.choice([json.dumps(rnd.choice(ODD_TEXT)), "true", "42", "null", "unquoted", ""])
        term = f"{attr} {op}" if op.lower() == "pr" else f"{attr} {op} {value}"
        if rnd.random() < 0.2:
            term = f"not ({term})"
        if rnd.random() < 0.1:
            term = "(" * rnd.randrange(1, 30) + term
        parts.append(term)
    joined = f" {rnd.choice(['and', 'or', 'AND', 'xor'])} ".join(parts)
    if rnd.random() < 0.2:  # cut somewhere
        joined = joined[:rnd.randrange(len(joined) + 1)]
    return joined


def _assert_no_server_error(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:500])


def _budget(seed: int):
    rnd = random.Random(seed)
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        yield rnd


@pytest.fixture
def targets(api):
    user = api.create_user("fuzz.target@example.com", name={"givenName": "Fuz", "familyName": "Z"},
                           emails=[{"value": "fuzz@example.com", "type": "work"}])
    group = api.create_group("Fuzzers", members=[user["id"]])
    unit = api.post("/Groups", json={"schemas": [CORE_GROUP, P2L_GROUP], "displayName": "Fuzz unit",
                                     P2L_GROUP: {"unitCode": "FUZZ-1"}}).get_json()
    return user, group, unit


def test_filters_sorting_and_paging_never_answer_5xx(api, targets):
    for rnd in _budget(1):
        resource = rnd.choice(["Users", "Groups"])
        params = {"filter": _filter(rnd)}
        for name, values in (("sortBy", ATTRIBUTES), ("sortOrder", ["ascending", "descending", "up", ""]),
                             ("startIndex", ["0", "-5", "1", "x", "99999999999999999999"]),
                             ("count", ["0", "-1", "10", "x", "100000"]), ("cursor", ["", "abc", "e30", "%%"]),
                             ("attributes", ATTRIBUTES), ("excludedAttributes", ATTRIBUTES)):
            if rnd.random() < 0.3:
                params[name] = rnd.choice(values)
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        _assert_no_server_error(api.get(f"/{resource}?{query}"), query)
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                **{k: rnd.choice([v, _value(rnd)]) for k, v in params.items()}}
        _assert_no_server_error(api.post(f"/{resource}/.search", json=body), body)


def test_patch_bodies_never_answer_5xx(api, targets):
    user, group, unit = targets
    for rnd in _budget(2):
        target = rnd.choice([f"/Users/{user['id']}", f"/Groups/{group['id']}", f"/Groups/{unit['id']}"])
        operations = [{"op": rnd.choice(["add", "replace", "remove", "Replace", "ADD", "copy", "", None]),
                       "path": rnd.choice(ATTRIBUTES + [None]), "value": _value(rnd)}
                      for _ in range(rnd.randrange(1, 4))]
        for operation in operations:
            if rnd.random() < 0.2:
                operation.pop(rnd.choice(list(operation)))
        body = rnd.choice([{"schemas": [PATCH_OP], "Operations": operations}, {"Operations": operations},
                           {"schemas": [PATCH_OP], "Operations": _value(rnd)}, _value(rnd)])
        _assert_no_server_error(api.patch(target, json=body), (target, body))


def test_resource_bodies_never_answer_5xx(api, targets):
    user, group, _ = targets
    for rnd in _budget(3):
        core = rnd.choice([CORE_USER, CORE_GROUP])
        body = {"schemas": rnd.choice([[core], [core, ENTERPRISE, P2L_USER], [], "x", [None]])}
        for _ in range(rnd.randrange(1, 6)):
            body[rnd.choice(ATTRIBUTES + ["userName", "displayName", "members", ENTERPRISE, P2L_USER, P2L_GROUP])] = \
                _value(rnd)
        if rnd.random() < 0.5:
            body["userName" if core == CORE_USER else "displayName"] = f"fuzz-{rnd.randrange(10**9)}"
        endpoint = "/Users" if core == CORE_USER else "/Groups"
        method = rnd.choice(["POST", "PUT"])
        path = endpoint if method == "POST" else f"{endpoint}/{user['id'] if core == CORE_USER else group['id']}"
        _assert_no_server_error(api.request(method, path, json=body), (method, path, body))


def test_raw_bodies_and_headers_never_answer_5xx(api, targets):
    user, _, _ = targets
    raw_bodies = [b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"a":' * 100, b"{}" * 1000, b'"\\ud800"',
                  json.dumps({"schemas": [CORE_USER], "userName": "x" * 100000}).encode()]
    for rnd in _budget(4):
        headers = {}
        for name in ("Content-Type", "If-Match", "If-None-Match", "Accept", "X-Request-ID", "Authorization"):
            if rnd.random() < 0.4:
                headers[name] = rnd.choice(["application/scim+json", "text/plain", "*", 'W/"1"', '"', "W/",
                                            "x" * 2000, "Bearer", "Bearer " + "a" * 300, "application/json; x=",
                                            "é", ""])
        method = rnd.choice(["GET", "POST", "PUT", "PATCH", "DELETE"])
        path = rnd.choice(["/Users", f"/Users/{user['id']}", "/Groups", "/Bulk", "/.search", "/Users/.search",
                           "/Users/%00", "/Users/" + "a" * 300, "/ServiceProviderConfig", "/Schemas/x"])
        data = rnd.choice(raw_bodies) if method != "GET" else None
        auth = headers.pop("Authorization", None)
        response = api.request(method, path, data=data, headers=headers,
                               content_type=headers.pop("Content-Type", "application/scim+json"))
        _assert_no_server_error(response, (method, path, headers, data and data[:80]))
        if auth is not None:  # a broken credential is 401, never 5xx
            response = api.http.open(f"/scim/v2{path}", method=method, headers={"Authorization": auth})
            _assert_no_server_error(response, (method, path, auth[:40]))
