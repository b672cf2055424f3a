"""`/api/v2.0/projects/{p}/metadatas`: project settings as strings."""

import secrets

import httpx
import pytest

API = "/api/v2.0"
PASSWORD = "Str0ng-pass"
MAINTAINER, GUEST = 4, 3


@pytest.fixture
def project(api):
    name = f"m{secrets.token_hex(4)}"
    response = api.post(
        f"{API}/projects", json={"project_name": name, "metadata": {"public": "false"}}
    )
    assert response.status_code == 201, response.text
    return name


def url(project, key=""):
    return f"{API}/projects/{project}/metadatas" + (f"/{key}" if key else "")


def member(api, dockyard, project=None, role_id=GUEST):
    """A new user's client; with `project`, a member of it with `role_id`."""
    name = f"u{secrets.token_hex(4)}"
    api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    if project:
        response = api.post(
            f"{API}/projects/{project}/members",
            json={"role_id": role_id, "member_user": {"username": name}},
        )
        assert response.status_code == 201, response.text
    return httpx.Client(base_url=dockyard.url, auth=(name, PASSWORD))


def test_new_project_metadata_holds_public_only(api, project):
    assert api.get(url(project)).json() == {"public": "false"}


def test_add_metadata_then_read_one_key(api, project):
    added = api.post(url(project), json={"auto_scan": "true", "severity": "High"})

    assert added.status_code == 200
    assert api.get(url(project, "severity")).json() == {"severity": "high"}


def test_add_existing_key_returns_conflict(api, project):
    api.post(url(project), json={"auto_scan": "true"})

    assert api.post(url(project), json={"auto_scan": "false"}).status_code == 409


def test_unknown_key_or_bad_value_returns_bad_request(api, project):
    assert api.post(url(project), json={"colour": "red"}).status_code == 400
    assert api.post(url(project), json={"severity": "extreme"}).status_code == 400
    assert api.post(url(project), json={"prevent_vul": "maybe"}).status_code == 400
    assert api.post(url(project), json={"proxy_speed_kb": "fast"}).status_code == 400


def test_update_public_metadata_makes_project_public(api, dockyard, project):
    response = api.put(url(project, "public"), json={"public": "true"})

    anonymous = httpx.get(f"{dockyard.url}{API}/projects/{project}")

    assert response.status_code == 200
    assert anonymous.json()["metadata"]["public"] == "true"


def test_update_missing_key_returns_not_found(api, project):
    response = api.put(url(project, "auto_scan"), json={"auto_scan": "true"})

    assert response.status_code == 404


def test_update_with_body_for_another_key_returns_bad_request(api, project):
    api.post(url(project), json={"auto_scan": "true"})

    response = api.put(url(project, "auto_scan"), json={"severity": "low"})

    assert response.status_code == 400


def test_delete_metadata_then_get_returns_not_found(api, project):
    api.post(url(project), json={"retention_id": "12"})

    deleted = api.delete(url(project, "retention_id"))

    assert deleted.status_code == 200
    assert api.get(url(project, "retention_id")).status_code == 404


def test_public_cannot_be_deleted(api, project):
    assert api.delete(url(project, "public")).status_code == 400


def test_project_response_lists_stored_metadata(api, project):
    api.post(url(project), json={"enable_content_trust": "TRUE"})

    metadata = api.get(f"{API}/projects/{project}").json()["metadata"]

    assert metadata == {"public": "false", "enable_content_trust": "true"}


def test_project_create_with_metadata_stores_it(api):
    name = f"m{secrets.token_hex(4)}"
    api.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": "true", "auto_scan": "1"}},
    )

    assert api.get(url(name)).json() == {"public": "true", "auto_scan": "true"}


def test_project_create_with_unknown_metadata_returns_bad_request(api):
    response = api.post(
        f"{API}/projects",
        json={"project_name": f"m{secrets.token_hex(4)}", "metadata": {"x": "1"}},
    )

    assert response.status_code == 400


def test_maintainer_reads_metadata_but_cannot_write_it(api, dockyard, project):
    maintainer = member(api, dockyard, project, MAINTAINER)

    read = maintainer.get(url(project))
    written = maintainer.post(url(project), json={"auto_scan": "true"})

    assert (read.status_code, written.status_code) == (200, 403)


def test_guest_cannot_read_metadata(api, dockyard, project):
    guest = member(api, dockyard, project, GUEST)

    assert guest.get(url(project)).status_code == 403


def test_anonymous_and_non_member_are_refused(api, dockyard, project):
    outsider = member(api, dockyard)

    anonymous = httpx.get(f"{dockyard.url}{url(project)}")

    assert anonymous.status_code == 401
    assert outsider.get(url(project)).status_code == 403


def test_read_only_mode_refuses_metadata_changes(api, project):
    api.put(f"{API}/configurations", json={"read_only": True})
    try:
        response = api.post(url(project), json={"auto_scan": "true"})
    finally:
        api.put(f"{API}/configurations", json={"read_only": False})

    assert response.status_code == 403
