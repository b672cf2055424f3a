"""Repositories, artifacts and tags through `/api/v2.0`."""

import json
import secrets

import httpx
import pytest

from tests.api.conftest import OCI_INDEX, OCI_MANIFEST, Registry, sha256

API = "/api/v2.0"


@pytest.fixture
def pushed(api):
    """A repository `library/r-xxxx` with one image tagged v1 and v1-alias."""
    short = f"r-{secrets.token_hex(3)}"
    registry = Registry(api, f"library/{short}")
    body = registry.image_manifest(layers=[b"a" * 100, b"b" * 50])
    registry.put_manifest("v1", body)
    registry.put_manifest("v1-alias", body)
    return short, registry, body


def artifacts_url(short, suffix=""):
    return f"{API}/projects/library/repositories/{short}/artifacts{suffix}"


def test_list_repositories_of_project_includes_pushed_one(api, pushed):
    short, _, _ = pushed

    names = [
        r["name"]
        for r in api.get(
            f"{API}/projects/library/repositories",
            params={"page_size": 100, "q": f"name=~{short}"},
        ).json()
    ]

    assert names == [f"library/{short}"]


def test_get_repository_counts_artifacts(api, pushed):
    short, _, _ = pushed

    body = api.get(f"{API}/projects/library/repositories/{short}").json()

    assert body["artifact_count"] == 1


def test_artifact_shows_digest_tags_and_size(api, pushed):
    short, _, body = pushed

    artifact = api.get(artifacts_url(short, "/v1")).json()

    assert artifact["digest"] == sha256(body)
    assert sorted(t["name"] for t in artifact["tags"]) == ["v1", "v1-alias"]
    assert artifact["size"] == len(body) + 100 + 50 + 2
    assert artifact["manifest_media_type"] == OCI_MANIFEST


def test_index_artifact_lists_references(api):
    registry = Registry(api, f"library/idx-{secrets.token_hex(3)}")
    child = registry.image_manifest()
    registry.put_manifest(sha256(child), child)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256(child),
                    "size": len(child),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    registry.put_manifest("multi", index, OCI_INDEX)

    artifact = api.get(
        artifacts_url(registry.repository.split("/", 1)[1], "/multi")
    ).json()

    assert artifact["type"] == "IMAGE"
    assert artifact["references"][0]["child_digest"] == sha256(child)


def test_add_tag_then_registry_serves_it(api, pushed):
    short, registry, body = pushed

    created = api.post(artifacts_url(short, "/v1/tags"), json={"name": "v2"})
    served = registry.client.get(registry.url("manifests/v2"))

    assert created.status_code == 201
    assert served.headers["docker-content-digest"] == sha256(body)


def test_add_existing_tag_returns_conflict(api, pushed):
    short, _, _ = pushed

    response = api.post(artifacts_url(short, "/v1/tags"), json={"name": "v1-alias"})

    assert response.status_code == 409


def test_delete_tag_keeps_artifact(api, pushed):
    short, registry, body = pushed

    api.delete(artifacts_url(short, "/v1/tags/v1-alias"))

    assert registry.client.get(registry.url("manifests/v1-alias")).status_code == 404
    assert (
        registry.client.get(registry.url(f"manifests/{sha256(body)}")).status_code
        == 200
    )


def test_delete_artifact_removes_all_its_tags(api, pushed):
    short, registry, body = pushed

    deleted = api.delete(artifacts_url(short, f"/{sha256(body)}"))

    assert deleted.status_code == 200
    assert registry.client.get(registry.url("manifests/v1")).status_code == 404


def test_delete_repository_then_get_returns_not_found(api, pushed):
    short, _, _ = pushed

    api.delete(f"{API}/projects/library/repositories/{short}")

    assert api.get(f"{API}/projects/library/repositories/{short}").status_code == 404


def test_nested_repository_name_is_double_encoded(api):
    registry = Registry(api, f"library/team/app-{secrets.token_hex(3)}")
    registry.put_manifest("v1", registry.image_manifest())
    encoded = registry.repository.split("/", 1)[1].replace("/", "%252F")

    response = api.get(f"{API}/projects/library/repositories/{encoded}")

    assert response.json()["name"] == registry.repository


def test_guest_reads_but_cannot_delete_artifacts(api, dockyard, pushed):
    short, _, _ = pushed
    guest = f"g{secrets.token_hex(3)}"
    api.post(f"{API}/users", json={"username": guest, "password": "Str0ng-pass"})
    api.post(
        f"{API}/projects/library/members",
        json={"role_id": 3, "member_user": {"username": guest}},
    )
    client = httpx.Client(base_url=dockyard.url, auth=(guest, "Str0ng-pass"))

    assert client.get(artifacts_url(short)).status_code == 200
    assert client.delete(artifacts_url(short, "/v1")).status_code == 403


def test_unknown_artifact_returns_not_found(api, pushed):
    short, _, _ = pushed

    response = api.get(artifacts_url(short, "/nope"))

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NOT_FOUND"


def test_update_repository_without_description_clears_it(api, pushed):
    short, _, _ = pushed
    url = f"{API}/projects/library/repositories/{short}"
    api.put(url, json={"description": "something"})

    response = api.put(url, json={})

    assert response.status_code == 200
    assert api.get(url).json()["description"] == ""


def test_update_missing_repository_with_empty_body_returns_not_found(api):
    response = api.put(f"{API}/projects/library/repositories/does_not_exist", json={})

    assert response.status_code == 404
