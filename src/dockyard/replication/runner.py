"""Running replication policies as jobs (job type `REPLICATION`).

    manual start / cron tick         push or delete in Dockyard (event)
           |                                   |
    execution, one "plan" task        execution with the copy or delete
           |                          task itself (no plan)
    plan: list what the filters
    select, make the destination
    projects, add one "copy" task
    per tag to the same execution
           |
    copy / delete: the destination projects made first where missing
    (DestinationProjects), then ArtifactCopy; up to three attempts with a
    growing pause, each failure written to the task log; refused
    credentials (401/403) and 413 end the task at once

An execution belongs to its policy through `job_executions.owner`. Events
are only enqueued on the push path (a task the event loop runs later), so
a push never waits for a replication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import select

from dockyard.db.database import Database
from dockyard.db.schema import repositories, tags
from dockyard.jobs.records import EVENT, MANUAL, JobService, TaskStopped
from dockyard.jobs.schedules import Schedule
from dockyard.jobs.worker import TaskContext
from dockyard.projects import ProjectService
from dockyard.registry.blobs import BlobService
from dockyard.registry.digest import is_digest
from dockyard.registry.manifests import ManifestService
from dockyard.replication.client import (
    RegistryClient,
    UpstreamDenied,
    UpstreamError,
)
from dockyard.replication.copier import ArtifactCopy
from dockyard.replication.destinations import DestinationProjects, mount_sources
from dockyard.replication.patterns import has_wildcards
from dockyard.replication.policies import (
    EVENT_BASED,
    SCHEDULED,
    Policy,
    PolicyInvalid,
    PolicyNotFound,
    PolicyService,
)
from dockyard.replication.registries import RegistryService
from dockyard.replication.sides import CopyFailed, LocalSide, RemoteSide
from dockyard.state.locks import LockBusy, Locks, hold

log = logging.getLogger(__name__)

REPLICATION = "REPLICATION"
PLAN, COPY, DELETE = "plan", "copy", "delete"
ATTEMPTS = 3
_FIRST_PAUSE_SECONDS = 1.0
_CHUNK_BYTES = 8 * 1024 * 1024
_LOCK_TTL_SECONDS = 30.0
_LOCK_WAIT_SECONDS = 60.0


class Replication:
    """Starts, runs and stops replication executions."""

    def __init__(
        self,
        db: Database,
        jobs: JobService,
        policies: PolicyService,
        registries: RegistryService,
        manifests: ManifestService,
        blobs: BlobService,
        locks: Locks,
        projects: ProjectService,
    ) -> None:
        self.locks = locks
        self.db = db
        self.jobs = jobs
        self.policies = policies
        self.registries = registries
        self.local = LocalSide(manifests, blobs)
        self.destinations = DestinationProjects(projects, registries)
        self._events: set[asyncio.Task[None]] = set()

    async def start(self, policy: Policy) -> int:
        """A manual run of `policy`; its execution id."""
        if not policy.fields.enabled:
            raise PolicyInvalid(f"policy {policy.id} is disabled")
        return await self.jobs.submit(
            REPLICATION, _plan(policy.id), trigger=MANUAL, owner=policy.owner
        )

    async def schedules(self) -> list[Schedule]:
        """One schedule per enabled policy with a cron trigger."""
        return [
            Schedule(
                policy.owner,
                REPLICATION,
                policy.fields.cron,
                _plan(policy.id),
                owner=policy.owner,
            )
            for policy in await self.policies.enabled_policies(SCHEDULED)
        ]

    # Events -----------------------------------------------------------

    def on_pushed(self, repository: str, reference: str, subject: str | None) -> None:
        """Enqueue the event-based replications a push calls for."""
        self._spawn(self._pushed(repository, reference, subject))

    def on_deleted(self, repository: str, digest: str) -> None:
        """Enqueue the deletions a manifest deletion calls for."""
        self._spawn(self._deleted(repository, digest))

    async def drain_events(self) -> None:
        """Wait for the events enqueued so far to be submitted (shutdown)."""
        if self._events:
            await asyncio.gather(*self._events, return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _pushed(
        self, repository: str, reference: str, subject: str | None
    ) -> None:
        # A manifest pushed by digest alone is an index's child (copied with
        # the index when its tag is pushed) or a referrer, replicated with
        # its subject (whose copy carries every referrer and the tag
        # fallback index).
        if is_digest(reference):
            if subject is None:
                return
            reference = subject
        await self._submit_events(repository, reference, COPY)

    async def _deleted(self, repository: str, digest: str) -> None:
        await self._submit_events(repository, digest, DELETE)

    async def _submit_events(self, repository: str, reference: str, step: str) -> None:
        try:
            for policy in await self.policies.enabled_policies(EVENT_BASED):
                if step == DELETE and not policy.fields.replicate_deletion:
                    continue
                if not _selects(policy, repository, reference):
                    continue
                task = _task(policy, step, repository, reference)
                execution_id = await self.jobs.submit(
                    REPLICATION, task, trigger=EVENT, owner=policy.owner
                )
                log.info(
                    "replication_event_submitted policy_id=%d execution_id=%d "
                    "repository=%s",
                    policy.id,
                    execution_id,
                    repository,
                )
        except Exception:  # an event must never break the push that made it
            log.exception("replication_event_failed repository=%s", repository)

    # Running ----------------------------------------------------------

    async def run_task(self, context: TaskContext) -> None:
        """The `REPLICATION` handler: plan, copy or delete."""
        params = context.params
        try:
            policy = await self.policies.get_policy(int(params["policy_id"]))
        except PolicyNotFound:
            context.log(f"policy {params['policy_id']} no longer exists")
            return
        if params["step"] == PLAN:
            await _with_retries(context, lambda: self._plan(context, policy))
        else:
            await _with_retries(context, lambda: self._run_once(context, policy))

    async def _plan(self, context: TaskContext, policy: Policy) -> None:
        execution_id = context.task.execution_id
        if await self.jobs.has_unfinished(policy.owner, other_than=execution_id):
            context.log("skipped: the previous run of this policy is still active")
            return
        context.log(f"planning policy {policy.id} ({policy.fields.name})")
        if policy.is_push:
            candidates = await self._local_candidates(policy)
        else:
            candidates = await self._remote_candidates(context, policy)
        tasks = [_task(policy, COPY, repository, tag) for repository, tag in candidates]
        context.log(f"{len(tasks)} artifact(s) to copy")
        await self.destinations.prepare(
            policy, [repository for repository, _ in candidates], context.log
        )
        await self.jobs.add_tasks(execution_id, tasks)

    async def _local_candidates(self, policy: Policy) -> list[tuple[str, str]]:
        query = (
            select(repositories.c.name, tags.c.name)
            .join(tags, tags.c.repository_id == repositories.c.id)
            .order_by(repositories.c.name, tags.c.name)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [(r, t) for r, t in rows if _selects(policy, r, t)]

    async def _remote_candidates(
        self, context: TaskContext, policy: Policy
    ) -> list[tuple[str, str]]:
        client = await self._client(policy.fields.src_registry_id)
        try:
            names = [
                str(f.value)
                for f in policy.fields.filters
                if f.type == "name" and f.decoration == "matches" and f.value
            ]
            if len(names) == 1 and not has_wildcards(names[0]):
                found = names
            else:
                found = await client.list_repositories()
            chosen = []
            for repository in found:
                if not policy.selects_repository(repository):
                    continue
                for tag in await client.list_tags(repository):
                    if policy.selects_tag(tag):
                        chosen.append((repository, tag))
                    else:
                        context.log(f"filtered out {repository}:{tag}")
            return chosen
        finally:
            await client.aclose()

    async def _run_once(self, context: TaskContext, policy: Policy) -> None:
        params = context.params
        registry_id = policy.fields.dest_registry_id or policy.fields.src_registry_id
        client = await self._client(registry_id)
        remote = RemoteSide(
            client, _CHUNK_BYTES if policy.fields.copy_by_chunk else None
        )
        source, destination = (
            (self.local, remote) if policy.is_push else (remote, self.local)
        )
        copy = ArtifactCopy(
            source,
            destination,
            context.log,
            _stop_check(self.jobs, context.task.execution_id),
            policy.fields.speed,
            lambda name: _waiting_lock(self.locks, f"replication:{registry_id}:{name}"),
            mount_sources(policy, self.local),
        )
        try:
            if params["step"] == DELETE:
                await copy.delete(params["dst"], params["reference"])
            else:
                # Also for a copy no plan prepared (an event's).
                await self.destinations.prepare(policy, [params["src"]], context.log)
                outcome = await copy.copy_tag(
                    params["src"],
                    params["reference"],
                    params["dst"],
                    policy.fields.override,
                )
                context.log(f"{outcome}: {params['src']}:{params['reference']}")
        finally:
            await client.aclose()

    async def _client(self, registry_id: int | None) -> RegistryClient:
        if registry_id is None:
            raise PolicyInvalid("the policy names no registry")
        registry = await self.registries.get_registry(registry_id)
        return RegistryClient(await self.registries.endpoint(registry))


async def _with_retries(
    context: TaskContext, attempt_once: Callable[[], Awaitable[None]]
) -> None:
    """Run `attempt_once` up to `ATTEMPTS` times, pausing one, then two
    seconds; each failure goes to the task log, the last one is raised. A
    failure no retry can mend ends the task at once, saying so."""
    failures = []
    for attempt in range(1, ATTEMPTS + 1):
        try:
            await attempt_once()
            return
        except (TaskStopped, PolicyInvalid):
            raise
        except (UpstreamError, CopyFailed, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            hopeless = _not_retried_because(exc)
        failures.append(reason)
        context.log(f"attempt {attempt}/{ATTEMPTS} failed: {reason}")
        if hopeless:
            context.log(f"not retried: {hopeless}")
            raise CopyFailed(f"{reason} ({hopeless})")
        if attempt < ATTEMPTS:
            await asyncio.sleep(_FIRST_PAUSE_SECONDS * 2 ** (attempt - 1))
    raise CopyFailed(f"failed after {ATTEMPTS} attempts: {failures[-1]}")


def _not_retried_because(exc: Exception) -> str | None:
    """Why retrying after `exc` cannot help; None when it may."""
    if isinstance(exc, UpstreamDenied):
        return (
            "the registry refused these credentials or what they may do; "
            "a retry cannot help: fix the endpoint's credentials or permissions"
        )
    if isinstance(exc, UpstreamError) and exc.status == 413:
        return "the registry refuses something this large; a retry cannot help"
    return None


def _plan(policy_id: int) -> dict[str, Any]:
    return {"step": PLAN, "policy_id": policy_id}


def _task(policy: Policy, step: str, repository: str, reference: str) -> dict[str, Any]:
    return {
        "step": step,
        "policy_id": policy.id,
        "src": repository,
        "reference": reference,
        "dst": policy.destination_name(repository),
    }


def _selects(policy: Policy, repository: str, reference: str) -> bool:
    if not policy.selects_repository(repository):
        return False
    if is_digest(reference):
        # No tag to test: only policies without tag filters take it.
        return not any(f.type == "tag" and f.value for f in policy.fields.filters)
    return policy.selects_tag(reference)


@contextlib.asynccontextmanager
async def _waiting_lock(locks: Locks, name: str) -> AsyncIterator[None]:
    """Hold lock `name`, waiting for it up to `_LOCK_WAIT_SECONDS`."""
    deadline = time.monotonic() + _LOCK_WAIT_SECONDS
    while True:
        try:
            async with hold(locks, name, _LOCK_TTL_SECONDS):
                yield
                return
        except LockBusy:
            if time.monotonic() > deadline:
                raise CopyFailed(f"lock {name} stayed busy") from None
            await asyncio.sleep(0.2)


def _stop_check(jobs: JobService, execution_id: int) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        if await jobs.is_stopped(execution_id):
            raise TaskStopped("the execution was stopped")

    return check
