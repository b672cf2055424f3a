"""Values one database stores and another refuses (PostgreSQL refuses NUL
characters in text and numbers beyond a column's range) get the same answer
on every backend: a clear 400, a failed login, or a stored entry."""

import secrets
import time

import httpx

from tests.api.conftest import error_code

API = "/api/v2.0"


def test_label_with_nul_in_description_returns_bad_request(api):
    body = {"name": f"l{secrets.token_hex(4)}", "scope": "g", "description": "a\0b"}

    response = api.post(f"{API}/labels", json=body)

    assert (response.status_code, error_code(response)) == (400, "BAD_REQUEST")


def test_fuzzy_query_with_nul_returns_bad_request(api):
    response = api.get(f"{API}/projects", params={"q": "name=~a\0b"})

    assert (response.status_code, error_code(response)) == (400, "BAD_REQUEST")


def test_user_id_beyond_integer_range_is_refused_or_unknown(api):
    # SQLite's integers have 64 bits, PostgreSQL's integer columns 32.
    response = api.get(f"{API}/users/{2**40}")

    assert (response.status_code, error_code(response)) in [
        (400, "BAD_REQUEST"),
        (404, "NOT_FOUND"),
    ]


def test_page_beyond_integer_range_returns_bad_request(api):
    response = api.get(f"{API}/projects", params={"page": 2**62, "page_size": 100})

    assert (response.status_code, error_code(response)) == (400, "BAD_REQUEST")


def test_basic_login_with_nul_in_username_is_unauthorized(dockyard):
    response = httpx.get(f"{dockyard.url}/v2/", auth=("a\0b", "Secret-passw0rd"))

    assert (response.status_code, error_code(response)) == (401, "UNAUTHORIZED")


def test_robot_login_with_nul_in_name_is_unauthorized(dockyard):
    response = httpx.get(f"{dockyard.url}/v2/", auth=("robot$a\0b", "Secret-1"))

    assert response.status_code == 401


def test_failed_login_with_nul_in_username_is_audited(api, dockyard):
    marker = secrets.token_hex(4)

    httpx.get(f"{dockyard.url}/v2/", auth=(f"nul-{marker}\0x", "wrong"))

    for _ in range(50):
        entries = api.get(
            f"{API}/audit-logs", params={"q": f"username=~{marker}"}
        ).json()
        if entries:
            break
        time.sleep(0.1)
    assert [entry["username"] for entry in entries] == [f"nul-{marker}\ufffdx"]
