"""Repositories under `/projects/{project_name}/repositories`, and the
permission checks every route below a repository uses.

A repository is named inside its project; a name that holds slashes is sent
URL-encoded twice (`a%252Fb`), as Harbor's clients do, and decoded here. The
artifacts, tags and accessories inside a repository are in `artifacts`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, select

from dockyard.api.deps import CallerDep, Page, PageDep, ServicesDep, paginated
from dockyard.api.errors import (
    Forbidden,
    NotFound,
    Unauthorized,
)
from dockyard.api.query import apply_query
from dockyard.api.routes.users import harbor_time
from dockyard.auth.principals import Principal
from dockyard.db.schema import repositories
from dockyard.registry.reference import project_of
from dockyard.services import Services

router = APIRouter(tags=["repository"])

_REPOSITORY_COLUMNS = {
    "name": repositories.c.name,
    "id": repositories.c.id,
    "creation_time": repositories.c.created_at,
    "update_time": repositories.c.updated_at,
    "pull_count": repositories.c.pull_count,
}


class RepositoryUpdate(BaseModel):
    # Harbor treats a missing description as an empty one.
    description: str = Field(default="", max_length=4096)


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


@router.get("/repositories")
async def list_all_repositories(
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
) -> Response:
    listed = await services.policy.listed_repositories(caller)
    query = select(repositories).where(listed)
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
        granted = await services.policy.granted_repositories(access)
        query = query.where(repositories.c.id.in_([i for i, _ in granted]))
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
    await services.artifacts.update_description(name, body.description, caller.username)
    return Response(status_code=200)


@router.delete("/projects/{project_name}/repositories/{repository_name}")
async def delete_repository(
    name: RepositoryDeleter, services: ServicesDep, caller: CallerDep
) -> Response:
    artifacts = await services.replication.snapshot_repository(name)
    await services.artifacts.delete_repository(name, caller.username)
    services.replication.on_repository_deleted(name, artifacts)
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


async def require_in_repository(
    services: Services, caller: Principal, name: str, resource: str, action: str
) -> str:
    """`name` if the caller holds (resource, action) in that repository (a full
    name, project included); 401/403/404 if not. For checks on a repository
    other than the path's, as a copy's source."""
    return await _require(services, caller, name, resource, action)


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
