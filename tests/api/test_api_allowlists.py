"""The system CVE allowlist (`/system/CVEAllowlist`) and projects' own."""

import secrets
import time

import httpx
import pytest

from tests.api.conftest import error_code

API = "/api/v2.0"
URL = f"{API}/system/CVEAllowlist"
PASSWORD = "Str0ng-pass"
PROJECT_ADMIN, GUEST = 1, 3


def new_user(api, dockyard):
    name = f"u{secrets.token_hex(4)}"
    api.post(f"{API}/users", json={"username": name, "password": PASSWORD})
    return httpx.Client(base_url=dockyard.url, auth=(name, PASSWORD)), name


def new_project(api, **extra):
    name = f"c{secrets.token_hex(4)}"
    response = api.post(f"{API}/projects", json={"project_name": name, **extra})
    assert response.status_code == 201, response.text
    return name


@pytest.fixture
def system_allowlist(api):
    """Puts the system allowlist back to empty after the test."""
    yield
    api.put(URL, json={"items": []})


def test_system_allowlist_is_empty_by_default_for_any_user(api, dockyard):
    user, _ = new_user(api, dockyard)

    body = user.get(URL).json()

    assert body["items"] == []
    assert (body["project_id"], body["expires_at"]) == (0, None)


def test_anonymous_cannot_read_system_allowlist(dockyard):
    assert httpx.get(f"{dockyard.url}{URL}").status_code == 401


def test_admin_replaces_system_allowlist(api, system_allowlist):
    expires = int(time.time()) + 3600

    response = api.put(
        URL, json={"items": [{"cve_id": "CVE-2019-12310"}], "expires_at": expires}
    )
    body = api.get(URL).json()

    assert response.status_code == 200
    assert (body["items"], body["expires_at"]) == (
        [{"cve_id": "CVE-2019-12310"}],
        expires,
    )


def test_second_write_replaces_the_first(api, system_allowlist):
    api.put(URL, json={"items": [{"cve_id": "CVE-1"}], "expires_at": 5})

    api.put(URL, json={"items": [{"cve_id": "CVE-2"}]})

    body = api.get(URL).json()
    assert (body["items"], body["expires_at"]) == ([{"cve_id": "CVE-2"}], None)


def test_user_cannot_write_system_allowlist(api, dockyard):
    user, _ = new_user(api, dockyard)

    response = user.put(URL, json={"items": [{"cve_id": "CVE-2019-12310"}]})

    assert response.status_code == 403


def test_empty_or_duplicate_cve_ids_return_bad_request(api):
    empty = api.put(URL, json={"items": [{"cve_id": " "}]})
    twice = api.put(URL, json={"items": [{"cve_id": "CVE-1"}, {"cve_id": "CVE-1"}]})

    assert (empty.status_code, twice.status_code) == (400, 400)
    assert error_code(twice) == "BAD_REQUEST"


def test_negative_expiry_returns_bad_request(api):
    response = api.put(URL, json={"items": [], "expires_at": -1})

    assert response.status_code == 400


def test_new_project_has_empty_allowlist_and_no_reuse_metadata(api):
    name = new_project(api)

    body = api.get(f"{API}/projects/{name}").json()

    assert body["cve_allowlist"]["items"] == []
    assert "reuse_sys_cve_allowlist" not in body["metadata"]


def test_project_created_with_allowlist_shows_it(api):
    name = new_project(api, cve_allowlist={"items": [{"cve_id": "CVE-2020-1"}]})

    body = api.get(f"{API}/projects/{name}").json()

    assert body["cve_allowlist"]["items"] == [{"cve_id": "CVE-2020-1"}]
    assert body["cve_allowlist"]["project_id"] == body["project_id"]


def test_project_admin_updates_project_allowlist_guest_cannot(api, dockyard):
    name = new_project(api)
    admin, admin_name = new_user(api, dockyard)
    guest, guest_name = new_user(api, dockyard)
    for user, role in ((admin_name, PROJECT_ADMIN), (guest_name, GUEST)):
        api.post(
            f"{API}/projects/{name}/members",
            json={"role_id": role, "member_user": {"username": user}},
        )
    change = {"cve_allowlist": {"items": [{"cve_id": "CVE-2019-1"}], "expires_at": 9}}

    refused = guest.put(f"{API}/projects/{name}", json=change)
    allowed = admin.put(f"{API}/projects/{name}", json=change)

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert (
        guest.get(f"{API}/projects/{name}").json()["cve_allowlist"]["expires_at"] == 9
    )


def test_project_allowlist_with_duplicates_returns_bad_request(api):
    name = new_project(api)
    items = [{"cve_id": "CVE-3"}, {"cve_id": "CVE-3"}]

    response = api.put(
        f"{API}/projects/{name}", json={"cve_allowlist": {"items": items}}
    )

    assert response.status_code == 400


def test_reuse_system_allowlist_metadata_is_shown(api):
    name = new_project(api)

    api.put(
        f"{API}/projects/{name}", json={"metadata": {"reuse_sys_cve_allowlist": "true"}}
    )

    body = api.get(f"{API}/projects/{name}").json()
    assert body["metadata"]["reuse_sys_cve_allowlist"] == "true"


def test_read_only_mode_refuses_allowlist_update(api):
    api.put(f"{API}/configurations", json={"read_only": True})
    try:
        response = api.put(URL, json={"items": [{"cve_id": "CVE-9"}]})
    finally:
        api.put(f"{API}/configurations", json={"read_only": False})

    assert response.status_code == 403
