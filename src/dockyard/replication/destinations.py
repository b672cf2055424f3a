"""What a copy needs to know about its destination beyond the distribution
API: the projects it must create there, and where a blob probably is.

Projects. Harbor-type registries (Dockyard, Harbor) and this Dockyard keep
repositories in projects, and refuse a push into a project that does not
exist. Before copying, every destination project that is missing is
created, as Harbor's replication does:

    push-based, `harbor` endpoint   POST /api/v2.0/projects there, with the
                                    endpoint's credentials; only `public` is
                                    carried, true only if every source
                                    project mapped to it is public; 409 (made
                                    meanwhile by another task) is fine
    pull-based, into this Dockyard  created here, audited as `replication`;
                                    public only if the source is a `harbor`
                                    endpoint whose project is public
    other endpoint types            no projects: nothing to do

Mounts. The destination may hold a blob in another repository already,
copied there by an earlier task. This Dockyard's database knows which local
repositories link the blob: pushed, those land at the destination under
the policy's destination names; pulled, they are the destination itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from dockyard.projects import ProjectError, ProjectExists, ProjectService
from dockyard.registry.reference import project_of
from dockyard.replication.adapters.harbor import Harbor, HarborApi
from dockyard.replication.client import UpstreamError
from dockyard.replication.copier import MountSources
from dockyard.replication.policies import Policy, PolicyInvalid
from dockyard.replication.registries import RegistryService
from dockyard.replication.sides import ACTOR, CopyFailed, LocalSide

log = logging.getLogger(__name__)

Log = Callable[[str], None]


class DestinationProjects:
    """Creates the projects a policy's copies write to, where missing."""

    def __init__(self, projects: ProjectService, registries: RegistryService) -> None:
        self.projects = projects
        self.registries = registries

    async def prepare(
        self, policy: Policy, repositories: Iterable[str], log: Log
    ) -> None:
        """Make sure the destination projects of these source repositories
        exist. `UpstreamDenied` when the credentials may not create one,
        `CopyFailed` when this Dockyard cannot."""
        targets = _targets(policy, repositories)
        if not targets:
            return
        if policy.is_push:
            await self._prepare_remote(policy, targets, log)
        else:
            await self._prepare_local(policy, targets, log)

    async def _prepare_remote(
        self, policy: Policy, targets: dict[str, set[str]], log: Log
    ) -> None:
        registry = await self.registries.get_registry(
            int(policy.fields.dest_registry_id or 0)
        )
        if registry.type != Harbor.kind:
            return
        async with HarborApi(await self.registries.endpoint(registry)) as api:
            for project, sources in targets.items():
                if await api.project_exists(project):
                    continue
                public = await self._all_public_here(sources)
                created = await api.create_project(project, public)
                log(_created_line(project, "at the destination", public, created))

    async def _all_public_here(self, names: set[str]) -> bool:
        for name in names:
            found = await self.projects.find_project(name)
            if found is None or not found.public:
                return False
        return True

    async def _prepare_local(
        self, policy: Policy, targets: dict[str, set[str]], log: Log
    ) -> None:
        missing = {
            project: sources
            for project, sources in targets.items()
            if await self.projects.find_project(project) is None
        }
        if not missing:
            return
        registry = await self.registries.get_registry(
            int(policy.fields.src_registry_id or 0)
        )
        api = None
        if registry.type == Harbor.kind:
            api = HarborApi(await self.registries.endpoint(registry))
        try:
            for project, sources in missing.items():
                public = api is not None and await _all_public_there(api, sources)
                created = await self._create_here(project, public)
                log(_created_line(project, "here", public, created))
        finally:
            if api is not None:
                await api.aclose()

    async def _create_here(self, name: str, public: bool) -> bool:
        try:
            await self.projects.create_project(name, public=public, actor=ACTOR)
        except ProjectExists:
            return False
        except ProjectError as exc:
            raise CopyFailed(f"cannot create project {name} here: {exc}") from exc
        return True


async def _all_public_there(api: HarborApi, names: set[str]) -> bool:
    for name in names:
        try:
            if not await api.project_is_public(name):
                return False
        except UpstreamError as exc:
            # The flag is a nicety; the copy itself will say if the source
            # cannot be reached.
            log.warning("replication_public_flag_unread project=%s error=%s", name, exc)
            return False
    return True


def _targets(policy: Policy, repositories: Iterable[str]) -> dict[str, set[str]]:
    """Destination project -> the source projects copied into it. A
    destination name of one component has no project to create."""
    targets: dict[str, set[str]] = {}
    for repository in sorted(set(repositories)):
        destination = policy.destination_name(repository)
        if "/" not in destination:
            continue
        targets.setdefault(project_of(destination), set()).add(project_of(repository))
    return targets


def _created_line(project: str, where: str, public: bool, created: bool) -> str:
    if not created:
        return f"project {project} {where} was created meanwhile by another task"
    return f"created project {project} {where} ({'public' if public else 'private'})"


def mount_sources(policy: Policy, local: LocalSide) -> MountSources:
    """For a copy of `policy`: the repositories of the destination that
    probably hold a blob already."""

    async def pushed(src: str, dst: str, digest: str) -> list[str]:
        holders = await local.holders(digest, near=src)
        # Repositories this policy selects were copied there by its earlier
        # runs; the others only perhaps, by another policy.
        holders.sort(key=lambda name: not policy.selects_repository(name))
        return _destination_names(policy, holders)

    async def pulled(src: str, dst: str, digest: str) -> list[str]:
        return await local.holders(digest, near=dst)

    return pushed if policy.is_push else pulled


def _destination_names(policy: Policy, repositories: list[str]) -> list[str]:
    names = []
    for repository in repositories:
        try:
            names.append(policy.destination_name(repository))
        except PolicyInvalid:
            continue
    return names
