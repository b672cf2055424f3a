"""The OpenAPI document at /api/v2.0/openapi.json against the routes served.

Every operation the document lists is called on a server of this test's own,
as the system admin, with ids and names that match nothing (so nothing is
changed) and no body: each must be routed (no 405, no 404 from the router
itself), must not fail (no 5xx), and must answer with JSON, errors in Harbor's
error body. A route the document promises but the app does not serve, or
serves badly, fails here.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import DockyardServer

API = "/api/v2.0"
# What fills a path parameter: matches no resource, passes most type checks.
ABSENT = "999999"
# Starlette's own detail when no route matched; handlers say what is missing.
ROUTER_NOT_FOUND = "Not Found"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = DockyardServer(tmp_path_factory.mktemp("openapi")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def document(server):
    return httpx.get(f"{server.url}{API}/openapi.json").json()


def operations(document):
    for path, item in document["paths"].items():
        for method in item:
            if method in ("get", "head", "post", "put", "patch", "delete"):
                yield method.upper(), path


def is_harbor_error(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json()["errors"][0]["message"], str)
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def error_message(response: httpx.Response) -> str:
    return response.json()["errors"][0]["message"]


def test_openapi_document_lists_a_harbor_route_set(document):
    paths = set(document["paths"])

    assert {"/users", "/projects", "/projects/{project_name_or_id}/members"} <= paths
    assert len(paths) > 60


def test_every_documented_operation_is_routed_and_answers_without_failing(
    server, document
):
    client = httpx.Client(
        base_url=f"{server.url}{API}",
        auth=("admin", server.admin_password),
        timeout=30,
    )
    broken = []
    for method, path in operations(document):
        url = re.sub(r"\{[^}]+\}", ABSENT, path)
        response = client.request(method, url)
        failed = response.status_code >= 400 and method != "HEAD"
        if failed and not is_harbor_error(response):
            broken.append(f"{method} {path}: {response.status_code} {response.text}")
        elif (
            response.status_code == 405
            or response.status_code >= 500
            or (failed and error_message(response) == ROUTER_NOT_FOUND)
        ):
            broken.append(f"{method} {path}: {response.status_code} {response.text}")

    assert broken == []
