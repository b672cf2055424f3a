"""`PUT`/`GET`/`HEAD`/`DELETE /v2/<name>/manifests/<reference>`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.audit import AuditEntry
from dockyard.auth.roles import DELETE, PULL, PUSH
from dockyard.registry import mediatypes
from dockyard.registry.digest import is_digest
from dockyard.registry.errors import ManifestTooLarge, ManifestUnknown
from dockyard.registry.manifests import artifact_resource
from dockyard.registry.reference import project_of
from dockyard.registry.routes.common import repository_name, services
from dockyard.replication.facts import ArtifactFacts


async def get_manifest(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    credentials = await svc.guard.authorize(request, name, PULL)
    reference = request.path_params["reference"]

    binding = await svc.proxycache.binding(name)
    if binding is not None:
        manifest = await svc.proxycache.get_manifest(binding, name, reference)
    else:
        manifest = await svc.manifests.get_manifest(name, reference)
    # Clients may send several Accept headers; together they are one list.
    accept = ",".join(request.headers.getlist("accept"))
    if not mediatypes.accepts(accept, manifest.media_type):
        raise ManifestUnknown(
            "the manifest's media type is not in the Accept header",
            mediaType=manifest.media_type,
        )

    headers = {
        "docker-content-digest": manifest.digest,
        "etag": f'"{manifest.digest}"',
        "content-length": str(len(manifest.content)),
    }
    if request.method == "HEAD":
        return Response(b"", media_type=manifest.media_type, headers=headers)
    await _record_pull(request, credentials.actor, name, reference)
    tag = None if is_digest(reference) else reference
    svc.pulls.record_pull(name, manifest.digest, tag)
    return Response(manifest.content, media_type=manifest.media_type, headers=headers)


async def put_manifest(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    credentials = await svc.guard.authorize(request, name, PUSH)
    reference = request.path_params["reference"]
    content = await _read_limited(request, svc.settings.max_manifest_bytes)

    manifest = await svc.manifests.put_manifest(
        name, reference, request.headers.get("content-type"), content, credentials.actor
    )
    svc.replication.on_pushed(name, reference, manifest.subject)

    headers = {
        "location": f"/v2/{name}/manifests/{manifest.digest}",
        "docker-content-digest": manifest.digest,
    }
    if manifest.subject:
        headers["oci-subject"] = manifest.subject
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    credentials = await svc.guard.authorize(request, name, DELETE)

    reference = request.path_params["reference"]
    artifact = await svc.replication.snapshot(name, reference)
    await svc.manifests.delete_manifest(name, reference, credentials.actor)
    if is_digest(reference):
        svc.replication.on_deleted(name, artifact or ArtifactFacts(reference))
    else:
        # By tag only the tag goes, and only the tag is deleted elsewhere.
        svc.replication.on_tag_deleted(name, reference, artifact)

    return Response(status_code=202)


async def _record_pull(request: Request, actor: str, name: str, reference: str) -> None:
    svc = services(request)
    if await svc.configurations.get("pull_audit_log_disable"):
        return
    project = await svc.projects.find_project(project_of(name))
    svc.audit.record_later(
        AuditEntry(
            username=actor,
            resource=artifact_resource(name, reference),
            resource_type="artifact",
            operation="pull",
            project_id=project.id if project else None,
        )
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing to buffer more than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ManifestTooLarge(limit=limit, size=int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ManifestTooLarge(limit=limit)
    return bytes(body)
