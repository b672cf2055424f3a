"""`/replication/policies` and `/replication/executions`: Harbor's
replication API. System administrators only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from dockyard.api.deps import AdminDep, PageDep, ServicesDep, paginated
from dockyard.api.errors import BadRequest, NotFound, PreconditionFailed
from dockyard.api.query import apply_query
from dockyard.api.routes.registries import registry_resp
from dockyard.db.database import contains_text
from dockyard.db.schema import replication_policies
from dockyard.replication.executions import (
    EXECUTION_STATUS,
    TASK_STATUS,
    TRIGGERS,
    Execution,
    ExecutionReader,
)
from dockyard.replication.policies import (
    Filter,
    Policy,
    PolicyFields,
    policy_owner,
)
from dockyard.replication.registries import RegistryNotFound
from dockyard.replication.runner import REPLICATION

_POLICY_COLUMNS = {
    "id": replication_policies.c.id,
    "name": replication_policies.c.name,
    "creation_time": replication_policies.c.created_at,
    "update_time": replication_policies.c.updated_at,
}

router = APIRouter(tags=["replication"])


class RegistryRef(BaseModel):
    id: int | None = None


class FilterReq(BaseModel):
    type: str = Field(max_length=32)
    value: Any = None
    decoration: str = Field(default="matches", max_length=32)


class TriggerSettings(BaseModel):
    cron: str = Field(default="", max_length=128)


class TriggerReq(BaseModel):
    type: str = Field(default="manual", max_length=32)
    trigger_settings: TriggerSettings | None = None


class PolicyReq(BaseModel):
    """Harbor's `ReplicationPolicy` body."""

    name: str = Field(default="", max_length=255)
    description: str | None = Field(default=None, max_length=8192)
    src_registry: RegistryRef | None = None
    dest_registry: RegistryRef | None = None
    dest_namespace: str | None = Field(default=None, max_length=255)
    dest_namespace_replace_count: int = Field(default=-1, ge=-1, le=100)
    filters: list[FilterReq] | None = Field(default=None, max_length=32)
    trigger: TriggerReq | None = None
    replicate_deletion: bool = False
    override: bool = True
    enabled: bool = True
    speed: int | None = Field(default=None, ge=-1, le=2**31 - 1)
    copy_by_chunk: bool = False


class StartReq(BaseModel):
    policy_id: int


@router.get("/replication/policies")
async def list_policies(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    name: str | None = None,
) -> Response:
    query = select(replication_policies)
    if name:
        query = query.where(contains_text(replication_policies.c.name, name))
    query = apply_query(
        query, q, sort, _POLICY_COLUMNS, [replication_policies.c.id]
    )
    policies = services.replication.policies
    found, total = await policies.list_policies(query, page.offset, page.size)
    items = [await _policy_resp(services, p) for p in found]
    return paginated(request, items, total, page)


@router.post("/replication/policies", status_code=201)
async def create_policy(
    body: PolicyReq, services: ServicesDep, admin: AdminDep
) -> Response:
    policies = services.replication.policies
    created = await policies.create_policy(_fields(body), admin.username)
    return Response(
        status_code=201,
        headers={"location": f"/api/v2.0/replication/policies/{created.id}"},
    )


@router.get("/replication/policies/{policy_id}")
async def get_policy(
    policy_id: int, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    policy = await services.replication.policies.get_policy(policy_id)
    return await _policy_resp(services, policy)


@router.put("/replication/policies/{policy_id}")
async def update_policy(
    policy_id: int, body: PolicyReq, services: ServicesDep, admin: AdminDep
) -> Response:
    policies = services.replication.policies
    stored = await policies.get_policy(policy_id)
    await policies.update_policy(stored, _fields(body), admin.username)
    return Response(status_code=200)


@router.delete("/replication/policies/{policy_id}")
async def delete_policy(
    policy_id: int, services: ServicesDep, admin: AdminDep
) -> Response:
    policies = services.replication.policies
    stored = await policies.get_policy(policy_id)
    if await services.jobs.has_unfinished(stored.owner):
        raise PreconditionFailed(
            f"policy {policy_id} has executions still running; stop them first"
        )
    await policies.delete_policy(stored, admin.username)
    return Response(status_code=200)


@router.post("/replication/executions", status_code=201)
async def start_execution(
    body: StartReq, services: ServicesDep, admin: AdminDep
) -> Response:
    policy = await services.replication.policies.get_policy(body.policy_id)
    execution_id = await services.replication.start(policy)
    return Response(
        status_code=201,
        headers={"location": f"/api/v2.0/replication/executions/{execution_id}"},
    )


@router.get("/replication/executions")
async def list_executions(
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    page: PageDep,
    policy_id: int | None = None,
    status: str | None = None,
    trigger: str | None = None,
) -> Response:
    if status and status not in set(EXECUTION_STATUS.values()):
        raise BadRequest(f"unknown status {status[:32]!r}")
    if trigger and trigger not in set(TRIGGERS.values()):
        raise BadRequest(f"unknown trigger {trigger[:32]!r}")
    owner = policy_owner(policy_id) if policy_id is not None else None
    found, total = await _reader(services).list_executions(
        owner, status, trigger, page.offset, page.size
    )
    return paginated(request, [execution_resp(e) for e in found], total, page)


@router.get("/replication/executions/{execution_id}")
async def get_execution(
    execution_id: int, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    return execution_resp(await _execution(services, execution_id))


@router.put("/replication/executions/{execution_id}")
async def stop_execution(
    execution_id: int, services: ServicesDep, admin: AdminDep
) -> Response:
    """Stop it: pending tasks do not run, running ones stop at their next step."""
    await _execution(services, execution_id)
    await services.jobs.stop_execution(execution_id)
    return Response(status_code=200)


@router.get("/replication/executions/{execution_id}/tasks")
async def list_tasks(
    request: Request,
    execution_id: int,
    services: ServicesDep,
    admin: AdminDep,
    page: PageDep,
    status: str | None = None,
) -> Response:
    execution = await _execution(services, execution_id)
    tasks = [
        t for t in execution.tasks if not status or TASK_STATUS[t.status] == status
    ]
    chosen = tasks[page.offset : page.offset + page.size]
    return paginated(request, [task_resp(t) for t in chosen], len(tasks), page)


@router.get("/replication/executions/{execution_id}/tasks/{task_id}/log")
async def get_task_log(
    execution_id: int, task_id: int, services: ServicesDep, admin: AdminDep
) -> Response:
    execution = await _execution(services, execution_id)
    for task in execution.tasks:
        if task.id == task_id:
            return Response(task.log or "", media_type="text/plain")
    raise NotFound(f"task {task_id} of execution {execution_id} not found")


def _reader(services: Any) -> ExecutionReader:
    return ExecutionReader(services.db, REPLICATION)


async def _execution(services: Any, execution_id: int) -> Execution:
    return await _reader(services).get_execution(execution_id)


def _fields(body: PolicyReq) -> PolicyFields:
    trigger = body.trigger or TriggerReq()
    settings = trigger.trigger_settings or TriggerSettings()
    return PolicyFields(
        name=body.name,
        description=body.description or "",
        src_registry_id=_registry_id(body.src_registry),
        dest_registry_id=_registry_id(body.dest_registry),
        dest_namespace=(body.dest_namespace or "").strip("/"),
        dest_namespace_replace_count=body.dest_namespace_replace_count,
        filters=tuple(
            Filter(f.type, f.value, f.decoration or "matches")
            for f in body.filters or []
        ),
        trigger_type=trigger.type,
        cron=settings.cron.strip(),
        replicate_deletion=body.replicate_deletion,
        override=body.override,
        enabled=body.enabled,
        speed=-1 if body.speed in (None, 0) else body.speed,
        copy_by_chunk=body.copy_by_chunk,
    )


def _registry_id(ref: RegistryRef | None) -> int | None:
    # Harbor's portal sends {"id": 0} for "this Harbor": the local side.
    if ref is None or not ref.id:
        return None
    return ref.id


async def _policy_resp(services: Any, policy: Policy) -> dict[str, Any]:
    fields = policy.fields
    return {
        "id": policy.id,
        "name": fields.name,
        "description": fields.description,
        "src_registry": await _registry(services, fields.src_registry_id),
        "dest_registry": await _registry(services, fields.dest_registry_id),
        "dest_namespace": fields.dest_namespace,
        "dest_namespace_replace_count": fields.dest_namespace_replace_count,
        "filters": [f.as_dict() for f in fields.filters],
        "trigger": {
            "type": fields.trigger_type,
            "trigger_settings": {"cron": fields.cron},
        },
        "replicate_deletion": fields.replicate_deletion,
        "override": fields.override,
        "enabled": fields.enabled,
        "speed": fields.speed,
        "copy_by_chunk": fields.copy_by_chunk,
        "creation_time": _time(policy.created_at),
        "update_time": _time(policy.updated_at),
    }


async def _registry(services: Any, registry_id: int | None) -> dict[str, Any]:
    if registry_id is None:
        # Harbor shows the local registry as id 0.
        return {"id": 0, "name": "Local", "type": "harbor", "url": ""}
    try:
        return registry_resp(await services.registries.get_registry(registry_id))
    except RegistryNotFound:
        return {"id": registry_id}


def execution_resp(execution: Execution) -> dict[str, Any]:
    row = execution.row
    counts = {"failed": 0, "succeed": 0, "in_progress": 0, "stopped": 0}
    for task in execution.tasks:
        key = {
            "Failed": "failed",
            "Succeed": "succeed",
            "Stopped": "stopped",
        }.get(TASK_STATUS[task.status], "in_progress")
        counts[key] += 1
    return {
        "id": row.id,
        "policy_id": execution.policy_id,
        "status": EXECUTION_STATUS[row.status],
        "status_text": row.status_message or "",
        "trigger": TRIGGERS.get(row.trigger, row.trigger.lower()),
        "total": len(execution.tasks),
        **counts,
        "start_time": _time(row.started_at or row.created_at),
        "end_time": _time(row.ended_at),
    }


def task_resp(task: Any) -> dict[str, Any]:
    params = json.loads(task.params)
    step = params.get("step", "copy")
    reference = params.get("reference", "")
    return {
        "id": task.id,
        "execution_id": task.execution_id,
        "resource_type": "artifact" if step != "plan" else "plan",
        "src_resource": _resource(params.get("src"), reference),
        "dst_resource": _resource(params.get("dst"), reference),
        "operation": _OPERATIONS.get(step, step),
        "job_id": str(task.id),
        "status": TASK_STATUS[task.status],
        "status_text": task.status_message or "",
        "status_revision": task.run_count,
        "start_time": _time(task.started_at or task.created_at),
        "end_time": _time(task.ended_at),
    }


# Task steps as Harbor names the operations.
_OPERATIONS = {"copy": "copy", "delete": "deletion", "delete_tag": "tag deletion"}


def _resource(repository: str | None, reference: str) -> str:
    if not repository:
        return ""
    return f"{repository}:[{reference}]"


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")
