"""The parts of Harbor's `/api/v2.0` replication needs from a `harbor`-type
endpoint (Harbor, or another Dockyard): what the OCI API cannot say.

    labels_by_tag(repository)   GET .../artifacts?with_label=true&with_tag=true
    delete_tag(repository, tag) DELETE .../artifacts/{tag}/tags/{tag}

Requests carry the endpoint's credentials (HTTP Basic, or the bearer token
of an `oauth` credential). Failures are the `UpstreamError`s of `client`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from dockyard.replication.client import (
    Endpoint,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamUnavailable,
    raise_for_status,
    transport_verify,
)

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_PAGE_SIZE = 100
# A repository with more artifacts than this is refused rather than read
# without end (a misbehaving server repeating its last page).
_MAX_PAGES = 1000


class HarborApi:
    """One `harbor`-type endpoint's management API; `aclose()` it."""

    def __init__(self, endpoint: Endpoint, timeout: httpx.Timeout = _TIMEOUT) -> None:
        self.base = endpoint.url.rstrip("/") + "/api/v2.0"
        self._http = httpx.AsyncClient(
            verify=transport_verify(endpoint), timeout=timeout, auth=_auth(endpoint)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def labels_by_tag(self, repository: str) -> dict[str, frozenset[str]]:
        """The label names of the artifact each tag of `repository` is on."""
        found: dict[str, frozenset[str]] = {}
        for page in range(1, _MAX_PAGES + 1):
            artifacts = await self._artifact_page(repository, page)
            for artifact in artifacts:
                names = frozenset(_names(artifact.get("labels")))
                for tag in _names(artifact.get("tags")):
                    found[tag] = names
            if len(artifacts) < _PAGE_SIZE:
                return found
        raise UpstreamInvalid(f"{repository}: more than {_MAX_PAGES} artifact pages")

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Delete the tag alone; False if the repository has no such tag."""
        path = f"{_artifacts_path(repository)}/{quote(tag, safe='')}/tags/"
        path += quote(tag, safe="")
        response = await self._send("DELETE", path)
        try:
            raise_for_status(response, f"DELETE {path}")
        except UpstreamNotFound:
            return False
        return True

    async def _artifact_page(self, repository: str, page: int) -> list[dict[str, Any]]:
        path = _artifacts_path(repository)
        params = {
            "with_label": "true",
            "with_tag": "true",
            "page": str(page),
            "page_size": str(_PAGE_SIZE),
        }
        response = await self._send("GET", path, params)
        raise_for_status(response, f"GET {path}")
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamInvalid(f"{path}: the artifact list is not JSON") from exc
        if not isinstance(body, list):
            raise UpstreamInvalid(f"{path}: the artifact list is not a list")
        return [item for item in body if isinstance(item, dict)]

    async def _send(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            return await self._http.request(method, self.base + path, params=params)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{method} {path}: {type(exc).__name__}: {exc}"
            ) from exc


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["authorization"] = f"Bearer {self.token}"
        yield request


def _auth(endpoint: Endpoint) -> httpx.Auth | None:
    if endpoint.credential_type == "oauth" and endpoint.access_secret:
        return _Bearer(endpoint.access_secret)
    if not endpoint.has_credentials:
        return None
    return httpx.BasicAuth(endpoint.access_key or "", endpoint.access_secret or "")


def _artifacts_path(repository: str) -> str:
    # Harbor's API names a repository inside its project, with any `/` in
    # that name URL-encoded twice (`a/b` -> `a%252Fb`).
    project, _, name = repository.partition("/")
    encoded = quote(quote(name, safe=""), safe="")
    return f"/projects/{quote(project, safe='')}/repositories/{encoded}/artifacts"


def _names(items: Any) -> list[str]:
    """The `name` of each object in a list (tags, labels); [] for null."""
    if not isinstance(items, list):
        return []
    return [
        item["name"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]
