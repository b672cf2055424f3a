"""`/api/v2.0/robots`: robot accounts, their secrets and what they may do."""

import contextlib
import secrets
import time

import httpx
import jwt
import pytest
from sqlalchemy import update

from dockyard.db.schema import robots
from tests.api.conftest import Registry, error_code
from tests.api.robots import create_robot, project_robot, robot_creds, system_robot

API = "/api/v2.0"
PULL = {"resource": "repository", "action": "pull"}
PUSH = {"resource": "repository", "action": "push"}
ROBOT_CREATE = {"resource": "robot", "action": "create"}
DAY = 86_400


def token(dockyard, auth, scope):
    response = httpx.get(
        f"{dockyard.url}/service/token",
        params={"service": "dockyard", "scope": scope},
        auth=auth,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def bearer_registry(dockyard, auth, repository):
    """A `Registry` whose client carries a token for pull and push on `repository`."""
    granted = token(dockyard, auth, f"repository:{repository}:pull,push")
    client = httpx.Client(
        base_url=dockyard.url,
        headers={"authorization": f"Bearer {granted}"},
        timeout=60,
    )
    return Registry(client, repository)


@contextlib.contextmanager
def read_only(api):
    assert api.put(f"{API}/configurations", json={"read_only": True}).status_code == 200
    try:
        yield
    finally:
        api.put(f"{API}/configurations", json={"read_only": False})


@pytest.fixture
def project(dockyard):
    return dockyard.new_project("robots", private=True)


# Creation and names


def test_system_robot_name_gets_prefix(api):
    body = system_robot([{"kind": "project", "namespace": "*", "access": [PULL]}])

    created = create_robot(api, body)

    assert created["name"] == f"robot${body['name']}"
    assert len(created["secret"]) >= 8


def test_project_robot_name_joins_project_and_name(api, project):
    body = project_robot(project, [PULL])

    created = create_robot(api, body)

    assert created["name"] == f"robot${project}+{body['name']}"


def test_create_robot_answers_location_of_robot(api, project):
    response = api.post(f"{API}/robots", json=project_robot(project, [PULL]))

    robot_id = response.json()["id"]
    assert response.headers["location"] == f"{API}/robots/{robot_id}"


def test_get_robot_never_shows_secret(api, project):
    created = create_robot(api, project_robot(project, [PULL, PUSH]))

    body = api.get(f"{API}/robots/{created['id']}").json()

    assert "secret" not in body
    assert body["permissions"] == [
        {
            "kind": "project",
            "namespace": project,
            "access": [
                {"resource": "repository", "action": "pull", "effect": "allow"},
                {"resource": "repository", "action": "push", "effect": "allow"},
            ],
        }
    ]


def test_robot_project_resource_is_listed_as_harbor_names_it(api, project):
    read = {"resource": "project", "action": "read"}
    created = create_robot(api, project_robot(project, [read, PULL]))

    body = api.get(f"{API}/robots/{created['id']}").json()

    [permission] = body["permissions"]
    assert {"resource": "project", "action": "read", "effect": "allow"} in (
        permission["access"]
    )


def test_robot_with_project_read_reads_its_project(dockyard, api, project):
    read = {"resource": "project", "action": "read"}
    created = create_robot(api, project_robot(project, [read]))

    response = httpx.get(
        f"{dockyard.url}{API}/projects/{project}", auth=robot_creds(created)
    )

    assert response.status_code == 200, response.text


def test_robot_without_project_read_cannot_read_its_project(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    response = httpx.get(
        f"{dockyard.url}{API}/projects/{project}", auth=robot_creds(created)
    )

    assert response.status_code == 403


def test_permission_catalogue_names_the_project_itself_project(api):
    body = api.get(f"{API}/permissions").json()

    assert {"resource": "project", "action": "update"} in body["project"]
    assert {"resource": "metadata", "action": "list"} in body["project"]


def test_create_robot_with_duplicate_name_returns_409(api, project):
    body = project_robot(project, [PULL])
    create_robot(api, body)

    response = api.post(f"{API}/robots", json=body)

    assert response.status_code == 409
    assert error_code(response) == "CONFLICT"


def test_create_robot_with_upper_case_name_returns_400(api, project):
    body = project_robot(project, [PULL], name="Bad+Name")

    response = api.post(f"{API}/robots", json=body)

    assert response.status_code == 400


def test_create_robot_with_unknown_permission_returns_400(api, project):
    body = project_robot(project, [{"resource": "repository", "action": "fly"}])

    response = api.post(f"{API}/robots", json=body)

    assert response.status_code == 400
    assert "repository:fly" in response.json()["errors"][0]["message"]


def test_project_permission_in_system_kind_returns_400(api):
    body = system_robot([{"kind": "system", "namespace": "/", "access": [PULL]}])

    response = api.post(f"{API}/robots", json=body)

    assert response.status_code == 400


def test_create_robot_in_unknown_project_returns_404(api):
    body = project_robot(f"nowhere-{secrets.token_hex(4)}", [PULL])

    response = api.post(f"{API}/robots", json=body)

    assert response.status_code == 404


def test_create_robot_anonymously_returns_401(dockyard, project):
    response = httpx.post(
        f"{dockyard.url}{API}/robots", json=project_robot(project, [PULL])
    )

    assert response.status_code == 401


# Durations


def test_robot_expires_duration_days_after_creation(api, project):
    before = int(time.time())

    created = create_robot(api, project_robot(project, [PULL], duration=3))

    assert before + 3 * DAY <= created["expires_at"] <= int(time.time()) + 3 * DAY


def test_robot_with_duration_minus_one_never_expires(api, project):
    created = create_robot(api, project_robot(project, [PULL], duration=-1))

    body = api.get(f"{API}/robots/{created['id']}").json()

    assert created["expires_at"] == -1
    assert body["duration"] == -1


def test_robot_without_duration_uses_configured_default(api, project):
    body = project_robot(project, [PULL])
    del body["duration"]

    created = create_robot(api, body)

    robot = api.get(f"{API}/robots/{created['id']}").json()
    assert robot["duration"] == 30
    assert created["expires_at"] > time.time() + 29 * DAY


def test_create_robot_with_negative_duration_returns_400(api, project):
    response = api.post(
        f"{API}/robots", json=project_robot(project, [PULL], duration=-5)
    )

    assert response.status_code == 400


def test_expired_robot_cannot_log_in(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL], duration=1))
    # No API makes a robot expire sooner than a day: move its deadline back
    # in the server's own database.
    dockyard.execute(
        update(robots)
        .where(robots.c.id == created["id"])
        .values(expires_at=int(time.time()) - 60)
    )

    response = httpx.get(f"{dockyard.url}/v2/", auth=robot_creds(created))

    assert response.status_code == 401


# Logging in and using the registry


def test_robot_pushes_and_pulls_with_token(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL, PUSH]))
    registry = bearer_registry(dockyard, robot_creds(created), f"{project}/app")

    pushed = registry.put_manifest("1.0", registry.image_manifest())
    pulled = registry.client.get(registry.url("manifests/1.0"))

    assert pushed.status_code == 201, pushed.text
    assert pulled.status_code == 200


def test_pull_only_robot_push_gets_insufficient_scope(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    registry = bearer_registry(dockyard, robot_creds(created), f"{project}/app")

    response = registry.client.post(registry.url("blobs/uploads/"))

    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_pull_only_robot_basic_push_is_denied(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    response = httpx.post(
        f"{dockyard.url}/v2/{project}/app/blobs/uploads/", auth=robot_creds(created)
    )

    assert response.status_code == 403


def test_robot_token_covers_only_its_project(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL, PUSH]))
    other = dockyard.new_project("other", private=True)

    granted = token(dockyard, robot_creds(created), f"repository:{other}/app:pull")

    assert _access(granted) == []


def test_robot_with_wrong_secret_is_refused_by_token_service(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    response = httpx.get(
        f"{dockyard.url}/service/token", auth=(created["name"], "Wrong-secret-1")
    )

    assert response.status_code == 401


def test_robot_logs_in_with_oauth_password_grant(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    response = httpx.post(
        f"{dockyard.url}/service/token",
        data={
            "grant_type": "password",
            "username": created["name"],
            "password": created["secret"],
            "service": "dockyard",
            "scope": f"repository:{project}/app:pull",
        },
    )

    assert response.status_code == 200
    assert _access(response.json()["token"])[0]["actions"] == ["pull"]


def test_robot_sees_its_project_in_management_api(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    response = httpx.get(
        f"{dockyard.url}{API}/projects",
        params={"name": project},
        auth=robot_creds(created),
    )

    assert [p["name"] for p in response.json()] == [project]


def test_new_secret_retires_robot_refresh_token(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    offline = httpx.get(
        f"{dockyard.url}/service/token",
        params={"offline_token": "true", "service": "dockyard"},
        auth=robot_creds(created),
    ).json()
    api.patch(f"{API}/robots/{created['id']}", json={})

    response = httpx.post(
        f"{dockyard.url}/service/token",
        data={"grant_type": "refresh_token", "refresh_token": offline["refresh_token"]},
    )

    assert response.status_code == 401


def test_disabled_robot_cannot_log_in(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL], disable=True))

    response = httpx.get(f"{dockyard.url}/service/token", auth=robot_creds(created))

    assert response.status_code == 401


def test_disabling_robot_ends_its_tokens(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    granted = token(dockyard, robot_creds(created), f"repository:{project}/app:pull")
    robot = api.get(f"{API}/robots/{created['id']}").json()

    api.put(f"{API}/robots/{created['id']}", json={**robot, "disable": True})
    response = httpx.get(
        f"{dockyard.url}/v2/{project}/app/tags/list",
        headers={"authorization": f"Bearer {granted}"},
    )

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_refreshed_secret_replaces_old_secret(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    refreshed = api.patch(f"{API}/robots/{created['id']}", json={})

    new = refreshed.json()["secret"]
    assert new != created["secret"]
    old_login = httpx.get(f"{dockyard.url}/v2/", auth=robot_creds(created))
    new_login = httpx.get(f"{dockyard.url}/v2/", auth=(created["name"], new))
    assert (old_login.status_code, new_login.status_code) == (401, 200)


def test_robot_sets_its_own_chosen_secret(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    chosen = "Chosen-secret-42"

    response = httpx.patch(
        f"{dockyard.url}{API}/robots/{created['id']}",
        json={"secret": chosen},
        auth=robot_creds(created),
    )

    assert response.status_code == 200
    login = httpx.get(f"{dockyard.url}/v2/", auth=(created["name"], chosen))
    assert login.status_code == 200


def test_weak_chosen_secret_returns_400(api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    response = api.patch(f"{API}/robots/{created['id']}", json={"secret": "weak"})

    assert response.status_code == 400


@contextlib.contextmanager
def robot_prefix(api, prefix):
    before = api.get(f"{API}/configurations").json()["robot_name_prefix"]["value"]
    changed = api.put(f"{API}/configurations", json={"robot_name_prefix": prefix})
    assert changed.status_code == 200
    try:
        yield
    finally:
        api.put(f"{API}/configurations", json={"robot_name_prefix": before})


def tags_with(dockyard, project, granted):
    return httpx.get(
        f"{dockyard.url}/v2/{project}/app/tags/list",
        headers={"authorization": f"Bearer {granted}"},
    )


def test_disabling_robot_ends_its_tokens_after_prefix_change(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    granted = token(dockyard, robot_creds(created), f"repository:{project}/app:pull")
    robot = api.get(f"{API}/robots/{created['id']}").json()

    with robot_prefix(api, "automaton-"):
        api.put(f"{API}/robots/{created['id']}", json={**robot, "disable": True})
        response = tags_with(dockyard, project, granted)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_deleting_robot_ends_its_tokens_after_prefix_change(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    granted = token(dockyard, robot_creds(created), f"repository:{project}/app:pull")

    with robot_prefix(api, "automaton-"):
        api.delete(f"{API}/robots/{created['id']}")
        response = tags_with(dockyard, project, granted)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_robot_token_still_works_after_prefix_change(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    granted = token(dockyard, robot_creds(created), f"repository:{project}/app:pull")

    with robot_prefix(api, "automaton-"):
        response = tags_with(dockyard, project, granted)

    assert response.status_code == 404  # no such repository; the token held


def test_deleted_robot_cannot_log_in(dockyard, api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    deleted = api.delete(f"{API}/robots/{created['id']}")

    assert deleted.status_code == 200
    login = httpx.get(f"{dockyard.url}/v2/", auth=robot_creds(created))
    assert login.status_code == 401


# Who may create robots


def test_project_admin_creates_project_robot(dockyard, project):
    admin = dockyard.new_user("padmin", project, "projectAdmin")

    response = httpx.post(
        f"{dockyard.url}{API}/robots",
        json=project_robot(project, [PULL]),
        auth=(admin.name, admin.password),
    )

    assert response.status_code == 201


def test_developer_cannot_create_project_robot(dockyard, project):
    developer = dockyard.new_user("dev", project, "developer")

    response = httpx.post(
        f"{dockyard.url}{API}/robots",
        json=project_robot(project, [PULL]),
        auth=(developer.name, developer.password),
    )

    assert response.status_code == 403


def test_project_admin_cannot_create_system_robot(dockyard, project):
    admin = dockyard.new_user("padmin", project, "projectAdmin")
    body = system_robot([{"kind": "project", "namespace": project, "access": [PULL]}])

    response = httpx.post(
        f"{dockyard.url}{API}/robots", json=body, auth=(admin.name, admin.password)
    )

    assert response.status_code == 403


def test_robot_creates_robot_with_subset_of_its_permissions(dockyard, api, project):
    creator = create_robot(api, project_robot(project, [PULL, PUSH, ROBOT_CREATE]))

    response = httpx.post(
        f"{dockyard.url}{API}/robots",
        json=project_robot(project, [PULL]),
        auth=robot_creds(creator),
    )

    assert response.status_code == 201


def test_robot_creating_robot_with_more_permissions_is_forbidden(
    dockyard, api, project
):
    creator = create_robot(api, project_robot(project, [PULL, ROBOT_CREATE]))

    response = httpx.post(
        f"{dockyard.url}{API}/robots",
        json=project_robot(project, [PULL, PUSH]),
        auth=robot_creds(creator),
    )

    assert response.status_code == 403


def test_robot_without_robot_create_cannot_create_robots(dockyard, api, project):
    creator = create_robot(api, project_robot(project, [PULL, PUSH]))

    response = httpx.post(
        f"{dockyard.url}{API}/robots",
        json=project_robot(project, [PULL]),
        auth=robot_creds(creator),
    )

    assert response.status_code == 403


def test_robot_cannot_widen_its_own_permissions(dockyard, api, project):
    update = {"resource": "robot", "action": "update"}
    created = create_robot(api, project_robot(project, [PULL, update]))
    robot = api.get(f"{API}/robots/{created['id']}").json()
    wider = project_robot(project, [PULL, PUSH, update])["permissions"]

    response = httpx.put(
        f"{dockyard.url}{API}/robots/{created['id']}",
        json={**robot, "permissions": wider},
        auth=robot_creds(created),
    )

    assert response.status_code == 403


def test_read_only_mode_refuses_robot_creation(api, project):
    with read_only(api):
        response = api.post(f"{API}/robots", json=project_robot(project, [PULL]))

    assert response.status_code == 403


# Updates


def test_update_robot_changes_description_and_permissions(api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    robot = api.get(f"{API}/robots/{created['id']}").json()
    wider = project_robot(project, [PULL, PUSH])["permissions"]

    api.put(
        f"{API}/robots/{created['id']}",
        json={**robot, "description": "ci", "permissions": wider},
    )

    after = api.get(f"{API}/robots/{created['id']}").json()
    assert after["description"] == "ci"
    assert len(after["permissions"][0]["access"]) == 2


def test_update_robot_duration_counts_from_creation(api, project):
    created = create_robot(api, project_robot(project, [PULL], duration=-1))
    robot = api.get(f"{API}/robots/{created['id']}").json()

    api.put(f"{API}/robots/{created['id']}", json={**robot, "duration": 2})

    after = api.get(f"{API}/robots/{created['id']}").json()
    assert after["duration"] == 2
    assert after["expires_at"] - 2 * DAY <= time.time()


def test_update_robot_name_returns_400(api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    robot = api.get(f"{API}/robots/{created['id']}").json()

    response = api.put(
        f"{API}/robots/{created['id']}", json={**robot, "name": "robot$renamed"}
    )

    assert response.status_code == 400


def test_get_unknown_robot_returns_404(api):
    response = api.get(f"{API}/robots/987654321")

    assert response.status_code == 404


# Listings


def test_list_project_robots_by_project_id(api, project):
    first = create_robot(api, project_robot(project, [PULL]))
    second = create_robot(api, project_robot(project, [PULL]))
    project_id = api.get(f"{API}/projects/{project}").json()["project_id"]

    response = api.get(
        f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}"}
    )

    assert [r["id"] for r in response.json()] == [first["id"], second["id"]]
    assert response.headers["x-total-count"] == "2"


def test_list_robots_without_query_shows_system_robots(api, project):
    mine = create_robot(api, project_robot(project, [PULL]))
    system = create_robot(
        api, system_robot([{"kind": "project", "namespace": "*", "access": [PULL]}])
    )

    listed = api.get(f"{API}/robots", params={"page_size": 100}).json()

    assert all(robot["level"] == "system" for robot in listed)
    assert mine["id"] not in [robot["id"] for robot in listed]
    assert system["id"] in [robot["id"] for robot in listed]


def test_list_robots_by_name_without_prefix(api, project):
    body = project_robot(project, [PULL])
    created = create_robot(api, body)
    project_id = api.get(f"{API}/projects/{project}").json()["project_id"]
    q = f"Level=project,ProjectID={project_id},name={project}+{body['name']}"

    listed = api.get(f"{API}/robots", params={"q": q}).json()

    assert [robot["id"] for robot in listed] == [created["id"]]


def test_developer_lists_robots_of_own_project(dockyard, api, project):
    create_robot(api, project_robot(project, [PULL]))
    developer = dockyard.new_user("dev", project, "developer")
    project_id = api.get(f"{API}/projects/{project}").json()["project_id"]

    response = httpx.get(
        f"{dockyard.url}{API}/robots",
        params={"q": f"Level=project,ProjectID={project_id}"},
        auth=(developer.name, developer.password),
    )

    assert response.status_code == 200
    assert len(response.json()) == 1


def test_non_admin_cannot_list_system_robots(dockyard):
    user = dockyard.new_user("plain")

    response = httpx.get(f"{dockyard.url}{API}/robots", auth=(user.name, user.password))

    assert response.status_code == 403


def test_list_project_robots_without_project_id_returns_400(api):
    response = api.get(f"{API}/robots", params={"q": "Level=project"})

    assert response.status_code == 400


def test_legacy_project_robot_listing(api, project):
    created = create_robot(api, project_robot(project, [PULL]))

    response = api.get(f"{API}/projects/{project}/robots")

    assert [robot["id"] for robot in response.json()] == [created["id"]]


# Audit


def test_robot_changes_are_audited(api, project):
    created = create_robot(api, project_robot(project, [PULL]))
    robot = api.get(f"{API}/robots/{created['id']}").json()
    api.put(f"{API}/robots/{created['id']}", json={**robot, "description": "x"})
    api.patch(f"{API}/robots/{created['id']}", json={})
    api.delete(f"{API}/robots/{created['id']}")

    entries = api.get(
        f"{API}/audit-logs",
        params={"q": f"resource={created['name']},resource_type=robot"},
    ).json()

    assert sorted(entry["operation"] for entry in entries) == [
        "create",
        "delete",
        "refresh_secret",
        "update",
    ]


def _access(token_text):
    return jwt.decode(token_text, options={"verify_signature": False})["access"]
