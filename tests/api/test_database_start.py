"""Replicas that start at once on one database: one migrates the schema and
creates the initial content, the others wait for it and come up too.

These tests bring their own databases (PostgreSQL, and SQLite shared by two
servers), whichever backend the suite runs on.
"""

import asyncio
import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from dockyard.config import normalise_database_url
from dockyard.db.locks import lock_key, lock_path
from tests.backends import (
    create_database,
    drop_database,
    ensure_postgres_running,
    postgres_url,
    run_postgres,
)
from tests.conftest import DOCKYARD, DockyardServer, clean_environment
from tests.migrations import current_revision, head_revision, on_connection

API = "/api/v2.0"


def fresh_postgres_database():
    """The URL of a fresh PostgreSQL database, dropped afterwards."""
    ensure_postgres_running()
    name = create_database()
    try:
        yield postgres_url(name)
    finally:
        drop_database(name)


postgres_database = pytest.fixture(fresh_postgres_database)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def shared_database(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('shared') / 'dockyard.db'}"
        return
    yield from fresh_postgres_database()


_WAIT_SECONDS = 60


@contextmanager
def migrate_lock_held(database_url: str) -> Iterator[Callable[[], int]]:
    """Hold the "migrate" lock of `database_url` as a migrating replica would;
    yield a function counting the processes waiting for it."""
    if database_url.startswith("sqlite"):
        path = lock_path(Path(make_url(database_url).database), "migrate")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield lambda: _flock_waiters(path)
        finally:
            os.close(descriptor)
        return
    with _advisory_lock_held(database_url, lock_key("migrate")) as waiters:
        yield waiters


def _flock_waiters(path: Path) -> int:
    """Blocked lock requests on `path`: /proc/locks lists them after '->'."""
    inode = f":{path.stat().st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and inode in line)


@contextmanager
def _advisory_lock_held(database_url: str, key: int) -> Iterator[Callable[[], int]]:
    import asyncpg

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    url = make_url(database_url)
    connection = run(
        asyncpg.connect(host=url.host, port=url.port, user=url.username,
                        database=url.database)
    )  # fmt: skip
    run(connection.execute("SELECT pg_advisory_lock($1)", key))
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF

    def waiters() -> int:
        rows = run_postgres(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            f"AND NOT granted AND classid = {unsigned >> 32} "
            f"AND objid = {unsigned & 0xFFFF_FFFF} AND objsubid = 1"
        )
        return rows[0][0]

    try:
        yield waiters
    finally:
        run(connection.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def start_together(
    servers: list[DockyardServer], database_url: str
) -> list[BaseException]:
    """Start every server while the migrate lock is held, wait until all wait
    for it, then let go: they contend for it at the same moment. Return the
    errors of those that failed to start (or to wait)."""
    errors: list[BaseException] = []

    def start(server: DockyardServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    with migrate_lock_held(database_url) as waiters:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + _WAIT_SECONDS
        while waiters() < len(servers) and not errors:
            if time.monotonic() > deadline:
                errors.append(TimeoutError("replicas did not wait for the lock"))
                break
            time.sleep(0.05)
    for thread in threads:
        thread.join()
    return errors


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory, shared_database):
    """Two servers with data directories of their own and one database,
    started at the same moment; and the errors of those that did not start."""
    password = "Adm1n-" + "replica-start"
    env = {"DOCKYARD_DATABASE_URL": shared_database}
    servers = [
        DockyardServer(tmp_path_factory.mktemp("replica"), env, admin_password=password)
        for _ in range(2)
    ]
    try:
        yield servers, start_together(servers, normalise_database_url(shared_database))
    finally:
        for server in servers:
            server.stop()


def test_replicas_started_at_once_both_come_up(two_replicas):
    servers, errors = two_replicas

    assert errors == []
    assert [httpx.get(f"{s.url}/v2/").status_code for s in servers] == [401, 401]


def test_replicas_started_at_once_migrate_the_schema_once(two_replicas):
    servers, _ = two_replicas

    logs = "".join(server.log() for server in servers)
    assert logs.count("database_migrated from=None") == 1


def test_replicas_started_at_once_create_one_admin_and_one_library(two_replicas):
    servers, _ = two_replicas

    server = servers[1]
    auth = ("admin", server.admin_password)
    users = httpx.get(f"{server.url}{API}/users", auth=auth).json()
    library = httpx.get(f"{server.url}{API}/projects?name=library", auth=auth).json()
    assert ([u["username"] for u in users], len(library)) == (["admin"], 1)


def test_migrate_command_brings_a_fresh_postgresql_database_to_head(
    postgres_database, tmp_path
):
    env = {**clean_environment(), "DOCKYARD_DATABASE_URL": postgres_database}

    result = subprocess.run(
        [*DOCKYARD, "migrate", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    url = normalise_database_url(postgres_database)
    assert on_connection(url, current_revision) == head_revision()


def test_migrate_command_with_unsupported_database_url_fails_with_exit_2(tmp_path):
    env = {**clean_environment(), "DOCKYARD_DATABASE_URL": "mysql://db/dockyard"}

    result = subprocess.run(
        [*DOCKYARD, "migrate", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert "DOCKYARD_DATABASE_URL" in result.stderr
