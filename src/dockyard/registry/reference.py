"""Repository names and tags, validated with the distribution spec's grammar."""

from __future__ import annotations

import re

from dockyard.registry.errors import ManifestInvalid, NameInvalid

# From the distribution spec: path components separated by "/", each lowercase
# alphanumerics joined by ".", "_", "__" or runs of "-".
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

# Docker's limit on the whole name; longer names break clients' URL handling.
MAX_NAME_LENGTH = 255


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME_RE.fullmatch(name) is not None


def validate_name(name: str) -> str:
    """Return `name` if it is a valid repository name, else raise `NameInvalid`."""
    if not is_valid_name(name):
        raise NameInvalid("invalid repository name", name=name[:MAX_NAME_LENGTH])
    return name


def is_valid_tag(tag: str) -> bool:
    return _TAG_RE.fullmatch(tag) is not None


def validate_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag, else raise `ManifestInvalid`."""
    if not _TAG_RE.fullmatch(tag):
        raise ManifestInvalid("invalid tag", tag=tag[:128])
    return tag


def project_of(name: str) -> str:
    """The project a repository belongs to: its first path component."""
    return name.split("/", 1)[0]
