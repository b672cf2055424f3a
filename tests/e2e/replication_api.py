"""Replication through a Dockyard's /api/v2.0, for the e2e suites that
drive it: endpoints, policies, executions and their task logs.

Every function takes `api`, an `admin_api` client of the Dockyard under
test; ids come from the `Location` of a 201 answer.
"""

import secrets
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from tests.conftest import DockyardServer

WAIT_SECONDS = 120

T = TypeVar("T")


def admin_api(server: DockyardServer) -> httpx.Client:
    """A client of `server`'s /api/v2.0 as its admin; the caller closes it."""
    return httpx.Client(
        base_url=f"{server.url}/api/v2.0",
        auth=("admin", server.admin_password),
        timeout=60,
    )


def created_id(response: httpx.Response) -> int:
    """The id a 201 answer names in its `Location`; fails on any other."""
    assert response.status_code == 201, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def create_endpoint(
    api: httpx.Client,
    url: str,
    kind: str = "docker-registry",
    credential: dict | None = None,
) -> int:
    """A registry endpoint of type `kind` at `url`; its id. `credential`
    is basic unless it names its own `type`."""
    body = {"name": f"peer-{secrets.token_hex(4)}", "url": url, "type": kind}
    if credential:
        body["credential"] = {"type": "basic", **credential}
    return created_id(api.post("/registries", json=body))


def create_policy(api: httpx.Client, **fields) -> int:
    """A replication policy of these `fields` (and a fresh name); its id."""
    body = {"name": f"policy-{secrets.token_hex(4)}", **fields}
    return created_id(api.post("/replication/policies", json=body))


def run_policy(api: httpx.Client, policy_id: int) -> dict:
    """Start the policy by hand and wait for its execution to end."""
    execution_id = created_id(
        api.post("/replication/executions", json={"policy_id": policy_id})
    )
    return wait_until(
        lambda: _ended(api.get(f"/replication/executions/{execution_id}"))
    )


def _ended(response: httpx.Response) -> dict | None:
    execution = response.json()
    return execution if execution["status"] != "InProgress" else None


def wait_until(probe: Callable[[], T], seconds: float = WAIT_SECONDS) -> T:
    """The first truthy answer of `probe`, asked every half second; fails
    after `seconds` without one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"nothing after {seconds}s")


def task_logs(api: httpx.Client, execution: dict) -> str:
    """Every task log of `execution`, one after the other."""
    base = f"/replication/executions/{execution['id']}/tasks"
    tasks = api.get(base).json()
    return "".join(api.get(f"{base}/{t['id']}/log").text for t in tasks)


def project_repositories(api: httpx.Client, project: str) -> set[str]:
    """The names of the repositories in `project` (up to 100)."""
    found = api.get(f"/projects/{project}/repositories", params={"page_size": 100})
    assert found.status_code == 200, found.text
    return {r["name"] for r in found.json()}
