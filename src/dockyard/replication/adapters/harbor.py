"""Harbor, and Dockyard (which speaks Harbor's API).

Repositories are listed through the management API rather than the
catalog: it is faster, works for callers that are not system
administrators, and shows exactly what the credentials may read.

    GET /api/v2.0/projects?page_size=100              [{"name": "team", ...}]
    GET /api/v2.0/projects/<p>/repositories?page_size=100
                                                      [{"name": "team/web", ...}]
    pages: `Link: <...>; rel="next"`

with the endpoint's credential as HTTP Basic (an `oauth` secret as a
bearer token). A name filter naming its projects skips the project list.
A server without that API (404) is listed through its catalog instead.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from dockyard.replication.adapters.api import ServiceAPI
from dockyard.replication.adapters.base import AdapterInfo, GenericAdapter
from dockyard.replication.client import (
    Endpoint,
    RegistryClient,
    UpstreamNotFound,
    basic_authorization,
)
from dockyard.replication.patterns import specific_namespaces

_API = "/api/v2.0"
_PAGE = {"page_size": "100"}


class Harbor(GenericAdapter):
    kind: ClassVar[str] = "harbor"
    info: ClassVar[AdapterInfo] = AdapterInfo(
        "Harbor or Dockyard",
        lists="Harbor API (`/api/v2.0/projects/<p>/repositories`)",
    )

    async def list_matching(
        self, endpoint: Endpoint, client: RegistryClient, pattern: str | None
    ) -> list[str]:
        async with ServiceAPI(endpoint.url + _API, endpoint) as api:
            _authenticate(api, endpoint)
            try:
                projects = specific_namespaces(pattern or "") or await _projects(api)
            except UpstreamNotFound:
                return await client.list_repositories()
            found: list[str] = []
            for project in projects:
                found.extend(await _project_repositories(api, project))
        return found


def _authenticate(api: ServiceAPI, endpoint: Endpoint) -> None:
    if endpoint.credential_type == "oauth" and endpoint.access_secret:
        api.use_bearer(endpoint.access_secret)
    elif endpoint.has_credentials:
        api.headers["authorization"] = basic_authorization(endpoint)


async def _projects(api: ServiceAPI) -> list[str]:
    found: list[str] = []
    async for page in api.pages("/projects", _PAGE):
        found.extend(_names(page))
    return found


async def _project_repositories(api: ServiceAPI, project: str) -> list[str]:
    path = f"/projects/{quote(project, safe='')}/repositories"
    found: list[str] = []
    try:
        async for page in api.pages(path, _PAGE):
            found.extend(_names(page))
    except UpstreamNotFound:
        # The filter named a project the source does not have (or hides).
        return []
    return found


def _names(page: list[Any]) -> list[str]:
    return [
        item["name"]
        for item in page
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]
