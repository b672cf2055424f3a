"""`/api/v2.0/registries`: endpoints, their credentials and health.

The remote registry is a real one: the shared Dockyard itself, which asks
for a Bearer token like Harbor does, so a healthy ping proves the token
challenge was met with the stored credential.
"""

import base64
import secrets

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from dockyard.db.schema import registries
from tests.api.conftest import error_code
from tests.conftest import free_port
from tests.e2e.hostile import Answer, HostileRegistry


def _body(dockyard, password=None, **extra):
    return {
        "name": f"endpoint-{secrets.token_hex(4)}",
        "url": dockyard.url,
        "type": "harbor",
        "credential": {
            "type": "basic",
            "access_key": "admin",
            "access_secret": password or dockyard.admin_password,
        },
        "insecure": False,
        **extra,
    }


@pytest.fixture
def endpoint(api, dockyard):
    """A stored endpoint pointing at the shared Dockyard with admin's password."""
    response = api.post("/api/v2.0/registries", json=_body(dockyard))
    assert response.status_code == 201, response.text
    registry_id = int(response.headers["location"].rsplit("/", 1)[1])
    yield api.get(f"/api/v2.0/registries/{registry_id}").json()
    api.delete(f"/api/v2.0/registries/{registry_id}")


def test_create_registry_answer_masks_the_secret(endpoint):
    assert endpoint["credential"] == {
        "type": "basic",
        "access_key": "admin",
        "access_secret": "*****",
    }


def test_create_registry_with_working_credential_is_healthy(endpoint):
    assert endpoint["status"] == "healthy"


def test_create_registry_stores_the_secret_encrypted(endpoint, dockyard):
    stored = dockyard.execute(
        select(registries.c.access_secret).where(registries.c.id == endpoint["id"])
    )
    key = (dockyard.data_dir / "keys" / "registry-credentials.key").read_bytes()

    assert dockyard.admin_password not in stored
    assert Fernet(key.strip()).decrypt(stored.encode()).decode() == (
        dockyard.admin_password
    )


def test_list_registries_with_q_finds_the_endpoint_without_its_secret(
    api, endpoint, dockyard
):
    response = api.get("/api/v2.0/registries", params={"q": f"name={endpoint['name']}"})

    assert [r["id"] for r in response.json()] == [endpoint["id"]]
    assert dockyard.admin_password not in response.text


def test_update_registry_with_masked_secret_keeps_the_secret(api, endpoint):
    renamed = f"renamed-{secrets.token_hex(4)}"

    response = api.put(
        f"/api/v2.0/registries/{endpoint['id']}",
        json={"name": renamed, "access_key": "admin", "access_secret": "*****"},
    )
    ping = api.post("/api/v2.0/registries/ping", json={"id": endpoint["id"]})

    assert response.status_code == 200
    assert api.get(f"/api/v2.0/registries/{endpoint['id']}").json()["name"] == renamed
    assert ping.status_code == 200, ping.text


def test_update_registry_with_wrong_secret_becomes_unhealthy(api, endpoint):
    response = api.put(
        f"/api/v2.0/registries/{endpoint['id']}",
        json={"access_secret": "Wrong-passw0rd"},
    )

    assert response.status_code == 200
    assert api.get(f"/api/v2.0/registries/{endpoint['id']}").json()["status"] == (
        "unhealthy"
    )


def test_ping_registry_with_wrong_password_is_bad_request(api, dockyard):
    body = _body(dockyard)
    response = api.post(
        "/api/v2.0/registries/ping",
        json={
            "type": "harbor",
            "url": body["url"],
            "credential_type": "basic",
            "access_key": "admin",
            "access_secret": "Wrong-passw0rd",
        },
    )

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


def test_ping_registry_with_nested_wrong_credential_is_bad_request(api, dockyard):
    # The create body's shape: its credential must be checked, not ignored.
    body = _body(dockyard)
    response = api.post(
        "/api/v2.0/registries/ping",
        json={
            "type": "harbor",
            "url": body["url"],
            "credential": {
                "type": "basic",
                "access_key": "admin",
                "access_secret": "Wrong-passw0rd",
            },
        },
    )

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


def test_create_registry_unreachable_is_stored_unhealthy(api):
    body = {
        "name": f"gone-{secrets.token_hex(4)}",
        "url": f"http://127.0.0.1:{free_port()}",
        "type": "docker-registry",
    }

    response = api.post("/api/v2.0/registries", json=body)
    stored = api.get(response.headers["location"])

    assert response.status_code == 201
    assert stored.json()["status"] == "unhealthy"


def test_delete_registry_then_get_is_not_found(api, dockyard):
    created = api.post("/api/v2.0/registries", json=_body(dockyard))
    location = created.headers["location"]

    deleted = api.delete(location)

    assert deleted.status_code == 200
    assert api.get(location).status_code == 404


def test_create_registry_with_unknown_type_is_bad_request(api, dockyard):
    response = api.post("/api/v2.0/registries", json=_body(dockyard, type="ftp"))

    assert response.status_code == 400
    assert "unknown type" in response.json()["errors"][0]["message"]


def test_create_registry_with_credentials_in_url_is_bad_request(api, dockyard):
    url = dockyard.url.replace("http://", "http://user:pw@")

    response = api.post("/api/v2.0/registries", json=_body(dockyard, url=url))

    assert response.status_code == 400


def test_create_registry_with_taken_name_is_conflict(api, endpoint, dockyard):
    response = api.post(
        "/api/v2.0/registries", json=_body(dockyard, name=endpoint["name"])
    )

    assert response.status_code == 409


def test_list_registries_as_non_admin_is_forbidden(dockyard):
    user = dockyard.new_user()

    response = httpx.get(
        f"{dockyard.url}/api/v2.0/registries", auth=(user.name, user.password)
    )

    assert response.status_code == 403


def test_registry_info_names_filters_and_triggers(api, endpoint):
    info = api.get(f"/api/v2.0/registries/{endpoint['id']}/info").json()

    assert info["type"] == "harbor"
    filters = {f["type"] for f in info["supported_resource_filters"]}
    assert filters == {"name", "tag", "label"}


def test_adapter_infos_offer_label_filters_for_harbor_only(api):
    infos = api.get("/api/v2.0/replication/adapterinfos").json()

    def types(kind):
        return {f["type"] for f in infos[kind]["supported_resource_filters"]}

    assert "label" in types("harbor")
    assert "label" not in types("docker-registry")


def test_replication_adapters_list_the_supported_types(api):
    adapters = api.get("/api/v2.0/replication/adapters").json()

    assert {"harbor", "docker-registry", "docker-hub", "github-ghcr"} <= set(adapters)
    assert {"quay", "gitlab"} <= set(adapters)


def test_delete_registry_used_by_proxy_project_is_refused(api, endpoint):
    name = f"proxy-{secrets.token_hex(4)}"
    created = api.post(
        "/api/v2.0/projects",
        json={"project_name": name, "registry_id": endpoint["id"]},
    )

    response = api.delete(f"/api/v2.0/registries/{endpoint['id']}")

    assert created.status_code == 201, created.text
    assert response.status_code == 412
    api.delete(f"/api/v2.0/projects/{name}", headers={"X-Is-Resource-Name": "true"})


def test_create_proxy_project_shows_its_registry_id(api, endpoint):
    name = f"proxy-{secrets.token_hex(4)}"
    api.post(
        "/api/v2.0/projects",
        json={"project_name": name, "registry_id": endpoint["id"]},
    )

    project = api.get(
        f"/api/v2.0/projects/{name}", headers={"X-Is-Resource-Name": "true"}
    ).json()

    assert project["registry_id"] == endpoint["id"]
    api.delete(f"/api/v2.0/projects/{name}", headers={"X-Is-Resource-Name": "true"})


def test_create_proxy_project_as_non_admin_is_forbidden(dockyard, endpoint):
    user = dockyard.new_user()

    response = httpx.post(
        f"{dockyard.url}/api/v2.0/projects",
        json={
            "project_name": f"p-{secrets.token_hex(4)}",
            "registry_id": endpoint["id"],
        },
        auth=(user.name, user.password),
    )

    assert response.status_code == 403


def test_adapter_infos_fix_the_docker_hub_url(api):
    infos = api.get("/api/v2.0/replication/adapterinfos").json()

    assert infos["docker-hub"]["endpoint_pattern"] == {
        "endpoint_type": "EndpointPatternTypeFix",
        "endpoints": [{"key": "hub.docker.com", "value": "https://hub.docker.com"}],
    }
    assert infos["docker-hub"]["credential_pattern"] is None


def test_adapter_infos_give_quay_harbor_s_json_file_credential(api):
    infos = api.get("/api/v2.0/replication/adapterinfos").json()

    assert infos["quay"]["credential_pattern"]["access_key_data"] == "json_file"
    assert infos["gitlab"]["endpoint_pattern"]["endpoints"] == []


def _source(api, dockyard, kind):
    """An endpoint of `kind` at the shared Dockyard, without credentials."""
    body = {"name": f"src-{secrets.token_hex(4)}", "url": dockyard.url, "type": kind}
    response = api.post("/api/v2.0/registries", json=body)
    assert response.status_code == 201, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def _pull_policy(api, registry_id, name_filter):
    return api.post(
        "/api/v2.0/replication/policies",
        json={
            "name": f"pull-{secrets.token_hex(4)}",
            "src_registry": {"id": registry_id},
            "filters": [{"type": "name", "value": name_filter}],
        },
    )


def test_pull_policy_with_wildcard_from_ghcr_without_token_is_bad_request(
    api, dockyard
):
    registry_id = _source(api, dockyard, "github-ghcr")

    response = _pull_policy(api, registry_id, "octo/*")

    assert response.status_code == 400
    assert "read:packages" in response.json()["errors"][0]["message"]


def test_pull_policy_naming_ghcr_repositories_is_created(api, dockyard):
    registry_id = _source(api, dockyard, "github-ghcr")

    response = _pull_policy(api, registry_id, "octo/{web,db}")

    assert response.status_code == 201, response.text


def test_pull_policy_from_docker_hub_without_namespace_is_bad_request(
    api, dockyard
):
    registry_id = _source(api, dockyard, "docker-hub")

    response = _pull_policy(api, registry_id, "**")

    assert error_code(response) == "BAD_REQUEST"


def test_registry_info_offers_source_triggers(api, endpoint):
    info = api.get(f"/api/v2.0/registries/{endpoint['id']}/info").json()

    assert info["supported_triggers"] == ["manual", "scheduled"]



def _asking_for_basic(seen):
    return Answer(401, {"www-authenticate": 'Basic realm="x"'})


@pytest.fixture
def guarded(api):
    """An endpoint with a stored secret at a registry that asks for Basic;
    the id and the secret."""
    secret = secrets.token_hex(8)
    with HostileRegistry(fallback=_asking_for_basic) as registry:
        response = api.post(
            "/api/v2.0/registries",
            json={
                "name": f"guarded-{secrets.token_hex(4)}",
                "url": registry.url,
                "type": "docker-registry",
                "credential": {
                    "type": "basic",
                    "access_key": "user",
                    "access_secret": secret,
                },
            },
        )
    assert response.status_code == 201, response.text
    yield int(response.headers["location"].rsplit("/", 1)[1]), secret


def _secrets_sent(registry, secret) -> list[str]:
    encoded = base64.b64encode(f"user:{secret}".encode()).decode()
    return [
        r.target
        for r in registry.requests
        if r.headers.get("authorization") == f"Basic {encoded}"
    ]


def test_ping_of_a_stored_endpoint_at_another_url_does_not_send_its_secret(
    api, guarded
):
    # Else any administrator could read a stored secret by pinging the
    # endpoint at a server of their own: secrets are never given back.
    registry_id, secret = guarded

    with HostileRegistry(fallback=_asking_for_basic) as elsewhere:
        api.post(
            "/api/v2.0/registries/ping", json={"id": registry_id, "url": elsewhere.url}
        )

    assert elsewhere.requests
    assert _secrets_sent(elsewhere, secret) == []


def test_update_moving_an_endpoint_to_another_url_does_not_send_its_secret(
    api, guarded
):
    registry_id, secret = guarded

    with HostileRegistry(fallback=_asking_for_basic) as elsewhere:
        api.put(f"/api/v2.0/registries/{registry_id}", json={"url": elsewhere.url})

    assert elsewhere.requests
    assert _secrets_sent(elsewhere, secret) == []
