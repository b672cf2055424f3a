"""`/statistics` and `/search`: counts and name search over what a caller sees.

A system admin sees everything, totals and storage included; anyone else
sees counts of public projects and of the private ones it can see into,
with totals and storage reported as 0, as Harbor does. Search matches
project and repository names containing the text, among visible projects.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, Select, select, true

from dockyard.api.deps import CallerDep, ServicesDep, UserDep
from dockyard.api.routes.projects import _project_resp
from dockyard.db.schema import projects, repositories
from dockyard.projects import visible_to
from dockyard.services import Services

router = APIRouter(tags=["statistic", "search"])

# Search answers at most this many projects and as many repositories, by
# name: enough for a search box, bounded for a registry with thousands.
SEARCH_LIMIT = 100


@router.get("/statistics")
async def get_statistics(services: ServicesDep, user: UserDep) -> dict[str, int]:
    public = projects.c.public.is_(True)
    private = projects.c.public.is_(False)
    listed = await services.policy.listed_repositories(user)
    counts = {
        "public_project_count": await _projects(services, public),
        "public_repo_count": await _repositories(services, public),
        "private_project_count": await _projects(services, private & visible_to(user)),
        "private_repo_count": await _repositories(services, private & listed),
        "total_project_count": 0,
        "total_repo_count": 0,
        "total_storage_consumption": 0,
    }
    if user.sysadmin:
        counts["total_project_count"] = await _projects(services, true())
        counts["total_repo_count"] = await _repositories(services, true())
        counts["total_storage_consumption"] = await services.quotas.total_storage()
    return counts


@router.get("/search")
async def search(
    services: ServicesDep,
    caller: CallerDep,
    q: Annotated[str, Query(max_length=255)],
) -> dict[str, list[dict[str, Any]]]:
    listed = await services.policy.listed_repositories(caller)
    found_projects = await services.projects.project_details(
        select(projects)
        .where(visible_to(caller) & projects.c.name.contains(q, autoescape=True))
        .order_by(projects.c.name)
        .limit(SEARCH_LIMIT),
        listed,
    )
    found_repositories, _ = await services.artifacts.list_repositories(
        _repository_search(listed, q), 0, SEARCH_LIMIT
    )
    return {
        "project": [await _project_resp(services, caller, p) for p in found_projects],
        "repository": [_search_repository(row) for row in found_repositories],
    }


async def _projects(services: Services, condition: ColumnElement[bool]) -> int:
    return await services.projects.count(select(projects.c.id).where(condition))


async def _repositories(services: Services, condition: ColumnElement[bool]) -> int:
    return await services.projects.count(
        select(repositories.c.id)
        .join(projects, projects.c.id == repositories.c.project_id)
        .where(condition)
    )


def _repository_search(listed: ColumnElement[bool], text: str) -> Select:
    return (
        select(
            repositories,
            projects.c.name.label("project_name"),
            projects.c.public.label("project_public"),
        )
        .join(projects, projects.c.id == repositories.c.project_id)
        .where(listed & repositories.c.name.contains(text, autoescape=True))
        .order_by(repositories.c.name)
    )


def _search_repository(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "project_id": row["project_id"],
        "project_name": row["project_name"],
        "project_public": bool(row["project_public"]),
        "repository_name": row["name"],
        "pull_count": row["pull_count"],
        "artifact_count": row["artifact_count"],
    }
