"""Replication policies: what to copy between registries, and when.

A policy is push-based (Dockyard -> `dest_registry_id`) or pull-based
(`src_registry_id` -> Dockyard); exactly one of the two is set. Filters
pick the artifacts (`name` on `project/repository`, `tag`, both doublestar
patterns, `matches` or `excludes`; `label`, a list of label names the
artifact carries); the trigger says when it runs (by hand, on a cron
schedule, or on each push, tag and delete in Dockyard).

A label filter with `matches` selects an artifact that carries every label
it lists; with `excludes` it selects every other artifact, so an artifact
is left out only when it carries all of them (Harbor's rule). Labels live
in Dockyard and Harbor only: a pull-based policy with a label filter needs
a `harbor`-type source.

Destination names follow Harbor's flattening: with a `dest_namespace`, the
first `dest_namespace_replace_count` path components of the source name are
replaced by it (-1: all but the last, 0: none, prefix only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from dockyard.audit import record_change
from dockyard.db.database import Database, count_rows
from dockyard.db.schema import (
    job_executions,
    job_tasks,
    registries,
    replication_policies,
)
from dockyard.jobs.schedules import check_cron
from dockyard.labels import NAME_MAX as LABEL_NAME_MAX
from dockyard.registry.reference import is_valid_name
from dockyard.replication.adapters import AdapterError, adapter_for
from dockyard.replication.patterns import PatternInvalid, check_pattern, matches

log = logging.getLogger(__name__)

MANUAL = "manual"
SCHEDULED = "scheduled"
EVENT_BASED = "event_based"
TRIGGERS = (MANUAL, SCHEDULED, EVENT_BASED)
FILTER_TYPES = ("name", "tag", "label", "resource")
DECORATIONS = ("matches", "excludes")
# Resource types a `resource` filter may name; Dockyard copies artifacts.
RESOURCE_TYPES = ("image", "artifact")
# The registry type whose API shows labels (Harbor, and Dockyard itself).
LABELLED_SOURCE_TYPE = "harbor"


class PolicyError(Exception):
    """A policy operation cannot be done; the message says why."""


class PolicyInvalid(PolicyError):
    pass


class PolicyNotFound(PolicyError):
    pass


class PolicyExists(PolicyError):
    pass


@dataclass(frozen=True, slots=True)
class Filter:
    type: str
    value: Any
    decoration: str = "matches"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "decoration": self.decoration}


@dataclass(frozen=True, slots=True)
class PolicyFields:
    """What a caller sets on a policy."""

    name: str
    description: str = ""
    src_registry_id: int | None = None
    dest_registry_id: int | None = None
    dest_namespace: str = ""
    dest_namespace_replace_count: int = -1
    filters: tuple[Filter, ...] = ()
    trigger_type: str = MANUAL
    cron: str = ""
    replicate_deletion: bool = False
    override: bool = True
    enabled: bool = True
    speed: int = -1
    copy_by_chunk: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    id: int
    fields: PolicyFields
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_push(self) -> bool:
        return self.fields.dest_registry_id is not None

    @property
    def owner(self) -> str:
        """How its executions are marked in `job_executions.owner`."""
        return policy_owner(self.id)

    def selects_repository(self, repository: str) -> bool:
        """Whether the name filters let `repository` (`project/repo`) through."""
        return _passes(self.fields.filters, "name", repository)

    def selects_tag(self, tag: str) -> bool:
        return _passes(self.fields.filters, "tag", tag)

    @property
    def has_label_filter(self) -> bool:
        return any(f.type == "label" and f.value for f in self.fields.filters)

    def selects_labels(self, names: Collection[str]) -> bool:
        """Whether an artifact carrying the labels `names` passes the label
        filters (see the module docstring)."""
        for item in self.fields.filters:
            if item.type != "label" or not item.value:
                continue
            carries_all = all(name in names for name in item.value)
            if carries_all != (item.decoration == "matches"):
                return False
        return True

    def destination_name(self, repository: str) -> str:
        """Where `repository` lands; `PolicyInvalid` if the flattening asks
        for more components than it has."""
        return flattened(
            repository,
            self.fields.dest_namespace,
            self.fields.dest_namespace_replace_count,
        )


def policy_owner(policy_id: int) -> str:
    return f"replication_policy:{policy_id}"


def flattened(repository: str, namespace: str, replace_count: int) -> str:
    """`repository` under `namespace` (see the module docstring)."""
    if not namespace:
        return repository
    parts = repository.split("/")
    if replace_count == -1:
        return f"{namespace}/{parts[-1]}"
    if replace_count >= len(parts):
        raise PolicyInvalid(
            f"{repository!r} has {len(parts)} components; cannot replace "
            f"{replace_count} of them with the destination namespace"
        )
    return "/".join([namespace, *parts[replace_count:]])


def _passes(filters: tuple[Filter, ...], kind: str, value: str) -> bool:
    for item in filters:
        if item.type != kind or not item.value:
            continue
        hit = matches(str(item.value), value)
        if hit != (item.decoration == "matches"):
            return False
    return True


def check_fields(fields: PolicyFields) -> PolicyFields:
    """The fields if they make a policy; `PolicyInvalid` saying why not."""
    if not fields.name.strip():
        raise PolicyInvalid("a policy needs a name")
    if (fields.src_registry_id is None) == (fields.dest_registry_id is None):
        raise PolicyInvalid(
            "set exactly one of src_registry (pull-based) and dest_registry "
            "(push-based)"
        )
    if fields.trigger_type not in TRIGGERS:
        raise PolicyInvalid(f"trigger type must be one of {', '.join(TRIGGERS)}")
    if fields.trigger_type == SCHEDULED:
        try:
            check_cron("trigger", fields.cron)
        except ValueError as exc:
            raise PolicyInvalid(str(exc)) from exc
        if not fields.cron:
            raise PolicyInvalid("a scheduled trigger needs trigger_settings.cron")
    if fields.trigger_type == EVENT_BASED and fields.src_registry_id is not None:
        raise PolicyInvalid("an event_based trigger needs a push-based policy")
    if fields.dest_namespace_replace_count < -1:
        raise PolicyInvalid("dest_namespace_replace_count must be -1 or more")
    if fields.dest_namespace and not is_valid_name(fields.dest_namespace):
        # It starts every destination name: one that is no repository
        # name (`..`, upper case, spaces) would make every copy fail.
        raise PolicyInvalid(
            "dest_namespace must be a repository name path (lower case "
            "letters, digits, separators)"
        )
    if fields.speed < -1 or fields.speed == 0:
        raise PolicyInvalid("speed is -1 (unlimited) or a positive KB/s")
    for item in fields.filters:
        _check_filter(item)
    return fields


def _check_filter(item: Filter) -> None:
    if item.type not in FILTER_TYPES:
        raise PolicyInvalid(f"filter type must be one of {', '.join(FILTER_TYPES)}")
    if item.decoration not in DECORATIONS:
        raise PolicyInvalid("filter decoration must be matches or excludes")
    if item.type in ("name", "tag"):
        if not isinstance(item.value, str):
            raise PolicyInvalid(f"a {item.type} filter's value is a pattern string")
        try:
            check_pattern(item.value)
        except PatternInvalid as exc:
            raise PolicyInvalid(str(exc)) from exc
    elif item.type == "resource" and item.value not in RESOURCE_TYPES:
        raise PolicyInvalid(f"resource filter value must be one of {RESOURCE_TYPES}")
    elif item.type == "label":
        _check_label_names(item.value)


def _check_label_names(value: Any) -> None:
    # Harbor takes a JSON array of strings only (a lone string is refused);
    # an empty array selects everything. Empty names are refused here too:
    # no label can have one, so such a filter could never match.
    if not isinstance(value, list):
        raise PolicyInvalid("a label filter's value is a list of label names")
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise PolicyInvalid("a label filter's names are non-empty strings")
        if len(name) > LABEL_NAME_MAX:
            raise PolicyInvalid(f"label name longer than {LABEL_NAME_MAX} characters")


class PolicyService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_policies(
        self, query: Select, offset: int, limit: int
    ) -> tuple[list[Policy], int]:
        """One page of `query` over `replication_policies`, and the total."""
        async with self.db.read() as conn:
            total = await count_rows(conn, query)
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
        return [_policy(row) for row in rows], total

    async def get_policy(self, policy_id: int) -> Policy:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(replication_policies).where(
                        replication_policies.c.id == policy_id
                    )
                )
            ).first()
        if row is None:
            raise PolicyNotFound(f"replication policy {policy_id} not found")
        return _policy(row)

    async def create_policy(self, fields: PolicyFields, actor: str) -> Policy:
        fields = check_fields(fields)
        now = datetime.now(UTC)
        try:
            async with self.db.write() as conn:
                await _check_registries(conn, fields)
                result = await conn.execute(
                    insert(replication_policies).values(
                        **_stored(fields), created_at=now, updated_at=now
                    )
                )
                await record_change(
                    conn, actor, "replication_policy", "create", fields.name
                )
        except IntegrityError as exc:
            raise PolicyExists(f"policy {fields.name!r} already exists") from exc
        return await self.get_policy(int(result.inserted_primary_key[0]))

    async def update_policy(
        self, policy: Policy, fields: PolicyFields, actor: str
    ) -> Policy:
        fields = check_fields(fields)
        try:
            async with self.db.write() as conn:
                await _check_registries(conn, fields)
                await conn.execute(
                    update(replication_policies)
                    .where(replication_policies.c.id == policy.id)
                    .values(**_stored(fields), updated_at=datetime.now(UTC))
                )
                await record_change(
                    conn, actor, "replication_policy", "update", fields.name
                )
        except IntegrityError as exc:
            raise PolicyExists(f"policy {fields.name!r} already exists") from exc
        return await self.get_policy(policy.id)

    async def delete_policy(self, policy: Policy, actor: str) -> None:
        """Delete the policy and its executions with their tasks, as Harbor
        does. The caller makes sure none is still running."""
        async with self.db.write() as conn:
            # SQLite hands out a deleted last id again: executions left
            # behind would show up as the runs of the next policy created.
            runs = select(job_executions.c.id).where(
                job_executions.c.owner == policy.owner
            )
            await conn.execute(
                delete(job_tasks).where(job_tasks.c.execution_id.in_(runs))
            )
            await conn.execute(
                delete(job_executions).where(job_executions.c.owner == policy.owner)
            )
            await conn.execute(
                delete(replication_policies).where(
                    replication_policies.c.id == policy.id
                )
            )
            await record_change(
                conn, actor, "replication_policy", "delete", policy.fields.name
            )

    async def enabled_policies(self, trigger_type: str) -> list[Policy]:
        """Enabled policies with this trigger type."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(replication_policies)
                    .where(replication_policies.c.enabled.is_(True))
                    .order_by(replication_policies.c.id)
                )
            ).all()
        found = [_policy(row) for row in rows]
        return [p for p in found if p.fields.trigger_type == trigger_type]

    async def policies_using(self, registry_id: int) -> int:
        """How many policies copy from or to `registry_id`."""
        async with self.db.read() as conn:
            count = await conn.scalar(
                select(func.count()).where(
                    or_(
                        replication_policies.c.src_registry_id == registry_id,
                        replication_policies.c.dest_registry_id == registry_id,
                    )
                )
            )
        return int(count or 0)


async def _check_registries(conn: Any, fields: PolicyFields) -> None:
    for registry_id in (fields.src_registry_id, fields.dest_registry_id):
        if registry_id is None:
            continue
        found = (
            await conn.execute(
                select(registries.c.type, registries.c.access_secret).where(
                    registries.c.id == registry_id
                )
            )
        ).first()
        if found is None:
            raise PolicyInvalid(f"registry {registry_id} not found")
        if registry_id == fields.src_registry_id:
            _check_listable(fields, found.type, bool(found.access_secret))
            _check_labelled_source(fields, found.type)


def _check_listable(fields: PolicyFields, kind: str, has_credentials: bool) -> None:
    """`PolicyInvalid` when the source's service cannot list what the name
    filters ask for (no catalog on Docker Hub, ghcr.io, Quay, ...)."""
    try:
        adapter_for(kind).check_source_patterns(
            matching_names(fields.filters), has_credentials
        )
    except AdapterError as exc:
        raise PolicyInvalid(str(exc)) from exc


def _check_labelled_source(fields: PolicyFields, source_type: str) -> None:
    """A label filter reads the source's labels; only Harbor's API has them."""
    wants_labels = any(f.type == "label" and f.value for f in fields.filters)
    if wants_labels and source_type != LABELLED_SOURCE_TYPE:
        raise PolicyInvalid(
            f"a {source_type} registry has no labels: label filters need a "
            f"{LABELLED_SOURCE_TYPE}-type source registry"
        )


def matching_names(filters: tuple[Filter, ...]) -> list[str]:
    """The patterns of the `matches` name filters."""
    return [
        str(f.value)
        for f in filters
        if f.type == "name" and f.decoration == "matches" and f.value
    ]


def _stored(fields: PolicyFields) -> dict[str, Any]:
    return {
        "name": fields.name.strip(),
        "description": fields.description,
        "src_registry_id": fields.src_registry_id,
        "dest_registry_id": fields.dest_registry_id,
        "dest_namespace": fields.dest_namespace or None,
        "dest_namespace_replace_count": fields.dest_namespace_replace_count,
        "filters": json.dumps([f.as_dict() for f in fields.filters]),
        "trigger": json.dumps(
            {"type": fields.trigger_type, "trigger_settings": {"cron": fields.cron}}
        ),
        "replicate_deletion": fields.replicate_deletion,
        "override": fields.override,
        "enabled": fields.enabled,
        "speed": fields.speed,
        "copy_by_chunk": fields.copy_by_chunk,
    }


def _policy(row: Any) -> Policy:
    trigger = json.loads(row.trigger)
    fields = PolicyFields(
        name=row.name,
        description=row.description or "",
        src_registry_id=row.src_registry_id,
        dest_registry_id=row.dest_registry_id,
        dest_namespace=row.dest_namespace or "",
        dest_namespace_replace_count=row.dest_namespace_replace_count,
        filters=tuple(Filter(**item) for item in json.loads(row.filters)),
        trigger_type=trigger.get("type", MANUAL),
        cron=(trigger.get("trigger_settings") or {}).get("cron", ""),
        replicate_deletion=row.replicate_deletion,
        override=row.override,
        enabled=row.enabled,
        speed=row.speed,
        copy_by_chunk=row.copy_by_chunk,
    )
    return Policy(row.id, fields, _aware(row.created_at), _aware(row.updated_at))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
