"""`/api/v2.0/configurations` and the effects each setting has.

These tests change system-wide settings of the shared server; each puts the
setting back before it ends.
"""

import secrets

import httpx

from tests.api.configurations import configured
from tests.api.conftest import Registry

API = "/api/v2.0"


def test_configurations_list_known_keys(api):
    body = api.get(f"{API}/configurations").json()

    assert body["read_only"] == {"value": False, "editable": True}
    assert {
        "project_creation_restriction",
        "self_registration",
        "token_expiration",
    } <= set(body)


def test_unknown_or_mistyped_configuration_is_rejected(api):
    assert api.put(f"{API}/configurations", json={"colour": "red"}).status_code == 400
    assert (
        api.put(f"{API}/configurations", json={"read_only": "yes"}).status_code == 400
    )


def test_configurations_are_for_admins_only(dockyard):
    assert httpx.get(f"{dockyard.url}{API}/configurations").status_code == 401


def test_read_only_mode_refuses_pushes_and_api_changes_but_serves_pulls(api):
    registry = Registry(api, f"library/ro-{secrets.token_hex(3)}")
    digest = registry.push_blob(b"before read-only")

    with configured(api, read_only=True):
        pushed = api.post(f"/v2/{registry.repository}/blobs/uploads/")
        created = api.post(
            f"{API}/projects", json={"project_name": f"ro{secrets.token_hex(3)}"}
        )
        pulled = api.get(f"/v2/{registry.repository}/blobs/{digest}")

    assert pushed.status_code == 403
    assert pushed.json()["errors"][0]["code"] == "DENIED"
    assert created.status_code == 403
    assert pulled.status_code == 200


def test_self_registration_lets_anonymous_sign_up(api, dockyard):
    name = f"s{secrets.token_hex(4)}"
    body = {"username": name, "password": "Str0ng-pass"}

    refused = httpx.post(f"{dockyard.url}{API}/users", json=body)
    with configured(api, self_registration=True):
        accepted = httpx.post(f"{dockyard.url}{API}/users", json=body)

    assert refused.status_code == 401
    assert accepted.status_code == 201


def test_admin_only_project_creation_refuses_users(api, dockyard):
    name = f"c{secrets.token_hex(4)}"
    api.post(f"{API}/users", json={"username": name, "password": "Str0ng-pass"})

    with configured(api, project_creation_restriction="adminonly"):
        response = httpx.post(
            f"{dockyard.url}{API}/projects",
            json={"project_name": f"x{secrets.token_hex(3)}"},
            auth=(name, "Str0ng-pass"),
        )

    assert response.status_code == 403


def test_banner_message_shows_in_systeminfo(api, dockyard):
    with configured(api, banner_message="maintenance at noon"):
        info = httpx.get(f"{dockyard.url}{API}/systeminfo").json()

    assert info["banner_message"] == "maintenance at noon"


def test_token_expiration_sets_token_lifetime(api, dockyard):
    with configured(api, token_expiration=5):
        body = httpx.get(
            f"{dockyard.url}/service/token", auth=("admin", dockyard.admin_password)
        ).json()

    assert body["expires_in"] == 300
