"""A small client for remote OCI registries, on httpx.

It speaks the distribution API, pull and push (`/v2/` for pings, tag
lists, manifests, blobs with uploads and mounts, referrers) and
authenticates the way registries ask in their `WWW-Authenticate` challenge:

- `Bearer realm=...,service=...,scope=...`: a token is fetched from the
  realm (HTTP Basic with the endpoint's credentials when it has some,
  anonymously otherwise), kept per scope until it expires, and sent;
- `Basic realm=...`: the credentials are sent as HTTP Basic.

A request is tried without (or with the remembered) authorization first and
retried once after a challenge. Failures are `UpstreamError`s:

    UpstreamError
      UpstreamUnavailable   cannot connect, timed out, 429, 5xx: try later
      UpstreamDenied        401/403 after authenticating
      UpstreamNotFound      404: the upstream has no such thing
      UpstreamInvalid       the answer breaks the protocol (wrong digest, ...)
        UpstreamRangeNotSatisfiable   416 to a ranged blob request
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import logging
import math
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from dockyard.registry import mediatypes
from dockyard.registry.digest import compute_digest, is_digest, parse_digest
from dockyard.registry.errors import DigestInvalid

log = logging.getLogger(__name__)

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Tokens are renewed this long before the expiry they announce.
_TOKEN_MARGIN_SECONDS = 10
_DEFAULT_TOKEN_SECONDS = 60
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Pages of a tag list or catalog followed at most (a million names).
_MAX_PAGES = 1000
# Longest token lifetime believed: a day (an endless one is a broken answer).
_MAX_TOKEN_SECONDS = 86400
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')
_MANIFEST_ACCEPT = ", ".join(sorted(mediatypes.MANIFEST_MEDIA_TYPES))


class UpstreamError(Exception):
    """Talking to the remote registry failed; `status` is its HTTP status,
    `retry_after` its `Retry-After` (seconds or a date) when it sent one."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamDenied(UpstreamError):
    pass


class UpstreamNotFound(UpstreamError):
    pass


class UpstreamInvalid(UpstreamError):
    pass


class UpstreamRangeNotSatisfiable(UpstreamInvalid):
    """The blob has no such range; `content_range` is what the upstream
    said (`bytes */<size>`) if anything."""

    def __init__(self, message: str, content_range: str | None) -> None:
        super().__init__(message, 416)
        self.content_range = content_range


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a registry is and how to reach it. Secrets are in clear here:
    an `Endpoint` lives in memory only."""

    url: str
    access_key: str | None = None
    access_secret: str | None = None
    # "basic" (key and secret, for challenges) or "oauth" (the secret is a
    # bearer token sent as is until a challenge asks for another token).
    credential_type: str | None = None
    insecure: bool = False
    ca_certificate: str | None = None

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key or self.access_secret)


@dataclass(frozen=True, slots=True)
class ManifestHead:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class BlobStream:
    """An open blob download: `size` bytes to come from `chunks`. For a
    ranged request the upstream served (206), `content_range` is its
    `Content-Range`; None when the whole blob comes."""

    size: int
    chunks: AsyncIterator[bytes]
    content_range: str | None = None


def transport_verify(endpoint: Endpoint) -> ssl.SSLContext | bool:
    """What httpx should verify TLS with: nothing for an insecure endpoint,
    the system's CAs plus the endpoint's own certificate when it has one."""
    if endpoint.insecure:
        return False
    if not endpoint.ca_certificate:
        return True
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cadata=endpoint.ca_certificate)
    except ssl.SSLError as exc:
        raise UpstreamInvalid(f"the CA certificate cannot be loaded: {exc}") from exc
    return context


class RegistryClient:
    """One remote registry. Create it once per endpoint and `aclose()` it."""

    def __init__(self, endpoint: Endpoint, timeout: httpx.Timeout = _TIMEOUT) -> None:
        self.endpoint = endpoint
        self.base = endpoint.url.rstrip("/")
        self._http = httpx.AsyncClient(
            verify=transport_verify(endpoint), timeout=timeout, follow_redirects=True
        )
        # scope -> (Authorization header value, monotonic expiry)
        self._auth: dict[str, tuple[str, float]] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ping(self) -> None:
        """Return if `/v2/` answers and accepts the credentials; raise if not."""
        response = await self._request("GET", "/v2/", scope="")
        _raise_for_status(response, "/v2/")

    async def challenge(self) -> dict[str, str]:
        """The parameters of the challenge `/v2/` answers an unauthenticated
        request with (`scheme` is Bearer or Basic); empty when it lets
        anyone in. Services hand out their API's address there (GitLab)."""
        try:
            response = await self._http.get(self.base + "/v2/")
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"GET /v2/: {type(exc).__name__}") from exc
        if response.status_code != 401:
            _raise_for_status(response, "/v2/")
            return {}
        challenge = response.headers.get("www-authenticate", "")
        scheme, params = _challenge_params(challenge)
        return {"scheme": scheme, **params}

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        path = f"/v2/{repository}/manifests/{reference}"
        response = await self._request(
            "HEAD", path, _pull(repository), {"accept": _MANIFEST_ACCEPT}
        )
        _raise_for_status(response, path)
        digest = response.headers.get("docker-content-digest", "")
        if is_digest(reference):
            digest = digest or reference
        if not _is_valid_digest(digest):
            raise UpstreamInvalid(f"{path}: HEAD gave no valid Docker-Content-Digest")
        return ManifestHead(
            digest,
            _media_type(response),
            int(response.headers.get("content-length") or 0),
        )

    async def get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        """The manifest's bytes, verified against the digest asked for (by
        digest) or the one the upstream announced (by tag)."""
        path = f"/v2/{repository}/manifests/{reference}"
        response = await self._request(
            "GET", path, _pull(repository), {"accept": _MANIFEST_ACCEPT}, stream=True
        )
        try:
            _raise_for_status(response, path)
            content = await _bounded_body(response, _MAX_MANIFEST_BYTES, path)
        finally:
            await response.aclose()
        expected = reference if is_digest(reference) else None
        expected = expected or response.headers.get("docker-content-digest")
        digest = _verified_digest(content, expected, path)
        return FetchedManifest(digest, _media_type(response), content)

    async def head_blob(self, repository: str, digest: str) -> int:
        path = f"/v2/{repository}/blobs/{digest}"
        response = await self._request("HEAD", path, _pull(repository))
        _raise_for_status(response, path)
        size = response.headers.get("content-length", "")
        if not (size.isascii() and size.isdigit()):
            # Not zero: a client told so would take the blob for empty.
            raise UpstreamInvalid(f"{path}: no Content-Length")
        return int(size)

    @asynccontextmanager
    async def open_blob(
        self, repository: str, digest: str, byte_range: str | None = None
    ) -> AsyncIterator[BlobStream]:
        """Stream a blob; the caller must verify the bytes against `digest`.
        With `byte_range` (a `Range` value) the upstream may send that range
        only (then `content_range` is set) or ignore it and send it all."""
        path = f"/v2/{repository}/blobs/{digest}"
        headers = {"range": byte_range} if byte_range else None
        response = await self._request(
            "GET", path, _pull(repository), headers, stream=True
        )
        try:
            if response.status_code >= 300:
                # The body is not read: the Go registry declares the blob's
                # length on a 416 and sends a line, so reading would wait.
                _raise_for_blob_status(response, path)
            size = response.headers.get("content-length")
            if size is None or not size.isdigit():
                raise UpstreamInvalid(f"{path}: no Content-Length")
            ranged = response.headers.get("content-range")
            content_range = ranged if response.status_code == 206 else None
            yield BlobStream(int(size), _chunks(response, path), content_range)
        finally:
            await response.aclose()

    async def list_referrers(
        self, repository: str, digest: str
    ) -> list[dict[str, Any]] | None:
        """Descriptors from the referrers API; None if the upstream has none
        (404 there means "no such API", since the API always answers 200)."""
        path = f"/v2/{repository}/referrers/{digest}"
        response = await self._request(
            "GET", path, _pull(repository), {"accept": mediatypes.OCI_INDEX}
        )
        if response.status_code == 404:
            return None
        _raise_for_status(response, path)
        try:
            descriptors = response.json().get("manifests", [])
        except (ValueError, AttributeError) as exc:
            raise UpstreamInvalid(f"{path}: not a JSON index") from exc
        if not isinstance(descriptors, list):
            raise UpstreamInvalid(f"{path}: manifests is not a list")
        return with_digests(descriptors)

    async def list_tags(self, repository: str) -> list[str]:
        """Every tag of `repository`, following `Link` pages."""
        return await self._listing(
            f"/v2/{repository}/tags/list?n=1000", _pull(repository), "tags"
        )

    async def list_repositories(self) -> list[str]:
        """The catalog (`/v2/_catalog`), following `Link` pages."""
        return await self._listing(
            "/v2/_catalog?n=1000", "registry:catalog:*", "repositories"
        )

    async def _listing(self, first: str, scope: str, field: str) -> list[str]:
        """The strings of `field` on every page from `first` on. A registry
        whose pages come back to one seen before, or never end, is broken:
        `UpstreamInvalid` rather than a loop that fills memory."""
        path: str | None = first
        seen: set[str] = set()
        found: list[str] = []
        while path is not None:
            if path in seen or len(seen) >= _MAX_PAGES:
                raise UpstreamInvalid(
                    f"{first.split('?', 1)[0]}: its pages loop or pass "
                    f"{_MAX_PAGES}"
                )
            seen.add(path)
            response = await self._request(
                "GET", path, scope, {"accept": "application/json"}
            )
            _raise_for_status(response, path)
            found.extend(_strings(response, field, path))
            path = next_page(response.headers.get("link"))
        return found

    async def has_blob(self, repository: str, digest: str) -> bool:
        """Whether `repository` can serve the blob (HEAD)."""
        path = f"/v2/{repository}/blobs/{digest}"
        response = await self._request("HEAD", path, _push(repository))
        if response.status_code == 404:
            return False
        _raise_for_status(response, path)
        return True

    async def mount_blob(self, repository: str, source: str, digest: str) -> bool:
        """Ask for a cross-repository mount from `source`; False when the
        registry answered with an upload instead (which is then cancelled)."""
        path = f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source}"
        response = await self._request(
            "POST", path, f"{_push(repository)} {_pull(source)}"
        )
        if response.status_code == 201:
            return True
        _raise_for_status(response, path)
        location = response.headers.get("location")
        if location:
            await self._cancel_upload(repository, self._path(location))
        return False

    async def _cancel_upload(self, repository: str, location: str) -> None:
        """DELETE an upload we will not use, so that it does not linger until
        the registry's own cleanup; a refusal is logged, nothing more."""
        response = await self._request("DELETE", location, _push(repository))
        if response.status_code >= 300 and response.status_code != 404:
            log.warning(
                "upload_cancel_refused repository=%s status=%d",
                repository,
                response.status_code,
            )

    async def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        chunks: AsyncIterator[bytes],
        chunk_size: int | None = None,
    ) -> None:
        """Upload a blob from `chunks` (`size` bytes): one streamed PUT, or
        with `chunk_size` a PATCH per chunk of that many bytes (each held in
        memory once) and a closing PUT. The registry checks the digest."""
        scope = _push(repository)
        path = f"/v2/{repository}/blobs/uploads/"
        response = await self._request("POST", path, scope)
        _raise_for_status(response, path)
        location = self._location(response, path)
        if chunk_size:
            location = await self._patch_chunks(location, scope, chunks, chunk_size)
            chunks = _no_bytes()
            size = 0
        separator = "&" if "?" in location else "?"
        target = f"{location}{separator}digest={digest}"
        response = await self._request(
            "PUT",
            target,
            scope,
            {
                "content-type": "application/octet-stream",
                "content-length": str(size),
            },
            content=chunks,
        )
        _raise_for_status(response, f"PUT blob {digest}")

    async def _patch_chunks(
        self,
        location: str,
        scope: str,
        chunks: AsyncIterator[bytes],
        chunk_size: int,
    ) -> str:
        offset = 0
        async for piece in _rechunked(chunks, chunk_size):
            end = offset + len(piece) - 1
            response = await self._request(
                "PATCH",
                location,
                scope,
                {
                    "content-type": "application/octet-stream",
                    "content-range": f"{offset}-{end}",
                    "content-length": str(len(piece)),
                },
                content=piece,
            )
            _raise_for_status(response, "PATCH blob chunk")
            location = self._location(response, location)
            offset = end + 1
        return location

    async def put_manifest(
        self, repository: str, reference: str, media_type: str, content: bytes
    ) -> bool:
        """Store a manifest; True when the registry answered `OCI-Subject`
        (it indexes referrers itself, so no tag fallback is needed)."""
        path = f"/v2/{repository}/manifests/{reference}"
        response = await self._request(
            "PUT", path, _push(repository), {"content-type": media_type}, content
        )
        _raise_for_status(response, path)
        return "oci-subject" in response.headers

    async def delete_manifest(self, repository: str, digest: str) -> None:
        """A registry that does not delete answers 405 (UNSUPPORTED); the
        error names the codes it gave."""
        await self._delete(f"/v2/{repository}/manifests/{digest}", repository)

    async def delete_tag(self, repository: str, tag: str) -> None:
        """Delete the tag alone (`DELETE /v2/<name>/manifests/<tag>`, OCI
        1.1). A registry that cannot answers 400 or 405; the error then
        names the codes it gave, and nothing else is deleted here."""
        await self._delete(f"/v2/{repository}/manifests/{tag}", repository)

    async def _delete(self, path: str, repository: str) -> None:
        response = await self._request("DELETE", path, f"repository:{repository}:*")
        if response.status_code >= 300:
            path += _error_codes(response)
        _raise_for_status(response, path)

    def _location(self, response: httpx.Response, what: str) -> str:
        location = response.headers.get("location")
        if not location:
            raise UpstreamInvalid(f"{what}: no Location for the upload")
        return self._path(location)

    def _path(self, location: str) -> str:
        """A Location as a path under our base URL (registries send either)."""
        if location.startswith(self.base):
            return location[len(self.base) :]
        return local_path(location)

    async def _request(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send, and after a 401 challenge authenticate and send once more.
        A streamed body cannot be sent twice: the caller's earlier request
        to the same scope (an upload's POST) has fetched the token."""
        headers = dict(headers or {})
        response = await self._send(method, path, scope, headers, stream, content)
        if response.status_code != 401:
            return response
        challenge = response.headers.get("www-authenticate", "")
        await response.aclose()
        authorization = await self._authorize(challenge, scope)
        if authorization is None or not isinstance(content, bytes | None):
            return response
        return await self._send(
            method, path, scope, headers, stream, content, authorization
        )

    async def _send(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str],
        stream: bool,
        content: bytes | AsyncIterator[bytes] | None = None,
        authorization: str | None = None,
    ) -> httpx.Response:
        authorization = authorization or self._remembered(scope)
        if authorization:
            headers["authorization"] = authorization
        try:
            request = self._http.build_request(
                method, self.base + path, headers=headers, content=content
            )
        except httpx.InvalidURL as exc:
            # A Location or page link of the registry's that is no URL.
            raise UpstreamInvalid(f"{method} {path[:200]}: not a valid URL") from exc
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{method} {path}: {type(exc).__name__}: {exc}"
            ) from exc
        return response

    def _remembered(self, scope: str) -> str | None:
        held = self._auth.get(scope)
        if held is not None and held[1] >= time.monotonic():
            return held[0]
        # An OAuth secret is a bearer token already: offered first, and
        # replaced for this scope by whatever token a challenge leads to.
        if self.endpoint.credential_type == "oauth" and self.endpoint.access_secret:
            return f"Bearer {self.endpoint.access_secret}"
        return None

    async def _authorize(self, challenge: str, scope: str) -> str | None:
        """The Authorization header a challenge asks for; None if it cannot
        be met (then the 401 stands)."""
        kind, params = _challenge_params(challenge)
        if kind == "basic" and self.endpoint.has_credentials:
            value = basic_authorization(self.endpoint)
            self._auth[scope] = (value, float("inf"))
            return value
        if kind == "bearer" and params.get("realm"):
            return await self._fetch_token(params, scope)
        return None

    async def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        query = {"service": params.get("service", "")}
        wanted = params.get("scope") or scope
        if wanted:
            query["scope"] = wanted
        auth = None
        if self.endpoint.has_credentials:
            auth = httpx.BasicAuth(
                self.endpoint.access_key or "", self.endpoint.access_secret or ""
            )
            query["account"] = self.endpoint.access_key or ""
        try:
            response = await self._http.get(params["realm"], params=query, auth=auth)
        except httpx.InvalidURL as exc:
            raise UpstreamInvalid("token service: realm is not a valid URL") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"token service: {type(exc).__name__}") from exc
        _raise_for_status(response, "token service")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = _token_seconds(body.get("expires_in"))
        except (ValueError, AttributeError) as exc:
            raise UpstreamInvalid("token service: not a token answer") from exc
        if not isinstance(token, str) or not token:
            raise UpstreamInvalid("token service: no token in the answer")
        value = f"Bearer {token}"
        expiry = time.monotonic() + max(lifetime - _TOKEN_MARGIN_SECONDS, 1)
        self._auth[scope] = (value, expiry)
        return value


def _token_seconds(value: object) -> float:
    """How long a token lives, from the `expires_in` its service gave: the
    default when it gave none that is a finite number of seconds (JSON
    parsers take `Infinity` and `1e999`), and never past a day."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return _DEFAULT_TOKEN_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        return _DEFAULT_TOKEN_SECONDS
    if not math.isfinite(seconds) or seconds <= 0:
        return _DEFAULT_TOKEN_SECONDS
    return min(seconds, _MAX_TOKEN_SECONDS)


def with_digests(descriptors: list[Any]) -> list[dict[str, Any]]:
    """The descriptors that name a valid digest. Others are dropped: a
    digest such as `../x` would be asked for as a path of its own."""
    return [
        d
        for d in descriptors
        if isinstance(d, dict)
        and isinstance(d.get("digest"), str)
        and _is_valid_digest(d["digest"])
    ]


def _challenge_params(challenge: str) -> tuple[str, dict[str, str]]:
    """The scheme (lower case) and parameters of a `WWW-Authenticate`."""
    kind, _, rest = challenge.partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM_RE.finditer(rest)
    }
    return kind.lower(), params


def basic_authorization(endpoint: Endpoint) -> str:
    """The HTTP Basic `Authorization` value for the endpoint's credential."""
    pair = f"{endpoint.access_key or ''}:{endpoint.access_secret or ''}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def next_page(link: str | None) -> str | None:
    """The path of the `rel="next"` page in a `Link` header, if any."""
    match = _LINK_RE.search(link or "")
    return None if match is None else local_path(match.group(1))


def local_path(target: str) -> str:
    """A URL as path and query only. Pages are fetched from our own base
    URL whatever host a server names, so a token never follows a link."""
    if target.startswith(("http://", "https://")):
        try:
            parts = httpx.URL(target)
        except httpx.InvalidURL as exc:
            raise UpstreamInvalid(f"{target[:200]}: not a valid URL") from exc
        return parts.path + (f"?{parts.query.decode()}" if parts.query else "")
    return target


async def _no_bytes() -> AsyncIterator[bytes]:
    return
    yield b""


async def _rechunked(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """`chunks` regrouped into pieces of `size` bytes (the last may be less)."""
    held = bytearray()
    async for piece in chunks:
        held.extend(piece)
        while len(held) >= size:
            yield bytes(held[:size])
            del held[:size]
    if held:
        yield bytes(held)


def raise_for_status(response: httpx.Response, what: str) -> None:
    """The `UpstreamError` that `response`'s status means, if it failed."""
    _raise_for_status(response, what)


def _error_codes(response: httpx.Response) -> str:
    """` (CODE: message, ...)` from an OCI error body; empty if none."""
    try:
        errors = response.json().get("errors") or []
        found = [f"{e.get('code')}: {e.get('message', '')}" for e in errors]
    except (ValueError, AttributeError):
        return ""
    return f" ({'; '.join(found)[:300]})" if found else ""


def _raise_for_blob_status(response: httpx.Response, what: str) -> None:
    if response.status_code == 416:
        raise UpstreamRangeNotSatisfiable(
            f"{what}: range not satisfiable", response.headers.get("content-range")
        )
    _raise_for_status(response, what)


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 300:
        return
    message = f"{what}: upstream answered {status}"
    if status == 429:
        message += f" (rate limited{_rate_limit(response.headers)})"
    raise status_error(response, message)


def status_error(response: httpx.Response, message: str) -> UpstreamError:
    """The `UpstreamError` an error answer's status means, saying `message`."""
    status = response.status_code
    if status == 429 or status >= 500:
        return UpstreamUnavailable(message, status, _retry_after(response))
    if status in (401, 403):
        return UpstreamDenied(message, status)
    if status == 404:
        return UpstreamNotFound(message, status)
    return UpstreamInvalid(message, status)


def _rate_limit(headers: httpx.Headers) -> str:
    """What a 429 says about the limit, for the message (Docker Hub sends
    `RateLimit-Limit: 100;w=21600` and `RateLimit-Remaining`; others
    `RateLimit-Reset` or `Retry-After` seconds)."""
    said = []
    for name in ("ratelimit-limit", "ratelimit-remaining"):
        if name in headers:
            said.append(f"{name.split('-', 1)[1]} {headers[name][:40]}")
    for name in ("retry-after", "ratelimit-reset"):
        value = headers.get(name, "").split(";", 1)[0].strip()
        if value.isdigit():
            said.append(f"resets in {value}s")
            break
    return ("; " + ", ".join(said)) if said else ""


def _retry_after(response: httpx.Response) -> str | None:
    """When to ask again: `Retry-After`, else the seconds until the quota
    resets from the RateLimit headers (`RateLimit-Reset`), if any."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit() or _is_http_date(value):
        return value
    reset = response.headers.get("ratelimit-reset", "").split(";", 1)[0].strip()
    return reset if reset.isdigit() else None


def _is_http_date(text: str) -> bool:
    try:
        return email.utils.parsedate_to_datetime(text) is not None
    except (TypeError, ValueError):
        return False


def _strings(response: httpx.Response, field: str, what: str) -> list[str]:
    """`field` of a JSON object answer, a list of strings."""
    try:
        values = response.json().get(field) or []
    except (ValueError, AttributeError) as exc:
        raise UpstreamInvalid(f"{what}: not a JSON object") from exc
    if not isinstance(values, list):
        raise UpstreamInvalid(f"{what}: {field} is not a list")
    return [str(value) for value in values]


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip()


def _is_valid_digest(text: str) -> bool:
    try:
        parse_digest(text)
    except DigestInvalid:
        return False
    return True


def _verified_digest(content: bytes, expected: str | None, what: str) -> str:
    """The content's digest; `UpstreamInvalid` if it is not `expected`."""
    if expected is None:
        return compute_digest(content)
    if not _is_valid_digest(expected):
        raise UpstreamInvalid(f"{what}: invalid digest {expected[:80]!r}")
    algorithm = expected.partition(":")[0]
    actual = f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"
    if actual != expected:
        raise UpstreamInvalid(f"{what}: content does not match {expected}")
    return actual


async def _bounded_body(response: httpx.Response, limit: int, what: str) -> bytes:
    """The body of a streamed answer; `UpstreamInvalid` as soon as it is
    (or says it will be) longer than `limit`: nothing past it is read."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UpstreamInvalid(f"{what}: manifest larger than the limit")
    body = bytearray()
    try:
        async for piece in response.aiter_bytes():
            body.extend(piece)
            if len(body) > limit:
                raise UpstreamInvalid(f"{what}: manifest larger than the limit")
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"{what}: transfer broke off: {exc}") from exc
    return bytes(body)


async def _chunks(response: httpx.Response, path: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"{path}: transfer broke off: {exc}") from exc
