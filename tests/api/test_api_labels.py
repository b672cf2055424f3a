"""`/api/v2.0/labels` and labels on artifacts, with their permission checks."""

import secrets

import httpx
import pytest

from tests.api.conftest import Registry, error_code, sha256

API = "/api/v2.0"
PASSWORD = "Str0ng-pass"
MAINTAINER, GUEST, DEVELOPER = 4, 3, 2


def new_user(api, dockyard):
    name = f"u{secrets.token_hex(4)}"
    response = api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return httpx.Client(base_url=dockyard.url, auth=(name, PASSWORD)), name


def new_project(api, public=False):
    name = f"p{secrets.token_hex(4)}"
    response = api.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": str(public).lower()}},
    )
    assert response.status_code == 201, response.text
    return name, int(response.headers["location"].rsplit("/", 1)[1])


def add_member(api, project, username, role_id):
    response = api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": role_id, "member_user": {"username": username}},
    )
    assert response.status_code == 201, response.text


def create_label(client, **fields):
    body = {"name": f"l{secrets.token_hex(4)}", "scope": "g", **fields}
    return client.post(f"{API}/labels", json=body)


def label_id(response):
    assert response.status_code == 201, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


@pytest.fixture
def project(api):
    """A private project with one pushed image tagged v1: (name, id, short repo)."""
    name, project_id = new_project(api)
    short = f"app-{secrets.token_hex(3)}"
    registry = Registry(api, f"{name}/{short}")
    assert registry.put_manifest("v1", registry.image_manifest()).status_code == 201
    return name, project_id, short


def labels_url(project, short, reference="v1"):
    return f"{API}/projects/{project}/repositories/{short}/artifacts/{reference}/labels"


def test_admin_creates_global_label_and_reads_it_back(api):
    response = create_label(api, name="release", color="#00FF00", description="ok")

    body = api.get(response.headers["location"]).json()

    assert response.status_code == 201
    assert (body["name"], body["scope"], body["color"], body["project_id"]) == (
        "release",
        "g",
        "#00FF00",
        0,
    )


def test_create_global_label_with_taken_name_returns_conflict(api):
    name = f"dup-{secrets.token_hex(3)}"
    create_label(api, name=name)

    response = create_label(api, name=name)

    assert response.status_code == 409
    assert error_code(response) == "CONFLICT"


def test_create_label_with_bad_scope_or_empty_name_returns_bad_request(api):
    assert create_label(api, scope="x").status_code == 400
    assert create_label(api, name=" ").status_code == 400


def test_project_label_without_project_id_returns_bad_request(api):
    response = create_label(api, scope="p")

    assert response.status_code == 400


def test_user_cannot_create_global_label(api, dockyard):
    user, _ = new_user(api, dockyard)

    assert create_label(user).status_code == 403
    assert create_label(httpx.Client(base_url=dockyard.url)).status_code == 401


def test_maintainer_creates_project_label_guest_cannot(api, dockyard):
    name, project_id = new_project(api)
    maintainer, maintainer_name = new_user(api, dockyard)
    guest, guest_name = new_user(api, dockyard)
    add_member(api, name, maintainer_name, MAINTAINER)
    add_member(api, name, guest_name, GUEST)

    allowed = create_label(maintainer, scope="p", project_id=project_id)
    refused = create_label(guest, scope="p", project_id=project_id)

    assert allowed.status_code == 201
    assert refused.status_code == 403


def test_non_member_cannot_list_project_labels(api, dockyard):
    _, project_id = new_project(api)
    label_id(create_label(api, scope="p", project_id=project_id))
    outsider, _ = new_user(api, dockyard)

    response = outsider.get(
        f"{API}/labels", params={"scope": "p", "project_id": project_id}
    )

    assert response.status_code == 403


def test_same_name_in_two_projects_is_allowed(api):
    _, first = new_project(api)
    _, second = new_project(api)
    name = f"n{secrets.token_hex(3)}"

    one = create_label(api, name=name, scope="p", project_id=first)
    two = create_label(api, name=name, scope="p", project_id=second)

    assert (one.status_code, two.status_code) == (201, 201)


def test_list_project_labels_shows_only_that_project(api):
    _, project_id = new_project(api)
    _, other_id = new_project(api)
    mine = label_id(create_label(api, scope="p", project_id=project_id))
    label_id(create_label(api, scope="p", project_id=other_id))

    response = api.get(f"{API}/labels", params={"scope": "p", "project_id": project_id})

    assert [label["id"] for label in response.json()] == [mine]
    assert response.headers["x-total-count"] == "1"


def test_list_labels_filters_by_name(api):
    marker = secrets.token_hex(4)
    wanted = label_id(create_label(api, name=f"find-{marker}"))
    create_label(api)

    found = api.get(f"{API}/labels", params={"scope": "g", "name": marker}).json()

    assert [label["id"] for label in found] == [wanted]


def test_list_labels_without_scope_hides_projects_the_user_cannot_see(api, dockyard):
    _, hidden_project = new_project(api)
    hidden = label_id(create_label(api, scope="p", project_id=hidden_project))
    user, _ = new_user(api, dockyard)

    ids = [
        label["id"]
        for label in user.get(f"{API}/labels", params={"page_size": 100}).json()
    ]

    assert hidden not in ids


def test_update_label_changes_name_and_color(api):
    location = create_label(api).headers["location"]
    new_name = f"renamed-{secrets.token_hex(3)}"

    updated = api.put(location, json={"name": new_name, "color": "#123456"})
    body = api.get(location).json()

    assert updated.status_code == 200
    assert (body["name"], body["color"]) == (new_name, "#123456")


def test_update_label_to_taken_name_returns_conflict(api):
    taken = f"t{secrets.token_hex(3)}"
    create_label(api, name=taken)
    location = create_label(api).headers["location"]

    assert api.put(location, json={"name": taken}).status_code == 409


def test_guest_cannot_update_project_label(api, dockyard):
    name, project_id = new_project(api)
    guest, guest_name = new_user(api, dockyard)
    add_member(api, name, guest_name, GUEST)
    location = create_label(api, scope="p", project_id=project_id).headers["location"]

    readable = guest.get(location)
    refused = guest.put(location, json={"name": "x"})

    assert readable.status_code == 200
    assert refused.status_code == 403


def test_delete_label_then_get_returns_not_found(api):
    location = create_label(api).headers["location"]

    deleted = api.delete(location)

    assert deleted.status_code == 200
    assert api.get(location).status_code == 404


def test_attach_label_to_artifact_returns_ok_and_twice_conflict(api, project):
    name, _, short = project
    label = label_id(create_label(api))

    first = api.post(labels_url(name, short), json={"id": label})
    second = api.post(labels_url(name, short), json={"id": label})

    assert first.status_code == 200
    assert second.status_code == 409


def test_attach_label_of_another_project_returns_bad_request(api, project):
    name, _, short = project
    _, other_id = new_project(api)
    foreign = label_id(create_label(api, scope="p", project_id=other_id))

    response = api.post(labels_url(name, short), json={"id": foreign})

    assert response.status_code == 400


def test_attach_unknown_label_or_to_unknown_artifact_returns_not_found(api, project):
    name, _, short = project
    label = label_id(create_label(api))

    assert api.post(labels_url(name, short), json={"id": 999999}).status_code == 404
    assert (
        api.post(labels_url(name, short, "nope"), json={"id": label}).status_code == 404
    )


def test_developer_attaches_label_guest_cannot(api, dockyard, project):
    name, project_id, short = project
    developer, developer_name = new_user(api, dockyard)
    guest, guest_name = new_user(api, dockyard)
    add_member(api, name, developer_name, DEVELOPER)
    add_member(api, name, guest_name, GUEST)
    label = label_id(create_label(api, scope="p", project_id=project_id))

    refused = guest.post(labels_url(name, short), json={"id": label})
    allowed = developer.post(labels_url(name, short), json={"id": label})

    assert refused.status_code == 403
    assert allowed.status_code == 200


def test_anonymous_cannot_attach_label(api, dockyard, project):
    name, _, short = project
    label = label_id(create_label(api))

    response = httpx.post(
        f"{dockyard.url}{labels_url(name, short)}", json={"id": label}
    )

    assert response.status_code == 401


def test_detach_label_then_detach_again_returns_not_found(api, project):
    name, _, short = project
    label = label_id(create_label(api))
    api.post(labels_url(name, short), json={"id": label})

    first = api.delete(f"{labels_url(name, short)}/{label}")
    second = api.delete(f"{labels_url(name, short)}/{label}")

    assert first.status_code == 200
    assert second.status_code == 404


def test_attach_by_digest_in_nested_repository(api):
    name, _ = new_project(api)
    registry = Registry(api, f"{name}/team/app")
    body = registry.image_manifest()
    registry.put_manifest("v1", body)
    label = label_id(create_label(api))
    url = labels_url(name, "team%252Fapp", sha256(body))

    assert api.post(url, json={"id": label}).status_code == 200


def artifact_labels(api, project, short):
    artifact = api.get(
        f"{API}/projects/{project}/repositories/{short}/artifacts/v1",
        params={"with_label": "true"},
    ).json()
    return [label["name"] for label in artifact["labels"]]


def test_artifact_shows_attached_label(api, project):
    name, _, short = project
    response = create_label(api)
    api.post(labels_url(name, short), json={"id": label_id(response)})

    labels = artifact_labels(api, name, short)

    assert labels == [api.get(response.headers["location"]).json()["name"]]


def test_deleted_label_leaves_the_artifact(api, project):
    name, _, short = project
    location = create_label(api).headers["location"]
    api.post(labels_url(name, short), json={"id": int(location.rsplit("/", 1)[1])})

    api.delete(location)

    assert artifact_labels(api, name, short) == []


def test_label_changes_are_audited(api, project):
    name, project_id, short = project
    label_name = f"aud-{secrets.token_hex(3)}"
    label = label_id(
        create_label(api, name=label_name, scope="p", project_id=project_id)
    )
    api.post(labels_url(name, short), json={"id": label})

    logs = api.get(f"{API}/projects/{name}/logs", params={"page_size": 100}).json()

    operations = {(e["resource_type"], e["operation"]) for e in logs}
    assert {("label", "create"), ("artifact-label", "create")} <= operations


def test_read_only_mode_refuses_label_creation(api):
    api.put(f"{API}/configurations", json={"read_only": True})
    try:
        response = create_label(api)
    finally:
        api.put(f"{API}/configurations", json={"read_only": False})

    assert response.status_code == 403
