"""Blob uploads: `POST /v2/<name>/blobs/uploads/` and `/v2/<name>/blobs/uploads/<id>`.

Monolithic (`POST ?digest=`), session (`POST`, then `PATCH`* and `PUT ?digest=`),
and cross-repository mount (`POST ?mount=&from=`), which falls back to a new
session when the blob cannot be mounted or the caller may not pull the source.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.roles import PUSH
from dockyard.registry.digest import parse_digest
from dockyard.registry.errors import BlobUploadInvalid
from dockyard.registry.reference import is_valid_name
from dockyard.registry.routes.common import repository_name, services
from dockyard.registry.routes.guard import Challenge
from dockyard.registry.uploads import ChunkRange

_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


async def start_upload(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    params = request.query_params
    mount, source = params.get("mount"), params.get("from")
    source = source if source and is_valid_name(source) else None
    also_ask = f"repository:{source}:pull" if mount and source else None
    credentials = await svc.guard.authorize(request, name, PUSH, also_ask)

    if "digest" in params:
        digest = str(parse_digest(params["digest"]))
        await svc.uploads.upload_blob(
            name, digest, request.stream(), _content_length(request)
        )
        return _blob_created(name, digest)
    if mount and source and await svc.guard.may_pull(credentials, source):
        digest = str(parse_digest(mount))
        if await svc.blobs.mount_blob(name, source, digest) is not None:
            return _blob_created(name, digest)
    elif mount and source and await svc.guard.token_could_cover(credentials, source):
        # The caller may read the source, but this token was not asked for it.
        raise Challenge(f"repository:{name}:pull,push {also_ask}", "insufficient_scope")
    upload_id = await svc.uploads.start_upload(name)

    return _upload_accepted(name, upload_id, 0)


async def upload_status(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PUSH)
    upload_id = request.path_params["upload_id"]

    offset = await svc.uploads.upload_offset(name, upload_id)

    return _upload_accepted(name, upload_id, offset, status=204)


async def append_chunk(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PUSH)
    upload_id = request.path_params["upload_id"]

    offset = await svc.uploads.append_chunk(
        name,
        upload_id,
        request.stream(),
        chunk_range=_chunk_range(request),
        content_length=_content_length(request),
    )

    return _upload_accepted(name, upload_id, offset)


async def finish_upload(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PUSH)
    upload_id = request.path_params["upload_id"]
    digest = request.query_params.get("digest")
    if not digest:
        raise BlobUploadInvalid("the digest query parameter is required")

    await svc.uploads.finish_upload(
        name,
        upload_id,
        digest,
        request.stream(),
        chunk_range=_chunk_range(request),
        content_length=_content_length(request),
    )

    return _blob_created(name, str(parse_digest(digest)))


async def cancel_upload(request: Request) -> Response:
    svc = services(request)
    name = repository_name(request)
    await svc.guard.authorize(request, name, PUSH)

    await svc.uploads.cancel_upload(name, request.path_params["upload_id"])

    return Response(status_code=204)


def _blob_created(name: str, digest: str) -> Response:
    headers = {
        "location": f"/v2/{name}/blobs/{digest}",
        "docker-content-digest": digest,
    }
    return Response(status_code=201, headers=headers)


def _upload_accepted(
    name: str, upload_id: str, offset: int, status: int = 202
) -> Response:
    headers = {
        "location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "range": f"0-{max(offset - 1, 0)}",
        "docker-upload-uuid": upload_id,
    }
    return Response(status_code=status, headers=headers)


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise BlobUploadInvalid("invalid Content-Length")
    return int(value)


def _chunk_range(request: Request) -> ChunkRange | None:
    value = request.headers.get("content-range")
    if value is None:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(value.strip())
    if match is None or int(match.group(1)) > int(match.group(2)):
        raise BlobUploadInvalid("invalid Content-Range", value=value[:64])
    return ChunkRange(int(match.group(1)), int(match.group(2)))
