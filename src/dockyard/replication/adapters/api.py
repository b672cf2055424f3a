"""JSON over HTTP to a service's own API (Docker Hub, Quay, GitLab, GitHub,
Harbor), beside the registry protocol.

Requests go to one base URL with the endpoint's TLS settings and the
headers the adapter sets (its API token). A next page is fetched from
the same base whatever host the service names in it, so the token never
leaves for another host. Failures are the client's `UpstreamError`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from dockyard.replication.client import (
    Endpoint,
    UpstreamInvalid,
    UpstreamUnavailable,
    local_path,
    next_page,
    raise_for_status,
    transport_verify,
)

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Listings are bounded: a service that keeps answering "next" is broken.
_MAX_PAGES = 1000
# Where the next page is: a path under the base and its query.
Page = tuple[str, dict[str, str]]


class ServiceAPI:
    def __init__(self, base: str, endpoint: Endpoint) -> None:
        self.base = base.rstrip("/")
        self.headers: dict[str, str] = {"accept": "application/json"}
        self._http = httpx.AsyncClient(
            verify=transport_verify(endpoint), timeout=_TIMEOUT
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def use_bearer(self, token: str) -> None:
        self.headers["authorization"] = f"Bearer {token}"

    async def get(
        self, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """A 2xx answer to GET `path`; `UpstreamError` for anything else."""
        # An empty `params` would make httpx drop the query `path` carries.
        return await self._send("GET", path, params=params or None)

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        return _json(await self.get(path, params), path)

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return _json(await self._send("POST", path, json=body), path)

    async def delete(self, path: str) -> httpx.Response:
        """A 2xx answer to DELETE `path`; `UpstreamError` for anything else."""
        return await self._send("DELETE", path)

    async def request(self, method: str, path: str, **extra: Any) -> httpx.Response:
        """The answer whatever its status, for a caller that reads the
        status itself; `UpstreamUnavailable` if none came."""
        headers = {**self.headers, **(extra.pop("headers", None) or {})}
        try:
            return await self._http.request(
                method, self.base + path, headers=headers, **extra
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{method} {path}: {type(exc).__name__}: {exc}"
            ) from exc

    async def pages(
        self, path: str, params: dict[str, str] | None = None
    ) -> AsyncIterator[list[Any]]:
        """Each page of a listing that answers with a JSON array, following
        `Link: <...>; rel="next"` (GitHub, Harbor) or `X-Next-Page` (GitLab)."""

        def following(response: httpx.Response, body: Any) -> Page:
            if not isinstance(body, list):
                raise UpstreamInvalid(f"{path}: not a JSON list")
            linked = self.next_link(response)
            if linked is not None:
                return linked, {}
            page = response.headers.get("x-next-page", "").strip()
            return (path, {**(params or {}), "page": page}) if page.isdigit() else None

        async for body in self.walk(path, params, following):
            yield body

    async def walk(
        self,
        path: str,
        params: dict[str, str] | None,
        following: Callable[[httpx.Response, Any], Page | None],
    ) -> AsyncIterator[Any]:
        """Each JSON body of a paged listing; `following` says where the
        next page is (path and query), None after the last."""
        target: Page | None = (path, dict(params or {}))
        for _ in range(_MAX_PAGES):
            if target is None:
                return
            response = await self.get(*target)
            body = _json(response, target[0])
            target = following(response, body)
            yield body
        raise UpstreamInvalid(f"{path}: more than {_MAX_PAGES} pages")

    def next_path(self, url: Any) -> str | None:
        """A `next` URL from a JSON body, as a path under our base."""
        if not isinstance(url, str) or not url:
            return None
        return local_path(url)

    def next_link(self, response: httpx.Response) -> str | None:
        """The `rel="next"` page of a `Link` header, as a path under our
        base. A server names it from its root (Harbor:
        `</api/v2.0/projects?page=2>`), so a base path is not repeated."""
        linked = next_page(response.headers.get("link"))
        prefix = urlsplit(self.base).path
        if linked is not None and prefix and linked.startswith(prefix + "/"):
            return linked[len(prefix) :]
        return linked

    async def _send(self, method: str, path: str, **extra: Any) -> httpx.Response:
        response = await self.request(method, path, **extra)
        raise_for_status(response, f"{method} {path.split('?', 1)[0]}")
        return response


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamInvalid(f"{what}: not JSON") from exc
