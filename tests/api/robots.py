"""Robot accounts through /api/v2.0/robots, for the API suites: request
bodies of each level, creation, and the credentials a created robot uses."""

import secrets

import httpx

API = "/api/v2.0"


def robot_name() -> str:
    return f"bot-{secrets.token_hex(4)}"


def project_robot(project: str, access: list[dict], **extra) -> dict:
    """The body of a never-expiring robot with `access` in `project`."""
    return {
        "name": robot_name(),
        "level": "project",
        "duration": -1,
        "permissions": [{"kind": "project", "namespace": project, "access": access}],
        **extra,
    }


def system_robot(permissions: list[dict], **extra) -> dict:
    """The body of a system-level robot holding `permissions`."""
    return {
        "name": robot_name(),
        "level": "system",
        "permissions": permissions,
        **extra,
    }


def create_robot(client: httpx.Client, body: dict) -> dict:
    """The robot `body` describes, as created (with its secret); fails
    unless the answer is 201."""
    response = client.post(f"{API}/robots", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def robot_creds(created: dict) -> tuple[str, str]:
    """(name, secret) of a robot `create_robot` answered."""
    return (created["name"], created["secret"])
