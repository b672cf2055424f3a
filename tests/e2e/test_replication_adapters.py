"""Pull-based replication with wildcard name filters from each endpoint type.

Docker Hub, Quay, GitLab and GitHub cannot be reached here: each is a
stand-in (tests/e2e/standins.py) serving its listing API in front of a real
Go registry (Debian's docker-registry), so what is copied is real. The
`harbor` type is the shared Dockyard itself, listed through its
/api/v2.0. Pages are one repository long, so a listing that stops after
the first page misses repositories.
"""

import secrets

from tests.e2e.conftest import push_image
from tests.e2e.replication_api import (
    create_endpoint,
    create_policy,
    created_id,
    project_repositories,
    run_policy,
    task_logs,
)
from tests.e2e.standins import StandIn


def _pull_policy(api, url, kind, credential, name_filter, project, replace=1):
    """An endpoint and a pull-based policy copying `name_filter` from it
    into `project`; the policy's id."""
    return create_policy(
        api,
        src_registry={"id": create_endpoint(api, url, kind, credential)},
        dest_namespace=project,
        dest_namespace_replace_count=replace,
        filters=[{"type": "name", "value": name_filter}],
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
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/{n}" for n in "abc"}


def test_pull_from_docker_hub_rate_limited_fails_with_the_reset_in_the_log(
    api, dockyard, upstream, images
):
    _push_all(upstream, images, "team/a")
    project = dockyard.new_project("hub429")

    with StandIn("hub", upstream.host) as hub:
        policy_id = _pull_policy(api, hub.url, "docker-hub", None, "team/*", project)
        hub.rate_limited = True
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Failed"
    assert (
        "upstream answered 429 (rate limited; limit 100;w=21600, "
        "remaining 0;w=21600, resets in 3600s)"
    ) in task_logs(api, execution)


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
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/a", f"{project}/b"}
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
        registry = api.get(f"/registries/{created_id(created)}").json()

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
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/web", f"{project}/db"}


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
        execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/web", f"{project}/db"}


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
    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/web", f"{project}/db"}


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

    execution = run_policy(api, policy_id)

    assert execution["status"] == "Succeed", task_logs(api, execution)
    assert project_repositories(api, project) == {f"{project}/web"}
    served = dockyard.log_since(mark)
    # Listed through the API's pages, not its catalog after a wrong path.
    assert "path=/api/v2.0/api/v2.0/" not in served
    assert "path=/v2/_catalog" not in served
