"""The portal's session login (`/c/login`, `/c/log_out`), the `sid` cookie on
`/api/v2.0`, and the CSRF token its changes must carry."""

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from dockyard.db.schema import sessions, users
from tests.api.conftest import error_code
from tests.conftest import DockyardServer

API = "/api/v2.0"
CSRF = "X-Harbor-Csrf-Token"


@pytest.fixture
def user(dockyard):
    return dockyard.new_user("portal")


@pytest.fixture(scope="module")
def https_dockyard(tmp_path_factory):
    """A server of this module's own, whose external URL is https."""
    env = {"DOCKYARD_EXTERNAL_URL": "https://registry.test"}
    server = DockyardServer(tmp_path_factory.mktemp("dockyard"), env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(dockyard):
    with httpx.Client(base_url=dockyard.url, timeout=30) as client:
        yield client


def login(client, name, password):
    return client.post("/c/login", data={"principal": name, "password": password})


def logged_in(browser, user):
    """Log `browser` in as `user`; returns the session's CSRF token."""
    response = login(browser, user.name, user.password)
    assert response.status_code == 200, response.text
    return response.headers[CSRF]


def test_login_sets_a_session_cookie(browser, user):
    response = login(browser, user.name, user.password)

    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sid=")
    assert {"HttpOnly", "Path=/", "SameSite=Lax"} <= set(cookie.split("; "))


def test_login_over_http_sets_no_secure_flag(browser, user):
    response = login(browser, user.name, user.password)

    assert "Secure" not in response.headers["set-cookie"].split("; ")


def test_login_with_https_external_url_sets_secure_flag(https_dockyard):
    response = httpx.post(
        f"{https_dockyard.url}/c/login",
        data={"principal": "admin", "password": https_dockyard.admin_password},
    )

    assert "Secure" in response.headers["set-cookie"].split("; ")


def test_login_with_wrong_password_returns_401(browser, user):
    response = login(browser, user.name, "Wrong-passw0rd")

    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"
    assert "set-cookie" not in response.headers


def test_login_as_json_returns_415(browser, user):
    response = browser.post(
        "/c/login", json={"principal": user.name, "password": user.password}
    )

    assert response.status_code == 415


def test_failed_logins_are_throttled(https_dockyard):
    # On a server of its own: failures count per client, and every test
    # of the shared server comes from 127.0.0.1.
    user = https_dockyard.new_user("throttled")
    with httpx.Client(base_url=https_dockyard.url) as client:
        statuses = [
            login(client, user.name, "Wrong-passw0rd").status_code for _ in range(11)
        ]
        after = login(client, user.name, user.password)

    assert statuses[-1] == 429
    assert after.status_code == 429


def test_session_cookie_authenticates_api_requests(browser, user):
    logged_in(browser, user)

    response = browser.get(f"{API}/users/current")

    assert response.status_code == 200
    assert response.json()["username"] == user.name


def test_session_responses_carry_the_csrf_token(browser, user):
    token = logged_in(browser, user)

    response = browser.get(f"{API}/users/current")

    assert response.headers[CSRF] == token


def test_change_without_csrf_token_returns_403(browser, user):
    logged_in(browser, user)

    response = browser.post(
        f"{API}/projects", json={"project_name": f"s{secrets.token_hex(4)}"}
    )

    assert response.status_code == 403
    assert error_code(response) == "FORBIDDEN"
    assert "CSRF" in response.json()["errors"][0]["message"]


def test_change_with_wrong_csrf_token_returns_403(browser, user):
    logged_in(browser, user)

    response = browser.post(
        f"{API}/projects",
        json={"project_name": f"s{secrets.token_hex(4)}"},
        headers={CSRF: "not-the-token"},
    )

    assert response.status_code == 403


def test_change_with_csrf_token_is_accepted(browser, user, api):
    token = logged_in(browser, user)
    project = f"s{secrets.token_hex(4)}"

    response = browser.post(
        f"{API}/projects", json={"project_name": project}, headers={CSRF: token}
    )

    assert response.status_code == 201
    assert api.get(f"{API}/projects/{project}").json()["name"] == project


def test_basic_change_needs_no_csrf_token(dockyard, user):
    response = httpx.post(
        f"{dockyard.url}{API}/projects",
        json={"project_name": f"s{secrets.token_hex(4)}"},
        auth=(user.name, user.password),
    )

    assert response.status_code == 201
    assert CSRF not in response.headers


def test_basic_credentials_win_over_the_cookie(browser, user, dockyard):
    logged_in(browser, user)

    response = browser.get(
        f"{API}/users/current", auth=("admin", dockyard.admin_password)
    )

    assert response.json()["username"] == "admin"


def test_logout_ends_the_session(browser, user):
    logged_in(browser, user)
    cookie = browser.cookies["sid"]

    response = browser.get("/c/log_out")
    after = httpx.get(f"{browser.base_url}{API}/users/current", cookies={"sid": cookie})

    assert response.status_code == 200
    assert after.status_code == 401


def test_logout_clears_the_cookie(browser, user):
    logged_in(browser, user)

    response = browser.get("/c/log_out")

    assert response.headers["set-cookie"].startswith("sid=;")
    assert "Max-Age=0" in response.headers["set-cookie"]


def test_unknown_cookie_is_anonymous(browser):
    browser.cookies.set("sid", "made-up")

    response = browser.get(f"{API}/users/current")

    assert response.status_code == 401


def test_expired_session_is_refused(browser, user, dockyard):
    logged_in(browser, user)
    past = datetime.now(UTC) - timedelta(minutes=1)
    user_id = select(users.c.id).where(users.c.username == user.name)
    dockyard.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id.scalar_subquery())
        .values(expires_at=past)
    )

    response = browser.get(f"{API}/users/current")

    assert response.status_code == 401


def test_password_change_ends_the_users_sessions(browser, user, api):
    logged_in(browser, user)
    user_id = browser.get(f"{API}/users/current").json()["user_id"]

    api.put(f"{API}/users/{user_id}/password", json={"new_password": "Fresh-passw0rd"})

    assert browser.get(f"{API}/users/current").status_code == 401


def test_user_deletion_ends_the_users_sessions(browser, user, api):
    logged_in(browser, user)
    user_id = browser.get(f"{API}/users/current").json()["user_id"]

    api.delete(f"{API}/users/{user_id}")
    api.post(f"{API}/users", json={"username": user.name, "password": user.password})

    assert browser.get(f"{API}/users/current").status_code == 401


def test_login_and_logout_are_audited(browser, user, api):
    logged_in(browser, user)
    browser.get("/c/log_out")

    entries = api.get(
        f"{API}/auditlog-exts", params={"q": f"username={user.name}"}
    ).json()

    assert [e["operation"] for e in entries] == ["logout", "login"]
