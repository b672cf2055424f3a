"""Helpers for tests that speak the registry API over real HTTP."""

from __future__ import annotations

import hashlib
import json
import secrets

import httpx
import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """A thin client for one Dockyard over HTTP; each test gets a fresh repository."""

    def __init__(self, client: httpx.Client, repository: str) -> None:
        self.client = client
        self.repository = repository

    def url(self, suffix: str, repository: str | None = None) -> str:
        return f"/v2/{repository or self.repository}/{suffix}"

    def push_blob(self, data: bytes, repository: str | None = None) -> str:
        digest = sha256(data)
        response = self.client.post(
            self.url(f"blobs/uploads/?digest={digest}", repository), content=data
        )
        assert response.status_code == 201, response.text
        return digest

    def image_manifest(self, layers: list[bytes] | None = None, **extra) -> bytes:
        config = self.push_blob(b"{}")
        descriptors = [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": self.push_blob(layer),
                "size": len(layer),
            }
            for layer in (layers or [secrets.token_bytes(64)])
        ]
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
            "layers": descriptors,
            **extra,
        }
        return json.dumps(document).encode()

    def put_manifest(
        self,
        reference: str,
        body: bytes,
        media_type: str = OCI_MANIFEST,
        repository: str | None = None,
    ) -> httpx.Response:
        return self.client.put(
            self.url(f"manifests/{reference}", repository),
            content=body,
            headers={"content-type": media_type},
        )


def index_of(*children: bytes) -> bytes:
    """An OCI image index listing `children` (image manifests' bytes)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": sha256(c), "size": len(c)}
                for c in children
            ],
        }
    ).encode()


@pytest.fixture
def admin_client(dockyard):
    with httpx.Client(
        base_url=dockyard.url, auth=("admin", dockyard.admin_password), timeout=60
    ) as client:
        yield client


@pytest.fixture
def api(admin_client) -> httpx.Client:
    """An admin client, for tests of `/api/v2.0`."""
    return admin_client


@pytest.fixture
def registry(admin_client) -> Registry:
    return Registry(admin_client, f"library/t-{secrets.token_hex(4)}")


def error_code(response: httpx.Response) -> str:
    return response.json()["errors"][0]["code"]
