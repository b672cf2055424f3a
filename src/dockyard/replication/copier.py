"""Copying one artifact, whole, from one side to another.

    copy_tag(tag)
      manifest tree, children first: for an index every child manifest,
        for a manifest its config and layers (blobs), then the manifest
        itself by digest
      referrers of every manifest in the tree (signatures, SBOMs), each
        copied as a tree of its own, pushed by digest; a destination that
        does not index referrers itself (no `OCI-Subject` answer) gets the
        `sha256-<hex>` tag fallback index as well
      finally the tag

A blob the destination has is not sent; one it probably has in another
repository (this copy wrote it there, or `mount_sources` says an earlier
task did) is mounted; others are streamed, never held whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from dockyard.registry import mediatypes
from dockyard.registry.digest import compute_digest
from dockyard.replication.client import with_digests
from dockyard.replication.sides import (
    CopyFailed,
    Manifest,
    Side,
    fallback_tag,
    index_descriptors,
)

log = logging.getLogger(__name__)

_STOP_CHECK_SECONDS = 1.0
# Mounts tried for one blob before it is sent: each refused one costs a
# round trip (and the upload it opened, cancelled).
MOUNT_ATTEMPTS = 3
# Manifests in indexes and referrers of referrers are followed this deep at
# most: real ones nest two or three levels, and a source that makes up a
# new referrer for every manifest must not make a copy recurse without end.
MAX_DEPTH = 16

Log = Callable[[str], None]
StopCheck = Callable[[], Awaitable[None]]
Serializer = Callable[[str], AbstractAsyncContextManager[Any]]
# (source repository, destination repository, digest) -> repositories of
# the destination that probably hold the blob already.
MountSources = Callable[[str, str, str], Awaitable[list[str]]]


def _unserialized(name: str) -> AbstractAsyncContextManager[Any]:
    return contextlib.nullcontext()


async def _nowhere(src: str, dst: str, digest: str) -> list[str]:
    return []


class ArtifactCopy:
    """Copies from `source` to `destination`; `log` gets one line per step,
    `check_stop` raises when the execution was stopped. `serialize(name)`
    holds a lock of that name: a fallback index is read, merged and written
    under it, so two copies adding referrers to one subject keep both.
    `mount_sources` names where the destination probably holds a blob."""

    def __init__(
        self,
        source: Side,
        destination: Side,
        log: Log,
        check_stop: StopCheck,
        speed_kbps: int = -1,
        serialize: Serializer = _unserialized,
        mount_sources: MountSources = _nowhere,
    ) -> None:
        self.serialize = serialize
        self.mount_sources = mount_sources
        self.source = source
        self.destination = destination
        self.log = log
        self.check_stop = check_stop
        self.speed_kbps = speed_kbps
        self._blobs_at: dict[str, str] = {}
        self.sent_bytes = 0

    async def copy_tag(
        self, src_repository: str, tag: str, dst_repository: str, override: bool
    ) -> str:
        """Copy `src_repository:tag` to `dst_repository:tag`; what was done."""
        manifest = await self.source.get_manifest(src_repository, tag)
        if manifest is None:
            raise CopyFailed(f"{src_repository}:{tag} is not in the source")
        if not override:
            present = await self.destination.get_manifest(dst_repository, tag)
            if present is not None and present.digest != manifest.digest:
                self.log(
                    f"skipped: {dst_repository}:{tag} exists as {present.digest} "
                    "and override is off"
                )
                return "skipped"
        seen: set[str] = set()
        await self._copy_tree(src_repository, dst_repository, manifest, seen)
        await self.destination.put_manifest(dst_repository, tag, manifest)
        self.log(f"tagged {dst_repository}:{tag} -> {manifest.digest}")
        return "copied"

    async def delete(self, dst_repository: str, digest: str) -> bool:
        """Delete `digest` at the destination; False if it was not there."""
        gone = await self.destination.delete_manifest(dst_repository, digest)
        self.log(f"deleted {dst_repository}@{digest}" if gone else "nothing to delete")
        return gone

    async def delete_tag(self, dst_repository: str, tag: str) -> bool:
        """Delete `tag` alone at the destination; False if it was not there."""
        gone = await self.destination.delete_tag(dst_repository, tag)
        self.log(f"deleted tag {dst_repository}:{tag}" if gone else "no tag to delete")
        return gone

    async def _copy_tree(
        self, src: str, dst: str, manifest: Manifest, seen: set[str], depth: int = 0
    ) -> bool | None:
        """Copy the tree (`depth` levels below the tagged manifest); whether
        the destination indexed the manifest as a referrer (None: it was
        there already, nothing was pushed)."""
        if manifest.digest in seen:
            return None
        seen.add(manifest.digest)
        await self.check_stop()
        document = _document(manifest)
        if manifest.media_type in mediatypes.INDEXES:
            for digest in _digests(manifest, document.get("manifests")):
                await self._copy_child(src, dst, digest, seen, depth + 1)
        else:
            named = [document.get("config"), *(document.get("layers") or [])]
            for digest in _digests(manifest, named):
                await self._copy_blob(src, dst, digest)
        indexed = None
        if await self.destination.get_manifest(dst, manifest.digest) is None:
            indexed = await self.destination.put_manifest(
                dst, manifest.digest, manifest
            )
            self.log(f"manifest {dst}@{manifest.digest} ({manifest.media_type})")
            subject = document.get("subject")
            if indexed is False and isinstance(subject, dict) and "digest" in subject:
                # A referrer copied on its own (tagged, or by an event):
                # its subject's fallback index must list it.
                await self._update_fallback(
                    dst, str(subject["digest"]), [_descriptor_of(manifest, document)]
                )
        await self._copy_referrers(src, dst, manifest.digest, seen, depth)
        return indexed

    async def _copy_child(
        self, src: str, dst: str, digest: str, seen: set[str], depth: int
    ) -> None:
        if depth > MAX_DEPTH:
            # An index cannot be pushed without its children.
            raise CopyFailed(f"{src}@{digest}: nested deeper than {MAX_DEPTH}")
        child = await self.source.get_manifest(src, digest)
        if child is None:
            raise CopyFailed(f"{src}@{digest}: a child manifest is missing")
        await self._copy_tree(src, dst, child, seen, depth)

    async def _copy_referrers(
        self, src: str, dst: str, digest: str, seen: set[str], depth: int
    ) -> None:
        if depth >= MAX_DEPTH:
            # The artifact is whole without them: skipped, saying so.
            self.log(f"referrers of {digest} not copied: deeper than {MAX_DEPTH}")
            return
        descriptors = await self.source.referrers(src, digest)
        indexed = True
        for descriptor in descriptors:
            referrer = await self.source.get_manifest(src, descriptor["digest"])
            if referrer is None:
                continue
            if referrer.digest in seen:
                continue
            pushed = await self._copy_tree(src, dst, referrer, seen, depth + 1)
            if pushed is None:
                # It was there already: pushed again (idempotent) to read
                # whether the destination indexes it (`OCI-Subject`).
                pushed = await self.destination.put_manifest(
                    dst, referrer.digest, referrer
                )
            indexed = indexed and pushed
            self.log(f"referrer {referrer.digest} of {digest}")
        if descriptors and not indexed:
            await self._update_fallback(dst, digest, descriptors)

    async def _update_fallback(
        self, dst: str, digest: str, descriptors: list[dict[str, Any]]
    ) -> None:
        tag = fallback_tag(digest)
        async with self.serialize(f"{dst}:{tag}"):
            await self._merge_fallback(dst, tag, descriptors)

    async def _merge_fallback(
        self, dst: str, tag: str, descriptors: list[dict[str, Any]]
    ) -> None:
        present = await self.destination.get_manifest(dst, tag)
        merged = index_descriptors(present.content) if present else []
        known = {d["digest"] for d in merged}
        merged += [_clean(d) for d in descriptors if d["digest"] not in known]
        content = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mediatypes.OCI_INDEX,
                "manifests": merged,
            },
            separators=(",", ":"),
        ).encode()
        index = Manifest(compute_digest(content), mediatypes.OCI_INDEX, content)
        await self.destination.put_manifest(dst, tag, index)
        self.log(f"referrers tag fallback {dst}:{tag} ({len(merged)} referrers)")

    async def _copy_blob(self, src: str, dst: str, digest: str) -> None:
        await self.check_stop()
        if await self.destination.has_blob(dst, digest):
            self._blobs_at.setdefault(digest, dst)
            return
        if await self._mount(src, dst, digest):
            self._blobs_at.setdefault(digest, dst)
            return
        async with self.source.open_blob(src, digest) as (size, chunks):
            await self.destination.put_blob(dst, digest, size, self._metered(chunks))
        self._blobs_at[digest] = dst
        self.log(f"blob {digest} sent ({size} bytes)")

    async def _mount(self, src: str, dst: str, digest: str) -> bool:
        """Mount the blob from a repository of the destination that probably
        has it: first one this copy wrote it to, then those `mount_sources`
        names; at most `MOUNT_ATTEMPTS` tries (a refused one costs a round
        trip)."""
        for other in await self._mount_candidates(src, dst, digest):
            await self.check_stop()
            if await self.destination.mount_blob(dst, other, digest):
                self.log(f"blob {digest} mounted from {other}")
                return True
        return False

    async def _mount_candidates(self, src: str, dst: str, digest: str) -> list[str]:
        found = [
            self._blobs_at.get(digest),
            *await self.mount_sources(src, dst, digest),
        ]
        candidates: list[str] = []
        for name in found:
            if name and name != dst and name not in candidates:
                candidates.append(name)
        return candidates[:MOUNT_ATTEMPTS]

    async def _metered(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks`, paced to `speed_kbps` when it is set; a stop is noticed
        within about a second even in the middle of a long blob."""
        started = checked = time.monotonic()
        sent = 0
        async for piece in chunks:
            yield piece
            sent += len(piece)
            self.sent_bytes += len(piece)
            if self.speed_kbps > 0:
                ahead = sent / (self.speed_kbps * 1024) - (time.monotonic() - started)
                while ahead > 0:
                    await asyncio.sleep(min(ahead, _STOP_CHECK_SECONDS))
                    ahead -= _STOP_CHECK_SECONDS
                    checked = await self._check_stop_every(checked)
            checked = await self._check_stop_every(checked)

    async def _check_stop_every(self, checked: float) -> float:
        now = time.monotonic()
        if now - checked < _STOP_CHECK_SECONDS:
            return checked
        await self.check_stop()
        return now


def _document(manifest: Manifest) -> dict[str, Any]:
    try:
        document = json.loads(manifest.content)
    except ValueError as exc:
        raise CopyFailed(f"{manifest.digest} is not JSON") from exc
    if not isinstance(document, dict):
        raise CopyFailed(f"{manifest.digest} is not a JSON object")
    return document


def _digests(manifest: Manifest, descriptors: Any) -> list[str]:
    """The digests `descriptors` (a manifest's list of them) name;
    `CopyFailed` for one that is no digest: asked for, `../x` would be
    another path at the source, and no registry would take the manifest."""
    if not isinstance(descriptors, list):
        return []
    found = [d for d in descriptors if isinstance(d, dict) and "digest" in d]
    valid = with_digests(found)
    if len(valid) != len(found):
        raise CopyFailed(f"{manifest.digest} names an invalid digest")
    return [d["digest"] for d in valid]


def _descriptor_of(manifest: Manifest, document: dict[str, Any]) -> dict[str, Any]:
    """The descriptor a referrers index lists for `manifest`."""
    config = document.get("config")
    artifact_type = document.get("artifactType") or (
        config.get("mediaType") if isinstance(config, dict) else None
    )
    descriptor: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.content),
    }
    if artifact_type:
        descriptor["artifactType"] = artifact_type
    if isinstance(document.get("annotations"), dict):
        descriptor["annotations"] = document["annotations"]
    return descriptor


def _clean(descriptor: dict[str, Any]) -> dict[str, Any]:
    keep = ("mediaType", "digest", "size", "artifactType", "annotations")
    return {k: descriptor[k] for k in keep if k in descriptor}
