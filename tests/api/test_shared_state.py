"""Replicas that share one database and one Redis: `dockyard serve` processes
(and a `dockyard worker`) started as a scaled deployment would run them."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from dockyard.auth.throttle import MAX_PER_USER_AND_CLIENT
from tests.conftest import DOCKYARD, DockyardServer, clean_environment, stop_process

_WAIT_SECONDS = 60


@pytest.fixture
def replicas(
    tmp_path, redis_url, redis_prefix
) -> Iterator[Callable[..., DockyardServer]]:
    """Start replicas on one SQLite database and one Redis prefix; the first
    one started creates the schema and the admin."""
    shared = {
        "DOCKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "DOCKYARD_REDIS_URL": redis_url,
        "DOCKYARD_REDIS_PREFIX": redis_prefix,
    }
    started: list[DockyardServer] = []

    def start(**env: str) -> DockyardServer:
        server = DockyardServer(tmp_path / f"replica{len(started)}", {**shared, **env})
        if started:
            server.admin_password = started[0].admin_password
            server._env["DOCKYARD_ADMIN_PASSWORD"] = server.admin_password
        started.append(server)
        return server.start()

    start.shared = shared  # type: ignore[attr-defined]
    start.database = tmp_path / "shared.db"  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for server in started:
            server.stop()


def rows(database, query: str) -> list[tuple]:
    with sqlite3.connect(database) as conn:
        return conn.execute(query).fetchall()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_failed_logins_on_one_replica_throttle_the_other(replicas):
    first, second = replicas(), replicas()
    user = first.new_user()
    assert httpx.get(f"{second.url}/v2/", auth=(user.name, user.password)).is_success

    for _ in range(MAX_PER_USER_AND_CLIENT):
        wrong = httpx.get(f"{first.url}/v2/", auth=(user.name, "Wrong-pass1"))
        assert wrong.status_code == 401
    right = httpx.get(f"{second.url}/v2/", auth=(user.name, user.password))

    assert right.status_code == 429
    assert right.json()["errors"][0]["code"] == "TOOMANYREQUESTS"


def test_scheduled_job_runs_once_per_tick_across_replicas(replicas):
    every_second = {"DOCKYARD_JOBS__SCHEDULES__EXPIRE_UPLOADS": "* * * * * *"}
    first, second = replicas(**every_second), replicas(**every_second)
    database = replicas.database
    count = "SELECT count(*) FROM job_executions"
    wait_for(lambda: rows(database, count)[0][0] >= 4, "four ticks")
    first.stop()  # the leader may be either; ticks must go on without a double
    before = rows(database, count)[0][0]
    wait_for(lambda: rows(database, count)[0][0] >= before + 4, "four more ticks")
    second.stop()

    ticks = rows(database, "SELECT scheduled_for FROM job_executions")
    runs = rows(database, "SELECT run_count, status FROM job_tasks")

    assert len(ticks) == len(set(ticks))
    assert set(runs) <= {(1, "Success"), (1, "Stopped")}
    assert "schedule_tick_taken" not in first.log() + second.log()


def test_worker_runs_the_jobs_replicas_schedule(replicas):
    server = replicas(
        DOCKYARD_JOBS__SCHEDULES__EXPIRE_UPLOADS="* * * * * *",
        DOCKYARD_JOBS__EMBEDDED_WORKER="false",
    )
    worker = subprocess.Popen(
        [*DOCKYARD, "worker", "--data-dir", str(server.root / "worker")],
        env={**clean_environment(), **replicas.shared},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done = "SELECT worker FROM job_tasks WHERE status = 'Success'"
    try:
        wait_for(lambda: len(rows(replicas.database, done)) >= 3, "three runs")
    finally:
        stop_process(worker)

    workers = {worker for (worker,) in rows(replicas.database, done)}

    assert workers == {f"{socket.gethostname()}:{worker.pid}"}
