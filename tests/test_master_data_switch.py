"""A tenant without plan2learn master data sees plain SCIM 2.0 (``tenant set --no-master-data``)."""
from click.testing import CliRunner

from conftest import CORE_USER, P2L_GROUP, P2L_USER, assert_scim_error, create_unit, get_json
from scim_server.cli import main


def switch(app, tenant: str, on: bool) -> None:
    result = CliRunner().invoke(main, ["tenant", "set", tenant, "--master-data" if on else "--no-master-data"],
                                env={"SCIM_DATABASE_URL": app.config["SCIM"].database_url})
    assert result.exit_code == 0, result.output


def test_plain_scim_tenant_has_no_plan2learn_extension(app, api):
    unit = create_unit(api, "Skolen")
    switch(app, "acme", on=False)
    urns = {s["id"] for s in get_json(api, "/Schemas")["Resources"]}
    assert P2L_USER not in urns and P2L_GROUP not in urns
    user_type = get_json(api, "/ResourceTypes/User")
    assert [e["schema"] for e in user_type["schemaExtensions"]] == [
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    # input under the extension is ignored, output never carries it, filters on it are unknown
    user = api.create_user("plain@x.dk", **{P2L_USER: {"employments": [{"value": unit["id"]}]}})
    assert P2L_USER not in user and P2L_USER not in user["schemas"]
    put = api.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "userName": "plain@x.dk",
                                               P2L_USER: {"ean": "not an ean"}})
    assert put.status_code == 200, put.get_json()
    patch = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "Plain"})
    assert patch.status_code == 200, patch.get_json()
    assert_scim_error(api.get(f'/Users?filter={P2L_USER}:orgUnits.value eq "{unit["id"]}"'), 400, "invalidFilter")
    group = get_json(api, f"/Groups/{unit['id']}")
    assert P2L_GROUP not in group


def test_switching_back_restores_the_extension(app, api):
    switch(app, "acme", on=False)
    switch(app, "acme", on=True)
    urns = {s["id"] for s in get_json(api, "/Schemas")["Resources"]}
    assert {P2L_USER, P2L_GROUP} <= urns
