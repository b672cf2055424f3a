"""Artifacts, their tags, accessories and additions, below a repository.

    /projects/{p}/repositories/{r}/artifacts                 list, copy (POST ?from=)
    .../artifacts/{reference}                                get, delete
    .../artifacts/{reference}/tags[/{tag}]                   list, create, delete
    .../artifacts/{reference}/accessories                    list
    .../artifacts/{reference}/additions/{addition}           build_history, chart files

A reference is a tag or a digest. Permissions are Harbor's: (artifact, list /
read / create / delete), (tag, ...), (accessory, list), (artifact-addition,
read), checked in the repository the path names (grants included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, select

from dockyard.api.deps import CallerDep, PageDep, ServicesDep, paginated
from dockyard.api.errors import BadRequest, Forbidden, NotFound
from dockyard.api.query import Condition, Match, QueryError, apply_query, parse_q
from dockyard.api.routes.labels import label_resp
from dockyard.api.routes.repositories import (
    repository_permission,
    require_in_repository,
)
from dockyard.api.routes.users import harbor_time
from dockyard.db.schema import MAX_INTEGER, manifests, tags
from dockyard.registry.additions import ADDITIONS
from dockyard.registry.artifacts import (
    Accessory,
    Artifact,
    Tag,
    additions_of,
    has_tag,
    is_accessory,
    labelled,
    listed,
    tag_named,
)
from dockyard.registry.digest import is_digest
from dockyard.registry.errors import Denied
from dockyard.registry.reference import is_valid_name, is_valid_tag
from dockyard.replication.facts import ArtifactFacts
from dockyard.services import Services

router = APIRouter(tags=["artifact"])

ArtifactLister = repository_permission("artifact", "list")
ArtifactReader = repository_permission("artifact", "read")
ArtifactCreator = repository_permission("artifact", "create")
ArtifactDeleter = repository_permission("artifact", "delete")
AdditionReader = repository_permission("artifact-addition", "read")
AccessoryLister = repository_permission("accessory", "list")
TagLister = repository_permission("tag", "list")
TagCreator = repository_permission("tag", "create")
TagDeleter = repository_permission("tag", "delete")

_PATH = "/projects/{project_name}/repositories/{repository_name}/artifacts"
_API_PREFIX = "/api/v2.0"
# Harbor's zero time: what it shows for something never pulled.
_NEVER = "0001-01-01T00:00:00.000Z"

# q keys over plain columns, handed to `apply_query`; also the sort keys.
_ARTIFACT_COLUMNS = {
    "id": manifests.c.id,
    "digest": manifests.c.digest,
    "manifest_media_type": manifests.c.media_type,
    "push_time": manifests.c.created_at,
    "pull_time": manifests.c.pull_time,
}
_PLAIN_KEYS = frozenset({"id", "digest", "manifest_media_type"})
_TIME_KEYS = frozenset({"push_time", "pull_time"})
# q keys that only the manifest's content answers.
_CONTENT_KEYS: dict[str, Callable[[Artifact], str]] = {
    "type": lambda artifact: artifact.kind,
    "media_type": lambda artifact: artifact.identifying_type,
    "artifact_type": lambda artifact: artifact.artifact_type,
}
_TAG_COLUMNS = {
    "id": tags.c.id,
    "name": tags.c.name,
    "push_time": tags.c.updated_at,
    "pull_time": tags.c.pull_time,
}


class TagReq(BaseModel):
    name: str


@dataclass(frozen=True, slots=True)
class Options:
    """What to include beside an artifact's own fields (Harbor's `with_*`)."""

    with_tag: bool = True
    with_label: bool = False
    with_scan_overview: bool = False
    with_signature: bool = False
    with_immutable_status: bool = False
    with_accessory: bool = False


OptionsDep = Depends(Options)


@router.get(_PATH)
async def list_artifacts(
    request: Request,
    name: ArtifactLister,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    options: Options = OptionsDep,
) -> Response:
    query, keep = _artifact_query(q, sort)

    found, total = await services.artifacts.list_artifacts(
        name, query, page.offset, page.size, keep
    )

    items = await _artifact_bodies(services, found, options)
    return paginated(request, items, total, page)


@router.post(_PATH, status_code=201)
async def copy_artifact(
    request: Request,
    name: ArtifactCreator,
    services: ServicesDep,
    caller: CallerDep,
    source_ref: Annotated[str | None, Query(alias="from")] = None,
) -> Response:
    source, reference = _parse_from(source_ref)
    await require_in_repository(services, caller, source, "repository", "pull")
    await _refuse_proxy_cache(services, name)

    digest = await services.artifacts.copy_artifact(
        source, reference, name, caller.username
    )
    services.replication.on_copied(name, digest)

    location = f"{request.url.path.rstrip('/')}/{reference}"
    return Response(status_code=201, headers={"location": location})


@router.get(_PATH + "/{reference}")
async def get_artifact(
    name: ArtifactReader,
    reference: str,
    services: ServicesDep,
    caller: CallerDep,
    options: Options = OptionsDep,
) -> dict[str, Any]:
    artifact = await services.artifacts.get_artifact(name, reference)
    return (await _artifact_bodies(services, [artifact], options))[0]


@router.delete(_PATH + "/{reference}")
async def delete_artifact(
    name: ArtifactDeleter,
    reference: str,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    artifact = await services.replication.snapshot(name, reference)
    digest = await services.artifacts.delete_artifact(name, reference, caller.username)
    services.replication.on_deleted(name, artifact or ArtifactFacts(digest))
    return Response(status_code=200)


@router.get(_PATH + "/{reference}/additions/vulnerabilities")
async def get_vulnerabilities_addition(
    name: AdditionReader, reference: str, services: ServicesDep, caller: CallerDep
) -> dict[str, Any]:
    """Harbor's answer for an artifact with no scan report: `{}` (a report
    would be keyed by its media type). Dockyard has no scanner yet, so no
    artifact has a report; when scanning stores reports, serve them here."""
    await services.artifacts.get_artifact(name, reference)
    return {}


@router.get(_PATH + "/{reference}/additions/{addition}")
async def get_addition(
    name: AdditionReader,
    reference: str,
    addition: str,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    if addition.lower() not in ADDITIONS:
        raise NotFound(f"addition {addition} not found")
    artifact = await services.artifacts.get_artifact(name, reference)

    found = await services.artifacts.addition(artifact, addition.lower())

    return Response(found.content, headers={"content-type": found.content_type})


@router.get(_PATH + "/{reference}/accessories")
async def list_accessories(
    request: Request,
    name: AccessoryLister,
    reference: str,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
) -> Response:
    matches = _accessory_filter(q)
    artifact = await services.artifacts.get_artifact(name, reference)

    found = [
        a for a in await services.artifacts.list_accessories(artifact) if matches(a)
    ]

    window = found[page.offset : page.offset + page.size]
    return paginated(request, [_accessory_body(a) for a in window], len(found), page)


@router.get(_PATH + "/{reference}/tags")
async def list_tags(
    request: Request,
    name: TagLister,
    reference: str,
    services: ServicesDep,
    caller: CallerDep,
    page: PageDep,
    q: str | None = None,
    sort: str | None = None,
    with_immutable_status: bool = False,
) -> Response:
    query = apply_query(select(tags), q, sort, _TAG_COLUMNS)

    artifact, found, total = await services.artifacts.list_tags(
        name, reference, query, page.offset, page.size
    )

    return paginated(request, [_tag_body(artifact, t) for t in found], total, page)


@router.post(_PATH + "/{reference}/tags", status_code=201)
async def create_tag(
    name: TagCreator,
    reference: str,
    body: TagReq,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    await _refuse_proxy_cache(services, name)

    await services.artifacts.add_tag(name, reference, body.name, caller.username)
    services.replication.on_tag_added(name, body.name)
    return Response(status_code=201)


@router.delete(_PATH + "/{reference}/tags/{tag_name}")
async def delete_tag(
    name: TagDeleter,
    reference: str,
    tag_name: str,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    artifact = await services.replication.snapshot(name, reference)
    await services.artifacts.delete_tag(name, reference, tag_name, caller.username)
    services.replication.on_tag_deleted(name, tag_name, artifact)
    return Response(status_code=200)


async def _refuse_proxy_cache(services: Services, name: str) -> None:
    """403 for a repository of a proxy-cache project: what it serves must
    come from its upstream, and a copied artifact or added tag would be
    served as the upstream's (from cache while the upstream is down)."""
    try:
        await services.proxycache.refuse_push(name)
    except Denied as exc:
        raise Forbidden(exc.message) from exc


def _parse_from(text: str | None) -> tuple[str, str]:
    """(repository, reference) of `project/repository:tag` or `...@digest`."""
    if not text:
        raise BadRequest("from is required: project/repository:tag or @digest")
    if "@" in text:
        repository, _, reference = text.partition("@")
        valid = is_digest(reference)
    else:
        repository, _, reference = text.rpartition(":")
        valid = "/" not in reference and is_valid_tag(reference)
    if not valid or "/" not in repository or not is_valid_name(repository):
        raise BadRequest(f"from {text!r} is not project/repository:tag or @digest")
    return repository, reference


def _artifact_query(
    q: str | None, sort: str | None
) -> tuple[Select, Callable[[Artifact], bool] | None]:
    """The listing's query for `q` and `sort`, and the filter on what only
    the manifests' content answers (None if `q` asks nothing of it).
    Raise `QueryError` (400) for keys or forms Harbor does not accept."""
    conditions = parse_q(q)
    plain = [c for c in conditions if c.key in _PLAIN_KEYS]
    query = apply_query(select(manifests), _q_text(plain), sort, _ARTIFACT_COLUMNS)
    query = query.where(~is_accessory())
    if not any(c.key == "base" for c in conditions):
        query = query.where(listed())
    checks = []
    for condition in conditions:
        if condition.key in _CONTENT_KEYS:
            checks.append(_content_check(condition))
        elif condition.key == "base":
            _check_base(condition)
        elif condition.key not in _PLAIN_KEYS:
            query = query.where(_special_clause(condition))
    if not checks:
        return query, None
    return query, lambda artifact: all(check(artifact) for check in checks)


def _special_clause(condition: Condition) -> ColumnElement[bool]:
    """`tags=v|~v|*|nil`, `labels=(id id)`, `push_time`/`pull_time` ranges."""
    key, match, values = condition.key, condition.match, condition.values
    if key == "tags" and match is Match.FUZZY:
        return tag_named(values[0], fuzzy=True)
    if key == "tags" and match is Match.EXACT:
        if values[0] == "*":
            return has_tag()
        if values[0] == "nil":
            return ~has_tag()
        return tag_named(values[0], fuzzy=False)
    if key == "labels" and match in (Match.EXACT, Match.ALL) and values:
        return labelled([_integer(value) for value in values])
    if key in _TIME_KEYS and match in (Match.EXACT, Match.RANGE):
        return _time_clause(_ARTIFACT_COLUMNS[key], match, values)
    if key in ("tags", "labels") or key in _TIME_KEYS:
        raise QueryError(f"q key {key} does not take this form")
    known = ", ".join(sorted({*_ARTIFACT_COLUMNS, *_CONTENT_KEYS, "tags", "labels"}))
    raise QueryError(f"unknown query key {key!r}; known keys: {known}, base")


def _check_base(condition: Condition) -> None:
    """`base=*` lists index children too; it takes no other value."""
    if condition.match is not Match.EXACT or condition.values[0] != "*":
        raise QueryError('the value of q key base can only be "*"')


def _time_clause(
    column: Any, match: Match, values: tuple[str, ...]
) -> ColumnElement[bool]:
    if match is Match.EXACT:
        return column == _moment(values[0])
    low, high = values
    clause = column.is_not(None)
    if low:
        clause = clause & (column >= _moment(low))
    if high:
        clause = clause & (column <= _moment(high))
    return clause


def _moment(text: str) -> datetime:
    """A time from q: ISO 8601, or `YYYY-MM-DD HH:MM:SS`; UTC unless it says."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"{text!r} is not a time (use 2024-01-31T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _integer(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_INTEGER:
        raise QueryError(f"{text!r} is not a label id")
    return int(text)


def _content_check(condition: Condition) -> Callable[[Artifact], bool]:
    read = _CONTENT_KEYS[condition.key]
    matches = _matcher(condition)
    return lambda artifact: matches(read(artifact))


def _matcher(condition: Condition) -> Callable[[str], bool]:
    values = condition.values
    if condition.match is Match.EXACT:
        return lambda value: value == values[0]
    if condition.match is Match.FUZZY:
        return lambda value: values[0] in value
    if condition.match is Match.ANY:
        return lambda value: value in values
    raise QueryError(f"q key {condition.key} takes k=v, k=~v or k={{v1 v2}}")


def _accessory_filter(q: str | None) -> Callable[[Accessory], bool]:
    readers: dict[str, Callable[[Accessory], str]] = {
        "type": lambda accessory: accessory.type,
        "digest": lambda accessory: accessory.artifact.digest,
    }
    checks = []
    for condition in parse_q(q):
        if condition.key not in readers:
            raise QueryError(
                f"unknown query key {condition.key!r}; known: digest, type"
            )
        read, matches = readers[condition.key], _matcher(condition)
        checks.append(lambda accessory, r=read, m=matches: m(r(accessory)))
    return lambda accessory: all(check(accessory) for check in checks)


def _q_text(conditions: list[Condition]) -> str | None:
    """`conditions` written back as q text, for `apply_query`."""
    forms = {
        Match.EXACT: "{}={}",
        Match.FUZZY: "{}=~{}",
        Match.RANGE: "{}=[{}~{}]",
        Match.ANY: "{}={{{}}}",
        Match.ALL: "{}=({})",
    }
    parts = []
    for c in conditions:
        values = c.values if c.match is Match.RANGE else (" ".join(c.values),)
        parts.append(forms[c.match].format(c.key, *values))
    return ",".join(parts) or None


async def _artifact_bodies(
    services: Services, artifacts: list[Artifact], options: Options
) -> list[dict[str, Any]]:
    labels = (
        await services.labels.labels_of([a.id for a in artifacts])
        if options.with_label
        else {}
    )
    bodies = []
    for artifact in artifacts:
        body = await _artifact_body(services, artifact, options)
        if options.with_label:
            body["labels"] = [label_resp(x) for x in labels.get(artifact.id, [])]
        bodies.append(body)
    return bodies


async def _artifact_body(
    services: Services, artifact: Artifact, options: Options
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": artifact.id,
        "type": artifact.kind,
        "media_type": artifact.identifying_type,
        "manifest_media_type": artifact.media_type,
        "artifact_type": artifact.artifact_type,
        "project_id": artifact.project_id,
        "repository_id": artifact.repository_id,
        "repository_name": artifact.repository_name,
        "digest": artifact.digest,
        "size": artifact.size,
        # Icons are not served yet (Harbor's /icons); no digest to point at.
        "icon": "",
        "push_time": harbor_time(artifact.created_at),
        "pull_time": _time(artifact.pulled_at),
        "extra_attrs": await services.artifacts.extra_attributes(artifact),
        "annotations": artifact.document.get("annotations") or {},
        "references": _references(artifact),
        "tags": [_tag_body(artifact, t) for t in artifact.tags]
        if options.with_tag
        else None,
        "addition_links": _addition_links(artifact),
        "labels": None,
        # No scanner is configured, so there is nothing to summarise yet.
        "scan_overview": {} if options.with_scan_overview else None,
        "accessories": None,
    }
    if options.with_accessory:
        found = await services.artifacts.list_accessories(artifact)
        body["accessories"] = [_accessory_body(a) for a in found]
    return body


def _references(artifact: Artifact) -> list[dict[str, Any]] | None:
    if not artifact.is_index:
        return None
    return [
        {
            "parent_id": artifact.id,
            "child_id": artifact.children.get(child.get("digest"), (None, 0))[0],
            "child_digest": child.get("digest"),
            "platform": child.get("platform"),
            "annotations": child.get("annotations"),
            "urls": child.get("urls"),
        }
        for child in artifact.document.get("manifests", [])
    ]


def _addition_links(artifact: Artifact) -> dict[str, dict[str, Any]]:
    project, _, below = artifact.repository_name.partition("/")
    # Harbor's clients send a nested repository name encoded twice.
    encoded = quote(below, safe="").replace("%2F", "%252F")
    base = f"{_API_PREFIX}/projects/{project}/repositories/{encoded}/artifacts"
    return {
        name: {
            "href": f"{base}/{artifact.digest}/additions/{name}",
            "absolute": False,
        }
        for name in additions_of(artifact)
    }


def _accessory_body(accessory: Accessory) -> dict[str, Any]:
    artifact = accessory.artifact
    return {
        "id": artifact.id,
        "artifact_id": artifact.id,
        "subject_artifact_id": accessory.subject.id,
        "subject_artifact_digest": accessory.subject.digest,
        "subject_artifact_repo": accessory.subject.repository_name,
        "size": artifact.size,
        "digest": artifact.digest,
        "type": accessory.type,
        "icon": "",
        "creation_time": harbor_time(artifact.created_at),
    }


def _tag_body(artifact: Artifact, tag: Tag) -> dict[str, Any]:
    return {
        "id": tag.id,
        "repository_id": artifact.repository_id,
        "artifact_id": artifact.id,
        "name": tag.name,
        "push_time": harbor_time(tag.pushed_at),
        "pull_time": _time(tag.pulled_at),
        # Tag immutability rules do not exist yet: no tag is immutable.
        "immutable": False,
    }


def _time(moment: datetime | None) -> str:
    return harbor_time(moment) if moment is not None else _NEVER
