"""Helpers for tests that drive real registry clients."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DockyardServer, require_tools

pytestmark = pytest.mark.e2e


def run(
    *command: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, text=True, capture_output=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def skopeo(
    *args: str, check: bool = True, auth_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    require_tools("skopeo")
    extra = ["--authfile", str(auth_file)] if auth_file else []
    command, rest = args[0], args[1:]
    return run("skopeo", command, *extra, *rest, check=check)


def layout_digest(layout: Path, tag: str) -> str:
    """The digest an OCI layout's index gives `tag`."""
    index = json.loads((layout / "index.json").read_text())
    for descriptor in index["manifests"]:
        if (
            descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name")
            == tag
        ):
            return descriptor["digest"]
    raise AssertionError(f"tag {tag} not in {layout}")


def add_member(server: DockyardServer, project: str, user: str, role: str) -> None:
    server.cli("member", "add", project, user, role)
