"""`/api/v2.0/projects` and members over HTTP, with Harbor's permission matrix."""

import secrets

import httpx

API = "/api/v2.0"
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PASSWORD = "Str0ng-pass"


def new_user(api, dockyard):
    name = f"u{secrets.token_hex(4)}"
    assert (
        api.post(
            f"{API}/users", json={"username": name, "password": PASSWORD}
        ).status_code
        == 201
    )
    return httpx.Client(base_url=dockyard.url, auth=(name, PASSWORD)), name


def new_project(client, public=False):
    name = f"p{secrets.token_hex(4)}"
    response = client.post(
        f"{API}/projects",
        json={"project_name": name, "metadata": {"public": str(public).lower()}},
    )
    assert response.status_code == 201, response.text
    return name


def test_user_creates_project_and_becomes_project_admin(api, dockyard):
    owner, owner_name = new_user(api, dockyard)

    name = new_project(owner)
    body = owner.get(f"{API}/projects/{name}").json()

    assert body["owner_name"] == owner_name
    assert body["current_user_role_id"] == 1
    assert body["metadata"] == {"public": "false"}


def test_create_project_with_taken_name_returns_conflict(api):
    name = new_project(api)

    response = api.post(f"{API}/projects", json={"project_name": name})

    assert response.status_code == 409


def test_create_project_with_invalid_name_returns_bad_request(api):
    response = api.post(f"{API}/projects", json={"project_name": "Bad Name"})

    assert response.status_code == 400


def test_anonymous_cannot_create_project(dockyard):
    response = httpx.post(
        f"{dockyard.url}{API}/projects", json={"project_name": "anon"}
    )

    assert response.status_code == 401


def test_head_project_tells_existence(dockyard, api):
    name = new_project(api)

    assert api.head(f"{API}/projects", params={"project_name": name}).status_code == 200
    assert (
        api.head(f"{API}/projects", params={"project_name": "nope-nope"}).status_code
        == 404
    )


def test_private_project_is_hidden_from_anonymous_and_non_members(api, dockyard):
    name = new_project(api)
    outsider, _ = new_user(api, dockyard)

    anonymous = httpx.get(f"{dockyard.url}{API}/projects/{name}")
    forbidden = outsider.get(f"{API}/projects/{name}")
    listed = [
        p["name"]
        for p in outsider.get(f"{API}/projects", params={"page_size": 100}).json()
    ]

    assert anonymous.status_code == 401
    assert forbidden.status_code == 403
    assert name not in listed


def test_public_project_is_readable_anonymously(api, dockyard):
    name = new_project(api, public=True)

    response = httpx.get(f"{dockyard.url}{API}/projects/{name}")

    assert response.status_code == 200


def test_project_admin_adds_guest_who_reads_but_cannot_manage(api, dockyard):
    owner, _ = new_user(api, dockyard)
    guest, guest_name = new_user(api, dockyard)
    name = new_project(owner)

    added = owner.post(
        f"{API}/projects/{name}/members",
        json={"role_id": 3, "member_user": {"username": guest_name}},
    )
    readable = guest.get(f"{API}/projects/{name}")
    members = guest.get(f"{API}/projects/{name}/members").json()
    refused = guest.put(f"{API}/projects/{name}", json={"metadata": {"public": "true"}})

    assert added.status_code == 201
    assert readable.status_code == 200
    assert {m["entity_name"]: m["role_name"] for m in members}[guest_name] == "guest"
    assert refused.status_code == 403


def test_adding_existing_member_returns_conflict(api, dockyard):
    _, user_name = new_user(api, dockyard)
    name = new_project(api)
    body = {"role_id": 2, "member_user": {"username": user_name}}
    api.post(f"{API}/projects/{name}/members", json=body)

    response = api.post(f"{API}/projects/{name}/members", json=body)

    assert response.status_code == 409


def test_member_role_update_changes_registry_access(api, dockyard):
    user, user_name = new_user(api, dockyard)
    name = new_project(api)
    location = api.post(
        f"{API}/projects/{name}/members",
        json={"role_id": 3, "member_user": {"username": user_name}},
    ).headers["location"]
    member_path = location.removeprefix("/api/v2.0")

    before = user.post(f"/v2/{name}/app/blobs/uploads/")
    api.put(f"{API}{member_path}", json={"role_id": 2})
    after = user.post(f"/v2/{name}/app/blobs/uploads/")

    assert before.status_code == 403
    assert after.status_code == 202


def test_update_project_makes_it_public_for_anonymous_pull(api, dockyard):
    name = new_project(api)

    api.put(f"{API}/projects/{name}", json={"metadata": {"public": "true"}})
    token = httpx.get(
        f"{dockyard.url}/service/token", params={"scope": f"repository:{name}/x:pull"}
    ).json()["token"]
    response = httpx.get(
        f"{dockyard.url}/v2/{name}/x/tags/list",
        headers={"authorization": f"Bearer {token}"},
    )

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_project_with_repositories_cannot_be_deleted(api):
    name = new_project(api)
    api.post(
        f"/v2/{name}/app/blobs/uploads/?digest={EMPTY_DIGEST}",
        content=b"",
    )
    deletable = api.get(f"{API}/projects/{name}/_deletable").json()
    response = api.delete(f"{API}/projects/{name}")

    assert deletable["deletable"] is False
    assert response.status_code == 412


def test_delete_empty_project_then_get_returns_not_found(api):
    name = new_project(api)

    deleted = api.delete(f"{API}/projects/{name}")

    assert deleted.status_code == 200
    assert api.get(f"{API}/projects/{name}").status_code == 404


def test_token_issued_before_project_was_recreated_does_not_open_it(api, dockyard):
    name = new_project(api, public=False)
    token = httpx.get(
        f"{dockyard.url}/service/token",
        params={"scope": f"repository:{name}/x:pull,push"},
        auth=("admin", dockyard.admin_password),
    ).json()["token"]
    api.delete(f"{API}/projects/{name}")
    new_project_response = api.post(f"{API}/projects", json={"project_name": name})

    response = httpx.post(
        f"{dockyard.url}/v2/{name}/x/blobs/uploads/",
        headers={"authorization": f"Bearer {token}"},
    )

    assert new_project_response.status_code == 201
    assert response.status_code == 401


def test_project_summary_counts_repositories_and_members_by_role(api, dockyard):
    user, user_name = new_user(api, dockyard)
    name = new_project(api)
    api.post(
        f"{API}/projects/{name}/members",
        json={"role_id": 2, "member_user": {"username": user_name}},
    )
    api.post(f"/v2/{name}/app/blobs/uploads/?digest={EMPTY_DIGEST}", content=b"")

    summary = user.get(f"{API}/projects/{name}/summary").json()

    assert summary["repo_count"] == 1
    assert (summary["project_admin_count"], summary["developer_count"]) == (1, 1)


def test_cli_lists_projects_and_users(api, dockyard):
    name = new_project(api, public=True)
    _, user_name = new_user(api, dockyard)

    project_lines = dockyard.cli("project", "list").stdout.splitlines()
    user_lines = dockyard.cli("user", "list").stdout.splitlines()

    assert f"{name}\tpublic\t0" in project_lines
    assert any(line.startswith(f"{user_name}\t-") for line in user_lines)
