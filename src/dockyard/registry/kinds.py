"""What an artifact is, in Harbor's words: its type and, for accessories, theirs.

A manifest's type (IMAGE, CHART, CNAB...) follows from the media type that
identifies it: its `artifactType`, else its config's media type, else (for an
index) its own media type. A manifest that refers to another one is an
accessory of it: through `subject` (OCI 1.1 referrers: signatures, SBOMs,
attestations), or, for cosign's older scheme, by being tagged
`sha256-<hex of the subject>.sig`. Pure rules, no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from dockyard.registry import mediatypes

OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
CNAB_MANIFEST = "application/vnd.cnab.manifest.v1"
# Where CNAB bundles (an index) put their media type.
INDEX_TYPE_ANNOTATION = "org.opencontainers.artifactType"

IMAGE_CONFIGS = frozenset({OCI_IMAGE_CONFIG, DOCKER_IMAGE_CONFIG})

# The identifying media type -> Harbor's artifact type.
_TYPES: dict[str, str] = {
    OCI_IMAGE_CONFIG: "IMAGE",
    DOCKER_IMAGE_CONFIG: "IMAGE",
    mediatypes.OCI_INDEX: "IMAGE",
    mediatypes.DOCKER_MANIFEST_LIST: "IMAGE",
    HELM_CONFIG: "CHART",
    CNAB_MANIFEST: "CNAB",
    "application/vnd.wasm.config.v1+json": "WASM",
    "application/vnd.goharbor.harbor.sbom.v1": "SBOM",
    "application/vnd.cncf.model.manifest.v1+json": "CNAI",
}
UNKNOWN = "UNKNOWN"
# Other config media types of the form application/vnd.<vendor>.<kind>.config.<v>+json
# name their kind.
_VENDOR_CONFIG = re.compile(r"application/vnd\.[^.]*\.(.+)\.config\.[^.]*\+json")

# Accessory types, as Harbor names them.
COSIGN = "signature.cosign"
NOTATION = "signature.notation"
HARBOR_SBOM = "sbom.harbor"
NYDUS = "accelerator.nydus"
SUBJECT = "subject.accessory"
_ACCESSORY_TYPES: dict[str, str] = {
    "application/vnd.dev.cosign.artifact.sig.v1+json": COSIGN,
    "application/vnd.dev.sigstore.bundle.v0.3+json": COSIGN,
    "application/vnd.cncf.notary.signature": NOTATION,
    "application/vnd.goharbor.harbor.sbom.v1": HARBOR_SBOM,
}
_NYDUS_ANNOTATION = "containerd.io/snapshot/nydus-bootstrap"
COSIGN_TAG = re.compile(r"sha256-([0-9a-f]{64})\.sig")


def config_media_type(media_type: str, document: dict[str, Any]) -> str | None:
    """The config's media type of an image manifest; None for an index."""
    if media_type in mediatypes.INDEXES:
        return None
    config = document.get("config")
    return config.get("mediaType") if isinstance(config, dict) else None


def identifying_type(media_type: str, document: dict[str, Any]) -> str:
    """The media type Harbor shows as an artifact's `media_type`: the config's
    for a manifest, the index's own (or the type its annotation names)."""
    config = config_media_type(media_type, document)
    if config is not None:
        return config
    annotations = document.get("annotations") or {}
    declared = annotations.get(INDEX_TYPE_ANNOTATION)
    return declared if isinstance(declared, str) and declared else media_type


def artifact_type_of(media_type: str, document: dict[str, Any]) -> str:
    """`artifactType`, else the config's media type; "" for an index without."""
    declared = document.get("artifactType")
    if isinstance(declared, str) and declared:
        return declared
    return config_media_type(media_type, document) or ""


def kind_of(media_type: str, document: dict[str, Any]) -> str:
    """Harbor's type of the artifact: IMAGE, CHART, CNAB, ... or UNKNOWN."""
    resolved = artifact_type_of(media_type, document) or identifying_type(
        media_type, document
    )
    if resolved in _TYPES:
        return _TYPES[resolved]
    vendor = _VENDOR_CONFIG.fullmatch(identifying_type(media_type, document))
    return vendor.group(1).upper() if vendor else UNKNOWN


def accessory_type(document: dict[str, Any], cosign_tagged: bool = False) -> str:
    """The accessory type of a manifest that refers to another one."""
    if cosign_tagged and "subject" not in document:
        return COSIGN
    config = document.get("config") if isinstance(document.get("config"), dict) else {}
    resolved = document.get("artifactType") or config.get("mediaType")
    if resolved in IMAGE_CONFIGS:
        layers = document.get("layers") or []
        if any(
            _NYDUS_ANNOTATION in (layer.get("annotations") or {}) for layer in layers
        ):
            return NYDUS
        return SUBJECT
    return _ACCESSORY_TYPES.get(resolved, SUBJECT)


def cosign_subject(tag: str) -> str | None:
    """The digest a cosign signature tag (`sha256-<hex>.sig`) signs, if it is one."""
    match = COSIGN_TAG.fullmatch(tag)
    return f"sha256:{match.group(1)}" if match else None


def cosign_tag(digest: str) -> str | None:
    """The tag cosign gives the signature of `digest`; None if not sha256."""
    algorithm, _, encoded = digest.partition(":")
    return f"sha256-{encoded}.sig" if algorithm == "sha256" else None
