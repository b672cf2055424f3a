"""`/labels` and labels on artifacts.

Global labels (scope `g`) are made, changed and deleted by system admins and
read by any signed-in user; a project's labels (scope `p`) follow the
project's `label` permissions. Putting a label on an artifact, or taking it
off, needs `artifact-label` create or delete in the artifact's repository.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, or_, select, true

from dockyard.api.access import require, require_system
from dockyard.api.deps import CallerDep, DbInt, PageDep, ServicesDep, paginated
from dockyard.api.errors import BadRequest, NotFound, Unauthorized
from dockyard.api.query import apply_query
from dockyard.api.routes.repositories import repository_permission
from dockyard.api.routes.users import harbor_time
from dockyard.auth.access import ProjectAccess, projects_granting
from dockyard.auth.principals import Principal
from dockyard.db.schema import labels, projects
from dockyard.labels import (
    GLOBAL,
    PROJECT,
    Label,
    LabelFields,
)
from dockyard.registry.manifests import artifact_resource
from dockyard.services import Services

router = APIRouter(tags=["label"])

_QUERY_COLUMNS = {
    "id": labels.c.id,
    "name": labels.c.name,
    "scope": labels.c.scope,
    "project_id": labels.c.project_id,
    "creation_time": labels.c.created_at,
    "update_time": labels.c.updated_at,
}
_ARTIFACT_LABELS = (
    "/projects/{project_name}/repositories/{repository_name}"
    "/artifacts/{reference}/labels"
)

ArtifactLabelCreator = repository_permission("artifact-label", "create")
ArtifactLabelDeleter = repository_permission("artifact-label", "delete")


class LabelReq(BaseModel):
    name: str | None = Field(default=None, max_length=1024)
    description: str | None = Field(default=None, max_length=8192)
    color: str | None = Field(default=None, max_length=1024)
    scope: str | None = None
    project_id: DbInt | None = None

    def fields(self) -> LabelFields:
        return LabelFields(self.name or "", self.description or "", self.color or "")


class LabelRef(BaseModel):
    """Harbor's clients send a whole Label; only its id is used."""

    id: DbInt


@router.get("/labels")
async def list_labels(
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    name: str | None = None,
    scope: str | None = None,
    project_id: DbInt | None = None,
) -> Response:
    """Global labels, one project's (`scope=p&project_id=N`), or without a
    scope both: the global ones and those of projects the caller may list."""
    query = select(labels).where(await _listable(services, caller, scope, project_id))
    if name:
        query = query.where(labels.c.name.contains(name, autoescape=True))
    query = apply_query(query, q, sort, _QUERY_COLUMNS, [labels.c.id])
    found, total = await services.labels.list_labels(query, page.offset, page.size)
    return paginated(request, [label_resp(label) for label in found], total, page)


@router.post("/labels", status_code=201)
async def create_label(
    body: LabelReq, services: ServicesDep, caller: CallerDep
) -> Response:
    scope = body.scope or ""
    if scope not in (GLOBAL, PROJECT):
        raise BadRequest('scope must be "g" (global) or "p" (project)')
    project_id = None
    if scope == PROJECT:
        project_id = (
            await _project_label_access(services, caller, body.project_id)
        ).project.id
    else:
        await require_system(services, caller, "label", "create")
    label_id = await services.labels.create_label(
        body.fields(), scope, project_id, caller.username
    )
    return Response(
        status_code=201, headers={"location": f"/api/v2.0/labels/{label_id}"}
    )


@router.get("/labels/{label_id}")
async def get_label(
    label_id: DbInt, services: ServicesDep, caller: CallerDep
) -> dict[str, Any]:
    label = await _label(services, caller, label_id, "read")
    return label_resp(label)


@router.put("/labels/{label_id}")
async def update_label(
    label_id: DbInt, body: LabelReq, services: ServicesDep, caller: CallerDep
) -> Response:
    label = await _label(services, caller, label_id, "update")
    fields = LabelFields(
        body.name if body.name is not None else label.name,
        body.description if body.description is not None else label.description,
        body.color if body.color is not None else label.color,
    )
    await services.labels.update_label(label, fields, caller.username)
    return Response(status_code=200)


@router.delete("/labels/{label_id}")
async def delete_label(
    label_id: DbInt, services: ServicesDep, caller: CallerDep
) -> Response:
    label = await _label(services, caller, label_id, "delete")
    await services.labels.delete_label(label, caller.username)
    return Response(status_code=200)


@router.post(_ARTIFACT_LABELS)
async def add_artifact_label(
    name: ArtifactLabelCreator,
    reference: str,
    body: LabelRef,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """Harbor answers 200, not 201: nothing new is addressable."""
    artifact = await services.artifacts.get_artifact(name, reference)
    label = await services.labels.get_label(body.id)
    resource = artifact_resource(name, artifact.digest)
    await services.labels.attach(
        artifact.id, label, resource, artifact.project_id, caller.username
    )
    return Response(status_code=200)


@router.delete(_ARTIFACT_LABELS + "/{label_id}")
async def remove_artifact_label(
    name: ArtifactLabelDeleter,
    reference: str,
    label_id: DbInt,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    artifact = await services.artifacts.get_artifact(name, reference)
    label = await services.labels.get_label(label_id)
    resource = artifact_resource(name, artifact.digest)
    await services.labels.detach(
        artifact.id, label, resource, artifact.project_id, caller.username
    )
    return Response(status_code=200)


def label_resp(label: Label) -> dict[str, Any]:
    """A label in Harbor's shape (a global label's project_id is 0)."""
    return {
        "id": label.id,
        "name": label.name,
        "description": label.description,
        "color": label.color,
        "scope": label.scope,
        "project_id": label.project_id or 0,
        "creation_time": harbor_time(label.created_at),
        "update_time": harbor_time(label.updated_at),
    }


async def _listable(
    services: Services, caller: Principal, scope: str | None, project_id: int | None
) -> ColumnElement[bool]:
    """The condition on `labels` for what the caller asked and may list."""
    if scope == PROJECT:
        access = await _project_label_access(services, caller, project_id, "list")
        return (labels.c.scope == PROJECT) & (labels.c.project_id == access.project.id)
    if scope not in (None, "", GLOBAL):
        raise BadRequest('scope must be "g" (global) or "p" (project)')
    if caller.anonymous:
        raise Unauthorized("authentication required")
    if scope == GLOBAL:
        return labels.c.scope == GLOBAL
    if caller.sysadmin:
        return true()
    listable = projects_granting(caller, ("label", "list"))
    public = select(projects.c.id).where(projects.c.public.is_(True))
    return or_(
        labels.c.scope == GLOBAL,
        labels.c.project_id.in_(listable),
        labels.c.project_id.in_(public),
    )


async def _project_label_access(
    services: Services,
    caller: Principal,
    project_id: int | None,
    action: str = "create",
) -> ProjectAccess:
    if not project_id or project_id <= 0:
        raise BadRequest("project_id is required for project labels")
    project = await services.projects.project_by_id(project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return await require(services, caller, project, "label", action)


async def _label(
    services: Services, caller: Principal, label_id: DbInt, action: str
) -> Label:
    """The label, once the caller may `action` it; 401/403/404 if not."""
    label = await services.labels.get_label(label_id)
    if label.scope == PROJECT:
        project = await services.projects.project_by_id(label.project_id or 0)
        if project is None:
            raise NotFound(f"label {label_id} not found")
        await require(services, caller, project, "label", action)
    else:
        # As in Harbor, a global label by id is a system resource even to
        # read; everyone may still list them.
        await require_system(services, caller, "label", action)
    return label
