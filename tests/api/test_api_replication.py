"""`/api/v2.0/replication/policies` and `/executions`: shapes and validation.

The endpoint is a real registry (the shared Dockyard itself); copies are
tested end to end in tests/e2e/test_replication.py.
"""

import secrets
import time

import httpx
import pytest

from tests.api.conftest import error_code


@pytest.fixture
def endpoint(api, dockyard):
    response = api.post(
        "/api/v2.0/registries",
        json={
            "name": f"peer-{secrets.token_hex(4)}",
            "url": dockyard.url,
            "type": "harbor",
            "credential": {
                "type": "basic",
                "access_key": "admin",
                "access_secret": dockyard.admin_password,
            },
        },
    )
    assert response.status_code == 201, response.text
    registry_id = int(response.headers["location"].rsplit("/", 1)[1])
    yield registry_id
    api.delete(f"/api/v2.0/registries/{registry_id}")


def _policy(endpoint, **extra):
    return {
        "name": f"policy-{secrets.token_hex(4)}",
        "dest_registry": {"id": endpoint},
        "dest_namespace": "mirror",
        "filters": [
            {"type": "name", "value": "library/**"},
            {"type": "tag", "value": "v*", "decoration": "excludes"},
        ],
        "trigger": {"type": "manual"},
        **extra,
    }


@pytest.fixture
def policy(api, endpoint):
    response = api.post("/api/v2.0/replication/policies", json=_policy(endpoint))
    assert response.status_code == 201, response.text
    policy_id = int(response.headers["location"].rsplit("/", 1)[1])
    yield api.get(f"/api/v2.0/replication/policies/{policy_id}").json()
    api.delete(f"/api/v2.0/replication/policies/{policy_id}")


def test_create_policy_answer_has_harbor_shape(policy, endpoint):
    assert policy["dest_registry"]["id"] == endpoint
    assert policy["src_registry"]["id"] == 0
    assert policy["filters"][1] == {
        "type": "tag",
        "value": "v*",
        "decoration": "excludes",
    }
    assert policy["trigger"] == {"type": "manual", "trigger_settings": {"cron": ""}}
    assert (policy["override"], policy["enabled"], policy["speed"]) == (True, True, -1)


def test_update_policy_changes_the_trigger(api, policy, endpoint):
    body = _policy(
        endpoint,
        name=policy["name"],
        trigger={"type": "scheduled", "trigger_settings": {"cron": "0 0 * * * *"}},
    )

    response = api.put(f"/api/v2.0/replication/policies/{policy['id']}", json=body)

    assert response.status_code == 200, response.text
    stored = api.get(f"/api/v2.0/replication/policies/{policy['id']}").json()
    assert stored["trigger"]["trigger_settings"]["cron"] == "0 0 * * * *"


def test_list_policies_by_name_finds_the_policy(api, policy):
    response = api.get(
        "/api/v2.0/replication/policies", params={"name": policy["name"]}
    )

    assert [p["id"] for p in response.json()] == [policy["id"]]
    assert response.headers["x-total-count"] == "1"


def test_create_policy_with_taken_name_returns_conflict(api, policy, endpoint):
    response = api.post(
        "/api/v2.0/replication/policies", json=_policy(endpoint, name=policy["name"])
    )

    assert response.status_code == 409
    assert error_code(response) == "CONFLICT"


@pytest.mark.parametrize(
    "change",
    [
        {"dest_registry": None},
        {"src_registry": {"id": 1}},
        {"trigger": {"type": "sometimes"}},
        {"trigger": {"type": "scheduled", "trigger_settings": {"cron": "0 * * * *"}}},
        {"filters": [{"type": "name", "value": "library/[abc"}]},
        {"filters": [{"type": "colour", "value": "red"}]},
        {"filters": [{"type": "tag", "value": "1", "decoration": "maybe"}]},
        {"dest_registry": {"id": 999999}},
        {"name": ""},
    ],
    ids=[
        "no-registry",
        "both-registries",
        "unknown-trigger",
        "five-field-cron",
        "bad-pattern",
        "unknown-filter",
        "unknown-decoration",
        "missing-registry",
        "no-name",
    ],
)
def test_create_policy_with_invalid_field_returns_bad_request(api, endpoint, change):
    response = api.post(
        "/api/v2.0/replication/policies", json=_policy(endpoint, **change)
    )

    assert response.status_code == 400, response.text
    assert error_code(response) == "BAD_REQUEST"


def test_create_event_based_pull_policy_returns_bad_request(api, endpoint):
    body = _policy(
        endpoint,
        dest_registry=None,
        src_registry={"id": endpoint},
        trigger={"type": "event_based"},
    )

    response = api.post("/api/v2.0/replication/policies", json=body)

    assert response.status_code == 400


def test_policies_as_non_admin_are_forbidden(dockyard, policy):
    user = dockyard.new_user("plain")
    with httpx.Client(base_url=dockyard.url, auth=(user.name, user.password)) as client:
        response = client.get("/api/v2.0/replication/policies")

    assert response.status_code == 403


def test_delete_registry_used_by_a_policy_returns_precondition(api, policy, endpoint):
    response = api.delete(f"/api/v2.0/registries/{endpoint}")

    assert response.status_code == 412


def test_get_unknown_policy_returns_not_found(api):
    response = api.get("/api/v2.0/replication/policies/999999")

    assert response.status_code == 404
    assert error_code(response) == "NOT_FOUND"


def test_start_execution_of_unknown_policy_returns_not_found(api):
    response = api.post("/api/v2.0/replication/executions", json={"policy_id": 999999})

    assert response.status_code == 404


def test_start_execution_of_disabled_policy_returns_bad_request(api, endpoint):
    created = api.post(
        "/api/v2.0/replication/policies", json=_policy(endpoint, enabled=False)
    )
    policy_id = int(created.headers["location"].rsplit("/", 1)[1])

    response = api.post(
        "/api/v2.0/replication/executions", json={"policy_id": policy_id}
    )

    assert response.status_code == 400
    api.delete(f"/api/v2.0/replication/policies/{policy_id}")


def test_get_unknown_execution_returns_not_found(api):
    response = api.get("/api/v2.0/replication/executions/999999")

    assert response.status_code == 404


def test_list_executions_with_unknown_status_returns_bad_request(api):
    response = api.get("/api/v2.0/replication/executions", params={"status": "Meh"})

    assert response.status_code == 400


@pytest.fixture
def plain_endpoint(api, dockyard):
    """A `docker-registry`-type endpoint: a registry without labels."""
    response = api.post(
        "/api/v2.0/registries",
        json={
            "name": f"plain-{secrets.token_hex(4)}",
            "url": dockyard.url,
            "type": "docker-registry",
        },
    )
    assert response.status_code == 201, response.text
    registry_id = int(response.headers["location"].rsplit("/", 1)[1])
    yield registry_id
    api.delete(f"/api/v2.0/registries/{registry_id}")


def _pull_policy(source, filters):
    return {
        "name": f"policy-{secrets.token_hex(4)}",
        "src_registry": {"id": source},
        "dest_namespace": "mirror",
        "filters": filters,
    }


def test_create_push_policy_with_label_filter_keeps_it(api, endpoint):
    label = {"type": "label", "value": ["prod", "gold"], "decoration": "excludes"}
    body = _policy(endpoint, filters=[label])

    response = api.post("/api/v2.0/replication/policies", json=body)

    assert response.status_code == 201, response.text
    stored = api.get(response.headers["location"]).json()
    api.delete(response.headers["location"])
    assert stored["filters"] == [label]


def test_create_pull_policy_with_label_filter_from_harbor_source_succeeds(
    api, endpoint
):
    body = _pull_policy(endpoint, [{"type": "label", "value": ["prod"]}])

    response = api.post("/api/v2.0/replication/policies", json=body)

    assert response.status_code == 201, response.text
    api.delete(response.headers["location"])


def test_create_pull_policy_with_label_filter_from_plain_registry_is_refused(
    api, plain_endpoint
):
    body = _pull_policy(plain_endpoint, [{"type": "label", "value": ["prod"]}])

    response = api.post("/api/v2.0/replication/policies", json=body)

    assert response.status_code == 400
    assert "no labels" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "value", ["prod", None, [""], [3]], ids=["string", "null", "empty-name", "number"]
)
def test_create_policy_with_bad_label_filter_value_returns_bad_request(
    api, endpoint, value
):
    body = _policy(endpoint, filters=[{"type": "label", "value": value}])

    response = api.post("/api/v2.0/replication/policies", json=body)

    assert response.status_code == 400, response.text
    assert error_code(response) == "BAD_REQUEST"


def _ended_execution(api, policy_id):
    execution_id = int(
        api.post("/api/v2.0/replication/executions", json={"policy_id": policy_id})
        .headers["location"]
        .rsplit("/", 1)[1]
    )
    for _ in range(600):
        execution = api.get(f"/api/v2.0/replication/executions/{execution_id}")
        if execution.json()["status"] != "InProgress":
            return execution_id
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not end")


def test_deleted_policy_takes_its_executions_along(api, endpoint):
    # SQLite gives a deleted row's id to the next policy: executions left
    # behind would show (and count as running) for a policy that never ran.
    body = _policy(endpoint, filters=[{"type": "name", "value": "none-*/nothing"}])
    created = api.post("/api/v2.0/replication/policies", json=body)
    policy_id = int(created.headers["location"].rsplit("/", 1)[1])
    execution_id = _ended_execution(api, policy_id)

    deleted = api.delete(f"/api/v2.0/replication/policies/{policy_id}")

    assert deleted.status_code == 200, deleted.text
    gone = api.get(f"/api/v2.0/replication/executions/{execution_id}")
    assert gone.status_code == 404
