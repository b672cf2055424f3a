"""Registry operations the benchmark times, spoken over the distribution API.

Both servers trust tokens from Dockyard's token service, so one `TokenSource`
serves both. Operations take a `Connection` and a bearer token and raise
`UnexpectedReply` on any answer other than the one the spec promises: a
benchmark that counts failed requests as fast ones would mislead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

from httpconn import Connection, Reply

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCTET_STREAM = "application/octet-stream"

# Tokens live 30 minutes by default; fetch a new one well before that.
_TOKEN_REUSE_SECONDS = 600
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class UnexpectedReply(Exception):
    def __init__(self, what: str, status: int, body: bytes = b"") -> None:
        super().__init__(f"{what}: HTTP {status} {body[:300]!r}")
        self.status = status


def sha256_digest(data: bytes | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def expect(reply: Reply, status: int | tuple[int, ...], what: str) -> Reply:
    wanted = status if isinstance(status, tuple) else (status,)
    if reply.status not in wanted:
        raise UnexpectedReply(what, reply.status, reply.body)
    return reply


class TokenSource:
    """Bearer tokens from Dockyard's `/service/token`, cached per scope set."""

    def __init__(self, dockyard_url: str, username: str, password: str) -> None:
        self.url = dockyard_url
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._auth = {"authorization": f"Basic {basic}"}
        self._cache: dict[tuple[str, ...], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def token(self, *scopes: str) -> str:
        key = tuple(sorted(scopes))
        with self._lock:
            cached = self._cache.get(key)
            if cached and time.monotonic() - cached[0] < _TOKEN_REUSE_SECONDS:
                return cached[1]
        query = urlencode([("service", "dockyard")] + [("scope", s) for s in scopes])
        conn = Connection(self.url)
        try:
            reply = conn.request("GET", f"/service/token?{query}", self._auth)
        finally:
            conn.close()
        token = json.loads(expect(reply, 200, "token").body)["token"]
        with self._lock:
            self._cache[key] = (time.monotonic(), token)
        return token

    def push_token(self, *repositories: str) -> str:
        return self.token(*(f"repository:{r}:pull,push" for r in repositories))

    def pull_token(self, repository: str) -> str:
        return self.token(f"repository:{repository}:pull")

    def catalog_token(self) -> str:
        return self.token("registry:catalog:*")


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    digest: str

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(data, sha256_digest(data))


def start_upload(conn: Connection, token: str, repository: str) -> str:
    """Open an upload session; return its location."""
    reply = conn.request(
        "POST",
        f"/v2/{repository}/blobs/uploads/",
        bearer(token, **{"content-length": "0"}),
    )
    return _location(expect(reply, 202, "start upload"))


def push_monolithic(
    conn: Connection, token: str, repository: str, blob: Blob, single_post: bool
) -> None:
    """The whole blob in one body: `POST ?digest=` where the server takes it,
    else `POST` then `PUT <location>?digest=` (the spec's two-step monolithic upload).
    """
    headers = bearer(
        token, **{"content-type": OCTET_STREAM, "content-length": str(len(blob.data))}
    )
    if single_post:
        target = f"/v2/{repository}/blobs/uploads/?digest={blob.digest}"
        expect(conn.request("POST", target, headers, blob.data), 201, "monolithic POST")
        return
    location = start_upload(conn, token, repository)
    target = _with_query(location, digest=blob.digest)
    expect(conn.request("PUT", target, headers, blob.data), 201, "monolithic PUT")


def push_chunked(
    conn: Connection, token: str, repository: str, blob: Blob, chunk_size: int
) -> int:
    """`POST`, one `PATCH` with `Content-Range` per chunk, `PUT ?digest=`.

    Returns the number of chunks sent.
    """
    location = start_upload(conn, token, repository)
    view = memoryview(blob.data)
    chunks = 0
    for start in range(0, len(view), chunk_size):
        piece = view[start : start + chunk_size]
        headers = bearer(
            token,
            **{
                "content-type": OCTET_STREAM,
                "content-length": str(len(piece)),
                "content-range": f"{start}-{start + len(piece) - 1}",
            },
        )
        reply = expect(
            conn.request("PATCH", location, headers, piece), 202, "PATCH chunk"
        )
        location = _location(reply)
        chunks += 1
    finish(conn, token, location, blob.digest)
    return chunks


def push_stream(
    conn: Connection, token: str, repository: str, pieces: Iterable[bytes], size: int
) -> str:
    """Stream `size` bytes from `pieces` in one `PATCH`, hashing them on the way,
    then `PUT ?digest=`. Never holds more than one piece in memory. Returns the digest.
    """
    location = start_upload(conn, token, repository)
    hasher = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for piece in pieces:
            hasher.update(piece)
            yield piece

    headers = bearer(
        token,
        **{
            "content-type": OCTET_STREAM,
            "content-length": str(size),
            "content-range": f"0-{size - 1}",
        },
    )
    reply = expect(
        conn.request("PATCH", location, headers, hashed()), 202, "PATCH stream"
    )
    digest = "sha256:" + hasher.hexdigest()
    finish(conn, token, _location(reply), digest)
    return digest


def mount_blob(
    conn: Connection, token: str, repository: str, digest: str, source: str
) -> None:
    """Cross-repository mount; the token must allow pull on `source`.
    Anything but 201 (e.g. a 202 upload offered instead) raises."""
    query = urlencode({"mount": digest, "from": source})
    target = f"/v2/{repository}/blobs/uploads/?{query}"
    reply = conn.request("POST", target, bearer(token, **{"content-length": "0"}))
    expect(reply, 201, f"mount {digest} into {repository}")


def finish(conn: Connection, token: str, location: str, digest: str) -> None:
    target = _with_query(location, digest=digest)
    headers = bearer(token, **{"content-length": "0"})
    expect(conn.request("PUT", target, headers), 201, "finish upload")


def pull_blob(conn: Connection, token: str, repository: str, digest: str) -> int:
    """GET the blob and discard it; return the bytes received."""
    status, received = conn.download(f"/v2/{repository}/blobs/{digest}", bearer(token))
    if status != 200:
        raise UnexpectedReply("pull blob", status)
    return received


def fetch_blob_digest(
    conn: Connection, token: str, repository: str, digest: str
) -> str:
    """GET the blob and return the sha256 of what came back."""
    reply = conn.request("GET", f"/v2/{repository}/blobs/{digest}", bearer(token))
    return sha256_digest(expect(reply, 200, "get blob").body)


def put_manifest(
    conn: Connection, token: str, repository: str, reference: str, body: bytes
) -> str:
    headers = bearer(
        token, **{"content-type": OCI_MANIFEST, "content-length": str(len(body))}
    )
    reply = conn.request(
        "PUT", f"/v2/{repository}/manifests/{reference}", headers, body
    )
    return expect(reply, 201, "put manifest").header("docker-content-digest") or ""


def image_manifest(config: Blob, layer: Blob, annotation: str | None = None) -> bytes:
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config.digest,
            "size": len(config.data),
        },
        "layers": [
            {"mediaType": OCI_LAYER, "digest": layer.digest, "size": len(layer.data)}
        ],
    }
    if annotation is not None:
        document["annotations"] = {"org.example.bench": annotation}
    return json.dumps(document, separators=(",", ":")).encode()


def image_config(layer: Blob) -> Blob:
    document = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    }
    return Blob.of(json.dumps(document, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[str]
    pages: int


def list_paginated(
    conn: Connection, token: str, first: str, key: str, max_pages: int = 100_000
) -> Listing:
    """Follow `Link: <...>; rel="next"` from `first`, gathering `key` of each page."""
    items: list[str] = []
    target: str | None = first
    pages = 0
    while target is not None and pages < max_pages:
        reply = expect(
            conn.request("GET", target, bearer(token)), 200, f"list {target}"
        )
        items.extend(json.loads(reply.body).get(key) or [])
        pages += 1
        target = _next_link(reply)
    return Listing(items, pages)


def _next_link(reply: Reply) -> str | None:
    value = reply.header("link")
    if not value:
        return None
    match = _LINK_RE.search(value)
    return match.group(1) if match else None


def _location(reply: Reply) -> str:
    location = reply.header("location")
    if not location:
        raise UnexpectedReply("no Location header", reply.status, reply.body)
    return location


def _with_query(location: str, **params: str) -> str:
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}{urlencode(params)}"
