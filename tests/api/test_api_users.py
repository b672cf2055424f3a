"""`/api/v2.0/users` over HTTP."""

import secrets

import httpx

API = "/api/v2.0"
PASSWORD = "Str0ng-pass"


def create_user(api, name=None, password=PASSWORD):
    name = name or f"u{secrets.token_hex(4)}"
    response = api.post(
        f"{API}/users",
        json={
            "username": name,
            "password": password,
            "email": f"{name}@example.com",
            "realname": name,
        },
    )
    assert response.status_code == 201, response.text
    return name, int(response.headers["location"].rsplit("/", 1)[1])


def as_user(dockyard, name, password=PASSWORD):
    return httpx.Client(base_url=dockyard.url, auth=(name, password))


def test_ping_answers_pong(api):
    assert api.get(f"{API}/ping").text == "Pong"


def test_systeminfo_shows_anonymous_callers_less(dockyard, api):
    anonymous = httpx.get(f"{dockyard.url}{API}/systeminfo").json()
    full = api.get(f"{API}/systeminfo").json()

    assert "external_url" not in anonymous
    assert full["external_url"] == dockyard.url


def test_health_reports_each_component(api):
    body = api.get(f"{API}/health").json()

    assert body["status"] == "healthy"
    assert {c["name"] for c in body["components"]} >= {"core", "database"}


def test_create_user_then_get_returns_harbor_fields(api):
    name, user_id = create_user(api)

    body = api.get(f"{API}/users/{user_id}").json()

    assert body["username"] == name
    assert body["sysadmin_flag"] is False
    assert set(body) >= {
        "user_id",
        "email",
        "realname",
        "admin_role_in_auth",
        "creation_time",
        "update_time",
    }
    assert "comment" not in body  # empty optional fields are left out


def test_create_duplicate_user_returns_conflict(api):
    name, _ = create_user(api)

    response = api.post(f"{API}/users", json={"username": name, "password": PASSWORD})

    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "CONFLICT"


def test_create_user_with_weak_password_returns_bad_request(api):
    response = api.post(
        f"{API}/users",
        json={"username": f"w{secrets.token_hex(3)}", "password": "short"},
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"


def test_list_users_paginates_with_total_and_link(api):
    for _ in range(3):
        create_user(api)

    response = api.get(f"{API}/users", params={"page": 1, "page_size": 2})

    assert len(response.json()) == 2
    assert int(response.headers["x-total-count"]) >= 4
    assert 'rel="next"' in response.headers["link"]


def test_list_users_filters_with_q(api):
    name, _ = create_user(api)

    response = api.get(f"{API}/users", params={"q": f"username=~{name[1:]}"})

    assert [u["username"] for u in response.json()] == [name]


def test_list_users_fuzzy_q_ignores_case(api):
    name, _ = create_user(api)

    response = api.get(f"{API}/users", params={"q": f"username=~{name.upper()}"})

    assert [u["username"] for u in response.json()] == [name]


def test_list_users_fuzzy_q_matches_percent_only_literally(api):
    create_user(api)

    response = api.get(f"{API}/users", params={"q": "username=~%"})

    assert response.json() == []


def test_list_users_with_unknown_query_key_returns_bad_request(api):
    response = api.get(f"{API}/users", params={"q": "colour=red"})

    assert response.status_code == 400


def test_list_users_is_refused_to_non_admin(dockyard, api):
    name, _ = create_user(api)

    response = as_user(dockyard, name).get(f"{API}/users")

    assert response.status_code == 403


def test_anonymous_current_user_is_unauthorized(dockyard):
    response = httpx.get(f"{dockyard.url}{API}/users/current")

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_user_changes_own_password_with_old_password(dockyard, api):
    name, user_id = create_user(api)
    client = as_user(dockyard, name)

    changed = client.put(
        f"{API}/users/{user_id}/password",
        json={"old_password": PASSWORD, "new_password": "N3w-password"},
    )

    assert changed.status_code == 200
    assert (
        as_user(dockyard, name, "N3w-password").get(f"{API}/users/current").status_code
        == 200
    )
    assert client.get(f"{API}/users/current").status_code == 401


def test_password_change_with_wrong_old_password_is_forbidden(dockyard, api):
    name, user_id = create_user(api)

    response = as_user(dockyard, name).put(
        f"{API}/users/{user_id}/password",
        json={"old_password": "Wr0ng-pass", "new_password": "N3w-password"},
    )

    assert response.status_code == 403


def test_user_cannot_read_another_user(dockyard, api):
    name, _ = create_user(api)
    _, other_id = create_user(api)

    assert as_user(dockyard, name).get(f"{API}/users/{other_id}").status_code == 403


def test_admin_grants_sysadmin_flag(dockyard, api):
    name, user_id = create_user(api)

    api.put(f"{API}/users/{user_id}/sysadmin", json={"sysadmin_flag": True})

    assert as_user(dockyard, name).get(f"{API}/users").status_code == 200


def test_delete_user_then_get_returns_not_found(api):
    _, user_id = create_user(api)

    deleted = api.delete(f"{API}/users/{user_id}")

    assert deleted.status_code == 200
    assert api.get(f"{API}/users/{user_id}").status_code == 404


def test_search_users_finds_by_fragment(dockyard, api):
    name, _ = create_user(api)
    searcher, _ = create_user(api)

    response = as_user(dockyard, searcher).get(
        f"{API}/users/search", params={"username": name[2:]}
    )

    assert name in [u["username"] for u in response.json()]


def test_search_users_ignores_case(dockyard, api):
    name, _ = create_user(api, f"case-{secrets.token_hex(4)}")
    searcher, _ = create_user(api)

    response = as_user(dockyard, searcher).get(
        f"{API}/users/search", params={"username": name.upper()}
    )

    assert name in [u["username"] for u in response.json()]


def test_openapi_document_lists_the_routes(api):
    paths = api.get(f"{API}/openapi.json").json()["paths"]

    assert {"/users", "/projects", "/projects/{project_name_or_id}/members"} <= set(
        paths
    )


def test_openapi_document_declares_basic_authentication(api):
    document = api.get(f"{API}/openapi.json").json()

    assert document["components"]["securitySchemes"]["basicAuth"]["scheme"] == "basic"


def test_create_user_with_robot_prefix_is_refused(api):
    response = api.post(
        f"{API}/users", json={"username": "robot$sneaky", "password": PASSWORD}
    )

    assert response.status_code == 400
