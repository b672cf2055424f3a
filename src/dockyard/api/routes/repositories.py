"""Repositories, artifacts and tags under `/projects/{project_name}/repositories`.

A repository is named inside its project; a name that holds slashes is sent
URL-encoded twice (`a%252Fb`), as Harbor's clients do, and decoded here.
Permissions are the registry's own: reading needs pull, tagging needs push,
deleting and describing need delete.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, select

from dockyard.api.deps import CallerDep, Page, PageDep, ServicesDep, paginated
from dockyard.api.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unauthorized,
)
from dockyard.api.query import apply_query
from dockyard.api.routes.users import harbor_time
from dockyard.auth.access import ProjectAccess
from dockyard.auth.principals import Principal
from dockyard.db.schema import manifests, projects, repositories
from dockyard.projects import visible_to
from dockyard.registry import mediatypes
from dockyard.registry.artifacts import Artifact, TagExists
from dockyard.registry.errors import (
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    StillReferenced,
)
from dockyard.registry.reference import project_of
from dockyard.services import Services

T = TypeVar("T")

router = APIRouter(tags=["repository", "artifact"])

_REPOSITORY_COLUMNS = {
    "name": repositories.c.name,
    "id": repositories.c.id,
    "creation_time": repositories.c.created_at,
    "update_time": repositories.c.updated_at,
}
_ARTIFACT_COLUMNS = {
    "digest": manifests.c.digest,
    "media_type": manifests.c.media_type,
    "push_time": manifests.c.created_at,
}
_IMAGE_CONFIGS = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
}
_ARTIFACT_PATH = "/projects/{project_name}/repositories/{repository_name}/artifacts"


class RepositoryUpdate(BaseModel):
    description: str = Field(max_length=4096)


class TagReq(BaseModel):
    name: str


def repository_permission(resource: str, action: str) -> Any:
    """`Annotated[str, ...]`: the full repository name from the path, once the
    caller holds (resource, action) in it."""

    async def resolve(
        project_name: str,
        repository_name: str,
        services: ServicesDep,
        caller: CallerDep,
    ) -> str:
        name = f"{project_name}/{unquote(repository_name)}"
        return await _require(services, caller, name, resource, action)

    return Annotated[str, Depends(resolve)]


RepositoryReader = repository_permission("repository", "read")
RepositoryUpdater = repository_permission("repository", "update")
RepositoryDeleter = repository_permission("repository", "delete")
ArtifactLister = repository_permission("artifact", "list")
ArtifactReader = repository_permission("artifact", "read")
ArtifactDeleter = repository_permission("artifact", "delete")
TagLister = repository_permission("tag", "list")
TagCreator = repository_permission("tag", "create")
TagDeleter = repository_permission("tag", "delete")


@router.get("/repositories")
async def list_all_repositories(
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    query = select(repositories).join(
        projects, projects.c.id == repositories.c.project_id
    )
    query = query.where(visible_to(caller))
    return await _repository_page(request, services, query, q, sort, page)


@router.get("/projects/{project_name}/repositories")
async def list_repositories(
    request: Request,
    project_name: str,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    access = await services.policy.access_by_name(caller, project_name)
    if access is None:
        raise NotFound(f"project {project_name} not found")
    if not access.reaches_repositories:
        raise (
            Unauthorized("authentication required")
            if caller.anonymous
            else Forbidden(f"you may not read {project_name}")
        )
    query = select(repositories).where(repositories.c.project_id == access.project.id)
    if not access.can("repository", "list"):
        query = query.where(
            repositories.c.name.in_(await _granted_names(services, access))
        )
    return await _repository_page(request, services, query, q, sort, page)


@router.get("/projects/{project_name}/repositories/{repository_name}")
async def get_repository(
    name: RepositoryReader, services: ServicesDep, caller: CallerDep
) -> dict[str, Any]:
    rows, _ = await services.artifacts.list_repositories(
        select(repositories).where(repositories.c.name == name), 0, 1
    )
    if not rows:
        raise NotFound(f"repository {name} not found")
    return _repository_resp(rows[0])


@router.put("/projects/{project_name}/repositories/{repository_name}")
async def update_repository(
    name: RepositoryUpdater,
    body: RepositoryUpdate,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    await _translate(
        services.artifacts.update_description(name, body.description, caller.username)
    )
    return Response(status_code=200)


@router.delete("/projects/{project_name}/repositories/{repository_name}")
async def delete_repository(
    name: RepositoryDeleter, services: ServicesDep, caller: CallerDep
) -> Response:
    await _translate(services.artifacts.delete_repository(name, caller.username))
    return Response(status_code=200)


@router.get(_ARTIFACT_PATH)
async def list_artifacts(
    request: Request,
    name: ArtifactLister,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    with_tag: bool = True,
) -> Response:
    query = apply_query(select(manifests), q, sort, _ARTIFACT_COLUMNS)
    found, total = await _translate(
        services.artifacts.list_artifacts(name, query, page.offset, page.size)
    )
    items = [await _artifact_resp(services, name, a, with_tag) for a in found]
    return paginated(request, items, total, page)


@router.get(_ARTIFACT_PATH + "/{reference}")
async def get_artifact(
    name: ArtifactReader,
    reference: str,
    services: ServicesDep,
    caller: CallerDep,
    with_tag: bool = True,
) -> dict[str, Any]:
    artifact = await _translate(services.artifacts.get_artifact(name, reference))
    return await _artifact_resp(services, name, artifact, with_tag)


@router.delete(_ARTIFACT_PATH + "/{reference}")
async def delete_artifact(
    name: ArtifactDeleter,
    reference: str,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    await _translate(
        services.artifacts.delete_artifact(name, reference, caller.username)
    )
    return Response(status_code=200)


@router.get(_ARTIFACT_PATH + "/{reference}/tags")
async def list_tags(
    request: Request,
    name: TagLister,
    reference: str,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
) -> Response:
    artifact = await _translate(services.artifacts.get_artifact(name, reference))
    window = artifact.tags[page.offset : page.offset + page.size]
    return paginated(
        request, [_tag_resp(artifact, t) for t in window], len(artifact.tags), page
    )


@router.post(_ARTIFACT_PATH + "/{reference}/tags", status_code=201)
async def create_tag(
    name: TagCreator,
    reference: str,
    body: TagReq,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    try:
        await _translate(
            services.artifacts.add_tag(name, reference, body.name, caller.username)
        )
    except TagExists as exc:
        raise Conflict(str(exc)) from exc
    return Response(status_code=201)


@router.delete(_ARTIFACT_PATH + "/{reference}/tags/{tag_name}")
async def delete_tag(
    name: TagDeleter,
    reference: str,
    tag_name: str,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    await _translate(
        services.artifacts.delete_tag(name, reference, tag_name, caller.username)
    )
    return Response(status_code=200)


async def _require(
    services: Services, caller: Principal, name: str, resource: str, action: str
) -> str:
    """`name` if the caller holds (resource, action) in it; 401/403/404 if not."""
    project_name = project_of(name)
    access = await services.policy.access_by_name(caller, project_name)
    if access is None:
        raise NotFound(f"project {project_name} not found")
    if not access.can_in_repository(name, resource, action):
        if caller.anonymous:
            raise Unauthorized("authentication required")
        raise Forbidden(f"you may not {action} {resource} in {project_name}")
    return name


async def _granted_names(services: Services, access: ProjectAccess) -> list[str]:
    """The project's repositories that `access` reaches through grants."""
    names = await services.catalog.project_repositories(access.project.id)
    return [n for n in names if access.can_in_repository(n, "repository", "pull")]


async def _translate(awaitable: Awaitable[T]) -> T:
    """Registry errors in the API's terms."""
    try:
        return await awaitable
    except (NameUnknown, ManifestUnknown) as exc:
        raise NotFound(exc.message) from exc
    except StillReferenced as exc:
        raise PreconditionFailed(exc.message) from exc
    except ManifestInvalid as exc:
        raise BadRequest(exc.message) from exc
    except RegistryError as exc:
        raise BadRequest(exc.message) from exc


async def _repository_page(
    request: Request,
    services: Services,
    query: Select,
    q: str | None,
    sort: str | None,
    page: Page,
) -> Response:
    query = apply_query(
        query,
        q,
        sort,
        _REPOSITORY_COLUMNS,
        [repositories.c.name],
    )
    rows, total = await services.artifacts.list_repositories(
        query, page.offset, page.size
    )
    return paginated(request, [_repository_resp(row) for row in rows], total, page)


def _repository_resp(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "name": row["name"],
        "description": row["description"] or "",
        "artifact_count": row["artifact_count"],
        "pull_count": row["pull_count"],
        "creation_time": harbor_time(row["created_at"]),
        "update_time": harbor_time(row["updated_at"]),
    }


async def _artifact_resp(
    services: Services, repository: str, artifact: Artifact, with_tag: bool
) -> dict[str, Any]:
    document = artifact.document
    config_type = (document.get("config") or {}).get("mediaType")
    body: dict[str, Any] = {
        "id": artifact.id,
        "type": _artifact_kind(artifact, config_type),
        "media_type": config_type or artifact.media_type,
        "manifest_media_type": artifact.media_type,
        "artifact_type": artifact.artifact_type,
        "repository_id": artifact.repository_id,
        "digest": artifact.digest,
        "size": artifact.size,
        "push_time": harbor_time(artifact.created_at),
        # Pull times are not tracked yet: Harbor's zero time, as it shows for
        # never-pulled artifacts.
        "pull_time": "0001-01-01T00:00:00.000Z",
        "annotations": document.get("annotations") or {},
        "extra_attrs": {},
        "references": _references(artifact, document),
        "tags": [_tag_resp(artifact, t) for t in artifact.tags] if with_tag else None,
        "labels": None,
        "accessories": None,
    }
    if artifact.media_type in mediatypes.INDEXES:
        children = await services.artifacts.children(repository, artifact)
        body["size"] = artifact.size + sum(child.size for child in children)
    return body


def _artifact_kind(artifact: Artifact, config_type: str | None) -> str:
    if artifact.media_type in mediatypes.INDEXES or config_type in _IMAGE_CONFIGS:
        return "IMAGE"
    if config_type == "application/vnd.cncf.helm.config.v1+json":
        return "CHART"
    return "UNKNOWN"


def _references(
    artifact: Artifact, document: dict[str, Any]
) -> list[dict[str, Any]] | None:
    if artifact.media_type not in mediatypes.INDEXES:
        return None
    return [
        {
            "parent_id": artifact.id,
            "child_digest": child.get("digest"),
            "platform": child.get("platform"),
            "annotations": child.get("annotations"),
            "urls": child.get("urls"),
        }
        for child in document.get("manifests", [])
    ]


def _tag_resp(artifact: Artifact, tag: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": tag["id"],
        "repository_id": artifact.repository_id,
        "artifact_id": artifact.id,
        "name": tag["name"],
        "push_time": harbor_time(tag["created_at"]),
        "pull_time": "0001-01-01T00:00:00.000Z",
        "immutable": False,
        "signed": False,
    }
