"""Content digests: `algorithm:encoded`, as the OCI image spec defines them.

Only sha256 and sha512 are accepted: they are the registered algorithms that
clients use, and the only ones whose content Dockyard can verify.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.registry.errors import DigestInvalid

_ENCODED_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"(sha256|sha512):([a-f0-9]+)")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def parse_digest(text: str) -> Digest:
    """Parse and validate a digest string; raise `DigestInvalid` if it is not one."""
    match = _DIGEST_RE.fullmatch(text)
    if match is None or len(match.group(2)) != _ENCODED_LENGTH[match.group(1)]:
        raise DigestInvalid("invalid digest", digest=text[:200])
    return Digest(match.group(1), match.group(2))


def is_digest(text: str) -> bool:
    """Whether `text` looks like a digest (as opposed to a tag)."""
    return ":" in text


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
