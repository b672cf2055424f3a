"""Media types of manifests and the facts Dockyard needs about each."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_MEDIA_TYPES = IMAGE_MANIFESTS | INDEXES

# Docker schema 1 is deprecated and refused, as the distribution spec allows.
DOCKER_SCHEMA1 = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)


def accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether a request's `Accept` header admits a manifest of `media_type`.

    No header, or a wildcard, admits everything: the spec asks a registry to
    return an index by tag to a client that expresses no preference.
    """
    if not accept_header:
        return True
    for item in accept_header.split(","):
        candidate = item.split(";", 1)[0].strip()
        if candidate in ("*/*", "application/*", media_type, ""):
            return True
    return False
