"""`/api/v2.0/statistics` and `/api/v2.0/search`, limited to what callers see."""

import secrets

import httpx
import pytest

from tests.api.conftest import Registry

API = "/api/v2.0"
PASSWORD = "Str0ng-pass"


def new_project(client, public=False):
    name = f"s{secrets.token_hex(4)}"
    response = client.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": str(public).lower()}},
    )
    assert response.status_code == 201, response.text
    return name


@pytest.fixture
def user(api, dockyard):
    name = f"u{secrets.token_hex(4)}"
    api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    with httpx.Client(base_url=dockyard.url, auth=(name, PASSWORD)) as client:
        yield client


def statistics(client):
    response = client.get(f"{API}/statistics")
    assert response.status_code == 200, response.text
    return response.json()


def test_statistics_need_authentication(dockyard):
    assert httpx.get(f"{dockyard.url}{API}/statistics").status_code == 401


def test_admin_statistics_count_new_private_project_and_repository(api):
    before = statistics(api)
    name = new_project(api)
    Registry(api, f"{name}/app").push_blob(b"x" * 10)

    after = statistics(api)

    assert after["private_project_count"] == before["private_project_count"] + 1
    assert after["total_repo_count"] == before["total_repo_count"] + 1
    assert after["total_storage_consumption"] >= before["total_storage_consumption"]


def test_user_statistics_count_own_private_projects_without_totals(api, user):
    new_project(user)
    new_project(api)  # private and not the user's

    body = statistics(user)

    assert body["private_project_count"] == 1
    assert (body["total_project_count"], body["total_storage_consumption"]) == (0, 0)


def test_public_counts_are_the_same_for_everyone(api, user):
    new_project(api, public=True)

    assert (
        statistics(user)["public_project_count"]
        == (statistics(api)["public_project_count"])
    )


def test_search_finds_visible_projects_and_repositories(api, user):
    marker = secrets.token_hex(3)
    mine = new_project(user)
    Registry(api, f"{mine}/tool-{marker}").push_blob(b"y")
    hidden = new_project(api)
    Registry(api, f"{hidden}/tool-{marker}").push_blob(b"z")

    body = user.get(f"{API}/search", params={"q": marker}).json()

    assert [r["repository_name"] for r in body["repository"]] == [
        f"{mine}/tool-{marker}"
    ]
    assert body["repository"][0]["project_public"] is False


def test_search_matches_project_names(api, user):
    name = new_project(user)
    new_project(api)

    found = user.get(f"{API}/search", params={"q": name}).json()["project"]

    assert [p["name"] for p in found] == [name]


def test_anonymous_search_sees_public_projects_only(api, dockyard):
    public = new_project(api, public=True)
    private = new_project(api)

    def found(text):
        body = httpx.get(f"{dockyard.url}{API}/search", params={"q": text}).json()
        return [p["name"] for p in body["project"]]

    assert found(public) == [public]
    assert found(private) == []


def test_search_without_q_returns_bad_request(api):
    assert api.get(f"{API}/search").status_code == 400
