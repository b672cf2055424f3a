"""Static checks of the Dockerfile and docker-compose.yml (no Docker engine
here: neither is built nor started by the suite)."""

from __future__ import annotations

import re

import yaml

from tests.deploy.conftest import REPO, dockyard_variables, known_variable


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        tuple(line.split(None, 1))  # type: ignore[misc]
        for line in lines
        if line and not line.startswith("#")
    ]


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_dockerfile_builds_on_python_311_slim_and_runs_unprivileged():
    instructions = dockerfile()

    assert instructions[0] == ("FROM", "python:3.11-slim")
    user = [args for op, args in instructions if op == "USER"][-1]
    assert not user.startswith(("0", "root"))


def test_dockerfile_copies_only_what_exists_and_installs_with_constraints():
    instructions = dockerfile()

    for op, args in instructions:
        if op == "COPY":
            *sources, _ = args.split()
            assert all((REPO / source).exists() for source in sources), args
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "--constraint constraints.txt" in runs


def test_dockerfile_serves_on_all_interfaces_with_data_in_var_lib():
    env = " ".join(args for op, args in dockerfile() if op == "ENV")

    assert "DOCKYARD_LISTEN=0.0.0.0:5000" in env
    assert "DOCKYARD_DATA_DIR=/var/lib/dockyard" in env


def test_compose_dependencies_name_services_that_exist():
    services = compose()["services"]

    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name


def test_compose_runs_dockyard_on_postgres_redis_and_s3():
    environment = compose()["services"]["dockyard"]["environment"]

    assert environment["DOCKYARD_DATABASE_URL"].startswith("postgresql://")
    assert environment["DOCKYARD_REDIS_URL"].startswith("redis://")
    assert environment["DOCKYARD_STORAGE_URL"].startswith("s3://")
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(environment)


def test_compose_sets_only_variables_dockyard_reads():
    text = (REPO / "docker-compose.yml").read_text()

    assert {
        name for name in dockyard_variables(text) if not known_variable(name)
    } == set()
