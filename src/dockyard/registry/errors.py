"""OCI error codes, their HTTP statuses, and the domain exceptions that carry them.

This module is the only place that maps a code to a status. Services raise the
exceptions below with the facts of the failure; one handler in
`registry.routes` renders every one of them in the OCI error body:

    {"errors": [{"code": "BLOB_UNKNOWN", "message": "...", "detail": {...}}]}

    RegistryError
      BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, DigestInvalid,
      ManifestBlobUnknown, ManifestInvalid, ManifestUnknown, NameInvalid,
      NameUnknown, SizeInvalid, Unauthorized, Denied, Unsupported,
      ChunkOutOfOrder, RangeNotSatisfiable, ManifestTooLarge, StillReferenced
      RetryLater          may carry Retry-After
        TooManyRequests, Unavailable
"""

from __future__ import annotations

from typing import Any, ClassVar

# code -> (HTTP status, default message). Codes and messages follow the
# distribution spec's error code table.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (
        400,
        "manifest references a manifest or blob unknown to registry",
    ),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    # distribution's own code for a service that cannot answer now.
    "UNAVAILABLE": (503, "service unavailable"),
    # Not in the spec's table: failures it names without a code.
    "NOT_FOUND": (404, "no such endpoint"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "RANGE_NOT_SATISFIABLE": (416, "requested range not satisfiable"),
}

# Where the spec asks for another status than the code's usual one.
STATUS_OVERRIDES: dict[str, int] = {
    "ChunkOutOfOrder": 416,
    "ManifestTooLarge": 413,
    "StillReferenced": 412,
}


class RegistryError(Exception):
    """A failure a registry client must see as an OCI error body."""

    code: ClassVar[str] = "UNSUPPORTED"

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or ERROR_CODES[self.code][1]
        self.detail = detail
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return STATUS_OVERRIDES.get(type(self).__name__, ERROR_CODES[self.code][0])

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body."""
        return {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            error["detail"] = self.detail
        return {"errors": [error]}


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"


class ManifestBlobUnknown(RegistryError):
    code = "MANIFEST_BLOB_UNKNOWN"


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"


class NameInvalid(RegistryError):
    code = "NAME_INVALID"


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"


class Denied(RegistryError):
    code = "DENIED"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"


class RetryLater(RegistryError):
    """A failure that may pass: `retry_after` (seconds or an HTTP date, as
    RFC 9110 section 10.2.3 has it) is sent as `Retry-After` when known."""

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: str | None = None,
        **detail: Any,
    ) -> None:
        super().__init__(message, **detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"retry-after": self.retry_after} if self.retry_after else {}


class TooManyRequests(RetryLater):
    code = "TOOMANYREQUESTS"


class ChunkOutOfOrder(RegistryError):
    """A chunk that does not start at the upload's offset (416)."""

    code = "BLOB_UPLOAD_INVALID"


class RangeNotSatisfiable(RegistryError):
    """A `Range` outside the blob; `detail["size"]` is the blob's size."""

    code = "RANGE_NOT_SATISFIABLE"


class StillReferenced(RegistryError):
    """Content that a manifest in the repository still needs (412)."""

    code = "DENIED"


class ManifestTooLarge(RegistryError):
    """A manifest over the size limit (413)."""

    code = "MANIFEST_INVALID"


class Unavailable(RetryLater):
    """What was asked is not here and its source (a proxy cache's upstream)
    cannot be reached now."""

    code = "UNAVAILABLE"
