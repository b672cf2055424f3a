"""Running replication policies as jobs (job type `REPLICATION`).

    manual start / cron tick         event in Dockyard (see below)
           |                                   |
    execution, one "plan" task        execution with the copy or delete
           |                          tasks themselves (no plan)
    plan: list what the filters
    select, make the destination
    projects, add one "copy" task
    per tag to the same execution
           |
    copy / delete / delete_tag: the destination projects made first where
    missing (DestinationProjects, copies only), then ArtifactCopy; up to
    three attempts with a growing pause, each failure written to the task
    log; refused credentials (401/403), 413 and a deletion the registry
    refuses (400/405) end the task at once. A failure replication expects
    ends the task with one line in its log (`TaskFailed`), no traceback

Events, as Harbor has them: a push (OCI manifest PUT), a tag added through
the API and an artifact copied in through the API (`?from=`, each of its
tags) fire copies; with `replicate_deletion`, an artifact deleted (OCI or
API), a tag deleted (OCI DELETE by tag, or the API) and a repository
deleted through the API (each artifact it listed) fire deletions. Filters
are tested against the artifact's tags and labels: read when the event is
handled for a copy, snapshot before the deletion for a deletion. Adding or
removing a label fires nothing (as in Harbor).

An execution belongs to its policy through `job_executions.owner`. Events
are only enqueued on the request path (a task the event loop runs later),
so a push never waits for a replication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from dockyard.db.database import Database
from dockyard.db.schema import repositories, tags
from dockyard.jobs.records import EVENT, MANUAL, JobService, TaskFailed, TaskStopped
from dockyard.jobs.schedules import Schedule
from dockyard.jobs.worker import TaskContext
from dockyard.projects import ProjectService
from dockyard.registry.blobs import BlobService
from dockyard.registry.digest import is_digest
from dockyard.registry.manifests import ManifestService
from dockyard.registry.reference import is_valid_name
from dockyard.replication.adapters.harbor import HarborApi
from dockyard.replication.client import (
    RegistryClient,
    UpstreamDenied,
    UpstreamError,
    UpstreamNotFound,
)
from dockyard.replication.copier import ArtifactCopy
from dockyard.replication.destinations import DestinationProjects, mount_sources
from dockyard.replication.facts import (
    ArtifactFacts,
    artifact_facts,
    label_names,
    repository_facts,
)
from dockyard.replication.policies import (
    EVENT_BASED,
    LABELLED_SOURCE_TYPE,
    SCHEDULED,
    Policy,
    PolicyError,
    PolicyInvalid,
    PolicyNotFound,
    PolicyService,
    matching_names,
)
from dockyard.replication.registries import (
    RegistryError,
    RegistryInvalid,
    RegistryService,
)
from dockyard.replication.sides import (
    CopyFailed,
    DeletionRefused,
    LocalSide,
    RemoteSide,
)
from dockyard.state.locks import LockBusy, Locks, hold

log = logging.getLogger(__name__)

REPLICATION = "REPLICATION"
PLAN, COPY, DELETE, DELETE_TAG = "plan", "copy", "delete", "delete_tag"
ATTEMPTS = 3
_FIRST_PAUSE_SECONDS = 1.0
_CHUNK_BYTES = 8 * 1024 * 1024
_LOCK_TTL_SECONDS = 30.0
_LOCK_WAIT_SECONDS = 60.0
# What a replication task can meet without a fault in Dockyard: the task
# fails saying why, with no traceback.
EXPECTED_FAILURES = (CopyFailed, PolicyError, RegistryError, UpstreamError)


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

    def on_tag_added(self, repository: str, tag: str) -> None:
        """A tag added through the API: copied as a push of it would be."""
        self._spawn(self._copy_events(repository, tag, every_tag=False))

    def on_copied(self, repository: str, digest: str) -> None:
        """An artifact copied in through the API: each tag it has here is
        copied as a push of it would be (by digest if it has none)."""
        self._spawn(self._copy_events(repository, digest, every_tag=True))

    async def snapshot(self, repository: str, reference: str) -> ArtifactFacts | None:
        """What the filters ask of the artifact `reference` names; take it
        before deleting the artifact or a tag of it. None when no policy
        replicates deletions (nothing will ask)."""
        if not await self._replicates_deletions():
            return None
        return await artifact_facts(self.db, repository, reference)

    async def snapshot_repository(self, repository: str) -> list[ArtifactFacts]:
        """The same for every artifact of a repository about to be deleted
        (none when no policy replicates deletions)."""
        if not await self._replicates_deletions():
            return []
        return await repository_facts(self.db, repository)

    async def _replicates_deletions(self) -> bool:
        # One read on the delete path instead of the facts' several, in the
        # common case of no such policy.
        policies = await self.policies.enabled_policies(EVENT_BASED)
        return any(p.fields.replicate_deletion for p in policies)

    def on_deleted(self, repository: str, artifact: ArtifactFacts) -> None:
        """Enqueue the deletions an artifact deletion calls for."""
        self._spawn(self._submit_events([_deletion(repository, artifact)]))

    def on_tag_deleted(
        self, repository: str, tag: str, artifact: ArtifactFacts | None
    ) -> None:
        """Enqueue the tag deletions a tag deletion calls for; `artifact`
        is the snapshot of what the tag was on."""
        labels = artifact.labels if artifact else frozenset()
        event = _Event(DELETE_TAG, repository, tag, (tag,), labels)
        self._spawn(self._submit_events([event]))

    def on_repository_deleted(
        self, repository: str, artifacts: list[ArtifactFacts]
    ) -> None:
        """Enqueue the deletions of every artifact the repository had."""
        events = [_deletion(repository, artifact) for artifact in artifacts]
        if events:
            self._spawn(self._submit_events(events))

    async def drain_events(self) -> None:
        """Wait for the events enqueued so far to be submitted (shutdown)."""
        if self._events:
            await asyncio.gather(*self._events, return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(_logged(work))
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
        await self._copy_events(repository, reference, every_tag=False)

    async def _copy_events(
        self, repository: str, reference: str, every_tag: bool
    ) -> None:
        # Labels are read now, as Harbor reads them when it handles the
        # event: a fresh push carries none yet.
        found = await artifact_facts(self.db, repository, reference)
        if found is None:  # deleted again before the event was handled
            return
        chosen = (found.tags or (reference,)) if every_tag else (reference,)
        await self._submit_events(
            [_copy_event(repository, ref, found) for ref in chosen]
        )

    async def _submit_events(self, events: list[_Event]) -> None:
        """One execution per policy the events concern, one task per event."""
        for policy in await self.policies.enabled_policies(EVENT_BASED):
            try:
                tasks = [
                    _task(policy, e.step, e.repository, e.reference)
                    for e in events
                    if _takes(policy, e)
                ]
            except PolicyInvalid as exc:  # a name it cannot flatten
                log.warning(
                    "replication_event_skipped policy_id=%d: %s", policy.id, exc
                )
                continue
            if not tasks:
                continue
            execution_id = await self.jobs.submit(
                REPLICATION, tasks=tasks, trigger=EVENT, owner=policy.owner
            )
            log.info(
                "replication_event_submitted policy_id=%d execution_id=%d "
                "repository=%s tasks=%d",
                policy.id,
                execution_id,
                events[0].repository,
                len(tasks),
            )

    # Running ----------------------------------------------------------

    async def run_task(self, context: TaskContext) -> None:
        """The `REPLICATION` handler: plan, copy or delete. The failures
        replication expects end the task as `TaskFailed`, saying why."""
        params = context.params
        try:
            policy = await self.policies.get_policy(int(params["policy_id"]))
        except PolicyNotFound:
            context.log(f"policy {params['policy_id']} no longer exists")
            return
        run = self._plan if params["step"] == PLAN else self._run_once
        try:
            await _with_retries(context, lambda: run(context, policy))
        except EXPECTED_FAILURES as exc:
            raise TaskFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _plan(self, context: TaskContext, policy: Policy) -> None:
        execution_id = context.task.execution_id
        if await self.jobs.has_unfinished(policy.owner, other_than=execution_id):
            # The plan task is hidden when it succeeds: the execution itself
            # must say why it copied nothing.
            skipped = "skipped: the previous run of this policy is still active"
            context.log(skipped)
            await self.jobs.note_execution(execution_id, skipped)
            return
        context.log(f"planning policy {policy.id} ({policy.fields.name})")
        if policy.is_push:
            candidates = await self._local_candidates(policy)
        else:
            candidates = await self._remote_candidates(context, policy)
        tasks = [_task(policy, COPY, repository, tag) for repository, tag in candidates]
        context.log(f"{len(tasks)} artifact(s) to copy")
        # A plan stopped meanwhile ends Stopped, creating nothing more.
        await _stop_check(self.jobs, execution_id)()
        await self.destinations.prepare(
            policy, [repository for repository, _ in candidates], context.log
        )
        if tasks and not await self.jobs.add_tasks(execution_id, tasks):
            raise TaskStopped("the execution was stopped")

    async def _local_candidates(self, policy: Policy) -> list[tuple[str, str]]:
        query = (
            select(repositories.c.name, tags.c.name, tags.c.manifest_id)
            .join(tags, tags.c.repository_id == repositories.c.id)
            .order_by(repositories.c.name, tags.c.name)
        )
        async with self.db.read() as conn:
            rows = [
                r
                for r in (await conn.execute(query)).all()
                if _selects(policy, r[0], r[1])
            ]
            labels: dict[int, frozenset[str]] = {}
            if policy.has_label_filter:
                labels = await label_names(conn, [r[2] for r in rows])
        return [
            (r, t)
            for r, t, artifact in rows
            if policy.selects_labels(labels.get(artifact, frozenset()))
        ]

    async def _remote_candidates(
        self, context: TaskContext, policy: Policy
    ) -> list[tuple[str, str]]:
        source_id = policy.fields.src_registry_id
        client = await self._client(source_id)
        harbor = None
        if policy.has_label_filter:
            harbor = await self._harbor_api(source_id)
            if harbor is None:
                await client.aclose()
                raise PolicyInvalid("label filters need a harbor-type source")
        try:
            names = matching_names(policy.fields.filters)
            found = await self._source_repositories(source_id or 0, names)
            chosen = []
            for repository in found:
                if not policy.selects_repository(repository):
                    continue
                if not _nameable(context, policy, repository):
                    continue
                labels = await _remote_labels(harbor, repository)
                for tag in await _source_tags(context, client, repository):
                    carried = labels.get(tag, frozenset())
                    if policy.selects_tag(tag) and policy.selects_labels(carried):
                        chosen.append((repository, tag))
                    else:
                        context.log(f"filtered out {repository}:{tag}")
            return chosen
        finally:
            await client.aclose()
            if harbor is not None:
                await harbor.aclose()

    async def _source_repositories(
        self, source_id: int, names: list[str]
    ) -> list[str]:
        """Listed by the source's adapter, as its service allows."""
        try:
            return await self.registries.list_repositories(source_id, names)
        except RegistryInvalid as exc:
            # A filter the service cannot list: no retry can help.
            raise PolicyInvalid(str(exc)) from exc

    async def _run_once(self, context: TaskContext, policy: Policy) -> None:
        params = context.params
        registry_id = policy.fields.dest_registry_id or policy.fields.src_registry_id
        client = await self._client(registry_id)
        harbor = None
        if params["step"] == DELETE_TAG:
            harbor = await self._harbor_api(registry_id)
        remote = RemoteSide(
            client, _CHUNK_BYTES if policy.fields.copy_by_chunk else None, harbor
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
            elif params["step"] == DELETE_TAG:
                await copy.delete_tag(params["dst"], params["reference"])
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
            if harbor is not None:
                await harbor.aclose()

    async def _client(self, registry_id: int | None) -> RegistryClient:
        if registry_id is None:
            raise PolicyInvalid("the policy names no registry")
        registry = await self.registries.get_registry(registry_id)
        return RegistryClient(await self.registries.endpoint(registry))

    async def _harbor_api(self, registry_id: int | None) -> HarborApi | None:
        """Harbor's API on the registry, if it is a `harbor`-type one."""
        if registry_id is None:
            raise PolicyInvalid("the policy names no registry")
        registry = await self.registries.get_registry(registry_id)
        if registry.type != LABELLED_SOURCE_TYPE:
            return None
        return HarborApi(await self.registries.endpoint(registry))


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


async def _source_tags(
    context: TaskContext, client: RegistryClient, repository: str
) -> list[str]:
    """The source's tags of `repository`; none when it has no such
    repository (a name filter may name one that does not exist)."""
    try:
        return await client.list_tags(repository)
    except UpstreamNotFound:
        context.log(f"{repository}: not found at the source")
        return []


def _nameable(context: TaskContext, policy: Policy, repository: str) -> bool:
    """Whether a repository the source listed, and its name here, are
    repository names. Others are skipped, saying so: no registry may hold
    them, and one with `..` or `?` would address other paths there."""
    try:
        valid = is_valid_name(repository) and is_valid_name(
            policy.destination_name(repository)
        )
    except PolicyInvalid:
        return True  # the flattening's own error is raised when planned
    if not valid:
        context.log(f"skipped {repository[:300]!r}: not a valid repository name")
    return valid


def _not_retried_because(exc: Exception) -> str | None:
    """Why retrying after `exc` cannot help; None when it may."""
    if isinstance(exc, UpstreamDenied):
        return (
            "the registry refused these credentials or what they may do; "
            "a retry cannot help: fix the endpoint's credentials or permissions"
        )
    if isinstance(exc, UpstreamError) and exc.status == 413:
        return "the registry refuses something this large; a retry cannot help"
    if isinstance(exc, DeletionRefused):
        return "the registry refuses this deletion; a retry cannot help"
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


@dataclass(frozen=True, slots=True)
class _Event:
    """One thing an event asks of each policy: `step` on `reference`
    (a tag or digest) of `repository`; `tags` and `labels` are what the
    filters test (no tags: an untagged artifact, or a push by digest)."""

    step: str
    repository: str
    reference: str
    tags: tuple[str, ...]
    labels: frozenset[str]


def _copy_event(repository: str, reference: str, found: ArtifactFacts) -> _Event:
    """The copy of `reference`, `found` being the artifact it names. A tag
    is tested by itself; a digest (a referrer's subject) by the tags the
    artifact has, as Harbor tests an accessory by its parent's tags."""
    tags = found.tags if is_digest(reference) else (reference,)
    return _Event(COPY, repository, reference, tags, found.labels)


def _deletion(repository: str, artifact: ArtifactFacts) -> _Event:
    # Harbor tests a deleted artifact's tags as they were: the deletion
    # goes through if any of them passes the tag filters.
    return _Event(DELETE, repository, artifact.digest, artifact.tags, artifact.labels)


def _tags(reference: str) -> tuple[str, ...]:
    return () if is_digest(reference) else (reference,)


def _takes(policy: Policy, event: _Event) -> bool:
    """Whether `policy` replicates `event`."""
    if event.step != COPY and not policy.fields.replicate_deletion:
        return False
    if not policy.selects_repository(event.repository):
        return False
    return _selects_tags(policy, event.tags) and policy.selects_labels(event.labels)


def _selects(policy: Policy, repository: str, reference: str) -> bool:
    if not policy.selects_repository(repository):
        return False
    return _selects_tags(policy, _tags(reference))


def _selects_tags(policy: Policy, names: tuple[str, ...]) -> bool:
    """Whether an artifact with tags `names` passes the tag filters: one
    of its tags does. An untagged artifact is tested as the empty tag, as
    Harbor does: `**` or `*` takes it, `v*` does not, excluding `v*` does."""
    return any(policy.selects_tag(name) for name in names or ("",))


async def _remote_labels(
    harbor: HarborApi | None, repository: str
) -> dict[str, frozenset[str]]:
    """Each tag's label names at the source (nothing without `harbor`)."""
    return {} if harbor is None else await harbor.labels_by_tag(repository)


async def _logged(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:  # an event must never break the request that made it
        log.exception("replication_event_failed")


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
