"""`/api/v2.0/quotas`: per-project storage limits and usage."""

import secrets

import httpx

from tests.api.conftest import Registry, error_code

API = "/api/v2.0"
PASSWORD = "Str0ng-pass"


def new_project(client, **extra):
    name = f"q{secrets.token_hex(4)}"
    response = client.post(f"{API}/projects", json={"project_name": name, **extra})
    assert response.status_code == 201, response.text
    return name, int(response.headers["location"].rsplit("/", 1)[1])


def quota_of(api, project_id):
    found = api.get(f"{API}/quotas", params={"reference_id": str(project_id)}).json()
    assert len(found) == 1, found
    return found[0]


def new_user(api, dockyard):
    name = f"u{secrets.token_hex(4)}"
    api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    return httpx.Client(base_url=dockyard.url, auth=(name, PASSWORD))


def test_new_project_has_unlimited_quota_with_reference(api):
    name, project_id = new_project(api)

    quota = quota_of(api, project_id)

    assert quota["hard"] == {"storage": -1}
    assert quota["ref"] == {"id": project_id, "name": name, "owner_name": "admin"}


def test_project_created_with_storage_limit_by_admin_keeps_it(api):
    _, project_id = new_project(api, storage_limit=1024**3)

    assert quota_of(api, project_id)["hard"]["storage"] == 1024**3


def test_storage_limit_of_non_admin_creator_is_ignored(api, dockyard):
    user = new_user(api, dockyard)

    _, project_id = new_project(user, storage_limit=1024)

    assert quota_of(api, project_id)["hard"]["storage"] == -1


def test_invalid_storage_limit_on_create_returns_bad_request(api):
    response = api.post(
        f"{API}/projects",
        json={"project_name": f"q{secrets.token_hex(4)}", "storage_limit": -5},
    )

    assert response.status_code == 400


def test_configured_default_applies_to_new_projects(api):
    api.put(f"{API}/configurations", json={"storage_per_project": 5000})
    try:
        _, project_id = new_project(api)
    finally:
        api.put(f"{API}/configurations", json={"storage_per_project": -1})

    assert quota_of(api, project_id)["hard"]["storage"] == 5000


def test_used_storage_counts_each_blob_and_manifest_once(api):
    name, project_id = new_project(api)
    layer = secrets.token_bytes(1000)
    first = Registry(api, f"{name}/one")
    second = Registry(api, f"{name}/two")
    manifest = first.image_manifest(layers=[layer])
    first.put_manifest("v1", manifest)
    second.image_manifest(layers=[layer])  # links the same blobs into `two`
    second.put_manifest("v1", manifest)

    used = quota_of(api, project_id)["used"]["storage"]

    assert used == 1000 + 2 + len(manifest)


def test_update_quota_changes_hard_limit(api):
    _, project_id = new_project(api)
    quota = quota_of(api, project_id)

    response = api.put(f"{API}/quotas/{quota['id']}", json={"hard": {"storage": 2048}})

    assert response.status_code == 200
    assert api.get(f"{API}/quotas/{quota['id']}").json()["hard"]["storage"] == 2048


def test_update_quota_with_bad_values_returns_bad_request(api):
    _, project_id = new_project(api)
    url = f"{API}/quotas/{quota_of(api, project_id)['id']}"

    assert api.put(url, json={"hard": {"storage": 0}}).status_code == 400
    assert api.put(url, json={"hard": {"count": 5}}).status_code == 400
    assert api.put(url, json={"hard": {}}).status_code == 400


def test_quotas_are_for_admins_only(api, dockyard):
    user = new_user(api, dockyard)

    assert httpx.get(f"{dockyard.url}{API}/quotas").status_code == 401
    assert user.get(f"{API}/quotas").status_code == 403
    assert user.put(f"{API}/quotas/1", json={"hard": {"storage": 1}}).status_code == 403


def test_unknown_quota_returns_not_found(api):
    response = api.get(f"{API}/quotas/999999")

    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"


def test_quotas_sort_by_hard_limit_descending(api):
    _, small = new_project(api, storage_limit=10)
    _, large = new_project(api, storage_limit=10**12)

    ids = [
        q["ref"]["id"]
        for q in api.get(
            f"{API}/quotas", params={"sort": "-hard.storage", "page_size": 100}
        ).json()
    ]

    assert ids.index(large) < ids.index(small)


def test_quotas_with_unknown_sort_or_reference(api):
    assert api.get(f"{API}/quotas", params={"sort": "colour"}).status_code == 400
    assert api.get(f"{API}/quotas", params={"reference": "robot"}).json() == []


def test_admin_updates_storage_limit_through_project(api):
    name, project_id = new_project(api)

    response = api.put(f"{API}/projects/{name}", json={"storage_limit": 4096})

    assert response.status_code == 200
    assert quota_of(api, project_id)["hard"]["storage"] == 4096


def test_project_admin_storage_limit_on_update_is_ignored(api, dockyard):
    user = new_user(api, dockyard)
    name, project_id = new_project(user)
    before = quota_of(api, project_id)["hard"]["storage"]

    response = user.put(f"{API}/projects/{name}", json={"storage_limit": 4096})

    assert response.status_code == 200
    assert quota_of(api, project_id)["hard"]["storage"] == before


def test_read_only_mode_refuses_quota_update(api):
    _, project_id = new_project(api)
    url = f"{API}/quotas/{quota_of(api, project_id)['id']}"
    api.put(f"{API}/configurations", json={"read_only": True})
    try:
        response = api.put(url, json={"hard": {"storage": 100}})
    finally:
        api.put(f"{API}/configurations", json={"read_only": False})

    assert response.status_code == 403
