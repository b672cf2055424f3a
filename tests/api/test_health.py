"""`/api/v2.0/health` over HTTP: every component, and a broken one."""

from __future__ import annotations

import secrets
import shutil
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import insert

from dockyard.db.schema import job_executions, job_tasks
from tests.backends import backend_name
from tests.conftest import TEST_STORAGE, free_port, object_storage_env

API = "/api/v2.0"
local_storage_only = pytest.mark.skipif(
    TEST_STORAGE != "filesystem", reason="breaks the storage's local directory"
)


def components(body: dict) -> dict[str, dict]:
    return {c["name"]: c for c in body["components"]}


def test_health_reports_every_component_of_the_deployment_healthy(api):
    expected = {"core", "database", "storage", "jobservice"}
    if backend_name() == "production":
        expected.add("redis")

    body = api.get(f"{API}/health").json()

    assert body["status"] == "healthy"
    assert {n: c["status"] for n, c in components(body).items()} == dict.fromkeys(
        expected, "healthy"
    )


def test_health_with_unreachable_redis_is_unhealthy(start_dockyard):
    server = start_dockyard(
        {"DOCKYARD_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    )

    body = httpx.get(f"{server.url}{API}/health").json()

    assert body["status"] == "unhealthy"
    assert components(body)["redis"]["status"] == "unhealthy"


def test_health_with_task_no_worker_took_is_jobservice_unhealthy(start_dockyard):
    server = start_dockyard({"DOCKYARD_JOBS__EMBEDDED_WORKER": "false"})
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    server.execute(
        insert(job_executions).values(
            id=1000,
            job_type="EXPIRE_UPLOADS",
            trigger="MANUAL",
            status="Pending",
            params="{}",
            created_at=long_ago,
        )
    )
    server.execute(
        insert(job_tasks).values(
            execution_id=1000,
            status="Pending",
            params="{}",
            run_count=0,
            created_at=long_ago,
            queued_at=long_ago,
            log="",
        )
    )

    body = httpx.get(f"{server.url}{API}/health").json()

    jobservice = components(body)["jobservice"]
    assert jobservice["status"] == "unhealthy"
    assert "is a worker running?" in jobservice["error"]


def test_health_with_missing_bucket_names_the_store_error(start_dockyard, moto_server):
    env = object_storage_env(moto_server)
    env["DOCKYARD_STORAGE_URL"] = f"s3://missing-{secrets.token_hex(6)}/dockyard"
    server = start_dockyard(env)

    body = httpx.get(f"{server.url}{API}/health").json()

    storage = components(body)["storage"]
    assert (body["status"], storage["status"]) == ("unhealthy", "unhealthy")
    assert "NoSuchBucket" in storage["error"]


@local_storage_only
def test_health_with_broken_storage_is_unhealthy_with_error(start_dockyard):
    server = start_dockyard()
    uploads = server.data_dir / "storage" / "uploads"
    shutil.move(uploads, uploads.with_name("uploads.moved"))
    uploads.write_text("not a directory")  # writes into storage now fail
    try:
        body = httpx.get(f"{server.url}{API}/health").json()
    finally:
        uploads.unlink()
        shutil.move(uploads.with_name("uploads.moved"), uploads)

    storage = components(body)["storage"]
    assert body["status"] == "unhealthy"
    assert storage["status"] == "unhealthy"
    assert "NotADirectoryError" in storage["error"]
    assert components(body)["database"]["status"] == "healthy"


@local_storage_only
def test_health_after_storage_repair_is_healthy_again(start_dockyard):
    server = start_dockyard()
    uploads = server.data_dir / "storage" / "uploads"
    shutil.move(uploads, uploads.with_name("uploads.moved"))
    uploads.write_text("not a directory")
    httpx.get(f"{server.url}{API}/health")
    uploads.unlink()
    shutil.move(uploads.with_name("uploads.moved"), uploads)

    body = httpx.get(f"{server.url}{API}/health").json()

    assert body["status"] == "healthy"
