"""Access control as data: Harbor's matrix per role on the API and on `/v2`
alike, custom roles, repository grants and user groups."""

from __future__ import annotations

import secrets

import httpx
import jwt
import pytest

API = "/api/v2.0"
PASSWORD = "Matrix-pass1"
ROLE_IDS = {
    "projectAdmin": 1,
    "maintainer": 4,
    "developer": 2,
    "guest": 3,
    "limitedGuest": 5,
}
CALLERS = [*ROLE_IDS, "outsider", "anonymous"]


def new_user(api, prefix="u"):
    name = f"{prefix}-{secrets.token_hex(4)}".lower()
    response = api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return name


def new_project(api, public=False):
    name = f"acl-{secrets.token_hex(4)}"
    response = api.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": str(public).lower()}},
    )
    assert response.status_code == 201, response.text
    return name


def add_member(api, project, username, role_id):
    response = api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": role_id, "member_user": {"username": username}},
    )
    assert response.status_code == 201, response.text


def push_image(api, repository):
    """A one-layer image tagged `v1`, pushed with the admin's Basic credentials."""
    from tests.api.conftest import Registry

    registry = Registry(api, repository)
    response = registry.put_manifest("v1", registry.image_manifest())
    assert response.status_code == 201, response.text


def token_actions(dockyard, repository, auth, asked="pull,push,delete"):
    response = httpx.get(
        f"{dockyard.url}/service/token",
        params={"service": "dockyard", "scope": f"repository:{repository}:{asked}"},
        auth=auth,
    )
    assert response.status_code == 200, response.text
    access = jwt.decode(response.json()["token"], options={"verify_signature": False})
    return {a for entry in access["access"] for a in entry["actions"]}


@pytest.fixture(scope="module")
def matrix(dockyard):
    """A private project with one user per role, an outsider, and an image."""
    with httpx.Client(
        base_url=dockyard.url, auth=("admin", dockyard.admin_password), timeout=60
    ) as api:
        project = new_project(api)
        users = {}
        for role, role_id in ROLE_IDS.items():
            users[role] = new_user(api, role.lower())
            add_member(api, project, users[role], role_id)
        users["outsider"] = new_user(api, "outsider")
        push_image(api, f"{project}/app")
        project_id = api.get(f"{API}/projects/{project}").json()["project_id"]
    return {"project": project, "project_id": project_id, "users": users}


def caller_auth(matrix, caller):
    if caller == "anonymous":
        return None
    return (matrix["users"][caller], PASSWORD)


def call(dockyard, matrix, caller, method, path, **kwargs):
    return httpx.request(
        method,
        f"{dockyard.url}{API}{path}".format(project=matrix["project"]),
        auth=caller_auth(matrix, caller),
        timeout=60,
        **kwargs,
    )


# What each caller may take on /v2 in a private project (Harbor's matrix).
REGISTRY_ACTIONS = {
    "projectAdmin": {"pull", "push", "delete"},
    "maintainer": {"pull", "push", "delete"},
    "developer": {"pull", "push"},
    "guest": {"pull"},
    "limitedGuest": {"pull"},
    "outsider": set(),
    "anonymous": set(),
}


@pytest.mark.parametrize("caller", CALLERS)
def test_token_grants_registry_actions_per_role(dockyard, matrix, caller):
    granted = token_actions(
        dockyard, f"{matrix['project']}/app", caller_auth(matrix, caller)
    )

    assert granted - {"*"} == REGISTRY_ACTIONS[caller]


@pytest.mark.parametrize("caller", CALLERS)
def test_basic_auth_manifest_pull_on_v2_follows_role(dockyard, matrix, caller):
    response = httpx.get(
        f"{dockyard.url}/v2/{matrix['project']}/app/manifests/v1",
        auth=caller_auth(matrix, caller),
        headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
    )

    if "pull" in REGISTRY_ACTIONS[caller]:
        assert response.status_code == 200
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403)


# (method, path, callers allowed); the rest get 403, anonymous gets 401.
API_MATRIX = [
    ("GET", "/projects/{project}", set(ROLE_IDS)),
    ("GET", "/projects/{project}/summary", set(ROLE_IDS)),
    ("GET", "/projects/{project}/members", set(ROLE_IDS) - {"limitedGuest"}),
    ("GET", "/projects/{project}/logs", {"projectAdmin"}),
    ("GET", "/projects/{project}/auditlog-exts", {"projectAdmin"}),
    ("GET", "/projects/{project}/repositories", set(ROLE_IDS)),
    ("GET", "/projects/{project}/repositories/app", set(ROLE_IDS)),
    ("GET", "/projects/{project}/metadatas", set()),
    ("GET", "/projects/{project}/repositories/app/artifacts", set(ROLE_IDS)),
    ("GET", "/projects/{project}/repositories/app/artifacts/v1/tags", set(ROLE_IDS)),
    ("GET", "/projects/{project}/_deletable", {"projectAdmin"}),
    ("GET", "/projects/{project}/grants", set(ROLE_IDS) - {"limitedGuest"}),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path", "allowed"), API_MATRIX)
def test_api_read_follows_harbor_matrix(
    dockyard, matrix, caller, method, path, allowed
):
    response = call(dockyard, matrix, caller, method, path)

    if caller in allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403)


@pytest.mark.parametrize("caller", CALLERS)
def test_project_update_is_for_project_admins_only(dockyard, matrix, caller):
    response = call(
        dockyard,
        matrix,
        caller,
        "PUT",
        "/projects/{project}",
        json={"metadata": {"public": "false"}},
    )

    if caller == "projectAdmin":
        assert response.status_code == 200
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403)


@pytest.mark.parametrize("caller", CALLERS)
def test_tag_create_needs_tag_create_permission(dockyard, matrix, caller):
    tag = f"t{secrets.token_hex(3)}"
    response = call(
        dockyard,
        matrix,
        caller,
        "POST",
        "/projects/{project}/repositories/app/artifacts/v1/tags",
        json={"name": tag},
    )

    if caller in {"projectAdmin", "maintainer", "developer"}:
        assert response.status_code == 201
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403)


@pytest.mark.parametrize("caller", [*ROLE_IDS, "outsider"])
def test_current_user_permissions_match_the_role(dockyard, matrix, caller):
    scope = f"/project/{matrix['project_id']}"
    response = call(
        dockyard,
        matrix,
        caller,
        "GET",
        f"/users/current/permissions?scope={scope}&relative=true",
    )
    held = {(p["resource"], p["action"]) for p in response.json()}
    roles = call(dockyard, matrix, caller, "GET", "/roles").json()
    by_name = {
        r["name"]: {(p["resource"], p["action"]) for p in r["permissions"]}
        for r in roles
    }

    assert held == by_name.get(caller, set())


def test_current_user_permissions_absolute_names_carry_the_scope(dockyard, matrix):
    scope = f"/project/{matrix['project_id']}"
    response = call(
        dockyard, matrix, "guest", "GET", f"/users/current/permissions?scope={scope}"
    )

    assert {"resource": f"{scope}/repository", "action": "pull"} in response.json()


def test_public_project_lets_anonymous_read_but_not_members(dockyard, api):
    project = new_project(api, public=True)

    read = httpx.get(f"{dockyard.url}{API}/projects/{project}")
    members = httpx.get(f"{dockyard.url}{API}/projects/{project}/members")

    assert (read.status_code, members.status_code) == (200, 401)


def test_public_project_gives_non_members_harbors_public_permissions(dockyard, api):
    # Harbor's policies for public projects (rbac_util.go): scanner read is
    # one; reading a repository's record is not (members' roles give it).
    project = new_project(api, public=True)
    project_id = api.get(f"{API}/projects/{project}").json()["project_id"]
    visitor = new_user(api, "visitor")

    response = httpx.get(
        f"{dockyard.url}{API}/users/current/permissions",
        params={"scope": f"/project/{project_id}", "relative": "true"},
        auth=(visitor, PASSWORD),
    )

    held = {(p["resource"], p["action"]) for p in response.json()}
    assert ("scanner", "read") in held
    assert not {("repository", "read"), ("sbom", "read")} & held


def test_public_project_repository_record_is_closed_to_anonymous(dockyard, api):
    project = new_project(api, public=True)
    push_image(api, f"{project}/app")

    record = httpx.get(f"{dockyard.url}{API}/projects/{project}/repositories/app")
    listing = httpx.get(f"{dockyard.url}{API}/projects/{project}/repositories")

    assert (record.status_code, listing.status_code) == (401, 200)


def test_public_project_token_gives_anonymous_pull_only(dockyard, api):
    project = new_project(api, public=True)

    assert token_actions(dockyard, f"{project}/app", None) == {"pull"}


def test_builtin_roles_are_listed_with_harbor_ids(dockyard, api):
    roles = {r["id"]: r["name"] for r in api.get(f"{API}/roles").json()}

    assert {k: roles[k] for k in range(1, 6)} == {
        1: "projectAdmin",
        2: "developer",
        3: "guest",
        4: "maintainer",
        5: "limitedGuest",
    }


# Harbor's project roles as read in goharbor/harbor
# src/common/rbac/project/rbac_role.go (HEAD of August 2026): resource, then
# the actions each role holds on it. "" is the project itself.
_CRUD = "create read update delete"
_CRUDL = _CRUD + " list"
HARBOR_ROLES = {
    "projectAdmin": {
        "": "read update delete",
        "member": _CRUDL,
        "metadata": _CRUD,
        "log": "list",
        "label": _CRUDL,
        "quota": "read",
        "repository": _CRUDL + " pull push",
        "tag-retention": _CRUDL + " operate",
        "immutable-tag": "create update delete list",
        "configuration": "read update",
        "robot": _CRUDL,
        "notification-policy": _CRUDL,
        "scan": "create read stop",
        "sbom": "create read stop",
        "scanner": "create read",
        "artifact": "create read delete list",
        "artifact-addition": "read",
        "tag": "create delete list",
        "accessory": "list",
        "artifact-label": "create delete",
        "preheat-policy": _CRUDL,
        "export-cve": "create read list",
    },
    "maintainer": {
        "": "read",
        "member": "read list",
        "metadata": "read",
        "quota": "read",
        "label": _CRUDL,
        "repository": _CRUDL + " pull push",
        "tag-retention": _CRUDL + " operate",
        "accessory": "list",
        "immutable-tag": "create update delete list",
        "configuration": "read",
        "robot": "read list",
        "notification-policy": "read list",
        "scan": "create read stop",
        "sbom": "create read stop",
        "scanner": "read",
        "artifact": "create read delete list",
        "artifact-addition": "read",
        "tag": "create delete list",
        "artifact-label": "create delete",
        "export-cve": "create read list",
    },
    "developer": {
        "": "read",
        "member": "read list",
        "label": "read list",
        "quota": "read",
        "repository": "create read update list pull push",
        "tag-retention": _CRUDL + " operate",
        "configuration": "read",
        "robot": "read list",
        "scan": "read",
        "sbom": "read",
        "scanner": "read",
        "artifact": "create read list",
        "artifact-addition": "read",
        "tag": "create list",
        "accessory": "list",
        "artifact-label": "create delete",
        "export-cve": "create read list",
    },
    "guest": {
        "": "read",
        "member": "read list",
        "label": "read list",
        "quota": "read",
        "repository": "read list pull",
        "configuration": "read",
        "robot": "read list",
        "scan": "read",
        "sbom": "read",
        "scanner": "read",
        "tag": "list",
        "accessory": "list",
        "artifact": "read list",
        "artifact-addition": "read",
    },
    "limitedGuest": {
        "": "read",
        "quota": "read",
        "repository": "list read pull",
        "configuration": "read",
        "scan": "read",
        "sbom": "read",
        "scanner": "read",
        "tag": "list",
        "accessory": "list",
        "artifact": "read list",
        "artifact-addition": "read",
    },
}


@pytest.mark.parametrize("role", list(HARBOR_ROLES))
def test_builtin_role_permissions_equal_harbors(api, role):
    roles = {r["name"]: r for r in api.get(f"{API}/roles").json()}

    held = {(p["resource"], p["action"]) for p in roles[role]["permissions"]}
    assert held == {
        (resource, action)
        for resource, actions in HARBOR_ROLES[role].items()
        for action in actions.split()
    }


@pytest.mark.parametrize("caller", CALLERS)
def test_project_metadata_write_is_for_project_admins_only(dockyard, matrix, caller):
    response = call(
        dockyard,
        matrix,
        caller,
        "PUT",
        "/projects/{project}/metadatas/public",
        json={"public": "false"},
    )

    if caller == "projectAdmin":
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403)


def test_builtin_role_cannot_be_changed(api):
    response = api.put(f"{API}/roles/3", json={"name": "guest", "permissions": []})

    assert response.status_code == 403


def test_custom_role_with_unknown_permission_is_refused(api):
    response = api.post(
        f"{API}/roles",
        json={
            "name": f"r{secrets.token_hex(3)}",
            "permissions": [{"resource": "repository", "action": "fly"}],
        },
    )

    assert response.status_code == 400


def test_custom_role_is_refused_to_non_admins(dockyard, matrix):
    response = call(
        dockyard,
        matrix,
        "projectAdmin",
        "POST",
        "/roles",
        json={"name": f"r{secrets.token_hex(3)}", "permissions": []},
    )

    assert response.status_code == 403


def create_role(api, *permissions):
    response = api.post(
        f"{API}/roles",
        json={
            "name": f"role-{secrets.token_hex(3)}",
            "permissions": [{"resource": r, "action": a} for r, a in permissions],
        },
    )
    assert response.status_code == 201, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def test_custom_role_grants_exactly_its_permissions(dockyard, api):
    project = new_project(api)
    user = new_user(api)
    role_id = create_role(api, ("repository", "pull"), ("repository", "push"))
    add_member(api, project, user, role_id)

    actions = token_actions(dockyard, f"{project}/app", (user, PASSWORD))
    members = httpx.get(
        f"{dockyard.url}{API}/projects/{project}/members", auth=(user, PASSWORD)
    )

    assert (actions, members.status_code) == ({"pull", "push"}, 403)


def test_custom_role_change_takes_effect_at_once(dockyard, api):
    project = new_project(api)
    user = new_user(api)
    role_id = create_role(api, ("repository", "pull"), ("repository", "push"))
    add_member(api, project, user, role_id)
    api.put(
        f"{API}/roles/{role_id}",
        json={
            "name": f"narrowed-{role_id}",
            "permissions": [{"resource": "repository", "action": "pull"}],
        },
    )

    assert token_actions(dockyard, f"{project}/app", (user, PASSWORD)) == {"pull"}


def test_custom_role_held_by_a_member_cannot_be_deleted(api):
    project = new_project(api)
    role_id = create_role(api, ("repository", "pull"))
    add_member(api, project, new_user(api), role_id)

    response = api.delete(f"{API}/roles/{role_id}")

    assert response.status_code == 412


def grant(api, project, holder, role_id, pattern):
    return api.post(
        f"{API}/projects/{project}/grants",
        json={"holder": holder, "role_id": role_id, "repository_pattern": pattern},
    )


@pytest.fixture
def granted(dockyard, api):
    """A private project with team-a and team-b repositories, and a user
    holding developer on `team-a/**` only."""
    project = new_project(api)
    for name in ("team-a/web", "team-a/db/main", "team-b/web"):
        push_image(api, f"{project}/{name}")
    user = new_user(api, "grantee")
    response = grant(api, project, {"kind": "user", "name": user}, 2, "team-a/**")
    assert response.status_code == 201, response.text
    return {"project": project, "user": user}


def test_repository_grant_opens_matching_repositories(dockyard, granted):
    repository = f"{granted['project']}/team-a/db/main"

    actions = token_actions(dockyard, repository, (granted["user"], PASSWORD))

    assert actions == {"pull", "push"}


def test_repository_grant_leaves_other_repositories_closed(dockyard, granted):
    repository = f"{granted['project']}/team-b/web"

    assert token_actions(dockyard, repository, (granted["user"], PASSWORD)) == set()


def test_repository_grant_lists_only_matching_repositories(dockyard, granted):
    response = httpx.get(
        f"{dockyard.url}{API}/projects/{granted['project']}/repositories",
        auth=(granted["user"], PASSWORD),
    )

    assert sorted(r["name"] for r in response.json()) == [
        f"{granted['project']}/team-a/db/main",
        f"{granted['project']}/team-a/web",
    ]


def test_repository_grant_does_not_open_the_catalog(dockyard, granted):
    # Only system admins (and system robots holding catalog read) list it.
    response = httpx.get(
        f"{dockyard.url}/v2/_catalog", auth=(granted["user"], PASSWORD)
    )

    assert response.status_code == 401


def test_repository_grant_gives_no_project_wide_rights(dockyard, granted):
    response = httpx.get(
        f"{dockyard.url}{API}/projects/{granted['project']}/members",
        auth=(granted["user"], PASSWORD),
    )

    assert response.status_code == 403


def test_repository_grant_deleted_closes_the_repositories(dockyard, api, granted):
    listing = api.get(f"{API}/projects/{granted['project']}/grants").json()
    api.delete(f"{API}/projects/{granted['project']}/grants/{listing[0]['id']}")
    repository = f"{granted['project']}/team-a/web"

    assert token_actions(dockyard, repository, (granted["user"], PASSWORD)) == set()


@pytest.mark.parametrize("pattern", ["Team/*", "a b", "../x", "x;y"])
def test_repository_grant_with_bad_pattern_is_refused(api, pattern):
    project = new_project(api)
    user = new_user(api)

    response = grant(api, project, {"kind": "user", "name": user}, 2, pattern)

    assert response.status_code == 400


def test_repository_grant_for_unknown_user_is_404(api):
    project = new_project(api)

    response = grant(api, project, {"kind": "user", "name": "nobody-here"}, 2, "x")

    assert response.status_code == 404


def test_group_membership_gives_the_groups_role(dockyard, api):
    project = new_project(api)
    user = new_user(api)
    created = api.post(
        f"{API}/usergroups",
        json={"group_name": f"devs-{secrets.token_hex(3)}", "group_type": 2},
    )
    group_id = int(created.headers["location"].rsplit("/", 1)[1])
    user_id = api.get(f"{API}/users/search?username={user}").json()[0]["user_id"]
    api.post(f"{API}/usergroups/{group_id}/users", json={"user_id": user_id})
    api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 2, "member_group": {"id": group_id}},
    )

    assert token_actions(dockyard, f"{project}/app", (user, PASSWORD)) == {
        "pull",
        "push",
    }


def test_group_member_is_listed_with_entity_type_g(api):
    project = new_project(api)
    name = f"ops-{secrets.token_hex(3)}"
    api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 3, "member_group": {"group_name": name, "group_type": 2}},
    )

    listed = api.get(f"{API}/projects/{project}/members?entityname={name}").json()

    assert [(m["entity_type"], m["role_name"]) for m in listed] == [("g", "guest")]


def test_user_removed_from_group_loses_access(dockyard, api):
    project = new_project(api)
    user = new_user(api)
    created = api.post(
        f"{API}/usergroups",
        json={"group_name": f"tmp-{secrets.token_hex(3)}", "group_type": 2},
    )
    group_id = int(created.headers["location"].rsplit("/", 1)[1])
    user_id = api.get(f"{API}/users/search?username={user}").json()[0]["user_id"]
    api.post(f"{API}/usergroups/{group_id}/users", json={"user_id": user_id})
    api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 2, "member_group": {"id": group_id}},
    )
    api.delete(f"{API}/usergroups/{group_id}/users/{user_id}")

    assert token_actions(dockyard, f"{project}/app", (user, PASSWORD)) == set()


def test_member_with_unknown_role_is_refused(api):
    project = new_project(api)

    response = api.post(
        f"{API}/projects/{project}/members",
        json={"role_id": 999, "member_user": {"username": new_user(api)}},
    )

    assert response.status_code == 400


@pytest.fixture(scope="module")
def narrow(dockyard):
    """A private project with `app`, `repo-a1` and `repo-b`, and a user who
    holds developer only on `repo-a*` there (no other project access)."""
    with httpx.Client(
        base_url=dockyard.url, auth=("admin", dockyard.admin_password), timeout=60
    ) as api:
        project = new_project(api)
        for name in ("app", "repo-a1", "repo-b"):
            push_image(api, f"{project}/{name}")
        user = new_user(api, "narrow")
        response = grant(api, project, {"kind": "user", "name": user}, 2, "repo-a*")
        assert response.status_code == 201, response.text
    return {"project": project, "user": user}


def narrow_get(dockyard, narrow, path, **params):
    return httpx.get(
        f"{dockyard.url}{API}{path}",
        params=params,
        auth=(narrow["user"], PASSWORD),
        timeout=60,
    )


def test_repository_grant_limits_the_cross_project_listing(dockyard, narrow):
    response = narrow_get(
        dockyard, narrow, "/repositories", q=f"name=~{narrow['project']}/"
    )

    assert [r["name"] for r in response.json()] == [f"{narrow['project']}/repo-a1"]
    assert response.headers["x-total-count"] == "1"


def test_repository_grant_cross_project_listing_pages_over_granted(dockyard, narrow):
    response = narrow_get(
        dockyard,
        narrow,
        "/repositories",
        q=f"name=~{narrow['project']}/",
        page=2,
        page_size=1,
    )

    assert response.json() == []
    assert response.headers["x-total-count"] == "1"


def test_repository_grant_limits_search(dockyard, narrow):
    response = narrow_get(dockyard, narrow, "/search", q=narrow["project"])

    names = [r["repository_name"] for r in response.json()["repository"]]
    assert names == [f"{narrow['project']}/repo-a1"]


def test_repository_grant_limits_statistics_repo_count(dockyard, narrow):
    response = narrow_get(dockyard, narrow, "/statistics")

    counts = response.json()
    assert (counts["private_project_count"], counts["private_repo_count"]) == (1, 1)


@pytest.mark.parametrize("path", ["/projects/{project}", "/projects/{project}/summary"])
def test_repository_grant_limits_project_repo_count(dockyard, narrow, path):
    response = narrow_get(dockyard, narrow, path.format(project=narrow["project"]))

    assert response.json()["repo_count"] == 1


def test_repository_grant_limits_project_list_repo_count(dockyard, narrow):
    response = narrow_get(dockyard, narrow, "/projects", name=narrow["project"])

    assert [p["repo_count"] for p in response.json()] == [1]


def test_member_without_repository_rights_sees_no_repositories(dockyard, api):
    project = new_project(api)
    push_image(api, f"{project}/app")
    user = new_user(api)
    add_member(api, project, user, create_role(api, ("label", "read")))

    response = httpx.get(
        f"{dockyard.url}{API}/repositories",
        params={"q": f"name=~{project}/"},
        auth=(user, PASSWORD),
    )

    assert (response.json(), response.headers["x-total-count"]) == ([], "0")


@pytest.mark.parametrize("path", ["/roles", "/roles/1"])
def test_roles_need_authentication(dockyard, path):
    response = httpx.get(f"{dockyard.url}{API}{path}")

    assert response.status_code == 401


def test_roles_are_listed_to_any_logged_in_user(dockyard, matrix):
    response = call(dockyard, matrix, "outsider", "GET", "/roles")

    assert {r["name"] for r in response.json()} >= set(ROLE_IDS)
