"""What a hostile caller tries against the permission layer and the API: each
test is one attack that once worked (or crashed the server), and the answer
Harbor gives instead.

Tests that change system-wide settings of the shared server put them back
before they end.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.api.configurations import configured
from tests.api.conftest import Registry, error_code

API = "/api/v2.0"
PASSWORD = "Hostile-pass1"
BEYOND_INT64 = 2**63


def new_user(api):
    name = f"h-{secrets.token_hex(4)}"
    response = api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return name


def new_project(api):
    name = f"h-{secrets.token_hex(4)}"
    response = api.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": "false"}},
    )
    assert response.status_code == 201, response.text
    return name


def new_robot(api, name, permissions):
    response = api.post(
        f"{API}/robots",
        json={
            "name": name,
            "level": "system",
            "duration": -1,
            "permissions": permissions,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def project_access(namespace, *pairs):
    return {
        "kind": "project",
        "namespace": namespace,
        "access": [{"resource": r, "action": a} for r, a in pairs],
    }


def system_access(*pairs):
    return {
        "kind": "system",
        "namespace": "/",
        "access": [{"resource": r, "action": a} for r, a in pairs],
    }


@pytest.fixture
def robot_admin(api):
    """A system robot that may update robots and pull from one project, and a
    stronger robot that may push everywhere."""
    project = new_project(api)
    tag = secrets.token_hex(3)
    weak = new_robot(
        api,
        f"weak-{tag}",
        [
            system_access(("robot", "update"), ("robot", "read")),
            project_access(project, ("repository", "pull")),
        ],
    )
    strong = new_robot(
        api,
        f"strong-{tag}",
        [project_access("*", ("repository", "pull"), ("repository", "push"))],
    )
    return (weak["name"], weak["secret"]), strong


# Read-only mode


def test_read_only_mode_refuses_deleting_a_repository_named_configurations(api):
    project = new_project(api)
    repository = f"{project}/configurations"
    registry = Registry(api, repository)
    assert registry.put_manifest("v1", registry.image_manifest()).status_code == 201

    with configured(api, read_only=True):
        deleted = api.delete(f"{API}/projects/{project}/repositories/configurations")

    assert deleted.status_code == 403
    assert api.get(f"/v2/{repository}/manifests/v1").status_code == 200


def test_read_only_mode_can_still_be_turned_off(api):
    assert api.put(f"{API}/configurations", json={"read_only": True}).is_success

    response = api.put(f"{API}/configurations", json={"read_only": False})

    assert response.status_code == 200
    assert api.get(f"{API}/configurations").json()["read_only"]["value"] is False


# Robots


def test_robot_refreshing_the_secret_of_a_stronger_robot_is_refused(
    dockyard, robot_admin
):
    weak, strong = robot_admin

    response = httpx.patch(
        f"{dockyard.url}{API}/robots/{strong['id']}", json={}, auth=weak
    )

    assert response.status_code == 403
    assert "secret" not in response.text


def test_robot_enabling_a_stronger_robot_is_refused(dockyard, api, robot_admin):
    weak, strong = robot_admin
    assert api.put(f"{API}/robots/{strong['id']}", json={"disable": True}).is_success

    response = httpx.put(
        f"{dockyard.url}{API}/robots/{strong['id']}",
        json={"disable": False},
        auth=weak,
    )

    assert response.status_code == 403
    assert api.get(f"{API}/robots/{strong['id']}").json()["disable"] is True


# Users


@pytest.mark.parametrize("character", [",", "~", "#", "$", "%", '"'])
def test_username_with_a_character_harbor_forbids_is_rejected(api, character):
    name = f"h{character}{secrets.token_hex(3)}"

    response = api.post(f"{API}/users", json={"username": name, "password": PASSWORD})

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


# Who may read what (Harbor's handlers)


def test_permission_catalogue_needs_authentication(dockyard):
    response = httpx.get(f"{dockyard.url}{API}/permissions")

    assert response.status_code == 401


def test_permission_catalogue_is_refused_to_a_user_who_administers_nothing(
    dockyard, api
):
    user = new_user(api)

    response = httpx.get(f"{dockyard.url}{API}/permissions", auth=(user, PASSWORD))

    assert response.status_code == 403


def test_permission_catalogue_shows_a_project_admin_only_project_permissions(
    dockyard, api
):
    user = new_user(api)
    project = new_project(api)
    added = api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 1, "member_user": {"username": user}},
    )
    assert added.status_code == 201

    response = httpx.get(f"{dockyard.url}{API}/permissions", auth=(user, PASSWORD))

    assert response.status_code == 200
    assert response.json()["system"] == [] and response.json()["project"]


def test_current_user_permissions_need_authentication(dockyard):
    response = httpx.get(f"{dockyard.url}{API}/users/current/permissions")

    assert response.status_code == 401


def test_user_group_listing_is_refused_to_a_non_admin(dockyard, api):
    user = new_user(api)

    response = httpx.get(f"{dockyard.url}{API}/usergroups", auth=(user, PASSWORD))

    assert response.status_code == 403


def test_user_group_is_not_shown_to_a_non_admin(dockyard, api):
    user = new_user(api)
    created = api.post(f"{API}/usergroups", json={"group_name": user + "-g"})
    group = created.headers["location"].rsplit("/", 1)[1]

    response = httpx.get(
        f"{dockyard.url}{API}/usergroups/{group}", auth=(user, PASSWORD)
    )

    assert response.status_code == 403


# Numbers a database column cannot hold


def test_page_beyond_the_integer_range_is_a_bad_request(api):
    response = api.get(f"{API}/projects", params={"page": BEYOND_INT64})

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


def test_query_integer_beyond_the_integer_range_is_a_bad_request(api):
    response = api.get(f"{API}/repositories", params={"q": f"id={BEYOND_INT64}"})

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


@pytest.mark.parametrize(
    "path", ["robots", "labels", "quotas", "users", "usergroups", "roles"]
)
def test_path_id_beyond_the_integer_range_is_a_bad_request(api, path):
    response = api.get(f"{API}/{path}/{BEYOND_INT64}")

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


def test_project_id_beyond_the_integer_range_is_taken_as_a_name(api):
    response = api.get(f"{API}/projects/{BEYOND_INT64}")

    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"


def test_member_role_beyond_the_integer_range_is_a_bad_request(api):
    user = new_user(api)

    response = api.post(
        f"{API}/projects/library/members",
        json={"role_id": BEYOND_INT64, "member_user": {"username": user}},
    )

    assert response.status_code == 400


@pytest.mark.parametrize(
    "group",
    [{"id": "abc"}, {"id": BEYOND_INT64}, {"group_name": "g", "group_type": "x"}],
)
def test_member_group_of_the_wrong_type_is_a_bad_request(api, group):
    response = api.post(
        f"{API}/projects/library/members", json={"role_id": 3, "member_group": group}
    )

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


def test_storage_per_project_beyond_the_integer_range_is_rejected(api):
    try:
        response = api.put(
            f"{API}/configurations", json={"storage_per_project": BEYOND_INT64}
        )
        created = api.post(f"{API}/projects", json={"project_name": new_user(api)})
    finally:
        api.put(f"{API}/configurations", json={"storage_per_project": -1})

    assert response.status_code == 400
    assert created.status_code == 201


# Harbor's API is Go: a boolean field takes JSON true or false, nothing else.
LAX_BOOLEANS = ["yes", "true", "1", 1, "on"]


@pytest.mark.parametrize("value", LAX_BOOLEANS)
def test_sysadmin_flag_that_is_not_a_boolean_is_a_bad_request(api, value):
    name = new_user(api)
    user_id = api.get(f"{API}/users/search?username={name}").json()[0]["user_id"]

    response = api.put(f"{API}/users/{user_id}/sysadmin", json={"sysadmin_flag": value})

    assert response.status_code == 400
    assert api.get(f"{API}/users/{user_id}").json()["sysadmin_flag"] is False


@pytest.mark.parametrize("value", LAX_BOOLEANS)
def test_project_public_that_is_not_a_boolean_is_a_bad_request(api, value):
    response = api.post(
        f"{API}/projects", json={"project_name": new_user(api), "public": value}
    )

    assert response.status_code == 400


@pytest.mark.parametrize("value", LAX_BOOLEANS)
def test_robot_disable_that_is_not_a_boolean_is_a_bad_request(api, value):
    response = api.post(
        f"{API}/robots",
        json={
            "name": f"h-{secrets.token_hex(4)}",
            "level": "system",
            "duration": -1,
            "disable": value,
            "permissions": [system_access(("project", "list"))],
        },
    )

    assert response.status_code == 400


@pytest.mark.parametrize("value", LAX_BOOLEANS)
def test_registry_insecure_that_is_not_a_boolean_is_a_bad_request(api, value):
    response = api.post(
        f"{API}/registries",
        json={
            "name": f"h-{secrets.token_hex(4)}",
            "type": "docker-registry",
            "url": "http://127.0.0.1:9",
            "insecure": value,
        },
    )

    assert response.status_code == 400


def test_project_metadata_public_string_is_still_accepted(api):
    response = api.post(
        f"{API}/projects",
        json={"project_name": new_user(api), "metadata": {"public": "true"}},
    )

    assert response.status_code == 201


CONTROL_CHARACTERS = ["\x00", "\x01", "\n", "\t", "\x7f", "\u200b"]


def named(character):
    return f"n{secrets.token_hex(3)}{character}x"


@pytest.mark.parametrize("character", CONTROL_CHARACTERS)
def test_label_name_with_a_control_character_is_rejected(api, character):
    response = api.post(f"{API}/labels", json={"name": named(character), "scope": "g"})

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


@pytest.mark.parametrize("character", CONTROL_CHARACTERS)
def test_user_group_name_with_a_control_character_is_rejected(api, character):
    response = api.post(
        f"{API}/usergroups", json={"group_name": named(character), "group_type": 2}
    )

    assert response.status_code == 400


def test_user_group_rename_to_a_control_character_is_rejected(api):
    created = api.post(
        f"{API}/usergroups", json={"group_name": named(""), "group_type": 2}
    )
    group_id = created.headers["location"].rsplit("/", 1)[1]

    response = api.put(
        f"{API}/usergroups/{group_id}", json={"group_name": named("\x00")}
    )

    assert response.status_code == 400


def test_member_group_named_with_a_control_character_is_rejected(api):
    project = new_project(api)

    response = api.post(
        f"{API}/projects/{project}/members",
        json={
            "role_id": 3,
            "member_group": {"group_name": named("\x00"), "group_type": 2},
        },
    )

    assert response.status_code == 400


def test_ldap_group_dn_with_a_control_character_is_rejected(api):
    response = api.post(
        f"{API}/usergroups",
        json={
            "group_name": named(""),
            "group_type": 1,
            "ldap_group_dn": "cn=a\x00,dc=example",
        },
    )

    assert response.status_code == 400


@pytest.mark.parametrize("character", CONTROL_CHARACTERS)
def test_role_name_with_a_control_character_is_rejected(api, character):
    response = api.post(
        f"{API}/roles", json={"name": named(character), "permissions": []}
    )

    assert response.status_code == 400


def test_registry_name_with_a_control_character_is_rejected(api):
    response = api.post(
        f"{API}/registries",
        json={
            "name": named("\x00"),
            "type": "docker-registry",
            "url": "http://127.0.0.1:9",
        },
    )

    assert response.status_code == 400


def test_label_name_with_a_space_is_accepted(api):
    response = api.post(f"{API}/labels", json={"name": named(" "), "scope": "g"})

    assert response.status_code == 201


@pytest.mark.parametrize("field", ["realname", "email"])
def test_user_created_with_a_control_character_in_a_name_is_rejected(api, field):
    response = api.post(
        f"{API}/users",
        json={
            "username": f"h-{secrets.token_hex(4)}",
            "password": PASSWORD,
            field: "a\x00@example.com",
        },
    )

    assert response.status_code == 400


def test_user_profile_with_a_control_character_in_realname_is_rejected(api):
    name = new_user(api)
    user_id = api.get(f"{API}/users/search?username={name}").json()[0]["user_id"]

    response = api.put(f"{API}/users/{user_id}", json={"realname": "Eve\x00"})

    assert response.status_code == 400


def test_member_group_with_an_unknown_id_is_not_found(api):
    project = new_project(api)

    response = api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 3, "member_group": {"id": 2**31 - 1}},
    )

    assert response.status_code == 404
