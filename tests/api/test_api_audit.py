"""The audit trail: API changes and registry pushes, pulls and deletes."""

import contextlib
import secrets
import time
from datetime import UTC, datetime, timedelta

import httpx

from dockyard.audit import FLUSH_SECONDS
from tests.api.conftest import Registry, error_code

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


# -- /auditlog-exts (Harbor 2.13) --------------------------------------------


def ext_logs(api, **query):
    return api.get(f"{API}/auditlog-exts", params={"page_size": 100, **query}).json()


def wait_for(find, attempts=50):
    """`find()`'s first non-empty answer, polling for the batched writes."""
    for _ in range(attempts):
        found = find()
        if found:
            return found
        time.sleep(0.1)
    return find()


@contextlib.contextmanager
def audit_disabled(api, event_types):
    key = "disabled_audit_log_event_types"
    before = api.get(f"{API}/configurations").json()[key]["value"]
    assert api.put(f"{API}/configurations", json={key: event_types}).status_code == 200
    try:
        yield
    finally:
        api.put(f"{API}/configurations", json={key: before})


def test_event_types_list_harbor_names(api):
    response = api.get(f"{API}/auditlog-exts/events")

    assert response.status_code == 200
    assert {
        "create_artifact",
        "delete_artifact",
        "pull_artifact",
        "create_project",
        "delete_project",
        "create_user",
        "login_user",
        "logout_user",
        "update_configuration",
    } <= {item["event_type"] for item in response.json()}


def test_event_types_are_refused_to_anonymous(dockyard):
    response = httpx.get(f"{dockyard.url}{API}/auditlog-exts/events")

    assert response.status_code == 401


def test_auditlog_ext_describes_the_change(api):
    project = f"p{secrets.token_hex(4)}"

    api.post(f"{API}/projects", json={"project_name": project})

    [entry] = ext_logs(api, q=f"resource={project},resource_type=project")
    assert entry["operation_description"] == f"create project {project}"
    assert (entry["operation"], entry["operation_result"]) == ("create", True)


def test_auditlog_ext_has_harbor_fields(api):
    project = f"p{secrets.token_hex(4)}"
    api.post(f"{API}/projects", json={"project_name": project})

    [entry] = ext_logs(api, q=f"resource={project}")

    assert set(entry) == {
        "id",
        "username",
        "resource",
        "resource_type",
        "operation",
        "operation_description",
        "operation_result",
        "op_time",
    }


def test_auditlog_ext_filters_by_operation(api):
    project = f"p{secrets.token_hex(4)}"
    api.post(f"{API}/projects", json={"project_name": project})
    api.delete(f"{API}/projects/{project}")

    entries = ext_logs(api, q=f"resource={project},operation=delete")

    assert [e["operation"] for e in entries] == ["delete"]


def test_auditlog_ext_filters_by_op_time_range(api):
    project = f"p{secrets.token_hex(4)}"
    api.post(f"{API}/projects", json={"project_name": project})
    now = datetime.now(UTC)
    since = f"{now - timedelta(minutes=5):%Y-%m-%d %H:%M:%S}"
    until = f"{now + timedelta(minutes=5):%Y-%m-%dT%H:%M:%SZ}"
    later = f"{now + timedelta(hours=1):%Y-%m-%d %H:%M:%S}"

    found = ext_logs(api, q=f"resource={project},op_time=[{since}~{until}]")
    missed = ext_logs(api, q=f"resource={project},op_time=[{later}~]")

    assert [e["resource"] for e in found] == [project]
    assert missed == []


def test_auditlog_ext_with_malformed_op_time_returns_400(api):
    response = api.get(f"{API}/auditlog-exts", params={"q": "op_time=[yesterday~]"})

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


def test_failed_login_is_a_failed_login_event(api, dockyard):
    name = f"nobody-{secrets.token_hex(3)}"

    httpx.get(f"{dockyard.url}/v2/", auth=(name, "wrong"))

    entries = wait_for(lambda: ext_logs(api, q=f"username={name},operation=login"))
    assert (entries[0]["resource_type"], entries[0]["operation_result"]) == (
        "user",
        False,
    )


def test_project_auditlog_ext_lists_the_projects_entries(dockyard):
    project = dockyard.new_project("audit")
    owner = dockyard.new_user("owner", project, "projectAdmin")

    response = httpx.get(
        f"{dockyard.url}{API}/projects/{project}/auditlog-exts",
        auth=(owner.name, owner.password),
    )

    assert response.status_code == 200
    assert {e["operation"] for e in response.json()} >= {"create"}


def test_project_auditlog_ext_is_refused_to_guests(dockyard):
    # Harbor keeps project logs for project admins since the audit log ext API.
    project = dockyard.new_project("audit")
    guest = dockyard.new_user("guest", project, "guest")

    response = httpx.get(
        f"{dockyard.url}{API}/projects/{project}/auditlog-exts",
        auth=(guest.name, guest.password),
    )

    assert response.status_code == 403


def test_project_auditlog_ext_is_refused_to_limited_guests(dockyard):
    project = dockyard.new_project("audit")
    guest = dockyard.new_user("limited", project, "limitedGuest")

    response = httpx.get(
        f"{dockyard.url}{API}/projects/{project}/auditlog-exts",
        auth=(guest.name, guest.password),
    )

    assert response.status_code == 403
    assert error_code(response) == "FORBIDDEN"


def test_project_auditlog_ext_is_refused_to_anonymous(dockyard):
    project = dockyard.new_project("audit")

    response = httpx.get(f"{dockyard.url}{API}/projects/{project}/auditlog-exts")

    assert response.status_code == 401


def test_auditlog_ext_hides_other_projects_from_project_admins(api, dockyard):
    mine = dockyard.new_project("mine")
    theirs = dockyard.new_project("theirs")
    user = dockyard.new_user("member", mine, "projectAdmin")

    response = httpx.get(
        f"{dockyard.url}{API}/auditlog-exts",
        params={"page_size": 100, "q": "resource_type=project"},
        auth=(user.name, user.password),
    )

    resources = {e["resource"] for e in response.json()}
    assert mine in resources
    assert theirs not in resources


# -- disabled event types ------------------------------------------------------


def test_configurations_show_disabled_event_types(api):
    with audit_disabled(api, "create_user,delete_user"):
        body = api.get(f"{API}/configurations").json()

    assert body["disabled_audit_log_event_types"] == {
        "value": "create_user,delete_user",
        "editable": True,
    }


def test_malformed_disabled_event_types_are_refused(api):
    response = api.put(
        f"{API}/configurations",
        json={"disabled_audit_log_event_types": "create user;drop"},
    )

    assert response.status_code == 400


def test_disabled_event_type_is_not_recorded(api):
    name = f"a{secrets.token_hex(4)}"

    with audit_disabled(api, "create_user"):
        api.post(f"{API}/users", json={"username": name, "password": "Str0ng-pass"})

    assert ext_logs(api, q=f"resource={name}") == []


def test_reenabled_event_type_is_recorded_again(api):
    name = f"a{secrets.token_hex(4)}"
    with audit_disabled(api, "create_user"):
        pass

    api.post(f"{API}/users", json={"username": name, "password": "Str0ng-pass"})

    assert [e["operation"] for e in ext_logs(api, q=f"resource={name}")] == ["create"]


def test_disabling_one_type_keeps_the_others(api):
    project = f"p{secrets.token_hex(4)}"

    with audit_disabled(api, "delete_project"):
        api.post(f"{API}/projects", json={"project_name": project})
        api.delete(f"{API}/projects/{project}")

    assert [e["operation"] for e in ext_logs(api, q=f"resource={project}")] == [
        "create"
    ]


def test_disabled_pull_events_are_not_recorded(api):
    registry = Registry(api, f"library/audit-{secrets.token_hex(3)}")
    registry.put_manifest("v1", registry.image_manifest())
    resource = f"{registry.repository}:v1"

    with audit_disabled(api, "pull_artifact"):
        registry.client.get(registry.url("manifests/v1"))
        time.sleep(3 * FLUSH_SECONDS)  # let the batch be written, or dropped

    assert logs(api, q=f"resource={resource},operation=pull") == []


def test_reenabled_pull_events_are_recorded_again(api):
    registry = Registry(api, f"library/audit-{secrets.token_hex(3)}")
    registry.put_manifest("v1", registry.image_manifest())
    resource = f"{registry.repository}:v1"
    with audit_disabled(api, "pull_artifact"):
        pass

    registry.client.get(registry.url("manifests/v1"))

    assert wait_for(lambda: logs(api, q=f"resource={resource},operation=pull"))


def test_disabling_event_types_is_recorded_even_when_disabled(api):
    with audit_disabled(api, "update_configuration"):
        pass

    entries = ext_logs(api, q="resource_type=configuration", page_size=1)
    assert "disabled_audit_log_event_types" in entries[0]["resource"]
