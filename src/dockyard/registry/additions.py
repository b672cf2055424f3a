"""What the API reads out of an artifact's blobs: image facts and additions.

An image's config holds its platform, run configuration and build history; a
Helm chart's layer is a gzipped tar whose top directory holds `values.yaml`,
`README.md` and (for apiVersion v1 charts) `requirements.yaml`. These are
pure functions over the blobs' bytes; reading the bytes is the caller's job.

Chart archives come from clients, so they are read defensively: no member is
written to disk, no member larger than `MAX_FILE_BYTES` is read, and the scan
stops after `MAX_MEMBERS` entries.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

import yaml

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_MEMBERS = 10_000

BUILD_HISTORY = "build_history"
VALUES = "values.yaml"
README = "readme.md"
DEPENDENCIES = "dependencies"
ADDITIONS = frozenset({BUILD_HISTORY, VALUES, README, DEPENDENCIES})

_JSON = "application/json; charset=utf-8"
_CONTENT_TYPES = {
    BUILD_HISTORY: _JSON,
    VALUES: "text/plain; charset=utf-8",
    README: "text/markdown; charset=utf-8",
    DEPENDENCIES: _JSON,
}


class AdditionUnavailable(Exception):
    """The artifact's blobs cannot give the addition (unreadable or malformed)."""


@dataclass(frozen=True, slots=True)
class Addition:
    content: bytes
    content_type: str


def parse_json_object(content: bytes) -> dict[str, Any]:
    """A JSON object from a blob; `AdditionUnavailable` if it is not one."""
    try:
        value = json.loads(content)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AdditionUnavailable("the blob is not valid JSON") from exc
    if not isinstance(value, dict):
        raise AdditionUnavailable("the blob is not a JSON object")
    return value


def image_attributes(config: dict[str, Any]) -> dict[str, Any]:
    """`extra_attrs` of an image: platform, creation, author, run configuration.
    The author falls back to the labels that conventionally name one."""
    run = config.get("config") if isinstance(config.get("config"), dict) else {}
    labels = run.get("Labels") if isinstance(run.get("Labels"), dict) else {}
    author = config.get("author") or ""
    for label in ("org.opencontainers.image.authors", "maintainer"):
        if not author and labels.get(label):
            author = labels[label]
    return {
        "architecture": config.get("architecture", ""),
        "os": config.get("os", ""),
        "created": config.get("created"),
        "author": author,
        "config": run,
    }


def build_history(config: dict[str, Any]) -> Addition:
    """The image's build history, as its config records it (JSON list or null)."""
    history = config.get("history")
    return Addition(json.dumps(history).encode(), _CONTENT_TYPES[BUILD_HISTORY])


def chart_addition(name: str, chart: dict[str, Any], archive: bytes) -> Addition:
    """`values.yaml`, `readme.md` or `dependencies` of a chart, from its
    metadata (the config blob) and its archive. A file the chart lacks is empty."""
    if name == DEPENDENCIES:
        dependencies = chart.get("dependencies")
        if not dependencies:
            requirements = _chart_file(archive, "requirements.yaml")
            dependencies = _requirements(requirements)
        return Addition(json.dumps(dependencies or []).encode(), _CONTENT_TYPES[name])
    wanted = "values.yaml" if name == VALUES else "readme.md"
    return Addition(_chart_file(archive, wanted), _CONTENT_TYPES[name])


def _requirements(content: bytes) -> list[Any]:
    if not content:
        return []
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise AdditionUnavailable("the chart's requirements.yaml is malformed") from exc
    dependencies = document.get("dependencies") if isinstance(document, dict) else None
    return dependencies if isinstance(dependencies, list) else []


def _chart_file(archive: bytes, wanted: str) -> bytes:
    """The file named `wanted` (case-insensitively) directly inside the
    archive's top directory; b"" if there is none."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    break
                parts = member.name.strip("/").split("/")
                if len(parts) != 2 or parts[1].lower() != wanted:
                    continue
                if not member.isfile() or member.size > MAX_FILE_BYTES:
                    raise AdditionUnavailable(f"the chart's {wanted} is unreadable")
                extracted = tar.extractfile(member)
                return extracted.read() if extracted is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AdditionUnavailable("the chart archive is not a gzipped tar") from exc
    return b""
