"""`/projects/{project_name_or_id}/metadatas`: a project's settings as strings.

Keys and values follow Harbor (`public`, `auto_scan`, `severity`, ...; see
`dockyard.projects.METADATA_KEYS`); an unknown key or a value the key does
not take is refused with 400. Reading and changing need the project's
`metadata` permissions (project admins and maintainers).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from dockyard.api.access import project_access
from dockyard.api.deps import CallerDep, ServicesDep
from dockyard.api.errors import BadRequest, NotFound
from dockyard.projects import (
    PUBLIC,
    check_metadata,
)

router = APIRouter(tags=["projectMetadata"])

_PATH = "/projects/{project_name_or_id}/metadatas"

MetadataLister = project_access("metadata", "list")
MetadataReader = project_access("metadata", "read")
MetadataCreator = project_access("metadata", "create")
MetadataUpdater = project_access("metadata", "update")
MetadataDeleter = project_access("metadata", "delete")
Values = Annotated[dict[str, str], Body()]


@router.get(_PATH)
@router.get(_PATH + "/", include_in_schema=False)
async def list_metadata(
    access: MetadataLister, services: ServicesDep
) -> dict[str, str]:
    return await services.metadata.get_metadata(access.project.id)


@router.post(_PATH)
@router.post(_PATH + "/", include_in_schema=False)
async def add_metadata(
    access: MetadataCreator, values: Values, services: ServicesDep, caller: CallerDep
) -> Response:
    """Add keys the project does not have yet (409 for one it has)."""
    checked = _checked(values)
    await services.metadata.add_metadata(access.project, checked, caller.username)
    return Response(status_code=200)


@router.get(_PATH + "/{meta_name}")
async def get_metadata(
    access: MetadataReader, meta_name: str, services: ServicesDep
) -> dict[str, str]:
    stored = await services.metadata.get_metadata(access.project.id)
    if meta_name not in stored:
        raise NotFound(f"metadata {meta_name} not found")
    return {meta_name: stored[meta_name]}


@router.put(_PATH + "/{meta_name}")
async def update_metadata(
    access: MetadataUpdater,
    meta_name: str,
    values: Values,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """Change one key the project has; the body names that key alone."""
    if set(values) != {meta_name}:
        raise BadRequest(f"the body must hold exactly the key {meta_name!r}")
    checked = _checked(values)
    await services.metadata.update_metadata(
        access.project, checked, caller.username, must_exist=True
    )
    return Response(status_code=200)


@router.delete(_PATH + "/{meta_name}")
async def delete_metadata(
    access: MetadataDeleter, meta_name: str, services: ServicesDep, caller: CallerDep
) -> Response:
    await services.metadata.delete_metadata(access.project, meta_name, caller.username)
    return Response(status_code=200)


def _checked(values: dict[str, str]) -> dict[str, str]:
    if not values:
        raise BadRequest("no metadata given")
    return check_metadata(values)


def requested_metadata(
    metadata: dict[str, str | None] | None, public: bool | None
) -> dict[str, str]:
    """The metadata of a `/projects` request, canonical; null values are
    left out and the deprecated `public` flag counts when metadata has no
    `public`. `BadRequest` for an unknown key or a bad value."""
    values = {
        key: value for key, value in (metadata or {}).items() if value is not None
    }
    if public is not None and PUBLIC not in values:
        values[PUBLIC] = "true" if public else "false"
    if not values:
        return {}
    return _checked(values)
