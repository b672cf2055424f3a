"""Pull-based replication with wildcard name filters from each endpoint type.

Docker Hub, Quay, GitLab and GitHub cannot be reached here: each is a
stand-in (tests/e2e/standins.py) serving its listing API in front of a real
Go registry (Debian's docker-registry), so what is copied is real. The
`harbor` type is the shared Dockyard itself, listed through its
/api/v2.0. Pages are one repository long, so a listing that stops after
the first page misses repositories.
"""

import secrets
import time

import httpx
import pytest

from tests.e2e.conftest import push_image
from tests.e2e.standins import StandIn

_WAIT_SECONDS = 120


@pytest.fixture
def api(dockyard):
    with httpx.Client(
        base_url=f"{dockyard.url}/api/v2.0",
        auth=("admin", dockyard.admin_password),
        timeout=60,
    ) as client:
        yield client


def _created_id(response) -> int:
    assert response.status_code == 201, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def _pull_policy(api, url, kind, credential, name_filter, project, replace=1):
    """An endpoint and a pull-based policy copying `name_filter` from it
    into `project`; the policy's id."""
    body = {"name": f"src-{secrets.token_hex(4)}", "url": url, "type": kind}
    if credential:
        body["credential"] = credential
    registry_id = _created_id(api.post("/registries", json=body))
    policy = {
        "name": f"pull-{secrets.token_hex(4)}",
        "src_registry": {"id": registry_id},
        "dest_namespace": project,
        "dest_namespace_replace_count": replace,
        "filters": [{"type": "name", "value": name_filter}],
    }
    return _created_id(api.post("/replication/policies", json=policy))


def _run(api, policy_id) -> dict:
    execution_id = _created_id(
        api.post("/replication/executions", json={"policy_id": policy_id})
    )
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        execution = api.get(f"/replication/executions/{execution_id}").json()
        if execution["status"] != "InProgress":
            return execution
        time.sleep(0.5)
    raise AssertionError(f"execution {execution_id} still running")


def _repositories(api, project) -> set[str]:
    found = api.get(f"/projects/{project}/repositories", params={"page_size": 100})
    assert found.status_code == 200, found.text
    return {r["name"] for r in found.json()}


def _task_logs(api, execution) -> str:
    tasks = api.get(f"/replication/executions/{execution['id']}/tasks").json()
    return "\n".join(
        api.get(
            f"/replication/executions/{execution['id']}/tasks/{t['id']}/log"
        ).text
        for t in tasks
    )


def _push_all(upstream, images, *names):
    for name in names:
        upstream.push(images, "busybox:1.36", f"{name}:1.36")


def test_pull_from_docker_hub_lists_the_namespace_through_every_page(
    api, dockyard, upstream, images
):
    _push_all(upstream, images, "team/a", "team/b", "team/c", "other/x")
    project = dockyard.new_project("hub")
    login = {"type": "basic", "access_key": "hubuser", "access_secret": "hubpass"}

    with StandIn(
        "hub", upstream.host, token="hub-jwt", login=("hubuser", "hubpass")
    ) as hub:
        policy_id = _pull_policy(api, hub.url, "docker-hub", login, "team/*", project)
        execution = _run(api, policy_id)

    assert execution["status"] == "Succeed", _task_logs(api, execution)
    assert _repositories(api, project) == {f"{project}/{n}" for n in "abc"}


def test_pull_from_docker_hub_rate_limited_fails_with_the_reset_in_the_log(
    api, dockyard, upstream, images
):
    _push_all(upstream, images, "team/a")
    project = dockyard.new_project("hub429")

    with StandIn("hub", upstream.host) as hub:
        policy_id = _pull_policy(api, hub.url, "docker-hub", None, "team/*", project)
        hub.rate_limited = True
        execution = _run(api, policy_id)

    assert execution["status"] == "Failed"
    assert (
        "upstream answered 429 (rate limited; limit 100;w=21600, "
        "remaining 0;w=21600, resets in 3600s)"
    ) in _task_logs(api, execution)


def test_pull_from_quay_with_oauth_token_lists_and_pulls_with_it(
    api, dockyard, upstream, images
):
    _push_all(upstream, images, "team/a", "team/b", "other/x")
    project = dockyard.new_project("quay")
    oauth = {"type": "oauth", "access_secret": "quay-oauth-token"}

    with StandIn(
        "quay", upstream.host, token="quay-oauth-token", registry_token=True
    ) as quay:
        policy_id = _pull_policy(api, quay.url, "quay", oauth, "team/**", project)
        execution = _run(api, policy_id)

    assert execution["status"] == "Succeed", _task_logs(api, execution)
    assert _repositories(api, project) == {f"{project}/a", f"{project}/b"}
    assert "GET /api/v1/repository?namespace=team&public=true&next_page=page-2" in (
        quay.requests
    )


def test_quay_endpoint_with_wrong_oauth_token_is_unhealthy(api, upstream):
    with StandIn("quay", upstream.host, token="right", registry_token=True) as quay:
        created = api.post(
            "/registries",
            json={
                "name": f"quay-{secrets.token_hex(4)}",
                "url": quay.url,
                "type": "quay",
                "credential": {"type": "oauth", "access_secret": "wrong"},
            },
        )
        registry = api.get(f"/registries/{_created_id(created)}").json()

    assert registry["status"] == "unhealthy"


def test_pull_from_gitlab_lists_project_repositories_through_every_page(
    api, dockyard, upstream, images
):
    _push_all(upstream, images, "group/app/web", "group/app/db", "group/other/x")
    project = dockyard.new_project("gitlab")
    login = {"type": "basic", "access_key": "gluser", "access_secret": "glpat-1"}

    with StandIn(
        "gitlab", upstream.host, token="glpat-1", login=("gluser", "glpat-1")
    ) as gitlab:
        policy_id = _pull_policy(
            api, gitlab.url, "gitlab", login, "group/app/*", project, replace=2
        )
        execution = _run(api, policy_id)

    assert execution["status"] == "Succeed", _task_logs(api, execution)
    assert _repositories(api, project) == {f"{project}/web", f"{project}/db"}


def test_pull_from_ghcr_lists_a_user_s_packages_through_every_page(
    api, dockyard, upstream, images
):
    _push_all(upstream, images, "user-octo/web", "user-octo/db", "user-other/x")
    project = dockyard.new_project("ghcr")
    token = {"type": "basic", "access_key": "octo", "access_secret": "ghp_token"}

    with StandIn("github", upstream.host, token="ghp_token") as github:
        policy_id = _pull_policy(
            api, github.url, "github-ghcr", token, "user-octo/*", project
        )
        execution = _run(api, policy_id)

    assert execution["status"] == "Succeed", _task_logs(api, execution)
    assert _repositories(api, project) == {f"{project}/web", f"{project}/db"}


def _admin(dockyard) -> dict:
    """The shared Dockyard's admin as an endpoint credential."""
    password = dockyard.admin_password
    return {"type": "basic", "access_key": "admin", "access_secret": password}


def test_pull_from_harbor_type_lists_projects_through_its_api(api, dockyard, images):
    source = dockyard.new_project("hsrc")
    for name in ("web", "db"):
        push_image(dockyard, images, "busybox:1.36", f"{source}/{name}:1.36")
    project = dockyard.new_project("hdst")
    admin = _admin(dockyard)

    policy_id = _pull_policy(
        api, dockyard.url, "harbor", admin, f"{source}*/*", project
    )
    execution = _run(api, policy_id)

    assert execution["status"] == "Succeed", _task_logs(api, execution)
    assert _repositories(api, project) == {f"{project}/web", f"{project}/db"}


def test_pull_from_harbor_type_follows_project_pages_on_the_same_api(
    api, dockyard, images
):
    # More than one page of projects (100 a page): the next page's link
    # names its path from the server's root (`/api/v2.0/projects?page=2`).
    for _ in range(100):
        filler = {"project_name": f"hfill-{secrets.token_hex(6)}"}
        assert api.post("/projects", json=filler).status_code == 201
    source = dockyard.new_project("hpaged")
    push_image(dockyard, images, "busybox:1.36", f"{source}/web:1.36")
    project = dockyard.new_project("hpdst")
    admin = _admin(dockyard)
    policy_id = _pull_policy(
        api, dockyard.url, "harbor", admin, f"{source}*/*", project
    )
    mark = dockyard.log_size()

    execution = _run(api, policy_id)

    assert execution["status"] == "Succeed", _task_logs(api, execution)
    assert _repositories(api, project) == {f"{project}/web"}
    served = dockyard.log_since(mark)
    # Listed through the API's pages, not its catalog after a wrong path.
    assert "path=/api/v2.0/api/v2.0/" not in served
    assert "path=/v2/_catalog" not in served
