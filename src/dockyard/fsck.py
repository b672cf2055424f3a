"""`dockyard fsck`: check that storage and metadata agree.

Three passes, each reported as a list of `Problem`s:

1. every blob the database knows is in storage, has the recorded size, and
   its bytes hash to its digest (read in pieces: memory stays bounded
   whatever the blob's size);
2. every manifest's stored bytes match its digest, and every blob and child
   manifest it references is known, stored and (for children) present in
   the same repository; in proxy-cache projects a reference nothing has
   asked for yet is not a problem (the cache fetches it on demand), while
   what is cached is checked as anywhere else;
3. every blob in storage is known to the database (a stray file is left by
   a crash between storing a blob and recording it, or is an upload that
   is finishing right now; garbage collection removes strays).

Read-only: fsck never changes storage or metadata, so it may run while the
server does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from dockyard.db.database import Database
from dockyard.db.schema import (
    blobs,
    manifest_references,
    manifests,
    proxy_projects,
    repositories,
)
from dockyard.registry.digest import compute_digest, parse_digest
from dockyard.registry.errors import DigestInvalid
from dockyard.storage.base import BlobNotStored, BlobStorage

# Problem kinds.
BLOB_MISSING = "blob_missing"  # in the database, not in storage
BLOB_SIZE_MISMATCH = "blob_size_mismatch"
BLOB_CORRUPT = "blob_corrupt"  # content does not hash to the digest
MANIFEST_CORRUPT = "manifest_corrupt"
MANIFEST_BLOB_MISSING = "manifest_blob_missing"
MANIFEST_CHILD_MISSING = "manifest_child_missing"
STRAY_BLOB = "stray_blob"  # in storage, not in the database

Progress = Callable[[int], None]
_MANIFEST_BATCH = 500


@dataclass(frozen=True)
class Problem:
    kind: str
    digest: str
    detail: str = ""
    repository: str | None = None


@dataclass
class FsckReport:
    blobs_checked: int = 0
    bytes_checked: int = 0
    manifests_checked: int = 0
    stored_blobs: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": {
                "blobs": self.blobs_checked,
                "bytes": self.bytes_checked,
                "manifests": self.manifests_checked,
                "stored_blobs": self.stored_blobs,
            },
            "problems": [asdict(problem) for problem in self.problems],
        }


class Fsck:
    def __init__(self, db: Database, storage: BlobStorage) -> None:
        self.db = db
        self.storage = storage

    async def total_bytes(self) -> int:
        """Bytes pass 1 will read (for a progress bar)."""
        async with self.db.read() as conn:
            sizes = (await conn.scalars(select(blobs.c.size))).all()
        return sum(sizes)

    async def run(self, progress: Progress | None = None) -> FsckReport:
        """Run every pass; `progress` is told the bytes verified as they are."""
        report = FsckReport()
        recorded, intact = await self._check_blobs(report, progress or (lambda _: None))
        await self._check_manifests(report, intact)
        await self._find_strays(report, recorded)
        return report

    async def _check_blobs(
        self, report: FsckReport, progress: Progress
    ) -> tuple[set[str], set[str]]:
        """Pass 1; the digests the database knows, and those of them that
        storage holds intact."""
        async with self.db.read() as conn:
            rows = (await conn.execute(select(blobs.c.digest, blobs.c.size))).all()
        present = set()
        for digest, size in rows:
            report.blobs_checked += 1
            problem = await self._verify_blob(digest, size, progress)
            if problem is None:
                report.bytes_checked += size
                present.add(digest)
            else:
                report.problems.append(problem)
        return {digest for digest, _ in rows}, present

    async def _verify_blob(
        self, digest: str, size: int, progress: Progress
    ) -> Problem | None:
        stored = await self.storage.blob_size(digest)
        if stored is None:
            return Problem(BLOB_MISSING, digest, "recorded, not in storage")
        if stored != size:
            return Problem(
                BLOB_SIZE_MISMATCH, digest, f"recorded {size} bytes, stored {stored}"
            )
        try:
            algorithm = parse_digest(digest).algorithm
        except DigestInvalid:
            return Problem(BLOB_CORRUPT, digest, "recorded under an invalid digest")
        hasher = hashlib.new(algorithm)
        try:
            async for piece in self.storage.read_blob(digest):
                hasher.update(piece)
                progress(len(piece))
        except BlobNotStored:
            return Problem(BLOB_MISSING, digest, "vanished while being read")
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if actual != digest:
            return Problem(BLOB_CORRUPT, digest, f"content hashes to {actual}")
        return None

    async def _check_manifests(self, report: FsckReport, present: set[str]) -> None:
        """Pass 2: manifest bytes, and what each manifest references; read in
        batches so that memory does not grow with the number of manifests."""
        async with self.db.read() as conn:
            pairs = (
                await conn.execute(
                    select(manifests.c.repository_id, manifests.c.digest)
                )
            ).all()
        in_repository = {(repository_id, digest) for repository_id, digest in pairs}
        cached_on_demand = await self._proxy_repositories()
        after = 0
        while batch := await self._manifest_batch(after):
            after = batch[-1].id
            references = await self._references_of([row.id for row in batch])
            for row in batch:
                report.manifests_checked += 1
                problem = _verify_manifest_bytes(row.digest, row.content)
                if problem is not None:
                    report.problems.append(_in(problem, row.name))
                for kind, digest in references.get(row.id, []):
                    missing = (
                        (row.repository_id, digest) not in in_repository
                        if kind == "manifest"
                        else digest not in present
                    )
                    if missing and row.repository_id not in cached_on_demand:
                        report.problems.append(_missing_reference(row, kind, digest))

    async def _proxy_repositories(self) -> set[int]:
        """Ids of the repositories of proxy-cache projects, which hold only
        what clients have pulled so far."""
        query = select(repositories.c.id).join(
            proxy_projects, proxy_projects.c.project_id == repositories.c.project_id
        )
        async with self.db.read() as conn:
            return set((await conn.scalars(query)).all())

    async def _manifest_batch(self, after: int) -> list[Any]:
        query = (
            select(
                manifests.c.id,
                manifests.c.digest,
                manifests.c.content,
                manifests.c.repository_id,
                repositories.c.name,
            )
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(manifests.c.id > after)
            .order_by(manifests.c.id)
            .limit(_MANIFEST_BATCH)
        )
        async with self.db.read() as conn:
            return list((await conn.execute(query)).all())

    async def _references_of(self, ids: list[int]) -> dict[int, list[tuple[str, str]]]:
        query = select(
            manifest_references.c.manifest_id,
            manifest_references.c.kind,
            manifest_references.c.digest,
        ).where(manifest_references.c.manifest_id.in_(ids))
        found: dict[int, list[tuple[str, str]]] = {}
        async with self.db.read() as conn:
            for manifest_id, kind, digest in (await conn.execute(query)).all():
                found.setdefault(manifest_id, []).append((kind, digest))
        return found

    async def _find_strays(self, report: FsckReport, recorded: set[str]) -> None:
        """Pass 3: stored blobs the database does not know."""
        for digest in await self.storage.list_blobs():
            report.stored_blobs += 1
            if digest not in recorded:
                report.problems.append(
                    Problem(STRAY_BLOB, digest, "in storage, not in the database")
                )


def _verify_manifest_bytes(digest: str, content: bytes | str) -> Problem | None:
    if isinstance(content, str):  # SQLite hands back text if it was stored so
        content = content.encode()
    try:
        algorithm = parse_digest(digest).algorithm
    except DigestInvalid:
        return Problem(MANIFEST_CORRUPT, digest, "stored under an invalid digest")
    actual = compute_digest(content, algorithm)
    if actual != digest:
        return Problem(MANIFEST_CORRUPT, digest, f"content hashes to {actual}")
    return None


def _missing_reference(manifest: Any, kind: str, digest: str) -> Problem:
    if kind == "manifest":
        return Problem(
            MANIFEST_CHILD_MISSING,
            manifest.digest,
            f"child manifest {digest} is missing",
            manifest.name,
        )
    return Problem(
        MANIFEST_BLOB_MISSING,
        manifest.digest,
        f"blob {digest} is missing or damaged",
        manifest.name,
    )


def _in(problem: Problem, repository: str) -> Problem:
    return Problem(problem.kind, problem.digest, problem.detail, repository)
