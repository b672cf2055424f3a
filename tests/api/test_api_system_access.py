"""System resources (global labels, quotas, the whole audit trail, project
creation, the `/v2/_catalog`) as Harbor guards them: a system admin, or a
system robot holding the system permission, and nobody else. These are the
answers Harbor's own `tests/apitests/python/test_system_permission.py`
expects."""

import secrets

import httpx
import pytest

from tests.api.configurations import configured
from tests.api.robots import create_robot, project_robot, robot_creds, system_robot

API = "/api/v2.0"
PASSWORD = "Str0ng-pass"


def robot_with(api, dockyard, *access):
    """A client for a new system robot holding `access` ((resource, action)...)."""
    permission = {
        "kind": "system",
        "namespace": "/",
        "access": [{"resource": r, "action": a} for r, a in access],
    }
    robot = create_robot(api, {**system_robot([permission]), "duration": -1})
    return httpx.Client(base_url=dockyard.url, auth=robot_creds(robot), timeout=60)


@pytest.fixture
def unrelated_robot(api, dockyard):
    """A system robot whose only permission is on robots."""
    with robot_with(api, dockyard, ("robot", "list")) as client:
        yield client


@pytest.fixture
def user(api, dockyard):
    name = f"u{secrets.token_hex(4)}"
    response = api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    with httpx.Client(base_url=dockyard.url, auth=(name, PASSWORD)) as client:
        yield client


def global_label(client):
    return client.post(
        f"{API}/labels", json={"name": f"l{secrets.token_hex(4)}", "scope": "g"}
    )


def new_project(client, name=None):
    name = name or f"p{secrets.token_hex(4)}"
    return client.post(f"{API}/projects", json={"project_name": name})


def test_global_label_create_by_robot_with_label_create_returns_201(api, dockyard):
    with robot_with(api, dockyard, ("label", "create")) as robot:
        response = global_label(robot)

    assert response.status_code == 201, response.text


def test_global_label_create_by_robot_without_permission_returns_403(
    unrelated_robot,
):
    assert global_label(unrelated_robot).status_code == 403


def test_global_label_update_by_robot_with_label_update_succeeds(api, dockyard):
    location = global_label(api).headers["location"]
    label_id = location.rsplit("/", 1)[1]

    with robot_with(api, dockyard, ("label", "read"), ("label", "update")) as robot:
        response = robot.put(f"{API}/labels/{label_id}", json={"name": "renamed-x"})
        renamed = robot.get(f"{API}/labels/{label_id}").json()["name"]

    assert response.status_code == 200, response.text
    assert renamed == "renamed-x"
    api.delete(f"{API}/labels/{label_id}")


def test_global_label_read_by_id_for_plain_user_returns_403(api, user):
    label_id = global_label(api).headers["location"].rsplit("/", 1)[1]

    response = user.get(f"{API}/labels/{label_id}")

    assert response.status_code == 403
    api.delete(f"{API}/labels/{label_id}")


def test_global_labels_list_for_plain_user_still_returns_200(user):
    assert user.get(f"{API}/labels", params={"scope": "g"}).status_code == 200


def test_quotas_list_by_robot_with_quota_list_returns_200(api, dockyard):
    with robot_with(api, dockyard, ("quota", "list")) as robot:
        response = robot.get(f"{API}/quotas")

    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)


def test_quota_read_of_missing_id_by_robot_with_quota_read_returns_404(api, dockyard):
    with robot_with(api, dockyard, ("quota", "read")) as robot:
        response = robot.get(f"{API}/quotas/88888888")

    assert response.status_code == 404


def test_quotas_list_by_robot_without_permission_returns_403(unrelated_robot):
    assert unrelated_robot.get(f"{API}/quotas").status_code == 403


def test_quota_update_by_robot_with_quota_update_changes_the_limit(api, dockyard):
    project_id = new_project(api).headers["location"].rsplit("/", 1)[1]
    [quota] = api.get(f"{API}/quotas", params={"reference_id": project_id}).json()

    with robot_with(api, dockyard, ("quota", "update")) as robot:
        response = robot.put(
            f"{API}/quotas/{quota['id']}", json={"hard": {"storage": 1024}}
        )

    assert response.status_code == 200, response.text
    assert api.get(f"{API}/quotas/{quota['id']}").json()["hard"]["storage"] == 1024


def test_audit_logs_for_robot_with_audit_log_list_include_user_changes(
    api, dockyard, user
):
    with robot_with(api, dockyard, ("audit-log", "list")) as robot:
        response = robot.get(
            f"{API}/audit-logs", params={"q": "resource_type=user", "page_size": 1}
        )

    assert response.status_code == 200, response.text
    assert len(response.json()) == 1


def test_audit_logs_for_robot_without_permission_leave_out_user_changes(
    unrelated_robot, user
):
    response = unrelated_robot.get(
        f"{API}/audit-logs", params={"q": "resource_type=user"}
    )

    assert response.status_code == 200
    assert response.json() == []


def test_audit_log_event_types_for_plain_user_return_403(user):
    assert user.get(f"{API}/auditlog-exts/events").status_code == 403


def test_audit_log_event_types_for_robot_with_audit_log_list_return_200(api, dockyard):
    with robot_with(api, dockyard, ("audit-log", "list")) as robot:
        response = robot.get(f"{API}/auditlog-exts/events")

    assert response.status_code == 200, response.text


def test_project_create_by_project_robot_returns_403(api, dockyard):
    name = f"p{secrets.token_hex(4)}"
    assert new_project(api, name).status_code == 201
    body = project_robot(name, [{"resource": "repository", "action": "pull"}])
    robot = create_robot(api, body)

    response = new_project(httpx.Client(base_url=dockyard.url, auth=robot_creds(robot)))

    assert response.status_code == 403


def test_project_create_adminonly_by_robot_with_project_create_returns_201(
    api, dockyard
):
    with (
        robot_with(api, dockyard, ("project", "create")) as robot,
        configured(api, project_creation_restriction="adminonly"),
    ):
        response = new_project(robot)

    assert response.status_code == 201, response.text


def test_project_created_by_robot_is_owned_by_the_first_system_admin(api, dockyard):
    name = f"p{secrets.token_hex(4)}"
    with robot_with(api, dockyard, ("project", "create")) as robot:
        assert new_project(robot, name).status_code == 201

    project = api.get(f"{API}/projects/{name}").json()
    members = api.get(f"{API}/projects/{name}/members").json()

    assert (project["owner_id"], project["owner_name"]) == (1, "admin")
    assert [(m["entity_name"], m["role_id"]) for m in members] == [("admin", 1)]


def test_project_create_adminonly_by_robot_without_permission_returns_403(
    api, unrelated_robot
):
    with configured(api, project_creation_restriction="adminonly"):
        response = new_project(unrelated_robot)

    assert response.status_code == 403


def test_catalog_by_robot_with_catalog_read_returns_200(api, dockyard):
    with robot_with(api, dockyard, ("catalog", "read")) as robot:
        response = robot.get("/v2/_catalog")

    assert response.status_code == 200
    assert "repositories" in response.json()


def test_catalog_by_robot_without_catalog_read_returns_401(unrelated_robot):
    response = unrelated_robot.get("/v2/_catalog")

    assert response.status_code == 401
