"""`/api/v2.0/health` over HTTP: every component, and a broken one."""

from __future__ import annotations

import shutil

import httpx

API = "/api/v2.0"


def components(body: dict) -> dict[str, dict]:
    return {c["name"]: c for c in body["components"]}


def test_health_reports_core_database_and_storage_healthy(api):
    body = api.get(f"{API}/health").json()

    assert body["status"] == "healthy"
    assert {n: c["status"] for n, c in components(body).items()} == {
        "core": "healthy",
        "database": "healthy",
        "storage": "healthy",
    }


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
