"""The stores the test servers run on, chosen by `DOCKYARD_TEST_BACKEND`.

- `embedded` (the default): each server keeps SQLite and its blobs in its own
  data directory; nothing to provision.
- `production`: each server gets fresh shared stores of its own: a
  PostgreSQL database `dockyard_test_<random>` on 127.0.0.1:5432 (user
  postgres, trust authentication), dropped when the server stops, and a Redis
  key prefix of its own on the machine's Redis (`DOCKYARD_TEST_REDIS_URL`,
  default 127.0.0.1:6379/0), whose keys are deleted when it stops.
  `ProductionBackend.provision` returns the environment of one server,
  `release` gives back what it provisioned. Blob storage (S3 on the moto
  emulator) is chosen apart, by `TEST_STORAGE` in tests/conftest.py.

PostgreSQL and Redis are started when they are not running (as ./scripts/test
does), never stopped or reconfigured: other users share them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

BACKEND_ENV = "DOCKYARD_TEST_BACKEND"
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
DATABASE_PREFIX = "dockyard_test_"
REDIS_PREFIX = "dockyard-test-"
_POSTGRES_START_SECONDS = 60


# What the production backend runs: the registry and API suites, and the
# end-to-end tests whose clients exercise the stores (push, pull, tokens).
# Unit tests and the embedded-only e2e tests (README start) run embedded.
PRODUCTION_TESTS = (
    "tests/api/",
    "tests/e2e/test_skopeo.py",
    "tests/e2e/test_private_project.py",
    "tests/e2e/test_oras.py",
    # Fills of proxy-cache blobs: storage commits, locks in Redis.
    "tests/e2e/test_proxy_faults.py",
    # Executions and tasks in PostgreSQL, the job queue and locks in Redis,
    # copied blobs in S3.
    "tests/e2e/test_replication.py",
    "tests/e2e/test_replication_adapters.py",
    # Hostile upstreams: proxy fills killed midway, fsck on the stores.
    "tests/e2e/test_hostile_upstreams.py",
)
# Tests that run once, in the embedded pass: those that bring their own
# databases of both kinds, those that bring their own shared stores
# (shared state on one SQLite file and Redis), and those that damage a
# server's local files on purpose (fsck; tests/e2e/test_replicas.py runs
# fsck on the production stores).
BACKEND_INDEPENDENT_TESTS = (
    "tests/api/test_database_start.py",
    "tests/api/test_shared_state.py",
    "tests/api/test_fsck.py",
)


def runs_on_backend(test_path: str) -> bool:
    """Whether the test in `test_path` (relative to the repository) runs on
    the backend of this session."""
    if backend_name() == "embedded":
        return True
    return test_path.startswith(PRODUCTION_TESTS) and not test_path.startswith(
        BACKEND_INDEPENDENT_TESTS
    )


def backend_name() -> str:
    name = os.environ.get(BACKEND_ENV, "embedded")
    if name not in ("embedded", "production"):
        raise RuntimeError(f"{BACKEND_ENV} must be embedded or production, not {name}")
    return name


class Backend(Protocol):
    def provision(self) -> dict[str, str]:
        """The `DOCKYARD_*` environment of one new server: stores of its own."""

    def release(self, env: dict[str, str]) -> None:
        """Give back what `provision` made for the server with `env`."""

    def close(self) -> None:
        """Give back whatever is still provisioned (end of the session)."""


class EmbeddedBackend:
    """SQLite and files in the server's data directory."""

    def provision(self) -> dict[str, str]:
        return {}

    def release(self, env: dict[str, str]) -> None:
        pass

    def close(self) -> None:
        pass


class ProductionBackend:
    """A fresh PostgreSQL database and Redis key prefix per server."""

    def __init__(self) -> None:
        ensure_postgres_running()
        ensure_redis_running()
        self._databases: set[str] = set()
        self._prefixes: set[str] = set()

    def provision(self) -> dict[str, str]:
        name = create_database()
        self._databases.add(name)
        prefix = f"{REDIS_PREFIX}{secrets.token_hex(6)}:"
        self._prefixes.add(prefix)
        return {
            "DOCKYARD_DATABASE_URL": postgres_url(name),
            "DOCKYARD_REDIS_URL": redis_url(),
            "DOCKYARD_REDIS_PREFIX": prefix,
        }

    def release(self, env: dict[str, str]) -> None:
        url = env.get("DOCKYARD_DATABASE_URL", "")
        name = url.rpartition("/")[2]
        if name in self._databases:
            self._databases.discard(name)
            drop_database(name)
        prefix = env.get("DOCKYARD_REDIS_PREFIX", "")
        if prefix in self._prefixes:
            self._prefixes.discard(prefix)
            delete_redis_keys(prefix)

    def close(self) -> None:
        for name in sorted(self._databases):
            drop_database(name)
        self._databases.clear()
        for prefix in sorted(self._prefixes):
            delete_redis_keys(prefix)
        self._prefixes.clear()


def make_backend() -> Backend:
    if backend_name() == "production":
        return ProductionBackend()
    return EmbeddedBackend()


# PostgreSQL


def postgres_url(database: str) -> str:
    return f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


def create_database() -> str:
    """A new empty database with a unique name; returns the name."""
    name = DATABASE_PREFIX + secrets.token_hex(6)
    run_postgres(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    """Drop `name`, ending sessions still connected to it."""
    assert name.startswith(DATABASE_PREFIX), name
    run_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_postgres(sql: str, database: str = "postgres") -> list[Any]:
    """Run one statement as the postgres user; the rows it returns."""

    async def run() -> list[Any]:
        import asyncpg

        connection = await asyncpg.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            database=database,
        )
        try:
            return list(await connection.fetch(sql))
        finally:
            await connection.close()

    return run_coroutine(run)


def postgres_answers() -> bool:
    try:
        run_postgres("SELECT 1")
    except OSError:
        return False
    return True


def ensure_postgres_running() -> None:
    """Start the machine's PostgreSQL cluster if nothing answers on its port."""
    if postgres_answers():
        return
    clusters = (
        sorted(os.listdir("/etc/postgresql"))
        if Path("/etc/postgresql").is_dir()
        else []
    )
    if not clusters or shutil.which("pg_ctlcluster") is None:
        raise RuntimeError("PostgreSQL is not running and is not installed here")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"],
        check=True,
        timeout=_POSTGRES_START_SECONDS,
    )
    deadline = time.monotonic() + _POSTGRES_START_SECONDS
    while not postgres_answers():
        if time.monotonic() > deadline:
            raise RuntimeError("PostgreSQL did not come up")
        time.sleep(0.2)


# Redis


def redis_url() -> str:
    return os.environ.get("DOCKYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_answers() -> bool:
    import redis

    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def ensure_redis_running() -> None:
    """Start the machine's Redis (as this kind of machine starts it) when
    nothing answers at the default address; never another one."""
    if redis_answers() or "DOCKYARD_TEST_REDIS_URL" in os.environ:
        return
    if shutil.which("redis-server") is None:
        raise RuntimeError("Redis is not running and is not installed here")
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1"]
        + ["--port", "6379", "--save", "", "--appendonly", "no"],
        check=True,
        timeout=30,
    )
    deadline = time.monotonic() + 30
    while not redis_answers():
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not come up")
        time.sleep(0.2)


def delete_redis_keys(prefix: str) -> None:
    """Delete exactly the keys under `prefix` (one test server's)."""
    import redis

    assert prefix.startswith(REDIS_PREFIX), prefix
    client = redis.Redis.from_url(redis_url())
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a thread of its own, so that callers
    need not care whether an event loop is running in theirs."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def execute_statement(database_url: str, statement: Any) -> Any:
    """Execute one SQLAlchemy statement on a server's database and commit:
    for tests that must put the database in a state no API reaches, or read
    what no API shows. Returns the first column of the first row, if any."""
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    from dockyard.config import normalise_database_url

    url = normalise_database_url(database_url)
    if url.startswith("sqlite"):
        engine = create_engine(url)
        with engine.begin() as connection:
            result = connection.execute(statement)
            value = result.scalar() if result.returns_rows else None
        engine.dispose()
        return value

    async def run() -> Any:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            result = await connection.execute(statement)
            value = result.scalar() if result.returns_rows else None
        await engine.dispose()
        return value

    return run_coroutine(run)
