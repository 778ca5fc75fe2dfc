"""ETags and conditional requests (RFC 7644 §3.14, RFC 7232)."""
from __future__ import annotations

import pytest

from conftest import CORE_GROUP, CORE_USER, assert_scim_error


def _etag(resp) -> str:
    tag = resp.headers.get("ETag")
    assert tag, resp.headers
    return tag


def test_etag_header_equals_meta_version_on_every_response(api):
    post = api.post("/Users", json={"schemas": [CORE_USER], "userName": "etag@example.com"})
    assert post.status_code == 201
    uid = post.get_json()["id"]
    assert _etag(post) == post.get_json()["meta"]["version"]
    assert _etag(post).startswith('W/"')

    get = api.get(f"/Users/{uid}")
    assert _etag(get) == get.get_json()["meta"]["version"] == _etag(post)

    put = api.put(f"/Users/{uid}", json={"schemas": [CORE_USER], "userName": "etag@example.com", "title": "t"})
    assert put.status_code == 200
    assert _etag(put) == put.get_json()["meta"]["version"]

    patch = api.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "title", "value": "u"})
    assert patch.status_code == 200
    assert _etag(patch) == patch.get_json()["meta"]["version"]
    assert _etag(api.get(f"/Users/{uid}")) == _etag(patch)


def test_group_etags(api):
    group = api.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "E"})
    gid = group.get_json()["id"]
    assert _etag(group) == group.get_json()["meta"]["version"]
    patch = api.patch_ops(f"/Groups/{gid}", {"op": "replace", "path": "displayName", "value": "F"})
    assert patch.status_code == 204
    get = api.get(f"/Groups/{gid}")
    assert _etag(patch) == _etag(get) == get.get_json()["meta"]["version"]
    assert _etag(get) != _etag(group)


def test_version_changes_on_every_write(api):
    user = api.create_user("v@example.com")
    uid = user["id"]
    seen = [user["meta"]["version"]]
    for i in range(3):
        resp = api.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "title", "value": f"t{i}"})
        seen.append(resp.get_json()["meta"]["version"])
    resp = api.put(f"/Users/{uid}", json={"schemas": [CORE_USER], "userName": "v@example.com"})
    seen.append(resp.get_json()["meta"]["version"])
    assert len(set(seen)) == len(seen), seen
    assert api.get(f"/Users/{uid}").get_json()["meta"]["version"] == seen[-1]


def test_last_modified_moves_forward(api):
    user = api.create_user("lm@example.com")
    body = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "x"}).get_json()
    assert body["meta"]["lastModified"] >= user["meta"]["lastModified"]
    assert body["meta"]["created"] == user["meta"]["created"]


def test_membership_change_changes_group_version(api):
    user = api.create_user("m@example.com")
    group = api.create_group("G")
    api.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    assert api.get(f"/Groups/{group['id']}").get_json()["meta"]["version"] != group["meta"]["version"]


def test_if_none_match_current_is_304(api):
    user = api.create_user("inm@example.com")
    tag = user["meta"]["version"]
    resp = api.get(f"/Users/{user['id']}", headers={"If-None-Match": tag})
    assert resp.status_code == 304
    assert resp.get_data() == b""
    assert resp.headers.get("ETag") == tag


def test_if_none_match_stale_is_200(api):
    user = api.create_user("inm2@example.com")
    old = user["meta"]["version"]
    api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "x"})
    resp = api.get(f"/Users/{user['id']}", headers={"If-None-Match": old})
    assert resp.status_code == 200
    assert resp.get_json()["title"] == "x"


def _stale_and_current(api):
    user = api.create_user("im@example.com", title="original")
    stale = user["meta"]["version"]
    resp = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "D"})
    return user["id"], stale, _etag(resp)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_stale_is_412_and_nothing_changes(api, method):
    uid, stale, current = _stale_and_current(api)
    before = api.get(f"/Users/{uid}").get_json()
    headers = {"If-Match": stale}
    if method == "PUT":
        resp = api.put(f"/Users/{uid}", json={"schemas": [CORE_USER], "userName": "im@example.com", "title": "new"},
                       headers=headers)
    elif method == "PATCH":
        resp = api.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "title", "value": "new"}, headers=headers)
    else:
        resp = api.delete(f"/Users/{uid}", headers=headers)
    assert_scim_error(resp, 412)
    after = api.get(f"/Users/{uid}")
    assert after.status_code == 200
    assert after.get_json() == before
    assert _etag(after) == current


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_current_succeeds(api, method):
    uid, stale, current = _stale_and_current(api)
    headers = {"If-Match": current}
    if method == "PUT":
        resp = api.put(f"/Users/{uid}", json={"schemas": [CORE_USER], "userName": "im@example.com", "title": "new"},
                       headers=headers)
        assert resp.status_code == 200 and resp.get_json()["title"] == "new"
    elif method == "PATCH":
        resp = api.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "title", "value": "new"}, headers=headers)
        assert resp.status_code == 200 and resp.get_json()["title"] == "new"
    else:
        resp = api.delete(f"/Users/{uid}", headers=headers)
        assert resp.status_code == 204
        assert_scim_error(api.get(f"/Users/{uid}"), 404)


def test_if_match_star_and_lists(api):
    uid, stale, current = _stale_and_current(api)
    resp = api.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "title", "value": "a"}, headers={"If-Match": "*"})
    assert resp.status_code == 200
    current = _etag(resp)
    resp = api.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "title", "value": "b"},
                         headers={"If-Match": f"{stale}, {current}"})
    assert resp.status_code == 200


def test_if_match_on_group_patch(api):
    group = api.create_group("G")
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "H"})
    assert resp.status_code == 204
    resp = api.patch_ops(f"/Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "I"},
                         headers={"If-Match": group["meta"]["version"]})
    assert_scim_error(resp, 412)
    assert api.get(f"/Groups/{group['id']}").get_json()["displayName"] == "H"
