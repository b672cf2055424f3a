"""Component health for `/api/v2.0/health`, in Harbor's shape:

    {"status": "healthy"|"unhealthy",
     "components": [{"name": "core", "status": "healthy"},
                    {"name": "database", "status": "unhealthy", "error": "..."}]}

Each component is a named check: an async function that returns when the
component works and raises otherwise. To add one, append `(name, check)` to
`COMPONENT_CHECKS`; a check that raises `ComponentAbsent` leaves its
component out (redis when no `redis_url` is set). Checks run
concurrently, each bounded by `CHECK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from dockyard.services import Services

CHECK_TIMEOUT_SECONDS = 5.0
# Work nobody took for this long means no job worker runs (or all are stuck).
JOB_WAIT_LIMIT = timedelta(minutes=5)
_ERROR_LENGTH = 200
# user:password@ in URLs that a driver's message may quote.
_URL_CREDENTIALS_RE = re.compile(r"(//)[^/@\s]+@")
# The error code in an S3-style XML error body (S3, MinIO, GCS's XML API).
_STORE_CODE_RE = re.compile(r"<Code>(\w{1,64})</Code>")

HealthCheck = Callable[["Services"], Awaitable[None]]


class ComponentAbsent(Exception):
    """The component is not part of this deployment: leave it out."""


class ComponentUnhealthy(Exception):
    """The component answered, but not as it should; the message says how."""


async def check_database(services: Services) -> None:
    """A real query on the metadata store."""
    async with services.db.read() as conn:
        if await conn.scalar(text("SELECT 1")) != 1:
            raise ComponentUnhealthy("SELECT 1 did not return 1")


async def check_storage(services: Services) -> None:
    """Create, measure and delete a probe upload through the storage contract."""
    storage = services.uploads.storage
    probe = f"health-probe-{uuid.uuid4().hex}"

    await storage.create_upload(probe)
    try:
        if await storage.upload_size(probe) != 0:
            raise ComponentUnhealthy("a new probe upload is not empty")
    finally:
        await storage.delete_upload(probe)


async def check_redis(services: Services) -> None:
    """A PING to the Redis replicas share, when there is one."""
    if services.redis is None:
        raise ComponentAbsent
    await services.redis.ping()


async def check_jobservice(services: Services) -> None:
    """The job queue answers, and no task has waited for a worker too long."""
    await services.jobs.queue.depth()
    waiting = await services.jobs.count_waiting(JOB_WAIT_LIMIT)
    if waiting:
        minutes = JOB_WAIT_LIMIT.total_seconds() / 60
        raise ComponentUnhealthy(
            f"{waiting} tasks waited over {minutes:g} minutes: is a worker running?"
        )


COMPONENT_CHECKS: tuple[tuple[str, HealthCheck], ...] = (
    ("database", check_database),
    ("storage", check_storage),
    ("redis", check_redis),
    ("jobservice", check_jobservice),
)


async def overall_health(services: Services) -> dict[str, Any]:
    """Every component's status; unhealthy overall when any component is."""
    results = await asyncio.gather(
        *(_component(name, check, services) for name, check in COMPONENT_CHECKS)
    )
    components = [{"name": "core", "status": "healthy"}]
    components += [result for result in results if result is not None]
    healthy = all(c["status"] == "healthy" for c in components)
    return {"status": "healthy" if healthy else "unhealthy", "components": components}


async def _component(
    name: str, check: HealthCheck, services: Services
) -> dict[str, Any] | None:
    try:
        await asyncio.wait_for(check(services), CHECK_TIMEOUT_SECONDS)
    except ComponentAbsent:
        return None
    except TimeoutError:
        error = f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
        return {"name": name, "status": "unhealthy", "error": error}
    except Exception as exc:  # noqa: BLE001 - any failure is unhealthy; shown
        return {"name": name, "status": "unhealthy", "error": describe_error(exc)}
    return {"name": name, "status": "healthy"}


def describe_error(exc: BaseException) -> str:
    """The exception's type, the error code an object store answered with
    (`NoSuchBucket`, `AccessDenied`: often quoted below a long first line),
    and the first line, without URL credentials, short."""
    text = str(exc).strip()
    first_line = (text.splitlines() or [""])[0]
    message = _URL_CREDENTIALS_RE.sub(r"\1***@", first_line)
    code = _STORE_CODE_RE.search(text)
    if code:
        message = f"{code.group(1)}: {message}"
    described = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return described[:_ERROR_LENGTH]
