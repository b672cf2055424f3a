"""The audit trail: API changes and registry pushes, pulls and deletes."""

import secrets
import time

import httpx

from tests.api.conftest import Registry

API = "/api/v2.0"


def logs(api, **query):
    return api.get(f"{API}/audit-logs", params={"page_size": 100, **query}).json()


def test_api_user_creation_is_audited_with_operator(api):
    name = f"a{secrets.token_hex(4)}"

    api.post(f"{API}/users", json={"username": name, "password": "Str0ng-pass"})

    entries = logs(api, q=f"resource={name}")
    assert [(e["username"], e["resource_type"], e["operation"]) for e in entries] == [
        ("admin", "user", "create")
    ]


def test_push_and_delete_through_registry_are_audited(api):
    registry = Registry(api, f"library/audit-{secrets.token_hex(3)}")
    body = registry.image_manifest()

    registry.put_manifest("v1", body)
    registry.client.delete(registry.url("manifests/v1"))

    entries = logs(api, q=f"resource={registry.repository}:v1")
    assert sorted(e["operation"] for e in entries) == ["create", "delete"]


def test_pull_is_audited_shortly_after(api):
    registry = Registry(api, f"library/audit-{secrets.token_hex(3)}")
    registry.put_manifest("v1", registry.image_manifest())

    registry.client.get(registry.url("manifests/v1"))

    for _ in range(50):
        if [
            e for e in logs(api, q=f"resource={registry.repository}:v1,operation=pull")
        ]:
            break
        time.sleep(0.1)
    assert (
        logs(api, q=f"resource={registry.repository}:v1,operation=pull")[0]["username"]
        == "admin"
    )


def test_project_logs_are_refused_to_limited_guests(api, dockyard):
    project = f"p{secrets.token_hex(4)}"
    guest = f"g{secrets.token_hex(4)}"
    api.post(f"{API}/projects", json={"project_name": project})
    api.post(f"{API}/users", json={"username": guest, "password": "Str0ng-pass"})
    api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 5, "member_user": {"username": guest}},
    )

    as_guest = httpx.get(
        f"{dockyard.url}{API}/projects/{project}/logs", auth=(guest, "Str0ng-pass")
    )
    as_admin = api.get(f"{API}/projects/{project}/logs")

    assert as_guest.status_code == 403
    assert {e["operation"] for e in as_admin.json()} >= {"create"}


def test_failed_login_is_audited(api, dockyard):
    name = f"nobody-{secrets.token_hex(3)}"
    httpx.get(f"{dockyard.url}/v2/", auth=(name, "wrong"))

    for _ in range(50):
        entries = logs(api, q=f"username={name},operation=login_failed")
        if entries:
            break
        time.sleep(0.1)

    assert entries[0]["resource_type"] == "user"
