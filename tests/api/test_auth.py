"""The permission layer: challenges, the token service, roles, bad tokens."""

import base64
import json
import secrets
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PASSWORD = "Passw0rd-test"


@pytest.fixture(scope="module")
def people(dockyard):
    """A private project with a guest and a developer, plus a non-member."""
    suffix = secrets.token_hex(3)
    names = {role: f"{role}-{suffix}" for role in ("guest", "developer", "outsider")}
    for name in names.values():
        dockyard.cli("user", "create", name, "--password-stdin", input=PASSWORD + "\n")
    project = f"private-{suffix}"
    dockyard.cli("project", "create", project, "--private")
    dockyard.cli("member", "add", project, names["guest"], "guest")
    dockyard.cli("member", "add", project, names["developer"], "developer")
    admin = httpx.Client(base_url=dockyard.url, auth=("admin", dockyard.admin_password))
    blob = b"private layer"
    digest = "sha256:" + __import__("hashlib").sha256(blob).hexdigest()
    admin.post(f"/v2/{project}/app/blobs/uploads/?digest={digest}", content=blob)
    return {"project": project, "digest": digest, **names}


def token(dockyard, scope, auth=None):
    response = httpx.get(
        f"{dockyard.url}/service/token",
        params={"service": "dockyard", "scope": scope},
        auth=auth,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def claims(token_text):
    return jwt.decode(token_text, options={"verify_signature": False})


def test_request_without_credentials_gets_bearer_challenge(dockyard):
    response = httpx.get(f"{dockyard.url}/v2/library/busybox/tags/list")

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(
        f'Bearer realm="{dockyard.url}/service/token",service="dockyard"'
    )
    assert 'scope="repository:library/busybox:pull"' in challenge


def test_anonymous_token_for_public_project_carries_pull_only(dockyard):
    granted = claims(token(dockyard, "repository:library/busybox:pull,push"))

    assert granted["access"] == [
        {"type": "repository", "name": "library/busybox", "actions": ["pull"]}
    ]


def test_token_header_has_kid_and_rs256(dockyard):
    header = jwt.get_unverified_header(token(dockyard, "repository:library/x:pull"))

    assert header["alg"] == "RS256"
    assert len(header["kid"].split(":")) == 12


def test_token_service_accepts_repeated_and_space_separated_scopes(dockyard):
    response = httpx.get(
        f"{dockyard.url}/service/token",
        params=[
            ("scope", "repository:library/a:pull repository:library/b:pull"),
            ("scope", "repository:library/c:pull"),
        ],
        auth=("admin", dockyard.admin_password),
    )

    names = sorted(
        entry["name"] for entry in claims(response.json()["token"])["access"]
    )
    assert names == ["library/a", "library/b", "library/c"]


def test_token_service_with_wrong_password_returns_401(dockyard):
    response = httpx.get(f"{dockyard.url}/service/token", auth=("admin", "wrong"))

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_oauth2_password_grant_returns_token_and_refresh_token(dockyard):
    response = httpx.post(
        f"{dockyard.url}/service/token",
        data={
            "grant_type": "password",
            "username": "admin",
            "password": dockyard.admin_password,
            "service": "dockyard",
            "scope": "repository:library/x:pull,push",
            "client_id": "test",
            "access_type": "offline",
        },
    )

    body = response.json()
    assert set(body) >= {
        "token",
        "access_token",
        "expires_in",
        "issued_at",
        "refresh_token",
    }
    assert claims(body["access_token"])["access"][0]["actions"] == ["pull", "push"]


def test_refresh_token_grant_returns_new_access_token(dockyard):
    offline = httpx.get(
        f"{dockyard.url}/service/token",
        params={"offline_token": "true", "service": "dockyard"},
        auth=("admin", dockyard.admin_password),
    ).json()

    response = httpx.post(
        f"{dockyard.url}/service/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": offline["refresh_token"],
            "scope": "repository:library/x:pull",
            "service": "dockyard",
        },
    )

    assert response.status_code == 200
    assert claims(response.json()["token"])["sub"] == "admin"


def test_refresh_token_is_refused_as_access_token(dockyard):
    offline = httpx.get(
        f"{dockyard.url}/service/token",
        params={"offline_token": "true"},
        auth=("admin", dockyard.admin_password),
    ).json()

    response = httpx.get(
        f"{dockyard.url}/v2/",
        headers={"authorization": f"Bearer {offline['refresh_token']}"},
    )

    assert response.status_code == 401


def test_token_lacking_action_gets_insufficient_scope(dockyard):
    pull_only = token(dockyard, "repository:library/scope-test:pull")

    response = httpx.post(
        f"{dockyard.url}/v2/library/scope-test/blobs/uploads/",
        headers={"authorization": f"Bearer {pull_only}"},
    )

    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_private_project_anonymous_pull_gets_challenge(dockyard, people):
    anonymous = token(dockyard, f"repository:{people['project']}/app:pull")

    response = httpx.get(
        f"{dockyard.url}/v2/{people['project']}/app/blobs/{people['digest']}",
        headers={"authorization": f"Bearer {anonymous}"},
    )

    assert response.status_code == 401
    assert claims(anonymous)["access"] == []


def test_private_project_guest_pulls_but_cannot_push(dockyard, people):
    auth = (people["guest"], PASSWORD)
    granted = token(dockyard, f"repository:{people['project']}/app:pull,push", auth)
    headers = {"authorization": f"Bearer {granted}"}

    pulled = httpx.get(
        f"{dockyard.url}/v2/{people['project']}/app/blobs/{people['digest']}",
        headers=headers,
    )
    pushed = httpx.post(
        f"{dockyard.url}/v2/{people['project']}/app/blobs/uploads/", headers=headers
    )

    assert pulled.status_code == 200
    assert pushed.status_code == 401


def test_private_project_developer_pushes(dockyard, people):
    response = httpx.post(
        f"{dockyard.url}/v2/{people['project']}/app/blobs/uploads/",
        auth=(people["developer"], PASSWORD),
    )

    assert response.status_code == 202


def test_private_project_outsider_gets_same_denial_for_existing_and_missing_repository(
    dockyard, people
):
    auth = (people["outsider"], PASSWORD)
    project = people["project"]

    existing = httpx.get(f"{dockyard.url}/v2/{project}/app/tags/list", auth=auth)
    missing = httpx.get(
        f"{dockyard.url}/v2/{project}/nothing-here/tags/list", auth=auth
    )

    assert existing.status_code == missing.status_code == 403
    assert existing.json() == missing.json()


def test_catalog_for_a_project_member_returns_unauthorized(dockyard, people):
    # Harbor lists the catalog to system admins only, members or not.
    response = httpx.get(
        f"{dockyard.url}/v2/_catalog", auth=(people["developer"], PASSWORD)
    )

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_catalog_token_for_a_non_admin_carries_no_catalog_access(dockyard, people):
    issued = token(dockyard, "registry:catalog:*", auth=(people["guest"], PASSWORD))

    response = httpx.get(
        f"{dockyard.url}/v2/_catalog", headers={"authorization": f"Bearer {issued}"}
    )

    assert claims(issued)["access"] == []
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_catalog_for_an_admin_token_lists_private_repositories(dockyard, people):
    issued = token(
        dockyard, "registry:catalog:*", auth=("admin", dockyard.admin_password)
    )

    response = httpx.get(
        f"{dockyard.url}/v2/_catalog?n=10000",
        headers={"authorization": f"Bearer {issued}"},
    )

    assert f"{people['project']}/app" in response.json()["repositories"]


def test_push_into_missing_project_is_refused(dockyard):
    response = httpx.post(
        f"{dockyard.url}/v2/no-such-project/app/blobs/uploads/",
        auth=("admin", dockyard.admin_password),
    )

    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"


def forge(dockyard, key, **overrides):
    now = int(time.time())
    payload = {
        "iss": "dockyard-token-issuer",
        "sub": "admin",
        "aud": "dockyard",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "access": [
            {
                "type": "repository",
                "name": "library/forged",
                "actions": ["pull", "push"],
            }
        ],
        **overrides,
    }
    return jwt.encode(payload, key, algorithm="RS256")


def own_key(dockyard):
    pem = (dockyard.data_dir / "keys" / "token.key").read_bytes()
    return serialization.load_pem_private_key(pem, None)


def push_with(dockyard, token_text):
    return httpx.post(
        f"{dockyard.url}/v2/library/forged/blobs/uploads/",
        headers={"authorization": f"Bearer {token_text}"},
    )


def test_token_signed_with_own_key_is_accepted(dockyard):
    assert push_with(dockyard, forge(dockyard, own_key(dockyard))).status_code == 202


def test_token_signed_by_another_key_is_refused(dockyard):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    response = push_with(dockyard, forge(dockyard, other))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_expired_token_is_refused(dockyard):
    past = int(time.time()) - 3600

    response = push_with(
        dockyard, forge(dockyard, own_key(dockyard), iat=past, nbf=past, exp=past + 60)
    )

    assert response.status_code == 401


def test_unsigned_alg_none_token_is_refused(dockyard):
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "none", "typ": "JWT"}).encode()
    ).rstrip(b"=")
    payload = jwt.decode(
        forge(dockyard, own_key(dockyard)), options={"verify_signature": False}
    )
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")

    response = push_with(dockyard, f"{header.decode()}.{body.decode()}.")

    assert response.status_code == 401


def test_outsider_token_gets_same_challenge_for_existing_and_missing_repository(
    dockyard, people
):
    auth = (people["outsider"], PASSWORD)
    project = people["project"]

    def pull(name):
        granted = token(dockyard, f"repository:{name}:pull", auth)
        return httpx.get(
            f"{dockyard.url}/v2/{name}/tags/list",
            headers={"authorization": f"Bearer {granted}"},
        )

    existing, missing = pull(f"{project}/app"), pull(f"{project}/nothing-here")

    assert existing.status_code == missing.status_code == 401
    assert existing.json() == missing.json()


def test_repeated_failed_logins_are_throttled_with_toomanyrequests(dockyard):
    username = f"victim-{secrets.token_hex(3)}"
    for _ in range(10):
        httpx.get(f"{dockyard.url}/v2/", auth=(username, "wrong"))

    response = httpx.get(f"{dockyard.url}/v2/", auth=(username, "wrong"))
    token_response = httpx.get(
        f"{dockyard.url}/service/token", auth=(username, "wrong")
    )

    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert token_response.status_code == 429


def test_mount_challenge_also_asks_for_pull_on_the_source(dockyard):
    response = httpx.post(
        f"{dockyard.url}/v2/library/dest/blobs/uploads/",
        params={"mount": f"sha256:{'a' * 64}", "from": "library/src"},
    )

    assert response.status_code == 401
    assert (
        'scope="repository:library/dest:pull,push repository:library/src:pull"'
        in response.headers["www-authenticate"]
    )


def test_mount_with_token_lacking_readable_source_gets_challenge_for_it(dockyard):
    admin = ("admin", dockyard.admin_password)
    blob = b"mountable"
    digest = "sha256:" + __import__("hashlib").sha256(blob).hexdigest()
    httpx.post(
        f"{dockyard.url}/v2/library/src-m/blobs/uploads/?digest={digest}",
        content=blob,
        auth=admin,
    )
    dest_only = token(dockyard, "repository:library/dest-m:pull,push", admin)
    both = token(
        dockyard,
        "repository:library/dest-m:pull,push repository:library/src-m:pull",
        admin,
    )
    url = (
        f"{dockyard.url}/v2/library/dest-m/blobs/uploads/"
        f"?mount={digest}&from=library/src-m"
    )

    first = httpx.post(url, headers={"authorization": f"Bearer {dest_only}"})
    second = httpx.post(url, headers={"authorization": f"Bearer {both}"})

    assert first.status_code == 401
    assert 'error="insufficient_scope"' in first.headers["www-authenticate"]
    assert second.status_code == 201


def test_mount_from_unreadable_source_falls_back_to_upload(dockyard, people):
    secret_project = f"secret-{secrets.token_hex(3)}"
    dockyard.cli("project", "create", secret_project, "--private")
    admin = httpx.Client(base_url=dockyard.url, auth=("admin", dockyard.admin_password))
    blob = b"secret layer"
    digest = "sha256:" + __import__("hashlib").sha256(blob).hexdigest()
    admin.post(f"/v2/{secret_project}/app/blobs/uploads/?digest={digest}", content=blob)
    dest = f"{people['project']}/dest"
    granted = token(
        dockyard,
        f"repository:{dest}:pull,push repository:{secret_project}/app:pull",
        (people["developer"], PASSWORD),
    )

    response = httpx.post(
        f"{dockyard.url}/v2/{dest}/blobs/uploads/",
        params={"mount": digest, "from": f"{secret_project}/app"},
        headers={"authorization": f"Bearer {granted}"},
    )

    assert response.status_code == 202
    assert admin.head(f"/v2/{dest}/blobs/{digest}").status_code == 404


def test_refresh_token_dies_with_its_user_even_if_the_name_returns(dockyard):
    name = f"eve-{secrets.token_hex(3)}"
    dockyard.create_user(name, PASSWORD)
    refresh = httpx.get(
        f"{dockyard.url}/service/token",
        params={"offline_token": "true"},
        auth=(name, PASSWORD),
    ).json()["refresh_token"]
    api = httpx.Client(base_url=dockyard.url, auth=("admin", dockyard.admin_password))
    user_id = next(
        u["user_id"]
        for u in api.get("/api/v2.0/users", params={"q": f"username={name}"}).json()
    )
    api.delete(f"/api/v2.0/users/{user_id}")
    dockyard.create_user(name, PASSWORD, "--admin")

    response = httpx.post(
        f"{dockyard.url}/service/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "dockyard",
        },
    )

    assert response.status_code == 401


def test_challenge_realm_ignores_a_forged_host_header(dockyard):
    response = httpx.get(
        f"{dockyard.url}/v2/", headers={"host": 'a.com",realm="http://evil.example'}
    )

    assert "evil.example" not in response.headers["www-authenticate"]


def test_token_service_grants_nothing_for_invalid_repository_names(dockyard):
    granted = claims(token(dockyard, "repository:library/../library/x:pull"))

    assert granted["access"] == []


def test_request_path_with_line_break_cannot_forge_log_lines(dockyard):
    httpx.get(f"{dockyard.url}/v2/%0A2026-01-01%20INFO%20FORGED-LINE/tags/list")

    assert not any(
        line.startswith("2026-01-01 INFO FORGED-LINE")
        for line in dockyard.log().splitlines()
    )


def test_push_refusal_names_the_missing_project_to_a_known_user(dockyard):
    response = httpx.post(
        f"{dockyard.url}/v2/no-such-project/app/blobs/uploads/",
        auth=("admin", dockyard.admin_password),
    )

    message = response.json()["errors"][0]["message"]
    assert message == "project no-such-project does not exist"


def test_keys_dir_setting_holds_the_signing_key(start_dockyard, tmp_path):
    keys = tmp_path / "shared-keys"

    server = start_dockyard({"DOCKYARD_KEYS_DIR": str(keys)})

    assert (keys / "token.key").exists()
    assert not (server.data_dir / "keys").exists()


def test_servers_sharing_keys_dir_accept_each_others_tokens(start_dockyard, tmp_path):
    keys = tmp_path / "shared-keys"
    first = start_dockyard({"DOCKYARD_KEYS_DIR": str(keys)})
    second = start_dockyard({"DOCKYARD_KEYS_DIR": str(keys)})
    issued = httpx.get(
        f"{first.url}/service/token",
        params={"service": "dockyard", "scope": "repository:library/x:pull"},
    ).json()["token"]

    response = httpx.get(
        f"{second.url}/v2/library/x/tags/list",
        headers={"authorization": f"Bearer {issued}"},
    )

    assert response.status_code == 404  # authorised; the repository is unknown
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"
